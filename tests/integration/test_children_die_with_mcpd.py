"""A stdio instance dies with its mcpd, even when mcpd is SIGKILLed (PR_SET_PDEATHSIG): a killed
replica's lease ends, so its instances must not run on next to the replica that takes over."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
import time

import pytest

from tests.processes import pid_alive

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux's")

# stands for mcpd: opens a StdioLink to a child that ignores its stdin, says the child's pid, waits
_PARENT = textwrap.dedent(
    """
    import asyncio, sys
    from mcpctl.mcpd.supervisor.links import StdioLink
    from mcpctl.mcpd.supervisor.ring import LineRing

    async def main():
        link = await StdioLink.open(
            sys.executable, ["-c", "import time; time.sleep(300)"], {}, None, stderr=LineRing()
        )
        print(link.pid, flush=True)
        await asyncio.sleep(300)

    asyncio.run(main())
    """
)


def test_a_stdio_child_dies_when_its_mcpd_is_sigkilled() -> None:
    parent = subprocess.Popen([sys.executable, "-c", _PARENT], stdout=subprocess.PIPE, text=True)
    try:
        assert parent.stdout is not None
        child = int(parent.stdout.readline())
        assert pid_alive(child)
        time.sleep(0.3)
        assert pid_alive(child)  # it does not end on its own
        parent.send_signal(signal.SIGKILL)
        parent.wait(timeout=10)
        deadline = time.monotonic() + 5
        while pid_alive(child) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not pid_alive(child), "the child outlived its SIGKILLed parent"
    finally:
        if parent.poll() is None:
            parent.kill()
            parent.wait(timeout=10)
        if parent.stdout is not None:
            parent.stdout.close()
