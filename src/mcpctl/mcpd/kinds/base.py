"""The generic part of every kind: lookup, the object shape, create-or-replace with change detection."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, ClassVar, Generic, Literal, TypeVar

import sqlalchemy as sa
from pydantic import BaseModel
from sqlalchemy.ext.asyncio import AsyncSession

from mcpctl.core.crypto import Passwords, SecretCipher
from mcpctl.core.errors import ConflictError, InvalidError, NotFoundError
from mcpctl.core.kinds import KindInfo
from mcpctl.core.policy import Principal, can_access
from mcpctl.mcpd.hashing import HashingPool
from mcpctl.storage import tables

RowT = TypeVar("RowT", bound=tables.Base)
SpecT = TypeVar("SpecT", bound=BaseModel)
ApplyResult = Literal["created", "configured", "unchanged"]


@dataclass
class KindContext:
    """What a handler may use during one unit of work."""

    session: AsyncSession
    cipher: SecretCipher
    principal: Principal
    passwords: Passwords
    data_dir: Path
    # Argon2 work goes through the capped pool, as logins' does (None: inline, for tools and tests).
    hashing: HashingPool | None = None
    # The operator's allowlist of stdio server commands (empty: any).
    stdio_commands: tuple[str, ...] = ()
    # Work that must wait until the unit of work has committed (e.g. removing files).
    after_commit: list[Callable[[], None]] = field(default_factory=list)
    # What a running server offers now ({"tools": [...], "prompts": [...]}), None when it cannot say:
    # lets a toolPrefixMode-never project refuse colliding names when it is configured.
    offered_names: Callable[[str], Awaitable[dict[str, list[str]] | None]] | None = None
    # A project-scoped kind's write (prompts): the project the object belongs to.
    project: tables.Project | None = None


def iso(value: datetime) -> str:
    return value.isoformat().replace("+00:00", "Z")


class KindHandler(Generic[RowT, SpecT]):
    info: ClassVar[KindInfo]
    table: ClassVar[type[Any]]
    spec_model: ClassVar[type[BaseModel]]
    # Writes of this kind can change what someone holds (users, groups, RBAC): the escalation rule
    # (mcpd/escalation.py) guards them.
    changes_permissions: ClassVar[bool] = False

    # ---- reads -------------------------------------------------------------------------------------

    async def get(self, session: AsyncSession, name: str) -> RowT | None:
        result = await session.execute(sa.select(self.table).where(self.table.name == name))
        row: RowT | None = result.scalars().first()
        return row

    async def require(self, session: AsyncSession, name: str) -> RowT:
        row = await self.get(session, name)
        if row is None:
            raise self.not_found(name)
        return row

    def not_found(self, name: str) -> NotFoundError:
        return NotFoundError(
            f'{self.info.plural} "{name}" not found', details={"kind": self.info.kind, "name": name}
        )

    async def list(self, session: AsyncSession) -> list[RowT]:
        result = await session.execute(sa.select(self.table).order_by(self.table.name))
        return list(result.scalars().all())

    async def to_object(self, ctx: KindContext, row: RowT, *, show_values: bool = False) -> dict[str, Any]:
        r: Any = row
        metadata: dict[str, Any] = {"name": r.name}
        if r.labels:
            metadata["labels"] = dict(r.labels)
        metadata.update(id=r.id, createdAt=iso(r.created_at), updatedAt=iso(r.updated_at))
        spec = await self.spec_of(ctx, row, show_values=show_values)
        if r.description is not None:
            spec["description"] = r.description
        return {
            "kind": self.info.kind,
            "metadata": metadata,
            "spec": spec,
            "status": await self.status_of(ctx, row),
        }

    async def spec_of(self, ctx: KindContext, row: RowT, *, show_values: bool) -> dict[str, Any]:
        raise NotImplementedError

    async def status_of(self, ctx: KindContext, row: RowT) -> dict[str, Any]:
        return {}

    # ---- objects that exist without a row (the built-in ProxyModels) -------------------------------

    def built_in_names(self) -> tuple[str, ...]:
        return ()

    async def built_in(self, ctx: KindContext, name: str) -> dict[str, Any] | None:
        """The object `name` names when it is built in (read-only), else None."""
        return None

    def built_in_refused(self, name: str, verb: str) -> ConflictError:
        return ConflictError(
            f'{self.info.plural} "{name}" is built in and cannot be {verb}',
            details={"kind": self.info.kind, "name": name, "builtIn": True},
        )

    # ---- writes ------------------------------------------------------------------------------------

    def canonical(self, spec: SpecT) -> dict[str, Any]:
        """The spec as it will read back (without description), for change detection."""
        return spec.model_dump(mode="json", exclude_none=True, exclude={"description"})

    async def differs(self, ctx: KindContext, row: RowT, spec: SpecT) -> bool:
        return await self.spec_of(ctx, row, show_values=True) != self.canonical(spec)

    async def write(self, ctx: KindContext, row: RowT, spec: SpecT) -> None:
        """Validate references and set the row's kind-specific columns from the spec."""
        raise NotImplementedError

    async def apply(
        self, ctx: KindContext, row: RowT | None, name: str, labels: dict[str, str], spec: SpecT
    ) -> tuple[RowT, ApplyResult]:
        """Create (row None) or replace, reporting whether anything changed."""
        description = getattr(spec, "description", None)
        if row is None:
            new: Any = self.table(name=name, labels=labels, description=description)
            await self.write(ctx, new, spec)
            ctx.session.add(new)
            await ctx.session.flush()
            return new, "created"
        r: Any = row
        if (
            dict(r.labels or {}) == labels
            and r.description == description
            and not await self.differs(ctx, row, spec)
        ):
            return row, "unchanged"
        r.labels, r.description = labels, description
        await self.write(ctx, row, spec)
        r.updated_at = tables.utcnow()
        await ctx.session.flush()
        return row, "configured"

    async def delete(self, ctx: KindContext, row: RowT, *, force: bool) -> None:
        await self.before_delete(ctx, row, force=force)
        await ctx.session.delete(row)
        await ctx.session.flush()

    async def before_delete(self, ctx: KindContext, row: RowT, *, force: bool) -> None:
        """Refuse (ConflictError) or detach what depends on the row."""


async def resolve(
    ctx: KindContext, column: Any, keys: list[str], *, what: str, field: str, plural: str, kept: set[str]
) -> dict[str, Any]:
    """Load the rows whose `column` is in `keys` (references in a spec); InvalidError naming the first
    that does not exist or that the caller may not view (the same answer: existence is not revealed).
    References the object already had (`kept`) stay allowed. Returns the rows by key."""
    found: dict[str, Any] = {}
    if keys:
        result = await ctx.session.execute(sa.select(column.class_).where(column.in_(keys)))
        found = {
            getattr(row, column.key): row
            for row in result.scalars()
            if getattr(row, column.key) in kept or can_access(ctx.principal, "view", plural, row.name)
        }
    missing = [k for k in keys if k not in found]
    if missing:
        raise InvalidError(f'unknown {what} "{missing[0]}" in {field}', details={"missing": missing})
    return found


def in_use_error(ctx: KindContext, what: str, plural: str, users: list[str], advice: str) -> ConflictError:
    """409 for an object still used by others, naming only the users the caller may view."""
    shown = [name for name in users if can_access(ctx.principal, "view", plural, name)]
    hidden = len(users) - len(shown)
    names = ", ".join(shown + ([f"{hidden} you cannot view"] if hidden else []))
    return ConflictError(
        f"{what} is used by {plural} {names}; {advice}", details={plural: shown, "hidden": hidden}
    )


async def replace_children(ctx: KindContext, row: Any, attribute: str) -> None:
    """Delete a persistent row's child rows before new ones with the same keys are added."""
    if sa.inspect(row).persistent and getattr(row, attribute):
        setattr(row, attribute, [])
        await ctx.session.flush()
