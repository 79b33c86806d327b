"""`mcpctl apply -f FILE|DIR|- [--dry-run]`: create or update each object (PUT), idempotently."""

from __future__ import annotations

import click

from mcpctl.cli.context import AppState, pass_state
from mcpctl.cli.errors import ServerError, usage_error
from mcpctl.cli.manifests import read_manifests
from mcpctl.cli.nouns import object_path, ref

_RESULTS = ("created", "configured", "unchanged")


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
    """
    if not targets:
        raise usage_error("give at least one manifest with -f FILE (or -f - for stdin)")
    manifests = read_manifests(targets)
    client = state.client()
    params = {"dryRun": "true"} if dry_run else None
    failed = False
    for manifest in manifests:
        try:
            response = client.request(
                "PUT", object_path(manifest.info, manifest.name), params=params, json=manifest.body
            )
        except ServerError as exc:
            exc.message = f"{ref(manifest.info, manifest.name)}: {exc.message}"
            click.echo(exc.format(), err=True)
            failed = True
            continue
        result = response.headers.get("Mcpctl-Result", "").lower()
        if result not in _RESULTS:
            result = "created" if response.status_code == 201 else "configured"
        click.echo(f"{ref(manifest.info, manifest.name)} {result}{' (dry run)' if dry_run else ''}")
    if failed:
        raise click.exceptions.Exit(1)
