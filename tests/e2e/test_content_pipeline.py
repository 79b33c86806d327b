"""The `content-pipeline` proxy model through the real endpoint (DESIGN §10), in every mode
(embedded mcpd, `mcplocal serve`, `mcplocal stdio`), with a real OpenAI-compatible server started
here standing in for vLLM (tests/support/openai_server.py; its calls are counted):

- a 1 MB tool result reaches the client as a first page within pageBytes plus how to get the rest;
  every page reads back through read_page and resources/read, with no upstream call;
- the summary and page titles come from the chat endpoint once: the same result again makes no LLM
  call; without an answer from it the call still succeeds, plainly;
- a page is never served to a token of another project, nor to one that does not reach its server;
- a custom stage installed as an `mcpctl.stages` entry point runs, with its work cached;
- with an embeddings endpoint configured the gate ranks with it too, embedding each tool once.
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx2
import mcp_types as types
import pytest
from mcp import Client, StdioServerParameters
from mcp.client.stdio import stdio_client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError

from tests.e2e.conftest import Cli, Mcpd, login_admin
from tests.e2e.test_mcplocal_split import MCPLOCAL, mcplocal_serve
from tests.e2e.test_project_endpoint import mint
from tests.e2e.upstreams import FIXTURE, PYTHON, run, wait_running
from tests.processes import free_port
from tests.support.openai_server import OpenAIServer

pytestmark = pytest.mark.e2e

sys.path.insert(0, str(FIXTURE.parent))
from mcp_fixture_server import long_document  # noqa: E402

LLM_PORT = free_port()
STAGES = Path(__file__).resolve().parents[1] / "support" / "stage_package"
PAGE_BYTES = 16 * 1024
HEADER_BYTES = 4096  # the first answer's size line, summary, table of contents and how to read on
MODES = ["embedded", "serve", "stdio"]


def _stage_log(tmp: Path) -> Path:
    return tmp / "stage-computations.log"


STAGE_LOG = _stage_log(Path(os.environ.get("TMPDIR", "/tmp")) / f"mcpctl-stage-{os.getpid()}-{LLM_PORT}")
LLM_ENV = {
    "MCPLOCAL_LLM_URL": f"http://127.0.0.1:{LLM_PORT}/v1",
    "MCPLOCAL_LLM_TIMEOUT_MS": "3000",
    "MCPLOCAL_EMBEDDINGS_URL": f"http://127.0.0.1:{LLM_PORT}/v1",
    "PYTHONPATH": str(STAGES),
    "EXAMPLE_STAGES_LOG": str(STAGE_LOG),
}
MCPD_ENV = dict(LLM_ENV)


@pytest.fixture(scope="module")
def llm() -> Iterator[OpenAIServer]:
    STAGE_LOG.parent.mkdir(parents=True, exist_ok=True)
    server = OpenAIServer()
    server.serve(LLM_PORT)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def op(make_cli: Callable[[], Cli], llm: OpenAIServer) -> Cli:
    op = login_admin(make_cli())
    op.ok("create", "server", "fx", "--transport", "stdio", "--command", PYTHON, "--arg", str(FIXTURE))
    op.ok("create", "server", "other", "--transport", "stdio", "--command", PYTHON, "--arg", str(FIXTURE))
    op.ok(
        "create",
        "project",
        "paged",
        "--server",
        "fx",
        "--server",
        "other",
        "--proxy-model",
        "content-pipeline",
    )
    op.ok("create", "project", "elsewhere", "--server", "fx", "--proxy-model", "content-pipeline")
    op.ok(
        "apply",
        "-f",
        "-",
        input="kind: ProxyModel\nmetadata: {name: redacted}\nspec:\n  stages:\n"
        "  - {type: redact-digits, config: {mask: '*'}}\n  - {type: paginate, config: {pageBytes: 4096}}\n",
    )
    op.ok("create", "project", "redacting", "--server", "fx", "--proxy-model", "redacted")
    op.ok("create", "project", "semantic", "--server", "fx", "--proxy-model", "gate")
    wait_running(op, "fx", 1)
    wait_running(op, "other", 1)
    return op


@pytest.fixture(scope="module")
def serve_base(op: Cli, daemon: Mcpd, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    tmp = tmp_path_factory.mktemp("serve")
    with mcplocal_serve(daemon, tmp, MCPLOCAL_CACHE_DIR=str(tmp / "cache"), **LLM_ENV) as base:
        yield base


@asynccontextmanager
async def session(
    mode: str, project: str, token: str, daemon: Mcpd, serve_base: str, cache: Path, era: str = "legacy"
) -> AsyncIterator[Client]:
    if mode == "stdio":
        params = StdioServerParameters(
            command=MCPLOCAL,
            args=["stdio", "--project", project, "--mcpd-url", daemon.url],
            env={
                "MCPCTL_TOKEN": token,
                "PATH": os.environ["PATH"],
                "MCPLOCAL_CACHE_DIR": str(cache),
                **LLM_ENV,
            },
        )
        async with Client(stdio_client(params, errlog=sys.stderr), mode=era) as client:
            yield client
        return
    base = daemon.url if mode == "embedded" else serve_base
    async with (
        httpx2.AsyncClient(headers={"Authorization": f"Bearer {token}"}, timeout=60) as http,
        Client(
            streamable_http_client(f"{base}/projects/{project}/mcp", http_client=http), mode=era
        ) as client,  # type: ignore[arg-type]
    ):
        yield client


def texts(result: Any) -> list[str]:
    return [item.text for item in result.content if isinstance(item, types.TextContent)]


def paging(result: Any) -> tuple[str, int]:
    """(resultId, pages) from a first answer."""
    found = re.search(r'read_page\(resultId="([0-9a-f]+)", page=N\) \(N = 2…(\d+)\)', texts(result)[0])
    assert found, texts(result)[0][:500]
    return found.group(1), int(found.group(2))


def body(page_text: str) -> str:
    """A read_page answer without its footer."""
    return page_text.rsplit("\n---\n[mcpctl] page ", 1)[0]


@pytest.mark.parametrize("mode", MODES)
def test_a_1mb_result_comes_as_a_first_page_and_every_page_reads_back_without_an_upstream_call(
    op: Cli, daemon: Mcpd, serve_base: str, mode: str, tmp_path: Path
) -> None:
    token = mint(op, "paged", f"reader-{mode}")
    document = long_document(1024, "markdown")

    async def scenario() -> dict[str, Any]:
        async with session(mode, "paged", token, daemon, serve_base, tmp_path / "cache") as client:
            first = await client.call_tool("fx__document", {"kib": 1024, "form": "markdown"})
            result_id, pages = paging(first)
            before = (await client.call_tool("fx__document_calls", {})).structured_content
            read = [body(texts(first)[0].split("\n---\n", 1)[1])]
            for page in range(2, pages + 1):
                answer = await client.call_tool("read_page", {"resultId": result_id, "page": page})
                read.append(body(texts(answer)[0]))
            again = await client.call_tool("read_page", {"resultId": result_id, "page": 2})
            resources = [
                (await client.read_resource(f"mcpctl://results/{result_id}/{page}")).contents[0].text
                for page in range(1, pages + 1)
            ]
            after = (await client.call_tool("fx__document_calls", {})).structured_content
            return {
                "first": first,
                "pages": pages,
                "read": read,
                "again": again,
                "resources": resources,
                "calls": (before, after),
            }

    seen = run(scenario)
    first = seen["first"]
    assert len(texts(first)[0].encode()) <= PAGE_BYTES + HEADER_BYTES
    links = [item for item in first.content if isinstance(item, types.ResourceLink)]
    assert links and str(links[0].uri).endswith("/2")
    assert seen["pages"] >= 1024 * 1024 // PAGE_BYTES
    assert "".join(seen["read"]) == document, "the pages are the whole result, in order, nothing lost"
    assert body(texts(seen["again"])[0]) == seen["read"][1]
    assert [body(text) for text in seen["resources"]] == seen["read"], "resources/read serves every page too"
    assert seen["calls"][0] == seen["calls"][1], "pages are read from the cache, not the upstream"


@pytest.mark.parametrize("mode", MODES)
def test_the_summary_and_titles_come_from_the_llm_once(
    op: Cli, daemon: Mcpd, serve_base: str, llm: OpenAIServer, mode: str, tmp_path: Path
) -> None:
    token = mint(op, "paged", f"summary-{mode}")
    kib = {"embedded": 200, "serve": 201, "stdio": 202}[mode]  # a text of its own per mode: a cold cache

    async def scenario() -> tuple[Any, int, Any, int]:
        async with session(mode, "paged", token, daemon, serve_base, tmp_path / "cache") as client:
            start = llm.counts["chat"]
            first = await client.call_tool("fx__document", {"kib": kib, "form": "text"})
            cold = llm.counts["chat"] - start
            second = await client.call_tool("fx__document", {"kib": kib, "form": "text"})
            return first, cold, second, llm.counts["chat"] - start - cold

    first, cold, second, warm = run(scenario)
    assert cold == 2, "one completion for the summary, one for the page titles"
    assert warm == 0, "the same result again: summary and titles from the cache, no LLM call"
    head = texts(first)[0]
    assert "Summary: " in head and "page 2: line" in head
    assert texts(second)[0] == head


def test_without_an_llm_answer_the_call_still_succeeds_plainly(
    op: Cli, daemon: Mcpd, serve_base: str, llm: OpenAIServer, tmp_path: Path
) -> None:
    token = mint(op, "paged", "no-llm")
    llm.fail = True
    try:

        async def scenario() -> Any:
            async with session("embedded", "paged", token, daemon, serve_base, tmp_path) as client:
                return await client.call_tool("fx__document", {"kib": 150, "form": "text"})

        result = run(scenario)
    finally:
        llm.fail = False
    assert not result.is_error
    head = texts(result)[0]
    assert "Summary: " not in head and "pages; page 1 follows" in head


@pytest.mark.parametrize("era", ["legacy", "2026-07-28"])
def test_a_page_is_never_served_to_a_token_that_cannot_see_its_result(
    op: Cli, daemon: Mcpd, serve_base: str, era: str, tmp_path: Path
) -> None:
    owner = mint(op, "paged", f"owner-{era[:4]}")
    outsider = mint(op, "elsewhere", f"outsider-{era[:4]}")  # another project with the same server
    narrow = mint(op, "paged", f"narrow-{era[:4]}", "--bind", "role:run,resource:servers,name:other")

    async def scenario() -> dict[str, Any]:
        seen: dict[str, Any] = {}
        async with session("serve", "paged", owner, daemon, serve_base, tmp_path, era) as client:
            result_id, _ = paging(await client.call_tool("fx__document", {"kib": 64}))
        for name, token, project in (("outsider", outsider, "elsewhere"), ("narrow", narrow, "paged")):
            async with session("serve", project, token, daemon, serve_base, tmp_path, era) as client:
                for how in ("tool", "resource"):
                    try:
                        if how == "tool":
                            await client.call_tool("read_page", {"resultId": result_id, "page": 2})
                        else:
                            await client.read_resource(f"mcpctl://results/{result_id}/2")
                        seen[f"{name} {how}"] = "served"
                    except MCPError as exc:
                        seen[f"{name} {how}"] = exc.message
        return seen

    for key, outcome in run(scenario).items():
        assert outcome.startswith("Unknown result page"), f"{key}: {outcome}"


def test_a_custom_stage_from_an_entry_point_runs_and_its_work_is_cached(
    op: Cli, daemon: Mcpd, serve_base: str, tmp_path: Path
) -> None:
    token = mint(op, "redacting", "redacted")
    computed = lambda: len(STAGE_LOG.read_text().splitlines()) if STAGE_LOG.exists() else 0  # noqa: E731

    async def scenario() -> tuple[Any, Any, int, int]:
        async with session("embedded", "redacting", token, daemon, serve_base, tmp_path) as client:
            start = computed()
            first = await client.call_tool("fx__echo", {"text": "call 555-0100 at 9"})
            middle = computed()
            second = await client.call_tool("fx__echo", {"text": "call 555-0100 at 9"})
            return first, second, middle - start, computed() - middle

    first, second, cold, warm = run(scenario)
    assert texts(first) == ["call ***-**** at *"] == texts(second)
    assert (cold, warm) == (1, 0)


@pytest.mark.parametrize("mode", MODES)
def test_with_an_embeddings_endpoint_the_gate_ranks_semantically_and_embeds_each_tool_once(
    op: Cli, daemon: Mcpd, serve_base: str, llm: OpenAIServer, mode: str, tmp_path: Path
) -> None:
    token = mint(op, "semantic", f"semantic-{mode}")

    async def scenario() -> tuple[Any, Any, int]:
        async with session(
            mode, "semantic", token, daemon, serve_base, tmp_path / "cache", "2026-07-28"
        ) as c:
            first = await c.call_tool("begin_session", {"task": "echo my text back to me"})
            texts_embedded = sum(
                len(r["body"]["input"]) for r in llm.requests if r["path"].endswith("/embeddings")
            )
            second = await c.call_tool("begin_session", {"task": "add two numbers together"})
            again = sum(len(r["body"]["input"]) for r in llm.requests if r["path"].endswith("/embeddings"))
            return first, second, again - texts_embedded

    first, second, embedded_after = run(scenario)
    assert first.structured_content["ranking"] == "bm25+embeddings"
    assert first.structured_content["tools"][0]["name"] == "fx__echo"
    assert second.structured_content["tools"][0]["name"] == "fx__add"
    assert embedded_after == 1, "the second task alone is embedded: the tools' vectors are cached"
