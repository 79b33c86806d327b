"""Servers (registry only): stdio and http specs whose env/header values may be secretRefs."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from mcpctl.core.errors import ForbiddenError, InvalidError
from mcpctl.core.kinds import kind_for_noun
from mcpctl.core.policy import can_access, describe, ensure_access, may_read_secret_values
from mcpctl.mcpd.kinds.base import KindContext, KindHandler, in_use_error
from mcpctl.mcpd.schemas import ServerSpec
from mcpctl.storage import tables


def secret_refs(spec: dict[str, Any]) -> list[tuple[str, str]]:
    """(secret, key) pairs a canonical server spec refers to."""
    refs = []
    for field in ("env", "headers"):
        for value in (spec.get(field) or {}).values():
            if isinstance(value, dict) and "secretRef" in value:
                refs.append((value["secretRef"]["name"], value["secretRef"]["key"]))
    return refs


# What decides where a server's secrets go: the process and its environment, or the URL called.
LAUNCH_FIELDS = ("transport", "command", "args", "env", "cwd", "url", "headers")

# Environment variables that choose which code a process runs (loader, interpreters, shells).
_HIJACKING_ENV = frozenset(
    {"PATH", "BASH_ENV", "ENV", "NODE_OPTIONS", "NODE_PATH", "PERL5OPT", "PERL5LIB", "RUBYOPT", "RUBYLIB"}
)
_HIJACKING_PREFIXES = ("LD_", "DYLD_", "PYTHON", "UV_", "NPM_CONFIG_", "npm_config_")


class ServerHandler(KindHandler[tables.Server, ServerSpec]):
    info = kind_for_noun("servers")  # type: ignore[assignment]
    table = tables.Server
    spec_model = ServerSpec

    async def spec_of(self, ctx: KindContext, row: tables.Server, *, show_values: bool) -> dict[str, Any]:
        return {"transport": row.transport, **row.spec}

    async def status_of(self, ctx: KindContext, row: tables.Server) -> dict[str, Any]:
        projects = await self.projects_using(ctx, row)
        return {"projects": [p for p in projects if can_access(ctx.principal, "view", "projects", p)]}

    async def projects_using(self, ctx: KindContext, row: tables.Server) -> list[str]:
        result = await ctx.session.execute(
            sa.select(tables.Project.name)
            .join(tables.ProjectServer, tables.ProjectServer.project_id == tables.Project.id)
            .where(tables.ProjectServer.server_id == row.id)
            .order_by(tables.Project.name)
        )
        return list(result.scalars())

    def canonical(self, spec: ServerSpec) -> dict[str, Any]:
        return spec.canonical()

    async def write(self, ctx: KindContext, row: tables.Server, spec: ServerSpec) -> None:
        canonical = spec.canonical()
        persistent = sa.inspect(row).persistent
        before = {"transport": row.transport, **row.spec} if persistent else {}
        kept = set(secret_refs(before))
        refs = secret_refs(canonical)
        await check_secret_refs(ctx, [ref for ref in refs if ref not in kept])
        _check_command(ctx, canonical)
        if canonical.get("healthCheck", {}).get("tool") and canonical.get("healthCheck") != before.get(
            "healthCheck"
        ):
            # a probe calls that tool with those arguments, again and again: that is running it
            ensure_access(ctx.principal, "run", "servers", row.name)
        # Where a secret goes is decided by what runs or what is called: a new reference, or any
        # reference when that changes, hands the plaintext to the writer's choice (DESIGN §12).
        relaunched = any(canonical.get(f) != before.get(f) for f in LAUNCH_FIELDS)
        for name in dict.fromkeys(n for n, key in refs if relaunched or (n, key) not in kept):
            if not may_read_secret_values(ctx.principal, name):
                raise ForbiddenError(
                    f'{describe(ctx.principal)} may not read the values of secret "{name}", which '
                    "this server would hand to "
                    + ("its process" if canonical.get("transport") == "stdio" else "its URL"),
                    details={"secret": name, "role": "edit", "resource": "secrets"},
                )
        row.transport = canonical.pop("transport")
        row.spec = canonical

    async def before_delete(self, ctx: KindContext, row: tables.Server, *, force: bool) -> None:
        projects = await self.projects_using(ctx, row)
        if projects and not force:
            raise in_use_error(
                ctx, f'server "{row.name}"', "projects", projects, "use --force to detach it and delete"
            )
        await ctx.session.execute(
            sa.delete(tables.ProjectServer).where(tables.ProjectServer.server_id == row.id)
        )


def _check_command(ctx: KindContext, spec: dict[str, Any]) -> None:
    """The operator's allowlist of stdio commands, when there is one — and, with one, no environment
    variable that would make an allowed command load or find other code."""
    if spec.get("transport") != "stdio" or not ctx.stdio_commands:
        return
    command = spec.get("command")
    if command not in ctx.stdio_commands:
        raise ForbiddenError(
            f"command {command!r} is not in this mcpd's allowlist of stdio commands (MCPD_STDIO_COMMANDS)",
            details={"field": "command", "allowed": list(ctx.stdio_commands)},
        )
    for name in spec.get("env") or {}:
        if name in _HIJACKING_ENV or name.startswith(_HIJACKING_PREFIXES):
            raise ForbiddenError(
                f"env {name} is not allowed while MCPD_STDIO_COMMANDS is set: it would make "
                f"{command!r} run other code",
                details={"field": f"env.{name}"},
            )


async def check_secret_refs(ctx: KindContext, refs: list[tuple[str, str]]) -> None:
    """Every referenced secret and key must exist (InvalidError naming the first that does not)."""
    from mcpctl.mcpd.kinds.secrets import secret_keys  # a server needs secrets, not vice versa

    for name, key in refs:
        visible = can_access(ctx.principal, "view", "secrets", name)
        keys = await secret_keys(ctx, name) if visible else None
        if keys is None:  # missing and not visible read the same
            raise InvalidError(f'unknown secret "{name}" in secretRef', details={"secret": name})
        if key not in keys:
            raise InvalidError(f'secret "{name}" has no key "{key}"', details={"secret": name, "key": key})
