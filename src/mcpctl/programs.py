"""The console scripts of the two servers, `mcpd` and `mcplocal`: each starts with the garbage
collector off, before it imports the rest of itself.

Starting, a server imports ~1,100 modules (the `mcp` SDK's pydantic models above all) and builds
its app; those objects live as long as the process. The collector, triggered by the allocations,
walked them again and again meanwhile: ~0.1-0.15 s of CPU of a cold start on a 2-core machine
(docs/performance.md "Cold start"). Off, it finds ~1,100 unreachable objects afterwards, against
~20 with it on: they stay, as what start-up made stays (`gc.freeze`). `serving.settled()` turns
it on once the server serves (`mcpd`, `mcplocal serve`, `mcplocal stdio`); a command that serves
nothing (`mcpd admin reset`, `--help`) ends with it still off.
"""

from __future__ import annotations

import gc


def mcpd() -> None:
    gc.disable()
    from mcpctl.mcpd.__main__ import main

    main()


def mcplocal() -> None:
    gc.disable()
    from mcpctl.mcplocal.__main__ import main

    main()
