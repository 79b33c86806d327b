"""`SseLink`: a `transport: http` upstream whose URL path ends in `/sse`, over the legacy HTTP+SSE
transport (2024-11-05) through the SDK's own client. Every message arrives on the one event stream,
so none can be tied to the request it concerns (`related` is None), as on stdio.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Mapping
from typing import Any

from mcpctl.mcpd.supervisor.links import LinkClosed, Received, SpawnError, describe_exception


class SseLink:
    pid: int | None = None

    def __init__(self, url: str, headers: Mapping[str, str], *, connect_timeout: float = 10.0):
        self.url = url
        self.headers = dict(headers)
        self.connect_timeout = connect_timeout
        self._incoming: asyncio.Queue[Received | None] = asyncio.Queue()
        self._write: Any = None
        self._ready = asyncio.Event()
        self._stop = asyncio.Event()
        self._reason: str | None = None
        self._task: asyncio.Task[None] | None = None

    @classmethod
    async def open(cls, url: str, headers: Mapping[str, str], *, connect_timeout: float = 10.0) -> SseLink:
        link = cls(url, headers, connect_timeout=connect_timeout)
        link._task = asyncio.create_task(link._run(), name=f"sse-link {url}")
        ready = asyncio.create_task(link._ready.wait())
        try:
            await asyncio.wait({ready, link._task}, return_when=asyncio.FIRST_COMPLETED)
        except asyncio.CancelledError:
            await link.close()
            raise
        finally:
            ready.cancel()
        if not link._ready.is_set():
            await link.close()
            raise SpawnError(link._reason or f"cannot connect to {url}")
        return link

    @property
    def closed_reason(self) -> str | None:
        return self._reason

    async def _run(self) -> None:
        from mcp.client.sse import sse_client  # the SDK's client, only for upstreams that need it

        try:
            async with sse_client(self.url, headers=self.headers, timeout=self.connect_timeout) as (
                read,
                write,
            ):
                await self._pump(read, write)
        except Exception as exc:  # boundary: any transport failure is the link's end, with its reason
            self._reason = self._reason or f"connection failed: {describe_exception(exc)}"
        finally:
            self._reason = self._reason or "connection closed"
            self._incoming.put_nowait(None)

    async def _pump(self, read: Any, write: Any) -> None:
        import anyio

        self._write = write
        self._ready.set()
        async with anyio.create_task_group() as group:

            async def stop_when_asked() -> None:
                await self._stop.wait()
                group.cancel_scope.cancel()

            group.start_soon(stop_when_asked)
            async for item in read:
                if isinstance(item, Exception):  # the transport failed (refused, HTTP error, bad body)
                    self._reason = self._reason or f"connection failed: {describe_exception(item)}"
                    break
                self._incoming.put_nowait(
                    (item.message.model_dump(by_alias=True, mode="json", exclude_unset=True), None)
                )
            group.cancel_scope.cancel()

    async def send(self, message: dict[str, Any]) -> None:
        import anyio
        import mcp_types
        from mcp.shared.message import SessionMessage

        if self._write is None or self._stop.is_set() or self._task is None or self._task.done():
            raise LinkClosed(self._reason or "connection closed")
        try:
            parsed = mcp_types.jsonrpc_message_adapter.validate_python(message, by_name=False)
        except ValueError as exc:
            raise LinkClosed(f"not a JSON-RPC message: {exc}") from exc
        try:
            await self._write.send(SessionMessage(parsed))
        except (anyio.ClosedResourceError, anyio.BrokenResourceError) as exc:
            raise LinkClosed(self._reason or "connection closed") from exc

    async def receive(self) -> Received:
        message = await self._incoming.get()
        if message is None:
            self._incoming.put_nowait(None)
            raise LinkClosed(self._reason or "connection closed")
        return message

    async def close(self) -> None:
        self._reason = self._reason or "stopped"
        self._stop.set()
        if self._task is not None:
            try:
                async with asyncio.timeout(5.0):
                    await asyncio.shield(self._task)
            except TimeoutError:
                self._task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await self._task
