"""The fixture MCP server (tests/fixtures/mcp_fixture_server.py) behaves as the other tests assume.

It is a real process talked to with the official SDK client, over stdio and Streamable HTTP.
"""

from __future__ import annotations

import socket
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import anyio
import pytest
from mcp import Client, StdioServerParameters
from mcp.client.stdio import stdio_client
from mcp_types import CallToolResult, TextContent

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "mcp_fixture_server.py"
READY_TIMEOUT = 10.0
CALL_TIMEOUT = 5.0


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _stdio(*args: str, env: dict[str, str] | None = None) -> StdioServerParameters:
    return StdioServerParameters(command=sys.executable, args=[str(FIXTURE), *args], env=env)


def _text(result: CallToolResult) -> str:
    [content] = result.content
    assert isinstance(content, TextContent)
    return content.text


@pytest.fixture
async def http_url(tmp_path: Path) -> AsyncIterator[str]:
    """The fixture server in http mode on a free port; its stderr must stay empty."""
    port = _free_port()
    stderr_path = tmp_path / "fixture.stderr"
    with stderr_path.open("wb") as stderr:
        process = await anyio.open_process(
            [sys.executable, str(FIXTURE), "http", "--port", str(port), "--name", "fixture-http"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=stderr,
        )
        async with process:
            try:
                with anyio.fail_after(READY_TIMEOUT):
                    while True:
                        assert process.returncode is None, stderr_path.read_text()
                        try:
                            stream = await anyio.connect_tcp("127.0.0.1", port)
                        except OSError:
                            await anyio.sleep(0.05)
                        else:
                            await stream.aclose()
                            break
                yield f"http://127.0.0.1:{port}/mcp"
            finally:
                process.terminate()
                with anyio.fail_after(READY_TIMEOUT):
                    await process.wait()
    assert stderr_path.read_text() == ""


@pytest.mark.anyio
async def test_stdio_tools_answer_as_documented(tmp_path: Path) -> None:
    stderr_path = tmp_path / "fixture.stderr"
    params = _stdio("--name", "fx-stdio", env={"FIXTURE_SECRET": "s3cret"})
    with stderr_path.open("w") as errlog, anyio.fail_after(READY_TIMEOUT):
        async with Client(stdio_client(params, errlog=errlog), mode="legacy") as client:
            assert client.server_info is not None
            assert client.server_info.name == "fx-stdio"

            assert _text(await client.call_tool("echo", {"text": "hi there"})) == "hi there"

            added = await client.call_tool("add", {"a": 2, "b": 40})
            assert added.structured_content == {"result": 42}

            failed = await client.call_tool("fail", {"message": "broken on purpose"})
            assert failed.is_error
            assert _text(failed) == "broken on purpose"

            assert _text(await client.call_tool("env", {"name": "FIXTURE_SECRET"})) == "s3cret"
            assert _text(await client.call_tool("env", {"name": "FIXTURE_UNSET"})) == ""

            assert _text(await client.call_tool("stderr", {"text": "only this"})) == "written"
    # stdio_client waits for the process to exit, so everything it wrote is in the file.
    assert stderr_path.read_text() == "only this\n"


@pytest.mark.anyio
async def test_progress_tool_sends_one_notification_per_step() -> None:
    steps = 4
    received: list[tuple[float, float | None]] = []
    all_received = anyio.Event()

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        received.append((progress, total))
        if len(received) == steps:
            all_received.set()

    with anyio.fail_after(READY_TIMEOUT):
        # The default mode negotiates 2026-07-28 with the fixture; the http test covers both eras too.
        async with Client(_stdio()) as client:
            assert client.protocol_version == "2026-07-28"
            result = await client.call_tool(
                "progress", {"steps": steps, "delay": 0.01}, progress_callback=on_progress
            )
            assert _text(result) == f"done {steps}"
            # Progress callbacks run as their own tasks, so the last ones may trail the result.
            with anyio.fail_after(CALL_TIMEOUT):
                await all_received.wait()
    assert received == [(float(step), float(steps)) for step in range(1, steps + 1)]


@pytest.mark.anyio
async def test_http_mode_serves_streamable_http_at_mcp_in_both_protocol_eras(http_url: str) -> None:
    for mode, version in [("legacy", "2025-11-25"), ("auto", "2026-07-28")]:
        with anyio.fail_after(CALL_TIMEOUT):
            async with Client(http_url, mode=mode) as client:
                assert client.protocol_version == version
                assert client.server_info is not None
                assert client.server_info.name == "fixture-http"
                assert _text(await client.call_tool("echo", {"text": "over http"})) == "over http"
