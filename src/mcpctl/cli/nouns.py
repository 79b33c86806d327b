"""CLI nouns → kinds (via the one table in core.kinds) and the API paths that serve them."""

from __future__ import annotations

import click
from click.shell_completion import CompletionItem

from mcpctl.cli.client import api_path
from mcpctl.cli.errors import CliError, usage_error
from mcpctl.core.kinds import KINDS, KindInfo, kind_for_noun

AUDIT = "AuditEvent"
MCPTOKEN = "McpToken"
PROMPT = "Prompt"
# Kinds the CLI handles with their own paths and verbs, whatever core.kinds says about serving them.
_HANDLED_HERE = frozenset({MCPTOKEN})


def is_served(info: KindInfo) -> bool:
    """Whether the CLI offers this kind (mcpd serves it, or the CLI handles it explicitly)."""
    return info.served or info.kind in _HANDLED_HERE


def _known() -> str:
    return ", ".join(info.plural for info in KINDS if is_served(info))


def resolve_noun(noun: str, *, writable: bool = False) -> KindInfo:
    """The kind a noun names. Unknown nouns are usage errors; kinds mcpd does not serve yet, or
    read-only kinds asked to change, are errors naming the kind."""
    info = kind_for_noun(noun)
    if info is None:
        raise usage_error(f'unknown resource type "{noun}" (known: {_known()})')
    if not is_served(info):
        raise CliError(f"{info.plural} are not served by this version of mcpd yet")
    if writable and info.read_only:
        raise usage_error(f"{info.plural} are read-only")
    return info


def collection_path(info: KindInfo, project: str | None = None) -> str:
    """A kind's collection; a project-scoped kind's within `project` when given."""
    if info.kind == AUDIT:
        return api_path("audit", "events")
    if info.project_scoped and project is not None:
        return api_path("projects", project, info.plural)
    return api_path(info.plural)


def require_project(info: KindInfo, project: str | None) -> str:
    if project is None:
        raise usage_error(f"{info.plural} are named within a project: give -p PROJECT")
    return project


def object_path(info: KindInfo, name: str, project: str | None = None) -> str:
    """One object's path; a project-scoped kind's needs its project."""
    if info.kind == MCPTOKEN:
        raise usage_error("mcptokens are named within a project: give -p PROJECT")
    if info.project_scoped:
        return api_path("projects", require_project(info, project), info.plural, name)
    if info.kind == AUDIT:
        raise usage_error(f"{info.plural} cannot be addressed by name; filter them with flags instead")
    return api_path(info.plural, name)


def ref(info: KindInfo, name: str) -> str:
    """`kind/name` as mutations print it: the lowercase singular noun."""
    return f"{info.singular}/{name}"


def complete_noun(ctx: click.Context, param: click.Parameter, incomplete: str) -> list[CompletionItem]:
    """Shell completion for a NOUN argument: the plural nouns mcpd serves."""
    return [
        CompletionItem(info.plural)
        for info in KINDS
        if is_served(info) and info.plural.startswith(incomplete.lower())
    ]
