"""McpTokens, and audit lookups by token.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-21
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "mcp_tokens",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("name", sa.String(length=63), nullable=False),
        sa.Column("active_name", sa.String(length=63), nullable=True),
        sa.Column("project_id", sa.String(length=32), nullable=False),
        sa.Column("token_sha", sa.String(length=64), nullable=False),
        sa.Column("prefix", sa.String(length=16), nullable=False),
        sa.Column("owner", sa.String(length=320), nullable=False),
        sa.Column("parent_id", sa.String(length=32), nullable=True),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("rbac_mode", sa.String(length=16), nullable=False),
        sa.Column(
            "bindings",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_used_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["project_id"],
            ["projects.id"],
            name=op.f("fk_mcp_tokens_project_id_projects"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["parent_id"],
            ["mcp_tokens.id"],
            name=op.f("fk_mcp_tokens_parent_id_mcp_tokens"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_mcp_tokens")),
        sa.UniqueConstraint("project_id", "active_name", name=op.f("uq_mcp_tokens_project_id_active_name")),
        sa.UniqueConstraint("token_sha", name=op.f("uq_mcp_tokens_token_sha")),
    )
    with op.batch_alter_table("mcp_tokens", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_mcp_tokens_project_id"), ["project_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_mcp_tokens_parent_id"), ["parent_id"], unique=False)
    with op.batch_alter_table("audit_events", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_audit_events_token_name"), ["token_name"], unique=False)
        batch_op.create_index(batch_op.f("ix_audit_events_token_sha"), ["token_sha"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("audit_events", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_audit_events_token_sha"))
        batch_op.drop_index(batch_op.f("ix_audit_events_token_name"))
    with op.batch_alter_table("mcp_tokens", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_mcp_tokens_parent_id"))
        batch_op.drop_index(batch_op.f("ix_mcp_tokens_project_id"))
    op.drop_table("mcp_tokens")
