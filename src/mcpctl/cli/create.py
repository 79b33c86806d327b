"""`mcpctl create NOUN NAME [flags]`: build one object from flags and POST it (PUT with --force)."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

import click

from mcpctl.cli.context import AppState, pass_state
from mcpctl.cli.errors import usage_error
from mcpctl.cli.nouns import collection_path, object_path, ref
from mcpctl.cli.printers import print_object
from mcpctl.core.errors import InvalidError
from mcpctl.core.kinds import KindInfo, kind_for_name
from mcpctl.core.rbac import parse_binding, parse_subject

F = TypeVar("F", bound=Callable[..., Any])


def common_options(func: F) -> F:
    """Flags every `create` subcommand takes, meaning the same everywhere."""
    for decorator in reversed(
        (
            click.option("--label", "labels", multiple=True, metavar="KEY=VALUE", help="Label (repeatable)."),
            click.option("--description", help="Free-text description."),
            click.option("--dry-run", is_flag=True, help="Validate on the server; store nothing."),
            click.option("--force", is_flag=True, help="Replace the object if it already exists."),
            click.option(
                "-o",
                "--output",
                type=click.Choice(["json", "yaml", "name"]),
                help="Print the created object instead of a summary line.",
            ),
        )
    ):
        func = decorator(func)
    return func


def parse_pairs(values: Iterable[str], flag: str, *, sep: str = "=") -> dict[str, str]:
    """`K=V` flag values as a dict; a value without the separator, an empty key or a repeated key
    is a usage error naming the flag."""
    out: dict[str, str] = {}
    for item in values:
        key, found, value = item.partition(sep)
        key = key.strip()
        if not found or not key:
            raise usage_error(f"{flag} {item!r}: expected KEY{sep}VALUE")
        if key in out:
            raise usage_error(f"{flag}: key {key!r} given twice")
        out[key] = value.strip() if sep != "=" else value
    return out


def parse_secret_refs(values: Iterable[str], flag: str) -> dict[str, dict[str, Any]]:
    """`K=secret:key` flag values as `{K: {secretRef: {name, key}}}`."""
    out: dict[str, dict[str, Any]] = {}
    for key, target in parse_pairs(values, flag).items():
        secret, found, secret_key = target.partition(":")
        if not found or not secret or not secret_key:
            raise usage_error(f"{flag} {key}={target!r}: expected KEY=SECRET:SECRETKEY")
        out[key] = {"secretRef": {"name": secret, "key": secret_key}}
    return out


def _info(kind: str) -> KindInfo:
    info = kind_for_name(kind)
    assert info is not None, kind
    return info


def submit(
    state: AppState,
    kind: str,
    name: str,
    spec: dict[str, Any],
    opts: dict[str, Any],
    *,
    project: str | None = None,
) -> None:
    """Send the object (POST, or PUT when --force) and print `kind/name created` or the object.
    A project-scoped kind's object goes to its `project`."""
    info = _info(kind)
    labels = parse_pairs(opts["labels"], "--label")
    metadata: dict[str, Any] = {"name": name, **({"labels": labels} if labels else {})}
    if project is not None:
        metadata["project"] = project
    if opts.get("description") is not None:
        spec["description"] = opts["description"]
    body = {"kind": info.kind, "metadata": metadata, "spec": spec}
    params = {"dryRun": "true"} if opts["dry_run"] else None
    client = state.client()
    if opts["force"]:
        response = client.request("PUT", object_path(info, name, project), params=params, json=body)
        verb = response.headers.get("Mcpctl-Result") or (
            "created" if response.status_code == 201 else "configured"
        )
    else:
        response = client.request("POST", collection_path(info, project), params=params, json=body)
        verb = "created"
    if opts["output"]:
        print_object(response.json(), info, opts["output"])
    else:
        click.echo(f"{ref(info, name)} {verb}{' (dry run)' if opts['dry_run'] else ''}")


def read_password_stdin() -> str:
    line = sys.stdin.readline().rstrip("\r\n")
    if not line:
        raise usage_error("--password-stdin: no password on standard input")
    return line


@click.group()
def create() -> None:
    """Create one object from flags (see `apply -f` for manifests)."""


@create.command("project")
@click.argument("name")
@click.option("--server", "servers", multiple=True, metavar="SERVER", help="Server, in order (repeatable).")
@click.option(
    "--proxy-model",
    help="A built-in (direct (default), default, gate, content-pipeline) or a stored proxymodel.",
)
@click.option("--tool-prefix-mode", type=click.Choice(["always", "never"]))
@click.option("--tool-name-separator", metavar="SEP", help="Between server and tool name (default __).")
@common_options
@pass_state
def create_project(
    state: AppState,
    /,
    name: str,
    servers: tuple[str, ...],
    proxy_model: str | None,
    tool_prefix_mode: str | None,
    tool_name_separator: str | None,
    **opts: Any,
) -> None:
    """Create a project grouping servers behind one MCP endpoint."""
    spec: dict[str, Any] = {"servers": list(servers)}
    for key, value in (
        ("proxyModel", proxy_model),
        ("toolPrefixMode", tool_prefix_mode),
        ("toolNameSeparator", tool_name_separator),
    ):
        if value is not None:
            spec[key] = value
    submit(state, "Project", name, spec, opts)


@create.command("user")
@click.argument("name")
@click.option("--email", required=True, help="Login e-mail address.")
@click.option("--display-name", help="Human-readable name.")
@click.option("--password-stdin", is_flag=True, help="Read the password (one line) from stdin.")
@common_options
@pass_state
def create_user(
    state: AppState, /, name: str, email: str, display_name: str | None, password_stdin: bool, **opts: Any
) -> None:
    """Create a user (without --password-stdin the user cannot log in yet)."""
    spec: dict[str, Any] = {"email": email}
    if display_name is not None:
        spec["displayName"] = display_name
    if password_stdin:
        spec["password"] = read_password_stdin()
    submit(state, "User", name, spec, opts)


@create.command("group")
@click.argument("name")
@click.option("--member", "members", multiple=True, metavar="EMAIL", help="Member e-mail (repeatable).")
@common_options
@pass_state
def create_group(state: AppState, /, name: str, members: tuple[str, ...], **opts: Any) -> None:
    """Create a group of users."""
    submit(state, "Group", name, {"members": list(members)}, opts)


@create.command("secret")
@click.argument("name")
@click.option("--data", "data", multiple=True, metavar="KEY=VALUE", help="A key and its value (repeatable).")
@common_options
@pass_state
def create_secret(state: AppState, /, name: str, data: tuple[str, ...], **opts: Any) -> None:
    """Create a secret (values are encrypted at rest and masked on read)."""
    submit(state, "Secret", name, {"data": parse_pairs(data, "--data")}, opts)


@create.command("rbac")
@click.argument("name")
@click.option(
    "--subject",
    "subjects",
    multiple=True,
    required=True,
    metavar="KIND:NAME",
    help="User:<email>, Group:<name> or McpToken:<sha256> (repeatable).",
)
@click.option(
    "--roleBindings",
    "--role-bindings",
    "bindings",
    multiple=True,
    metavar="BINDING",
    help="role:<role>,resource:<res|*>[,name:<n>] or action:<op> (repeatable).",
)
@common_options
@pass_state
def create_rbac(
    state: AppState, /, name: str, subjects: tuple[str, ...], bindings: tuple[str, ...], **opts: Any
) -> None:
    """Create an RBAC definition binding roles to subjects."""
    parsed_subjects = []
    for text in subjects:
        try:
            kind, value = parse_subject(text)
        except InvalidError as exc:
            raise usage_error(f"--subject: {exc.message}") from exc
        parsed_subjects.append(f"{kind}:{value}")
    role_bindings = []
    for text in bindings:
        try:
            role_bindings.append(parse_binding(text).to_dict())
        except InvalidError as exc:
            raise usage_error(f"--roleBindings: {exc.message}") from exc
    submit(state, "RbacDefinition", name, {"subjects": parsed_subjects, "roleBindings": role_bindings}, opts)


@create.command("prompt")
@click.argument("name")
@click.option("-p", "--project", required=True, help="The project the prompt belongs to.")
@click.option("--text", help="The prompt's text.")
@click.option(
    "--text-file",
    type=click.File("r", encoding="utf-8"),
    help="Read the text from a file (- for stdin).",
)
@click.option("--priority", type=click.IntRange(0, 10), help="0..10, higher first (default 5).")
@click.option(
    "--tag", "tags", multiple=True, metavar="TAG", help="A tag the gate matches tasks by (repeatable)."
)
@common_options
@pass_state
def create_prompt(
    state: AppState,
    /,
    name: str,
    project: str,
    text: str | None,
    text_file: Any,
    priority: int | None,
    tags: tuple[str, ...],
    **opts: Any,
) -> None:
    """Create a project's prompt, delivered by the gate proxy model to sessions whose task fits it."""
    if (text is None) == (text_file is None):
        raise usage_error("give the prompt's text with exactly one of --text or --text-file")
    spec: dict[str, Any] = {"text": text if text is not None else text_file.read()}
    if priority is not None:
        spec["priority"] = priority
    if tags:
        spec["tags"] = list(tags)
    submit(state, "Prompt", name, spec, opts, project=project)


def parse_stage(text: str) -> dict[str, Any]:
    """`TYPE[:key=value,...]` as a stage `{type, config}`; values are YAML scalars (`pageBytes=4096`
    is a number)."""
    from mcpctl.cli.patch import parse_value

    stage_type, _, rest = text.partition(":")
    if not stage_type.strip():
        raise usage_error(f"--stage {text!r}: expected TYPE[:KEY=VALUE,...]")
    pairs = parse_pairs([item for item in rest.split(",") if item.strip()], f"--stage {stage_type}")
    return {"type": stage_type.strip(), "config": {k: parse_value(v) for k, v in pairs.items()}}


@create.command("proxymodel")
@click.argument("name")
@click.option(
    "--stage",
    "stages",
    multiple=True,
    metavar="TYPE[:K=V,...]",
    help="A stage, in order (repeatable), e.g. gate:tools=5 or paginate:pageBytes=8192.",
)
@common_options
@pass_state
def create_proxymodel(state: AppState, /, name: str, stages: tuple[str, ...], **opts: Any) -> None:
    """Create a proxy model: a named pipeline of stages that projects can name as proxyModel."""
    submit(state, "ProxyModel", name, {"stages": [parse_stage(s) for s in stages]}, opts)
