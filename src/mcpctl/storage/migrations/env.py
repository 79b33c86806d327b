"""Alembic environment: mcpd hands us a live connection (Database.migrate)."""

from alembic import context

from mcpctl.storage.tables import Base

connection = context.config.attributes.get("connection")
if connection is None:  # pragma: no cover - migrations always run through Database.migrate
    raise RuntimeError("run migrations through mcpd (Database.migrate), which supplies a connection")

context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    render_as_batch=connection.dialect.name == "sqlite",
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
