"""SQLAlchemy tables. Alembic migrations (storage/migrations) are the only schema source for databases;
these classes must match them (a test compares the two)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship


class UTCDateTime(sa.TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every backend (SQLite stores them naive)."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


JSONType = sa.JSON().with_variant(JSONB(), "postgresql")


def utcnow() -> datetime:
    return datetime.now(UTC)


def new_id() -> str:
    return uuid.uuid4().hex


class Base(DeclarativeBase):
    metadata = sa.MetaData(
        naming_convention={
            "ix": "ix_%(table_name)s_%(column_0_N_name)s",
            "uq": "uq_%(table_name)s_%(column_0_N_name)s",
            "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
            "pk": "pk_%(table_name)s",
        }
    )


class _Resource:
    """Columns every named resource has (DESIGN §2)."""

    id: Mapped[str] = mapped_column(sa.String(32), primary_key=True, default=new_id)
    name: Mapped[str] = mapped_column(sa.String(63), unique=True)
    labels: Mapped[dict[str, str]] = mapped_column(JSONType, default=dict)
    description: Mapped[str | None] = mapped_column(sa.Text, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class User(_Resource, Base):
    __tablename__ = "users"
    email: Mapped[str] = mapped_column(sa.String(320), unique=True)
    display_name: Mapped[str | None] = mapped_column(sa.String(200), nullable=True)
    password_hash: Mapped[str | None] = mapped_column(sa.String(200), nullable=True)
    disabled: Mapped[bool] = mapped_column(sa.Boolean, default=False)


class Group(_Resource, Base):
    __tablename__ = "groups"
    memberships: Mapped[list[GroupMember]] = relationship(
        cascade="all, delete-orphan", order_by="GroupMember.position", lazy="selectin"
    )


class GroupMember(Base):
    __tablename__ = "group_members"
    group_id: Mapped[str] = mapped_column(sa.ForeignKey("groups.id", ondelete="CASCADE"), primary_key=True)
    user_id: Mapped[str] = mapped_column(
        sa.ForeignKey("users.id", ondelete="CASCADE"), primary_key=True, index=True
    )
    position: Mapped[int] = mapped_column(sa.Integer, default=0)
    user: Mapped[User] = relationship(lazy="joined")


class RbacDefinition(_Resource, Base):
    __tablename__ = "rbac_definitions"
    role_bindings: Mapped[list[dict[str, Any]]] = mapped_column(JSONType, default=list)
    subject_rows: Mapped[list[RbacSubject]] = relationship(
        cascade="all, delete-orphan", order_by="RbacSubject.position", lazy="selectin"
    )


class RbacSubject(Base):
    """One subject of a definition; indexed so a principal's bindings are one lookup."""

    __tablename__ = "rbac_subjects"
    definition_id: Mapped[str] = mapped_column(
        sa.ForeignKey("rbac_definitions.id", ondelete="CASCADE"), primary_key=True
    )
    subject: Mapped[str] = mapped_column(sa.String(400), primary_key=True, index=True)
    position: Mapped[int] = mapped_column(sa.Integer, default=0)


class Server(_Resource, Base):
    __tablename__ = "servers"
    transport: Mapped[str] = mapped_column(sa.String(16))
    # The rest of the validated spec (command, args, env, url, headers, healthCheck, …).
    spec: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)


class ServerLease(Base):
    """Which mcpd replica supervises a server (mcpd/leases.py). Free when `expires_at` has passed by
    the database's clock; `generation` grows with every new holder (a fencing counter)."""

    __tablename__ = "server_leases"
    server_id: Mapped[str] = mapped_column(sa.ForeignKey("servers.id", ondelete="CASCADE"), primary_key=True)
    holder: Mapped[str | None] = mapped_column(sa.String(200), nullable=True)
    holder_url: Mapped[str | None] = mapped_column(sa.String(2000), nullable=True)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    generation: Mapped[int] = mapped_column(sa.BigInteger, default=0)


class Project(_Resource, Base):
    __tablename__ = "projects"
    proxy_model: Mapped[str] = mapped_column(sa.String(63), default="direct")
    tool_prefix_mode: Mapped[str] = mapped_column(sa.String(16), default="always")
    tool_name_separator: Mapped[str] = mapped_column(sa.String(8), default="__")
    server_links: Mapped[list[ProjectServer]] = relationship(
        cascade="all, delete-orphan", order_by="ProjectServer.position", lazy="selectin"
    )


class ProjectServer(Base):
    __tablename__ = "project_servers"
    project_id: Mapped[str] = mapped_column(
        sa.ForeignKey("projects.id", ondelete="CASCADE"), primary_key=True
    )
    # RESTRICT: a server in use cannot disappear under a project (delete --force detaches first).
    server_id: Mapped[str] = mapped_column(
        sa.ForeignKey("servers.id", ondelete="RESTRICT"), primary_key=True, index=True
    )
    position: Mapped[int] = mapped_column(sa.Integer, default=0)
    server: Mapped[Server] = relationship(lazy="joined")


class Prompt(Base):
    """A project's own prompt (DESIGN §2, §10): named within its project, gone with it."""

    __tablename__ = "prompts"
    __table_args__ = (sa.UniqueConstraint("project_id", "name"),)
    id: Mapped[str] = mapped_column(sa.String(32), primary_key=True, default=new_id)
    name: Mapped[str] = mapped_column(sa.String(63))
    project_id: Mapped[str] = mapped_column(sa.ForeignKey("projects.id", ondelete="CASCADE"), index=True)
    text: Mapped[str] = mapped_column(sa.Text)
    priority: Mapped[int] = mapped_column(sa.Integer, default=5)
    tags: Mapped[list[str]] = mapped_column(JSONType, default=list)
    labels: Mapped[dict[str, str]] = mapped_column(JSONType, default=dict)
    description: Mapped[str | None] = mapped_column(sa.Text, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)
    project: Mapped[Project] = relationship(lazy="joined")


class ProxyModel(_Resource, Base):
    """A stored pipeline (the built-ins of core.proxymodels have no row)."""

    __tablename__ = "proxy_models"
    stages: Mapped[list[dict[str, Any]]] = mapped_column(JSONType, default=list)


class Secret(_Resource, Base):
    __tablename__ = "secrets"
    # Fernet token of the JSON-encoded data map.
    data_encrypted: Mapped[bytes] = mapped_column(sa.LargeBinary)


class LoginSession(Base):
    __tablename__ = "login_sessions"
    id: Mapped[str] = mapped_column(sa.String(32), primary_key=True, default=new_id)
    token_sha: Mapped[str] = mapped_column(sa.String(64), unique=True)
    user_id: Mapped[str] = mapped_column(sa.ForeignKey("users.id", ondelete="CASCADE"), index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)


class McpToken(Base):
    """A project-scoped bearer; only its SHA-256 is stored. `active_name` is the name while the token
    is active (NULL once revoked or expired-and-replaced), so "unique active name per project" is a
    database constraint."""

    __tablename__ = "mcp_tokens"
    __table_args__ = (sa.UniqueConstraint("project_id", "active_name"),)
    id: Mapped[str] = mapped_column(sa.String(32), primary_key=True, default=new_id)
    name: Mapped[str] = mapped_column(sa.String(63))
    active_name: Mapped[str | None] = mapped_column(sa.String(63), nullable=True)
    project_id: Mapped[str] = mapped_column(sa.ForeignKey("projects.id", ondelete="CASCADE"), index=True)
    token_sha: Mapped[str] = mapped_column(sa.String(64), unique=True)
    prefix: Mapped[str] = mapped_column(sa.String(16))
    owner: Mapped[str] = mapped_column(sa.String(320))
    # The token that minted this one (a token minting within its project); revoked along with it.
    parent_id: Mapped[str | None] = mapped_column(
        sa.ForeignKey("mcp_tokens.id", ondelete="SET NULL"), nullable=True, index=True
    )
    description: Mapped[str | None] = mapped_column(sa.Text, nullable=True)
    rbac_mode: Mapped[str] = mapped_column(sa.String(16))
    bindings: Mapped[list[dict[str, Any]]] = mapped_column(JSONType, default=list)
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    project: Mapped[Project] = relationship(lazy="joined")


class AuditEvent(Base):
    __tablename__ = "audit_events"
    id: Mapped[str] = mapped_column(sa.String(32), primary_key=True, default=new_id)
    time: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    kind: Mapped[str] = mapped_column(sa.String(32), index=True)
    user: Mapped[str | None] = mapped_column(sa.String(320), nullable=True, index=True)
    token_name: Mapped[str | None] = mapped_column(sa.String(63), nullable=True, index=True)
    token_sha: Mapped[str | None] = mapped_column(sa.String(64), nullable=True, index=True)
    project: Mapped[str | None] = mapped_column(sa.String(63), nullable=True, index=True)
    server: Mapped[str | None] = mapped_column(sa.String(63), nullable=True)
    target: Mapped[str | None] = mapped_column(sa.String(500), nullable=True)
    # What was done to the target, e.g. created/configured/patched/deleted for resource_changed.
    verb: Mapped[str | None] = mapped_column(sa.String(32), nullable=True)
    outcome: Mapped[str] = mapped_column(sa.String(16))
    duration_ms: Mapped[float | None] = mapped_column(sa.Float, nullable=True)
    session_id: Mapped[str | None] = mapped_column(sa.String(128), nullable=True)
    request_id: Mapped[str | None] = mapped_column(sa.String(64), nullable=True)
    client_addr: Mapped[str | None] = mapped_column(sa.String(64), nullable=True)
