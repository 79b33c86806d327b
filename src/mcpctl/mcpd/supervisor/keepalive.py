"""Keep-alive for the HTTP connections mcpd still makes through the SDK's Streamable HTTP client:
2026-07-28 callers' requests (modern.py) and the listen streams (listening.py). Plain calls to a
`transport: http` upstream go through mcpd's own client (streamable.py), which needs none of this.

The SDK's Streamable HTTP client stops reading a POST's `text/event-stream` body as soon as the
JSON-RPC answer is in and closes the response; the body's last chunk (the end of the stream) is
still unread, so httpcore cannot hand the connection back to its pool and closes it. Every call then
opened a new TCP connection (≈ 0.93 per call at c=8) and left a socket in TIME_WAIT. The same holds
for a `202 Accepted` whose empty body was never read.

`KeepAliveTransport` reads such a body to its end when it is closed, bounded in time and bytes, so
the connection is reused; a body that does not end soon (an upstream that keeps the POST's stream
open) is closed as before. GET streams (listen streams) are closed at once: they never end.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

import anyio
import httpx2

# what closing a response may still read of its body, at most
# Short: the caller's answer waits for it. The usual end of a stream is already in the socket's
# buffer; an upstream that keeps a POST's stream open after answering costs its connection, not the
# caller's time (0.5 s here delayed such answers past the conformance suite's 500 ms window).
DRAIN_SECONDS = 0.02
DRAIN_BYTES = 64 * 1024


class KeepAliveTransport(httpx2.AsyncHTTPTransport):
    """httpx2's transport, whose POST (and DELETE) responses are read to their end on close."""

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        response = await super().handle_async_request(request)
        if request.method == "GET":
            return response
        stream = response.stream
        assert isinstance(stream, httpx2.AsyncByteStream)
        return httpx2.Response(
            status_code=response.status_code,
            headers=response.headers,
            stream=_ReadToEnd(stream),
            extensions=response.extensions,
        )


def keepalive_client(**options: Any) -> httpx2.AsyncClient:
    """An `httpx2.AsyncClient` (same options) on a `KeepAliveTransport`."""
    return httpx2.AsyncClient(transport=KeepAliveTransport(), **options)


class _ReadToEnd(httpx2.AsyncByteStream):
    def __init__(self, stream: httpx2.AsyncByteStream):
        self._stream = stream

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self._stream.__aiter__()

    async def aclose(self) -> None:
        # the connection's state is in httpcore, not in the iterator: a new iteration goes on where
        # the reader stopped (and ends at once on a body already read to its end)
        try:
            # a body that fails to end (or to be read) has its connection closed below
            with contextlib.suppress(Exception), anyio.move_on_after(DRAIN_SECONDS):
                left = DRAIN_BYTES
                async for chunk in self._stream:
                    left -= len(chunk)
                    if left < 0:
                        break
        finally:
            await self._stream.aclose()
