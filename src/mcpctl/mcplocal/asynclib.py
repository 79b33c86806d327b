"""Which async library runs this thread, said once instead of sniffed on every call.

anyio, httpcore and httpx ask `sniffio.current_async_library()` many times per request (anyio on
every task it spawns and every cancel scope, httpcore on every lock and pool request). Under uvicorn
nothing tells sniffio, so it sniffs each time; without sniffio installed, httpcore retries the failed
`import sniffio` on every call (~200 µs each; 8 % of mcplocal's event loop in issue 16's profile).
Declared on the event loop's thread (as trio declares itself), each answer is a thread-local read.
`anyio.run` declares itself already (mcplocal stdio).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import sniffio


@contextlib.contextmanager
def asyncio_thread() -> Iterator[None]:
    """While open, sniffio answers "asyncio" on this thread: enter it on the running loop's thread
    (a server's lifespan), for as long as the loop serves."""
    previous = sniffio.thread_local.name
    sniffio.thread_local.name = "asyncio"
    try:
        yield
    finally:
        sniffio.thread_local.name = previous
