"""`mcpctl apply -f FILE|DIR|- [--dry-run]`: create or update each object (PUT), idempotently."""

from __future__ import annotations

from typing import Any

import click

from mcpctl.cli.client import ApiClient
from mcpctl.cli.context import AppState, pass_state
from mcpctl.cli.errors import ServerError, usage_error
from mcpctl.cli.manifests import Manifest, read_manifests
from mcpctl.cli.mcptokens import SHOWN_ONCE, apply_token
from mcpctl.cli.nouns import MCPTOKEN, object_path, ref

_RESULTS = ("created", "configured", "unchanged")


def _put(client: ApiClient, manifest: Manifest, params: dict[str, str] | None) -> str:
    metadata = manifest.body.get("metadata")
    project = metadata.get("project") if isinstance(metadata, dict) else None
    response = client.request(
        "PUT", object_path(manifest.info, manifest.name, project), params=params, json=manifest.body
    )
    result = str(response.headers.get("Mcpctl-Result", "")).lower()
    if result not in _RESULTS:
        result = "created" if response.status_code == 201 else "configured"
    return result


@click.command()
@click.option(
    "-f",
    "--filename",
    "targets",
    multiple=True,
    metavar="FILE",
    type=click.Path(allow_dash=True),
    help="Manifest file, directory, or - for stdin.",
)
@click.option("--dry-run", is_flag=True, help="Validate on the server; store nothing.")
@pass_state
def apply(state: AppState, /, targets: tuple[str, ...], dry_run: bool) -> None:
    """Create or update the objects described in YAML/JSON manifests (multi-document, or List).

    Prints `kind/name created|configured|unchanged` per object. Every document is checked before
    anything is sent; a failing object is reported and the following ones are still applied.
    McpTokens are immutable: created if missing (the new token is printed once, on its own line),
    `unchanged` while an active one of that name exists in the project.
    """
    if not targets:
        raise usage_error("give at least one manifest with -f FILE (or -f - for stdin)")
    manifests = read_manifests(targets)
    client = state.client()
    params = {"dryRun": "true"} if dry_run else None
    failed = False
    for manifest in manifests:
        created: dict[str, Any] | None = None
        try:
            if manifest.info.kind == MCPTOKEN:
                result, created = apply_token(client, manifest.body, dry_run=dry_run)
            else:
                result = _put(client, manifest, params)
        except ServerError as exc:
            exc.message = f"{ref(manifest.info, manifest.name)}: {exc.message}"
            click.echo(exc.format(), err=True)
            failed = True
            continue
        click.echo(f"{ref(manifest.info, manifest.name)} {result}{' (dry run)' if dry_run else ''}")
        if created is not None:
            click.echo(str(created["token"]))
            click.echo(f"{ref(manifest.info, manifest.name)}: {SHOWN_ONCE}", err=True)
    if failed:
        raise click.exceptions.Exit(1)
