"""http_protocol.TurnWriter: what a connection writes in one turn of the event loop reaches the
transport as one `writelines` (one send), in order; closing sends what is kept first; aborting drops
it. The transport here records what it is given (the class's whole contract is what it passes on)."""

from __future__ import annotations

import asyncio
from typing import Any

from mcpctl.mcplocal.http_protocol import TurnWriter


class Recording:
    def __init__(self) -> None:
        self.calls: list[tuple[str, Any]] = []
        self.closing = False

    def writelines(self, lines: list[bytes]) -> None:
        self.calls.append(("writelines", list(lines)))

    def close(self) -> None:
        self.closing = True
        self.calls.append(("close", None))

    def abort(self) -> None:
        self.closing = True
        self.calls.append(("abort", None))

    def is_closing(self) -> bool:
        return self.closing

    def get_write_buffer_size(self) -> int:
        return 0

    def get_extra_info(self, name: str) -> str:
        return f"info:{name}"


def test_the_writes_of_one_turn_go_out_as_one_and_in_order() -> None:
    async def scenario() -> list[tuple[str, Any]]:
        transport = Recording()
        writer = TurnWriter(transport, asyncio.get_running_loop())  # type: ignore[arg-type]
        writer.write(b"HTTP/1.1 200 OK\r\n\r\n")
        writer.write(b"")
        writer.write(b"body")
        assert transport.calls == [] and writer.get_write_buffer_size() == 23
        await asyncio.sleep(0)
        writer.write(b"next turn")
        await asyncio.sleep(0)
        assert writer.get_extra_info("peername") == "info:peername"  # the rest is the transport's
        return transport.calls

    assert asyncio.run(scenario()) == [
        ("writelines", [b"HTTP/1.1 200 OK\r\n\r\n", b"body"]),
        ("writelines", [b"next turn"]),
    ]


def test_close_sends_what_is_kept_first_and_abort_drops_it() -> None:
    async def scenario() -> tuple[list[tuple[str, Any]], list[tuple[str, Any]]]:
        loop = asyncio.get_running_loop()
        closed, aborted = Recording(), Recording()
        first = TurnWriter(closed, loop)  # type: ignore[arg-type]
        first.write(b"last words")
        first.close()
        second = TurnWriter(aborted, loop)  # type: ignore[arg-type]
        second.write(b"never sent")
        second.abort()
        await asyncio.sleep(0)  # the flush scheduled for the kept writes finds nothing more to send
        return closed.calls, aborted.calls

    closed, aborted = asyncio.run(scenario())
    assert closed == [("writelines", [b"last words"]), ("close", None)]
    assert aborted == [("abort", None)]
