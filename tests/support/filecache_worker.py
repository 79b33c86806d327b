"""One process of the FileCache sharing test: puts and gets self-verifying values in a shared directory.

    python -m tests.support.filecache_worker DIR MAX_BYTES NAME OPS SEED

Keys `s0`…`s39` are shared by every worker (through get_or_compute), `NAME-0`… are this worker's own.
A key's value is derived from the key alone (`value_for`), 1 byte to MAX_VALUE, so any process can
check any value it reads. Prints one JSON line of counts; exits 1 if any value read was wrong.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import random
import sys
from pathlib import Path

from mcpctl.mcplocal.filecache import FileCache

MAX_VALUE = 300_000
SHARED_KEYS = 40
OWN_KEYS = 60
TASKS = 4


def value_for(key: str) -> bytes:
    seed = hashlib.sha256(key.encode()).digest()
    size = 1 + int.from_bytes(seed[:4], "big") % MAX_VALUE
    return (seed * (size // len(seed) + 1))[:size]


async def run(directory: Path, max_bytes: int, name: str, ops: int, seed: int) -> dict[str, int]:
    cache = FileCache(directory, max_bytes, touch_interval=0)
    counts = {"ops": 0, "hits": 0, "computes": 0, "wrong": 0}
    rng = random.Random(seed)

    def check(key: str, value: bytes | None) -> None:
        if value is not None and value != value_for(key):
            counts["wrong"] += 1

    async def compute_for(key: str) -> bytes:
        counts["computes"] += 1
        await asyncio.sleep(0)
        return value_for(key)

    async def worker() -> None:
        for _ in range(ops // TASKS):
            roll = rng.random()
            if roll < 0.5:
                key = f"s{rng.randrange(SHARED_KEYS)}"
                check(key, await cache.get_or_compute(key, lambda key=key: compute_for(key)))
            elif roll < 0.75:
                key = f"{name}-{rng.randrange(OWN_KEYS)}"
                await cache.put(key, value_for(key))
            else:
                key = rng.choice([f"s{rng.randrange(SHARED_KEYS)}", f"{name}-{rng.randrange(OWN_KEYS)}"])
                value = await cache.get(key)
                counts["hits"] += value is not None
                check(key, value)
            counts["ops"] += 1

    await asyncio.gather(*(worker() for _ in range(TASKS)))
    return counts


def main() -> None:
    directory, max_bytes, name, ops, seed = sys.argv[1:6]
    counts = asyncio.run(run(Path(directory), int(max_bytes), name, int(ops), int(seed)))
    print(json.dumps(counts), flush=True)
    sys.exit(1 if counts["wrong"] else 0)


if __name__ == "__main__":
    main()
