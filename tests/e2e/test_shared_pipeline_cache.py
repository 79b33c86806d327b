"""Two `mcplocal serve` processes sharing one pipeline cache directory (DESIGN §10: "safe for several
processes and replicas sharing the directory"), under concurrent load through the real endpoint:
clients of both call tools whose long results are paged into the shared cache and read pages back,
while the small size bound keeps evicting. No page read is ever torn or another result's; a page
evicted is answered as unknown, never wrongly; and the directory stays under
MCPLOCAL_CACHE_MAX_BYTES."""

from __future__ import annotations

import random
import re
import sys
import time
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path

import anyio
import mcp_types as types
import pytest
from mcp.shared.exceptions import MCPError

from mcpctl.mcplocal.proxy.content import Content, paginate, split_sections
from tests.e2e.conftest import Cli, Mcpd, login_admin
from tests.e2e.test_filecache_processes import sample
from tests.e2e.test_mcplocal_split import mcplocal_serve
from tests.e2e.test_project_endpoint import client, mint
from tests.e2e.upstreams import FIXTURE, PYTHON, run, wait_running

sys.path.insert(0, str(FIXTURE.parent))
from mcp_fixture_server import long_document

pytestmark = pytest.mark.e2e

MAX_BYTES = 128 * 1024
PAGE_BYTES = 4096
SIZES = (24, 32, 40, 48, 56)  # KiB: five distinct results, 200 KiB of pages: more than the bound
WORKERS_PER_PROCESS = 3
ROUNDS = 12
DEADLINE = 90.0


@pytest.fixture(scope="module")
def op(make_cli: Callable[[], Cli]) -> Cli:
    op = login_admin(make_cli())
    op.ok("create", "server", "fx", "--transport", "stdio", "--command", PYTHON, "--arg", str(FIXTURE))
    op.ok(
        "apply",
        "-f",
        "-",
        input="kind: ProxyModel\nmetadata: {name: small-pages}\nspec:\n  stages:\n"
        f"  - {{type: section-split}}\n  - {{type: paginate, config: {{pageBytes: {PAGE_BYTES}}}}}\n",
    )
    op.ok("create", "project", "shared", "--server", "fx", "--proxy-model", "small-pages")
    wait_running(op, "fx", 1)
    return op


def expected_pages(kib: int) -> list[str]:
    document = long_document(kib, "text")
    return [page.text for page in paginate(Content(document, sections=split_sections(document)), PAGE_BYTES)]


def first_page(text: str) -> str:
    return text.split("\n---\n", 1)[1]


def body(text: str) -> str:
    return text.rsplit("\n---\n[mcpctl] page ", 1)[0]


def test_two_mcplocal_processes_share_one_cache_without_a_wrong_page_and_within_its_bound(
    op: Cli, daemon: Mcpd, tmp_path: Path
) -> None:
    cache = tmp_path / "cache"
    env = {"MCPLOCAL_CACHE_DIR": str(cache), "MCPLOCAL_CACHE_MAX_BYTES": str(MAX_BYTES)}
    token = mint(op, "shared", "both")
    expected = {kib: expected_pages(kib) for kib in SIZES}
    tally = {"calls": 0, "pages read": 0, "evicted": 0, "wrong": 0}
    samples: list[tuple[int, int]] = []

    for n in (1, 2):
        (tmp_path / f"p{n}").mkdir()
    with ExitStack() as stack:
        bases = [stack.enter_context(mcplocal_serve(daemon, tmp_path / f"p{n}", **env)) for n in (1, 2)]

        async def worker(base: str, seed: int, deadline: float) -> None:
            rng = random.Random(seed)
            async with client(f"{base}/projects/shared/mcp", token) as session:
                for _ in range(ROUNDS):
                    if time.monotonic() > deadline:
                        return
                    kib = rng.choice(SIZES)
                    result = await session.call_tool("fx__document", {"kib": kib, "form": "text"})
                    text = next(i.text for i in result.content if isinstance(i, types.TextContent))
                    tally["calls"] += 1
                    tally["wrong"] += first_page(text) != expected[kib][0]
                    found = re.search(r'resultId="([0-9a-f]+)"', text)
                    assert found, text[:300]
                    for page in rng.sample(range(2, len(expected[kib]) + 1), min(6, len(expected[kib]) - 1)):
                        try:
                            answer = await session.call_tool(
                                "read_page", {"resultId": found.group(1), "page": page}
                            )
                        except MCPError as exc:  # evicted meanwhile: unknown, never wrong
                            assert exc.message.startswith("Unknown result page"), exc.message
                            tally["evicted"] += 1
                            continue
                        got = next(i.text for i in answer.content if isinstance(i, types.TextContent))
                        tally["pages read"] += 1
                        tally["wrong"] += body(got) != expected[kib][page - 1]

        async def sampler(done: anyio.Event) -> None:
            while not done.is_set():
                if cache.exists():
                    samples.append(await anyio.to_thread.run_sync(sample, cache))
                await anyio.sleep(0.2)

        async def scenario() -> None:
            deadline = time.monotonic() + DEADLINE
            done = anyio.Event()
            async with anyio.create_task_group() as outer:
                outer.start_soon(sampler, done)
                async with anyio.create_task_group() as group:
                    for n, base in enumerate(bases):
                        for w in range(WORKERS_PER_PROCESS):
                            group.start_soon(worker, base, n * 100 + w, deadline)
                done.set()

        run(scenario)

    final, _ = sample(cache)
    assert tally["wrong"] == 0, tally
    assert tally["calls"] >= 2 * WORKERS_PER_PROCESS * 2 and tally["pages read"] > 50, tally
    assert tally["evicted"] > 0, f"the bound was never reached, so nothing was shown about it: {tally}"
    assert final <= MAX_BYTES
    assert max(entries for entries, _ in samples) <= MAX_BYTES, samples
