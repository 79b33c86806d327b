"""`mcpctl get NOUN [NAME…]`: list or fetch objects, print them as table/wide/json/yaml/name."""

from __future__ import annotations

from typing import Any

import click

from mcpctl.cli.client import ApiClient, api_path
from mcpctl.cli.completion import complete_name, complete_project
from mcpctl.cli.context import AppState, pass_state
from mcpctl.cli.errors import CliError, ServerError, usage_error
from mcpctl.cli.mcptokens import require_project, token_path, tokens_path
from mcpctl.cli.nouns import (
    AUDIT,
    MCPTOKEN,
    PROMPT,
    collection_path,
    complete_noun,
    object_path,
    resolve_noun,
)
from mcpctl.cli.printers import OUTPUTS, print_objects
from mcpctl.core.kinds import KindInfo

_AUDIT_FLAGS = {
    "token_name": "--token",
    "event_kind": "--kind",
    "event_user": "--user",
    "since": "--since",
    "until": "--until",
    "limit": "--limit",
}
INSTANCE = "Instance"


def _check_flags(
    info: KindInfo,
    names: tuple[str, ...],
    project: str | None,
    selector: str | None,
    show_values: bool,
    audit: dict[str, Any],
) -> None:
    is_audit = info.kind == AUDIT
    for key, flag in _AUDIT_FLAGS.items():
        if audit.get(key) is not None and not is_audit:
            raise usage_error(f"{flag} applies only to auditevents")
    if project is not None and info.kind not in ("Server", AUDIT, MCPTOKEN, INSTANCE, PROMPT):
        raise usage_error(
            "-p/--project applies only to servers, instances, mcptokens, prompts and auditevents, "
            f"not {info.plural}"
        )
    if audit.get("server") is not None and info.kind != INSTANCE:
        raise usage_error("--server applies only to instances")
    if info.kind == MCPTOKEN and selector is not None:
        raise usage_error("-l/--selector does not apply to mcptokens")
    if info.kind == MCPTOKEN and names:
        require_project(project)
    if show_values and info.kind != "Secret":
        raise usage_error("--show-values applies only to secrets")
    if selector is not None and (names or is_audit):
        raise usage_error(
            "a selector (-l) cannot be combined with names"
            if names
            else "-l/--selector does not apply to auditevents"
        )
    if names and is_audit:
        raise usage_error(
            "auditevents cannot be fetched by name; filter them with --token, --kind, "
            "--since, --until and --limit"
        )


def _items(body: Any) -> list[dict[str, Any]]:
    items = body.get("items") if isinstance(body, dict) else None
    if not isinstance(items, list):
        raise CliError("mcpd answered a list request without 'items'")
    return items


def _params(**values: Any) -> dict[str, str]:
    out: dict[str, str] = {}
    for key, value in values.items():
        if value is None or value is False:
            continue
        out[key] = "true" if value is True else str(value)
    return out


def _fetch_paths(
    client: ApiClient, paths: list[str], params: dict[str, str]
) -> tuple[list[dict[str, Any]], list[CliError]]:
    found: list[dict[str, Any]] = []
    errors: list[CliError] = []
    for path in paths:
        try:
            found.append(client.json("GET", path, params=params))
        except ServerError as exc:
            if len(paths) == 1:
                raise
            errors.append(exc)
    return found, errors


def _project_servers(
    client: ApiClient, project: str, names: tuple[str, ...], params: dict[str, str]
) -> tuple[list[dict[str, Any]], list[CliError]]:
    items = _items(client.json("GET", api_path("projects", project, "servers"), params=params))
    if not names:
        return items, []
    by_name = {item.get("metadata", {}).get("name"): item for item in items}
    missing = [
        CliError(f'server "{name}" is not in project "{project}"') for name in names if name not in by_name
    ]
    return [by_name[name] for name in names if name in by_name], missing


@click.command()
@click.argument("noun", shell_complete=complete_noun)
@click.argument("names", nargs=-1, shell_complete=complete_name)
@click.option(
    "-p",
    "--project",
    shell_complete=complete_project,
    help="Project: its servers, mcptokens, prompts or audit events.",
)
@click.option("-l", "--selector", help="Label selector, e.g. 'team=obs,tier!=dev'.")
@click.option("-o", "--output", type=click.Choice(OUTPUTS), default="table", show_default=True)
@click.option("--show-values", is_flag=True, help="Secrets: show values (needs edit on secrets).")
@click.option("--token", "token_name", metavar="NAME", help="Audit events: of this McpToken.")
@click.option("--kind", "event_kind", metavar="KIND", help="Audit events: of this kind (e.g. tool_call).")
@click.option("--user", "event_user", metavar="EMAIL", help="Audit events: of this user.")
@click.option("--since", metavar="WHEN", help="Audit events: not older than (1h, 7d or ISO-8601).")
@click.option("--until", metavar="WHEN", help="Audit events: not newer than (duration or ISO-8601).")
@click.option("--limit", type=click.IntRange(1, 1000), help="Audit events: at most N (default 100).")
@click.option("--server", metavar="NAME", help="Instances: of this server only.")
@pass_state
def get(
    state: AppState,
    /,
    noun: str,
    names: tuple[str, ...],
    project: str | None,
    selector: str | None,
    output: str,
    show_values: bool,
    **audit: Any,
) -> None:
    """List objects of a kind, or fetch the named ones.

    NOUN is users, groups, rbac, projects (proj), servers (srv), instances (inst), secrets,
    mcptokens, prompts, proxymodels or auditevents (audit). McpTokens and prompts are named within
    a project: `get mcptokens NAME… -p PROJECT`, `get prompts [NAME…] -p PROJECT` (all projects'
    prompts without -p). Instances: `get instances [-p PROJECT] [--server S]`.
    """
    info = resolve_noun(noun)
    _check_flags(info, names, project, selector, show_values, audit)
    client = state.client()
    errors: list[CliError] = []
    if info.kind == AUDIT:
        params = _params(
            project=project,
            tokenName=audit["token_name"],
            kind=audit["event_kind"],
            user=audit["event_user"],
            since=audit["since"],
            until=audit["until"],
            limit=audit["limit"],
        )
        objects = _items(client.json("GET", collection_path(info), params=params))
    elif info.kind == MCPTOKEN and names:
        objects, errors = _fetch_paths(client, [token_path(require_project(project), n) for n in names], {})
    elif info.kind == MCPTOKEN:
        objects = _items(client.json("GET", tokens_path(project)))
    elif info.kind == INSTANCE and not names:
        path = api_path("projects", project, "instances") if project else collection_path(info)
        objects = _items(
            client.json("GET", path, params=_params(labelSelector=selector, server=audit["server"]))
        )
    elif info.kind == INSTANCE:
        objects, errors = _fetch_paths(client, [object_path(info, name) for name in names], {})
    elif info.kind == PROMPT and names:
        objects, errors = _fetch_paths(client, [object_path(info, n, project) for n in names], {})
    elif info.kind == PROMPT:
        path = collection_path(info, project)
        objects = _items(client.json("GET", path, params=_params(labelSelector=selector)))
    elif project is not None:
        objects, errors = _project_servers(client, project, names, _params(labelSelector=selector))
    elif names:
        paths = [object_path(info, name) for name in names]
        objects, errors = _fetch_paths(client, paths, _params(showValues=show_values))
    else:
        params = _params(labelSelector=selector, showValues=show_values)
        objects = _items(client.json("GET", collection_path(info), params=params))
    for error in errors:
        click.echo(error.format(), err=True)
    if objects or not errors:
        print_objects(objects, info, output, single=len(names) == 1 and not errors)
    if errors:
        raise click.exceptions.Exit(1)
