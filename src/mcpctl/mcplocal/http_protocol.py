"""uvicorn's HTTP protocol (httptools) with the connection's writes of one turn of the event loop
sent as one.

uvicorn writes a response's head and each body part with their own `transport.write`, and uvloop
sends each at once: a system call per write, which on loopback also delivers to the reader. A
`tools/call` answered in one piece (replies.PostStream sends the head with the answer) is then two
sends where one does; py-spy had them at 22 % of mcplocal's CPU in split mode (docs/performance.md
"One write per answer"). `TurnWriter` keeps what is written in one turn and writes it in the next
callback of the loop, with one `writelines` (one send); closing or writing EOF sends what is kept
first. A WebSocket that a connection upgrades to (mcpd's data-plane link) writes through it too.
Both `mcpd` and `mcplocal serve` give it to uvicorn (`http=`).
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol


class TurnWriter:
    """The connection's transport, but for `write`: kept until the loop's next callback."""

    __slots__ = ("_kept", "_loop", "_transport")

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop):
        self._transport, self._loop = transport, loop
        self._kept: list[bytes] = []

    def write(self, data: bytes) -> None:
        if not data:
            return
        if not self._kept:
            self._loop.call_soon(self.flush)
        self._kept.append(data)

    def writelines(self, lines: Any) -> None:
        for data in lines:
            self.write(data)

    def flush(self) -> None:
        kept, self._kept = self._kept, []
        if kept and not self._transport.is_closing():
            self._transport.writelines(kept)

    def get_write_buffer_size(self) -> int:
        return self._transport.get_write_buffer_size() + sum(len(data) for data in self._kept)

    def write_eof(self) -> None:
        self.flush()
        self._transport.write_eof()

    def close(self) -> None:
        self.flush()
        self._transport.close()

    def abort(self) -> None:
        self._kept = []
        self._transport.abort()

    def __getattr__(self, name: str) -> Any:  # is_closing, pause_reading, get_extra_info, set_protocol…
        return getattr(self._transport, name)


class TurnWritingHttpToolsProtocol(HttpToolsProtocol):
    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(TurnWriter(transport, self.loop))  # type: ignore[arg-type]
