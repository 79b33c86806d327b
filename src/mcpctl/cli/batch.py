"""One request per named object, kubectl-style: each failure reported, the rest still done."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import click

from mcpctl.cli.errors import ServerError
from mcpctl.cli.nouns import ref
from mcpctl.core.kinds import KindInfo


def for_each_name(
    info: KindInfo, names: Sequence[str], paths: Sequence[str], verb: str, send: Callable[[str], object]
) -> None:
    """Call `send(path)` per name and print `kind/name <verb>`; with one name a failure is the error,
    with several each is printed and the exit code is 1 at the end."""
    failed = False
    for name, path in zip(names, paths, strict=True):
        try:
            send(path)
        except ServerError as exc:
            if len(names) == 1:
                raise
            click.echo(exc.format(), err=True)
            failed = True
            continue
        click.echo(f"{ref(info, name)} {verb}")
    if failed:
        raise click.exceptions.Exit(1)
