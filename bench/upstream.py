"""The fixture server over Streamable HTTP, counting the TCP connections it accepts, for
`make bench-peers`: an http upstream behind a gateway should see about one connection per session
(keep-alive), not one per call (issue 16: ≤ 0.01 new connections per call).

    python -m bench.upstream COUNT_FILE -- [fixture arguments, e.g. http --port 8000]

The count is rewritten in place (fixed width, one pwrite per accepted connection) so the harness can
read it at any moment without a signal or an extra request that would itself be a connection. It
wraps uvicorn's protocol factory (one instance per accepted connection), whatever the HTTP
implementation or event loop.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import uvicorn

FIXTURE = Path(__file__).resolve().parents[1] / "tests" / "fixtures"


def read_count(path: Path) -> int:
    """Connections accepted so far (0 before the first)."""
    try:
        return int(path.read_bytes() or b"0")
    except (OSError, ValueError):
        return 0


def _count_connections(path: Path) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    accepted = 0
    load = uvicorn.Config.load

    def counting_load(config: uvicorn.Config) -> None:
        load(config)
        protocol = config.http_protocol_class

        def counted(*args: Any, **kwargs: Any) -> Any:
            nonlocal accepted
            accepted += 1
            os.pwrite(fd, b"%12d\n" % accepted, 0)
            return protocol(*args, **kwargs)

        config.http_protocol_class = counted  # type: ignore[assignment]

    uvicorn.Config.load = counting_load  # type: ignore[method-assign,assignment]


def main(argv: list[str]) -> None:
    count_file, rest = argv[0], argv[1:]
    if rest[:1] == ["--"]:
        rest = rest[1:]
    _count_connections(Path(count_file))
    sys.path.insert(0, str(FIXTURE))
    import mcp_fixture_server  # type: ignore[import-not-found]  # from the path set up above

    mcp_fixture_server.main(rest)


if __name__ == "__main__":
    main(sys.argv[1:])
