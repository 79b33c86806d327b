"""How a project endpoint names what its servers offer (DESIGN §5).

`always`: every tool and prompt is `<server><separator><name>` (separator `__` by default, else `_`
or `-`). `never`: upstream names as they are; two servers offering the same name is a configuration
error, refused when the project is configured rather than guessed at call time. Order is the
project's server order, then the upstream's own order: deterministic.

Every exposed tool name, in both modes, matches `^[a-zA-Z0-9_-]{1,64}$` (what OpenAI-compatible
clients such as vLLM's and the MCP spec accept): other characters become `_`, and a name longer than
64 characters keeps its first 55 and gets `_` plus 8 hex digits of the SHA-256 of the whole name. A
name that is legal as it is always keeps it; a changed name that meets another exposed name gets the
hash suffix too, so two upstream names never share an exposed one (`assign`). Prompt names are only
prefixed (clients put no such limit on them).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

from mcpctl.core.errors import InvalidError

PrefixMode = Literal["always", "never"]
SEPARATORS = ("__", "_", "-")
MAX_TOOL_NAME = 64
_ILLEGAL = re.compile(r"[^A-Za-z0-9_-]")
_HASH_DIGITS = 8


def is_legal(name: str) -> bool:
    """Whether a client may see `name` as a tool name as it is."""
    return 0 < len(name) <= MAX_TOOL_NAME and _ILLEGAL.search(name) is None


def _hashed(clean: str, raw: str) -> str:
    digest = hashlib.sha256(raw.encode()).hexdigest()[:_HASH_DIGITS]
    return f"{clean[: MAX_TOOL_NAME - _HASH_DIGITS - 1]}_{digest}"


def legal_name(raw: str) -> str:
    """`raw` with every other character replaced by `_`, shortened with a hash suffix when longer
    than 64 characters."""
    clean = _ILLEGAL.sub("_", raw) or "_"
    return clean if len(clean) <= MAX_TOOL_NAME else _hashed(clean, raw)


class NameCollision(InvalidError):
    """Two servers of a `toolPrefixMode: never` project offer the same name."""


@dataclass(frozen=True)
class Naming:
    mode: PrefixMode
    separator: str
    servers: tuple[str, ...]  # the project's servers, in order

    def expose(self, server: str, name: str) -> str:
        """The name as the project shows it before it is made legal (`assign` does that)."""
        return f"{server}{self.separator}{name}" if self.mode == "always" else name

    def assign(
        self, entries: Sequence[tuple[str, str]], *, prefixed: bool = True, legal: bool = True
    ) -> list[str | None]:
        """The exposed name of each (server, upstream name), in listing order; None for an entry
        hidden because an earlier one already has its name. `prefixed`: the mode's prefix applies
        (tools, prompts); `legal`: names are made legal tool names (tools). Names legal as they are
        are claimed first, so a name never changes because another one had to; the others take
        `legal_name`, or the hashed form when that is taken. The same entries always give the same
        names, which is how an exposed name maps back to exactly one upstream name."""
        raws = [self.expose(s, n) if prefixed else n for s, n in entries]
        out: list[str | None] = [None] * len(raws)
        taken: set[str] = set()
        for i, raw in enumerate(raws):
            if (not legal or is_legal(raw)) and raw not in taken:
                out[i] = raw
                taken.add(raw)
        if legal:
            done: set[str] = set()
            for i, raw in enumerate(raws):
                if is_legal(raw) or raw in done:
                    continue
                done.add(raw)
                for candidate in (legal_name(raw), _hashed(_ILLEGAL.sub("_", raw), raw)):
                    if candidate not in taken:
                        out[i] = candidate
                        taken.add(candidate)
                        break
        return out

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
