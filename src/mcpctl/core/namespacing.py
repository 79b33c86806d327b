"""How a project endpoint names what its servers offer (DESIGN §5).

`always`: every tool and prompt is `<server><separator><name>` (separator default `__`: the MCP spec
asks tool names to use `[A-Za-z0-9_.-]`, and OpenAI-compatible clients such as vLLM's refuse `/`).
`never`: upstream names as they are; two servers offering the same name is a configuration error,
refused when the project is configured rather than guessed at call time. Order is the project's
server order, then the upstream's own order: deterministic.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

from mcpctl.core.errors import InvalidError

PrefixMode = Literal["always", "never"]


class NameCollision(InvalidError):
    """Two servers of a `toolPrefixMode: never` project offer the same name."""


@dataclass(frozen=True)
class Naming:
    mode: PrefixMode
    separator: str
    servers: tuple[str, ...]  # the project's servers, in order

    def expose(self, server: str, name: str) -> str:
        return f"{server}{self.separator}{name}" if self.mode == "always" else name

    def index(
        self, names_by_server: Mapping[str, Sequence[str]], *, what: str = "tool"
    ) -> dict[str, tuple[str, str]]:
        """exposed name → (server, upstream name), in project order. In `never` mode a name offered
        by two servers raises NameCollision naming both; in `always` mode the first wins."""
        index: dict[str, tuple[str, str]] = {}
        for server in self.servers:
            for name in names_by_server.get(server, ()):
                exposed = self.expose(server, name)
                if exposed in index:
                    if self.mode == "never" and index[exposed][0] != server:
                        first = index[exposed][0]
                        raise NameCollision(
                            f'{what} "{name}" is offered by servers "{first}" and "{server}"; with '
                            "toolPrefixMode never the names must be unique (use toolPrefixMode always)",
                            details={"name": name, "servers": [first, server]},
                        )
                    continue
                index[exposed] = (server, name)
        return index

    def candidates(self, exposed: str) -> list[tuple[str, str]]:
        """Every (server, upstream name) an `always`-mode name can stand for, in project order: more
        than one when a server name plus the separator prefixes another's (`git` and `git-hub` with
        `-`); the listing shows the first of them that offers the name, so that one must win."""
        if self.mode != "always":
            return []
        found = []
        for server in self.servers:
            prefix = server + self.separator
            if exposed.startswith(prefix) and len(exposed) > len(prefix):
                found.append((server, exposed[len(prefix) :]))
        return found

    def resolve(self, exposed: str) -> tuple[str, str] | None:
        """(server, upstream name) for an `always`-mode name, without a discovery index: the
        longest server name that prefixes it (server names may contain the separator's characters)."""
        if self.mode != "always":
            return None
        best: tuple[str, str] | None = None
        for server in self.servers:
            prefix = server + self.separator
            longer = best is None or len(server) > len(best[0])
            if exposed.startswith(prefix) and len(exposed) > len(prefix) and longer:
                best = (server, exposed[len(prefix) :])
        return best
