"""McpTokens in the CLI: their API paths, the create request and its one-time output, and `apply`'s
immutability rule (created if missing, left alone while an active one of that name exists).

Tokens are named within a project, so every by-name path carries the project. The raw token is in
the create response only; `announce_created` is the one place that prints it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

import click

from mcpctl.cli.client import ApiClient, api_path
from mcpctl.cli.columns import binding_text, token_state
from mcpctl.cli.errors import CliError, ServerError, usage_error
from mcpctl.core.errors import InvalidError
from mcpctl.core.rbac import binding_from_dict, parse_binding
from mcpctl.core.tokens import parse_ttl

RBAC_MODES = ("empty", "clone", "bind")
SPEC_KEYS = ("rbac", "ttl", "description", "bindings")
SHOWN_ONCE = "This token is shown once; store it now."


def tokens_path(project: str | None = None) -> str:
    """The token collection: one project's, or every token the caller may see."""
    return api_path("projects", project, "mcptokens") if project is not None else api_path("mcptokens")


def token_path(project: str, name: str, *rest: str) -> str:
    return api_path("projects", project, "mcptokens", name, *rest)


def require_project(project: str | None) -> str:
    if project is None:
        raise usage_error("mcptokens are named within a project: give -p PROJECT")
    return project


def parse_bind_flags(texts: Iterable[str]) -> list[dict[str, str]]:
    """`--bind` values as binding objects; a malformed one is a usage error naming the bad part."""
    out = []
    for text in texts:
        try:
            out.append(parse_binding(text).to_dict())
        except InvalidError as exc:
            raise usage_error(f"--bind: {exc.message}") from exc
    return out


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _ttl_problem(ttl: str | None, *, now: datetime | None = None) -> str | None:
    """Why a TTL is refused (core's rule; the server's cap, if any, is the server's to apply).
    Checked against `now`, or for its form only when None."""
    try:
        parse_ttl(ttl, now=now or _EPOCH)
    except InvalidError as exc:
        return exc.message
    except OverflowError:
        return f"ttl {ttl!r} is too far in the future"
    return None


def check_ttl_flag(ttl: str | None) -> None:
    problem = _ttl_problem(ttl, now=datetime.now(UTC))
    if problem is not None:
        raise usage_error(f"--ttl: {problem}")


def create_body(
    name: str,
    project: str,
    *,
    rbac: str,
    bindings: list[dict[str, str]] | None = None,
    ttl: str | None = None,
    description: str | None = None,
    write_file: bool = False,
) -> dict[str, Any]:
    """The body of `POST /api/v1/mcptokens`; optional fields left out when not given."""
    body: dict[str, Any] = {"name": name, "project": project, "rbac": rbac}
    if bindings is not None:
        body["bindings"] = bindings
    if ttl is not None:
        body["ttl"] = ttl
    if description is not None:
        body["description"] = description
    body["writeFile"] = write_file
    return body


def _mint(client: ApiClient, body: Mapping[str, Any]) -> Any:
    if client.uses_mcptoken:  # a token may only reach its project's paths: mint there
        rest = {key: value for key, value in body.items() if key != "project"}
        return client.json("POST", tokens_path(str(body["project"])), json=rest)
    return client.json("POST", tokens_path(), json=dict(body))


def post_token(client: ApiClient, body: Mapping[str, Any], *, replace: bool = False) -> dict[str, Any]:
    """Create a token; the answer must carry the raw token (it is never available again). With
    `replace`, an active token of that name is revoked first (`--force`: re-provisioning)."""
    return mint_token(client, body, replace=replace)[0]


def mint_token(client: ApiClient, body: Mapping[str, Any], *, replace: bool) -> tuple[dict[str, Any], bool]:
    """post_token(), also saying whether an active token of that name was revoked and replaced."""
    replaced = False
    try:
        answer = _mint(client, body)
    except ServerError as exc:
        if not replace or exc.code != "already_exists":
            raise
        client.json("POST", token_path(body["project"], body["name"], "revoke"))
        click.echo(f"mcptoken/{body['name']} revoked (replaced)", err=True)
        replaced = True
        answer = _mint(client, body)
    if not isinstance(answer, dict) or not isinstance(answer.get("token"), str) or not answer["token"]:
        raise CliError("mcpd answered the token creation without a token")
    return answer, replaced


def announce_created(answer: Mapping[str, Any], name: str, project: str, *, show_token: bool = True) -> None:
    """The note on stderr, and the raw token alone on its stdout line (so `$(…)` captures it)."""
    click.echo(f"mcptoken/{name} created (project {project})", err=True)
    if answer.get("tokenPath"):
        click.echo(f"token written to {answer['tokenPath']}", err=True)
    if show_token:
        click.echo(str(answer["token"]))
        click.echo(SHOWN_ONCE, err=True)


def check_token_manifest(doc: Mapping[str, Any], where: str) -> None:
    """An McpToken manifest: `metadata.project`, and a spec the create request can carry."""
    metadata = doc.get("metadata")
    project = metadata.get("project") if isinstance(metadata, Mapping) else None
    if not isinstance(project, str) or not project:
        raise CliError(f"{where}: an McpToken needs metadata.project")
    spec = doc.get("spec") or {}
    if not isinstance(spec, Mapping):
        raise CliError(f"{where}: spec must be a mapping")
    for key in spec:
        if key not in SPEC_KEYS:
            raise CliError(f"{where}: unknown McpToken spec field {key!r} (expected {', '.join(SPEC_KEYS)})")
    for key in ("ttl", "description"):
        if spec.get(key) is not None and not isinstance(spec[key], str):
            raise CliError(f"{where}: spec.{key} must be a string")
    problem = _ttl_problem(spec.get("ttl"))  # its form: a past date is for mcpd to refuse, at create
    if problem is not None:
        raise CliError(f"{where}: spec.ttl: {problem}")
    if spec.get("rbac") is not None and spec["rbac"] not in RBAC_MODES:
        raise CliError(f"{where}: spec.rbac must be one of {', '.join(RBAC_MODES)}")
    bindings = spec.get("bindings")
    if bindings is not None and not isinstance(bindings, list):
        raise CliError(f"{where}: spec.bindings must be a list")
    if bindings and spec.get("rbac") == "empty":
        raise CliError(f"{where}: spec.bindings cannot be given with rbac: empty (use rbac: bind)")
    for i, binding in enumerate(bindings or [], start=1):
        if not isinstance(binding, Mapping):
            raise CliError(f"{where}: spec.bindings[{i}] must be a mapping")
        try:
            binding_from_dict(binding, where=f"spec.bindings[{i}]")
        except InvalidError as exc:
            raise CliError(f"{where}: {exc.message}") from exc


def body_from_manifest(doc: Mapping[str, Any]) -> dict[str, Any]:
    """The create request for a checked McpToken manifest (status and read-only metadata ignored).
    Bindings matter only to `rbac: bind`, which they imply when no mode is given; for `clone` they
    are the snapshot shown by `get` and a new snapshot is taken instead."""
    metadata, spec = doc["metadata"], doc.get("spec") or {}
    bindings = spec.get("bindings") or []
    rbac = spec.get("rbac") or ("bind" if bindings else "empty")
    return create_body(
        str(metadata["name"]),
        str(metadata["project"]),
        rbac=rbac,
        bindings=[dict(b) for b in bindings] if rbac == "bind" else None,
        ttl=spec.get("ttl"),
        description=spec.get("description"),
    )


def _differences(existing: Mapping[str, Any], body: Mapping[str, Any]) -> list[str]:
    """What the manifest asks for that the existing (immutable) token does not have."""
    raw = existing.get("spec")
    spec: Mapping[str, Any] = raw if isinstance(raw, Mapping) else {}
    out = []
    if body.get("description") is not None and body["description"] != (spec.get("description") or ""):
        out.append("description")
    if body["rbac"] != (spec.get("rbac") or "empty"):
        out.append("rbac")
    elif body["rbac"] == "bind":
        ours = {str(binding_from_dict(b)) for b in body.get("bindings") or []}
        theirs = {binding_text(b) for b in spec.get("bindings") or []}
        if ours != theirs:
            out.append("bindings")
    return out


def apply_token(
    client: ApiClient, doc: Mapping[str, Any], *, dry_run: bool
) -> tuple[str, dict[str, Any] | None]:
    """Apply one McpToken manifest: `unchanged` while an active token of that name exists, else
    create it. Returns the result and, when one was created, the create answer (with the token)."""
    body = body_from_manifest(doc)
    name, project = body["name"], body["project"]
    try:
        existing = client.json("GET", token_path(project, name))
    except ServerError as exc:
        if exc.status != 404 or exc.code not in (None, "not_found"):
            raise
        existing = None
    if isinstance(existing, dict) and token_state(existing, datetime.now(UTC)) == "active":
        ignored = _differences(existing, body)
        if ignored:
            click.echo(
                f"warning: mcptoken/{name} is immutable; not applied: {', '.join(ignored)} "
                f"(revoke it to create a new one: mcpctl revoke mcptoken {name} -p {project})",
                err=True,
            )
        return "unchanged", None
    if dry_run:
        return "created", None
    return "created", post_token(client, body)
