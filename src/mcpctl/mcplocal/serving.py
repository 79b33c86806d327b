"""What a long-running server's event loop thread settles once it is up (mcpd, `mcplocal serve`,
`mcplocal stdio`).

- The garbage collector: on from here (the console scripts start with it off: programs.py), and
  everything startup made (modules, settings, the app) lives as long as the process: `gc.freeze()`
  takes it out of the collector's sight, so a full collection walks only what requests made (a full
  collection of a started mcpd took 0.6 s on a loaded 2-core machine: p99). No `gc.collect()`
  before it: finding the few unreachable objects start-up leaves (~20 with the collector on,
  ~1,100 with it off) meant walking ~160,000 objects, ~0.1 s of CPU on every start (cold start,
  docs/performance.md).
- The async library: anyio asks sniffio which library runs on every primitive it creates, and
  sniffio, when the thread does not say, looks for the current asyncio task each time (~8% of
  mcpd's loop per call at c=8). This thread runs asyncio only, for as long as it serves: say so.
"""

from __future__ import annotations

import contextlib
import gc
import threading
from collections.abc import Iterator
from typing import Any


@contextlib.contextmanager
def settled() -> Iterator[None]:
    """Around the serving part of a lifespan (after startup, until shutdown), in the loop's thread."""
    gc.freeze()
    gc.enable()
    thread_local: Any
    try:
        from sniffio import thread_local
    except ModuleNotFoundError:  # anyio then asks asyncio itself, which is cheap
        thread_local = threading.local()
    previous = getattr(thread_local, "name", None)
    thread_local.name = "asyncio"
    try:
        yield
    finally:
        thread_local.name = previous
        gc.unfreeze()
