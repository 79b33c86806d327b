"""Server leases: which mcpd replica supervises each server (issue 14).

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-30
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "server_leases",
        sa.Column("server_id", sa.String(length=32), nullable=False),
        sa.Column("holder", sa.String(length=200), nullable=True),
        sa.Column("holder_url", sa.String(length=2000), nullable=True),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("generation", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["server_id"],
            ["servers.id"],
            name=op.f("fk_server_leases_server_id_servers"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("server_id", name=op.f("pk_server_leases")),
    )
    with op.batch_alter_table("server_leases", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_server_leases_expires_at"), ["expires_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("server_leases", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_server_leases_expires_at"))
    op.drop_table("server_leases")
