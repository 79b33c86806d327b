"""The checks of `test mcp`, in order, on the official `mcp` SDK client (both protocol eras).

All steps run inside one cancel scope whose deadline is re-armed to --timeout at the start of each
step (and each call of --repeat): a server that stops answering is cut there, the step fails as a
transport failure, and the steps after it are skipped. The raw checks the SDK cannot make (health,
session ids, the request without the token) replay what the SDK sent, recorded by httpx2 hooks.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from importlib.metadata import version as _dist_version
from typing import Any

import anyio
import httpx2
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp_types import CallToolResult, Implementation, TextContent, Tool
from mcp_types.version import MODERN_PROTOCOL_VERSIONS
from pydantic import ValidationError

from mcpctl.cli.testmcp import session_check
from mcpctl.cli.testmcp.options import Options
from mcpctl.cli.testmcp.report import (
    AUTH,
    CALL,
    CONNECT,
    EXPECTED_TOOLS,
    HEALTH,
    LATENCY,
    SESSION,
    STEPS,
    TOOLS_LIST,
    Report,
    StepFailed,
    StepResult,
    StepSkipped,
    latency_summary,
)
from mcpctl.cli.testmcp.tools import derive_arguments, listing_problems
from mcpctl.cli.testmcp.wire import Recorder, classify, replay, rpc_answer, validation_summary

MAX_PAGES = 1000
_QUIET_LOGGERS = ("mcp", "httpx2", "httpcore")


@dataclass
class Outcome:
    """What a passing step reports."""

    detail: str
    data: dict[str, Any] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)


async def run_checks(options: Options) -> Report:
    """Run every step against `options.url`; never raises for what the endpoint does."""
    for name in _QUIET_LOGGERS:  # the report says what went wrong; library log lines would only repeat it
        logging.getLogger(name).addHandler(logging.NullHandler())
        logging.getLogger(name).propagate = False
    recorder = Recorder()
    timeout = httpx2.Timeout(options.timeout)
    async with (
        httpx2.AsyncClient(timeout=timeout, headers=options.headers) as raw,
        httpx2.AsyncClient(
            timeout=timeout, headers=options.request_headers(), event_hooks=recorder.hooks()
        ) as http,
    ):
        return await _Probe(options, recorder, raw, http).run()


class _Probe:
    def __init__(
        self, options: Options, recorder: Recorder, raw: httpx2.AsyncClient, http: httpx2.AsyncClient
    ) -> None:
        self.o = options
        self.report = Report(url=options.url)
        self.recorder = recorder
        self.raw = raw  # for the checks made beside the SDK; it never carries the token by itself
        self.http = http  # the SDK's, with the token and the recording hooks
        self.capabilities: set[str] = set()
        self.scope = anyio.CancelScope()
        self.stopped: str | None = None
        self.current: str | None = None
        self._started = 0.0
        self._mark = 0
        self.tools: list[Tool] | None = None
        self.call: tuple[str, dict[str, Any]] | None = None

    # ---- bookkeeping ------------------------------------------------------------------------------

    def _arm(self) -> None:
        self.scope.deadline = anyio.current_time() + self.o.timeout

    def _begin(self, name: str) -> None:
        self.current, self._started, self._mark = name, time.perf_counter(), self.recorder.mark()
        self._arm()

    def _end(self, result: StepResult) -> None:
        self.scope.deadline = math.inf
        result.duration_ms = (time.perf_counter() - self._started) * 1000
        self.report.steps.append(result)
        self.current = None
        if result.status == "FAIL" and (result.failure != "contract" or result.name == CONNECT):
            self.stopped = f"{result.name} failed"

    def _fail(self, exc: BaseException) -> None:
        """The step in progress ended with `exc`."""
        if self.current is None:
            return
        failure = classify(
            exc, self.recorder.since(self._mark), token=bool(self.o.token), timeout=self.o.timeout
        )
        self._end(StepResult(self.current, "FAIL", failure.detail, failure=failure.kind, data=failure.data))

    async def _step(self, name: str, check: Callable[[], Awaitable[Outcome]]) -> None:
        if self.stopped is not None:
            self.report.steps.append(StepResult(name, "SKIP", f"not run: {self.stopped}"))
            return
        self._begin(name)
        try:
            outcome = await check()
        except StepSkipped as skip:
            self._end(StepResult(name, "SKIP", skip.detail))
        except Exception as exc:
            self._fail(exc)
        else:
            self._end(StepResult(name, "PASS", outcome.detail, warnings=outcome.warnings, data=outcome.data))

    # ---- the run ----------------------------------------------------------------------------------

    async def run(self) -> Report:
        started = time.perf_counter()
        try:
            with self.scope:
                await self._step(HEALTH, self._health)
                if self.stopped is None:
                    await self._mcp_steps()
        except Exception as exc:  # the transport's task group failed mid-step (e.g. a dropped connection)
            self._fail(exc)
        if self.scope.cancelled_caught and self.current is not None:
            self._fail(TimeoutError())
        done = {s.name for s in self.report.steps}
        for name in STEPS:
            if name not in done:
                reason = f"not run: {self.stopped}" if self.stopped else "not run"
                self.report.steps.append(StepResult(name, "SKIP", reason))
        self.report.steps.sort(key=lambda s: STEPS.index(s.name))
        self.report.duration_ms = (time.perf_counter() - started) * 1000
        return self.report

    async def _mcp_steps(self) -> None:
        mode = "legacy" if self.o.era == "legacy" else "auto"  # 2026-07-28: probe, then insist on it
        client = Client(
            streamable_http_client(self.o.url, http_client=self.http),
            mode=mode,
            cache=None,  # every check must reach the server
            client_info=Implementation(name="mcpctl-test", version=_dist_version("mcpctl")),
        )
        self._begin(CONNECT)
        async with client:
            try:
                outcome = await self._connected(client)
            except StepFailed as exc:
                self._fail(exc)
            else:
                self._end(
                    StepResult(CONNECT, "PASS", outcome.detail, data=outcome.data, warnings=outcome.warnings)
                )
            await self._step(SESSION, self._session)
            await self._step(TOOLS_LIST, lambda: self._tools_list(client))
            await self._step(EXPECTED_TOOLS, self._expected_tools)
            await self._step(CALL, lambda: self._call(client))
            await self._step(AUTH, self._auth)
            await self._step(LATENCY, lambda: self._latency(client))
            self._arm()  # closing (DELETE of the session) is bounded too

    # ---- the steps --------------------------------------------------------------------------------

    async def _health(self) -> Outcome:
        if not self.o.health:
            raise StepSkipped("--no-health")
        url = self.o.health_url
        response = await self.raw.get(url)
        data = {"url": url, "httpStatus": response.status_code}
        if response.status_code == 404:
            raise StepSkipped(f"GET {url} → 404: no health endpoint")
        if not response.is_success:
            raise StepFailed("contract", f"GET {url} → {response.status_code}", data)
        return Outcome(f"GET {url} → {response.status_code}", data)

    async def _connected(self, client: Client) -> Outcome:
        version = client.protocol_version
        via = "server/discover" if client.session.discover_result is not None else "initialize"
        if self.o.era == "2026-07-28" and version not in MODERN_PROTOCOL_VERSIONS:
            why = await self._discover_refusal()
            raise StepFailed(
                "contract", f"the server does not speak 2026-07-28: {why}; it answered initialize"
            )
        info = client.server_info
        caps = client.server_capabilities
        names = [n for n in ("tools", "resources", "prompts", "logging", "completions") if getattr(caps, n)]
        server = info.model_dump(mode="json", exclude_none=True) if info is not None else None
        self.report.protocol_version, self.report.server = version, server
        self.capabilities = set(names)
        who = f"{info.name} {info.version}" if info is not None else "an unnamed server"
        warnings = [] if info is not None else ["the server does not identify itself (no serverInfo)"]
        detail = f"{version} via {via}; {who}; capabilities: {', '.join(names) or 'none'}"
        data = {"protocolVersion": version, "via": via, "serverInfo": server, "capabilities": names}
        return Outcome(detail, data, warnings)

    async def _discover_refusal(self) -> str:
        """How the server answered server/discover, for the message when 2026-07-28 was asked for."""
        probe = self.recorder.last_rpc("server/discover")
        if probe is None:
            return "server/discover was not tried"
        if probe.status != 200:
            return f"server/discover → HTTP {probe.status}"
        answer = rpc_answer(await replay(self.raw, probe), json.loads(probe.content).get("id"))
        error = answer.get("error") if answer else None
        if isinstance(error, dict):
            return f"server/discover → error {error.get('code')}: {error.get('message')}"
        return "server/discover gave no usable result"

    async def _session(self) -> Outcome:
        if self.report.protocol_version in MODERN_PROTOCOL_VERSIONS:
            raise StepSkipped(f"{self.report.protocol_version} is stateless: no sessions")
        initialize = self.recorder.last_rpc("initialize")
        if initialize is None:
            raise StepSkipped("no initialize to replay")
        result = await session_check.check(self.raw, initialize, self.report.protocol_version or "")
        return Outcome(result.detail, result.data, result.warnings)

    async def _tools_list(self, client: Client) -> Outcome:
        if "tools" not in self.capabilities:
            if self.o.tool or self.o.expect_tools:
                raise StepFailed("contract", "the server does not advertise the tools capability")
            raise StepSkipped("the server does not advertise the tools capability")
        tools: list[Tool] = []
        cursors: set[str] = set()
        cursor: str | None = None
        pages = 0
        while True:
            try:
                page = await client.list_tools(cursor=cursor)
            except ValidationError as exc:
                raise StepFailed("contract", await self._listing_schema_problem(exc)) from exc
            pages += 1
            tools.extend(page.tools)
            cursor = page.next_cursor
            if cursor is None:
                break
            if cursor in cursors or pages >= MAX_PAGES:
                raise StepFailed(
                    "contract", f"pagination does not end: cursor {cursor!r} after {pages} pages"
                )
            cursors.add(cursor)
        self.tools = tools
        names = [t.name for t in tools]
        data = {"count": len(tools), "pages": pages, "tools": names}
        problems = listing_problems([(t.name, t.input_schema) for t in tools])
        if problems:
            shown = "; ".join(problems[:3]) + (f" (+{len(problems) - 3} more)" if len(problems) > 3 else "")
            raise StepFailed("contract", shown, {**data, "problems": problems})
        return Outcome(f"{len(tools)} tools in {pages} page{'s' if pages != 1 else ''}", data)

    async def _listing_schema_problem(self, exc: ValidationError) -> str:
        """The SDK's schema complaint about a tools/list page, naming the tools it is about: the page is
        fetched again, raw, for their names."""
        names: dict[int, str] = {}
        sent = self.recorder.last_rpc("tools/list")
        if sent is not None:
            with contextlib.suppress(httpx2.HTTPError, ValueError):
                answer = rpc_answer(await replay(self.raw, sent), json.loads(sent.content).get("id"))
                listed = ((answer or {}).get("result") or {}).get("tools") or []
                names = {i: str(t.get("name")) for i, t in enumerate(listed) if isinstance(t, dict)}
        return f"the answer does not match the MCP schema: {validation_summary(exc, names)}"

    async def _expected_tools(self) -> Outcome:
        if not self.o.expect_tools:
            raise StepSkipped("no --expect-tools")
        if self.tools is None:
            raise StepSkipped("no tool listing (tools/list failed)")
        listed = {t.name for t in self.tools}
        missing = [name for name in self.o.expect_tools if name not in listed]
        data = {"expected": list(self.o.expect_tools), "missing": missing}
        if missing:
            raise StepFailed("contract", f"not listed: {', '.join(missing)}", data)
        return Outcome(f"listed: {', '.join(self.o.expect_tools)}", data)

    async def _call(self, client: Client) -> Outcome:
        name = self.o.tool
        if name is None:
            raise StepSkipped("no --tool")
        if self.tools is None:  # the SDK checks a result against the listing: it would list again, and fail
            raise StepSkipped("no valid tool listing (tools/list did not pass)")
        listed = next((t for t in self.tools if t.name == name), None)
        if listed is None:
            raise StepFailed("contract", f"tool {name!r} is not listed by tools/list")
        if self.o.arguments is not None:
            arguments, source = self.o.arguments, "--args"
        else:
            arguments, source = derive_arguments(listed.input_schema), "schema"
        data: dict[str, Any] = {"tool": name, "arguments": arguments, "argumentsFrom": source}
        result = await client.call_tool(name, arguments)
        data["isError"] = bool(result.is_error)
        summary = _summary(result)
        call = f"{name}({json.dumps(arguments, separators=(',', ':'))})"
        if result.is_error:
            raise StepFailed("contract", f"{call} → isError: {summary}", data)
        self.call = (name, arguments)
        return Outcome(f"{call} → {summary}", data)

    async def _auth(self) -> Outcome:
        if not self.o.token:
            raise StepSkipped("no --token")
        first = self.recorder.first_post()
        if first is None:
            raise StepSkipped("no request to repeat")
        response = await replay(self.raw, first, drop=("authorization",))
        challenge = response.headers.get("www-authenticate")
        data = {"method": first.rpc_method, "httpStatus": response.status_code, "wwwAuthenticate": challenge}
        what = first.rpc_method or "the first request"
        if response.status_code == 401 and challenge:
            return Outcome(f"{what} without the token → 401, WWW-Authenticate: {challenge}", data)
        if response.status_code == 401:
            raise StepFailed("contract", f"{what} without the token → 401 without WWW-Authenticate", data)
        if response.is_success:
            raise StepFailed(
                "contract", f"{what} without the token was served (HTTP {response.status_code})", data
            )
        raise StepFailed(
            "contract", f"{what} without the token → HTTP {response.status_code}, expected 401", data
        )

    async def _latency(self, client: Client) -> Outcome:
        count = self.o.repeat
        if count is None:
            raise StepSkipped("no --repeat")
        if self.o.tool is not None and self.call is None:
            raise StepSkipped("the call did not pass")
        samples: list[float] = []
        for i in range(count):
            self._arm()
            started = time.perf_counter()
            if self.call is not None:
                result = await client.call_tool(*self.call)
                if result.is_error:
                    raise StepFailed("contract", f"call {i + 1} of {count} → isError: {_summary(result)}")
            else:
                await client.list_tools()
            samples.append((time.perf_counter() - started) * 1000)
        what = f"{self.call[0]} calls" if self.call is not None else "tools/list requests"
        stats = latency_summary(samples)
        detail = f"{count} {what}: p50 {stats['p50Ms']} ms, p95 {stats['p95Ms']} ms, max {stats['maxMs']} ms"
        return Outcome(detail, {"count": count, "of": self.call[0] if self.call else "tools/list", **stats})


def _summary(result: CallToolResult, limit: int = 80) -> str:
    """A one-line glimpse of a tool result: its structured content, else its first text."""
    if result.structured_content is not None:
        text = json.dumps(result.structured_content, separators=(",", ":"))
    else:
        texts = [c.text for c in result.content if isinstance(c, TextContent)]
        if texts:
            text = json.dumps(texts[0])
        else:
            kinds = sorted({c.type for c in result.content})
            text = f"{len(result.content)} content block(s) ({', '.join(kinds)})" if kinds else "no content"
    return text if len(text) <= limit else text[: limit - 1] + "…"
