"""Fidelity: one client script gives the same observable results directly and through every mode.

The project holds server-everything over stdio (`ev`) and over Streamable HTTP (`evh`),
server-filesystem started without directories (`fs`: it works only with the client's roots) and
mcp-server-time (`time`). The script is the SDK client with sampling, elicitation and roots
callbacks, logging at `warning`, progress, cancellation and a resource subscription. Directly, each
server is reached on its own; through the gateway, one session reaches them all by prefix. What it
observes is normalised (names' prefixes, ids, timestamps, the per-run root directory) and must be
equal to the direct run in each mode: embedded legacy and 2026-07-28, `mcplocal serve` legacy and
2026-07-28, `mcplocal stdio`.
"""

from __future__ import annotations

import os
import re
import warnings
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import anyio
import httpx2
import mcp_types as types
import pytest
from mcp import Client, StdioServerParameters
from mcp.client.session import ClientRequestContext
from mcp.client.stdio import stdio_client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPDeprecationWarning

from tests.e2e.conftest import BIN, Cli, Mcpd, login_admin
from tests.e2e.test_mcplocal_split import MCPLOCAL, mcplocal_serve
from tests.e2e.test_project_endpoint import mint
from tests.e2e.upstreams import NODE_BIN, everything_http, require_everything, run, wait_running

pytestmark = pytest.mark.e2e
FILESYSTEM = NODE_BIN / "mcp-server-filesystem"
SERVERS = ("ev", "evh", "fs", "time")
PROJECT = "fidelity"
WARNING_AND_ABOVE = {"warning", "error", "critical", "alert", "emergency"}
PATH = os.pathsep.join([str(BIN), str(NODE_BIN), os.environ.get("PATH", "")])


# ---- the client ---------------------------------------------------------------------------------------


@dataclass
class Seen:
    """What the client's side observed outside results: what it was asked, and what it was told."""

    root: Path
    sampled: list[str] = field(default_factory=list)
    elicited: list[str] = field(default_factory=list)
    log_levels: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    updates: anyio.Event = field(default_factory=anyio.Event)

    async def sampling(
        self, context: ClientRequestContext, params: types.CreateMessageRequestParams
    ) -> types.CreateMessageResult:
        content = params.messages[0].content
        self.sampled.append(getattr(content, "text", "?"))
        return types.CreateMessageResult(
            role="assistant", content=types.TextContent(type="text", text="sampled"), model="fidelity"
        )

    async def elicitation(
        self, context: ClientRequestContext, params: types.ElicitRequestParams
    ) -> types.ElicitResult:
        self.elicited.append(params.message)
        return types.ElicitResult(action="accept", content={"name": "Ada", "check": True})

    async def roots(self, context: ClientRequestContext) -> types.ListRootsResult:
        return types.ListRootsResult(roots=[types.Root(uri=self.root.as_uri(), name="fidelity")])

    async def logging(self, params: types.LoggingMessageNotificationParams) -> None:
        self.log_levels.append(params.level)

    async def message(self, message: Any) -> None:
        if isinstance(message, types.ResourceUpdatedNotification):
            self.updated.append(str(message.params.uri))
            self.updates.set()

    def client(self, transport: Any, mode: str) -> Client:
        return Client(
            transport,
            mode=mode,
            sampling_callback=self.sampling,
            elicitation_callback=self.elicitation,
            list_roots_callback=self.roots,
            logging_callback=self.logging,
            message_handler=self.message,
            log_level="warning" if mode != "legacy" else None,
            read_timeout_seconds=30,
        )


@dataclass
class Access:
    """How the script reaches one server: its session and the name prefix it is known by."""

    session: Client
    prefix: str
    legacy: bool

    def name(self, tool: str) -> str:
        return self.prefix + tool


# ---- the script -------------------------------------------------------------------------------------


def _text(result: types.CallToolResult) -> str:
    return "\n".join(getattr(c, "text", f"<{c.type}>") for c in result.content)


async def _call(access: Access, tool: str, **arguments: Any) -> dict[str, Any]:
    result = await access.session.call_tool(access.name(tool), arguments)
    return {"error": bool(result.is_error), "text": _text(result)}


async def _names(access: Access, kind: str) -> list[str]:
    session = access.session
    if kind == "tools":
        items: list[Any] = list((await session.list_tools()).tools)
        return sorted(i.name[len(access.prefix) :] for i in items if i.name.startswith(access.prefix))
    if kind == "prompts":
        items = list((await session.list_prompts()).prompts)
        return sorted(i.name[len(access.prefix) :] for i in items if i.name.startswith(access.prefix))
    raise AssertionError(kind)


async def _uris(access: Access, kinds: str, own: Callable[[str], bool]) -> list[str]:
    found: list[str] = []
    cursor: str | None = None
    for _ in range(100):  # bounded paging
        if kinds == "resources":
            page: Any = await access.session.list_resources(cursor=cursor)
            found += [str(r.uri) for r in page.resources]
        else:
            page = await access.session.list_resource_templates(cursor=cursor)
            found += [t.uri_template for t in page.resource_templates]
        cursor = page.next_cursor
        if cursor is None:
            break
    return sorted(u for u in found if own(u))


async def _everything(access: Access, seen: Seen, http: bool) -> dict[str, Any]:
    observed: dict[str, Any] = {
        "tools": await _names(access, "tools"),
        "prompts": await _names(access, "prompts"),
        "resources": await _uris(access, "resources", lambda u: u.startswith("demo://")),
        "templates": await _uris(access, "templates", lambda u: u.startswith("demo://")),
        "echo": await _call(access, "echo", message="fidelity"),
        "sum": await _call(access, "get-sum", a=2, b=3),
        "roots": await _call(access, "get-roots-list"),
    }
    progress: list[float] = []

    async def on_progress(done: float, total: float | None, message: str | None) -> None:
        progress.append(done)

    slow = await access.session.call_tool(
        access.name("trigger-long-running-operation"),
        {"duration": 0.6, "steps": 3},
        progress_callback=on_progress,
    )
    observed["progress"] = {"text": _text(slow), "steps": progress}

    before = len(seen.sampled)
    observed["sampling"] = await _call(access, "trigger-sampling-request", prompt="fidelity")
    observed["sampled"] = seen.sampled[before:]
    before = len(seen.elicited)
    observed["elicitation"] = await _call(access, "trigger-elicitation-request")
    observed["elicited"] = len(seen.elicited) - before

    # a resource subscription: server-everything sends an update at once when updates are toggled on.
    # Only for `ev`: `evh` offers the very same URIs, and a project serves a URI from the first server
    # that lists it (DESIGN §5), so through the gateway a subscription to one is `ev`'s in every mode
    if not http:
        uri = observed["resources"][0]
        observed["subscribed"] = await _subscription(access, seen, uri)

    # logging at `warning`: the simulated logger sends one line at a random level at once
    observed["logging-on"] = await _call(access, "toggle-simulated-logging")
    observed["logging-off"] = await _call(access, "toggle-simulated-logging")
    # cancellation: the call is abandoned after its first progress step; the session goes on. Last,
    # and only over HTTP: over stdio the cancelled call may still run upstream (server-everything
    # ignores cancellation), so for a while mcpd cannot tell whose a sampling request is and refuses
    # it (docs/mcplocal.md), which would leak into the next mode's run.
    if not http:
        return observed
    first = anyio.Event()

    async def on_first(progress: float, total: float | None, message: str | None) -> None:
        first.set()

    with anyio.move_on_after(10) as scope:
        async with anyio.create_task_group() as group:

            async def long_call() -> None:
                await access.session.call_tool(
                    access.name("trigger-long-running-operation"),
                    {"duration": 20, "steps": 40},
                    progress_callback=on_first,
                )

            group.start_soon(long_call)
            await first.wait()
            group.cancel_scope.cancel()
    observed["cancelled"] = not scope.cancelled_caught and first.is_set()
    observed["after-cancel"] = await _call(access, "echo", message="still here")

    return observed


async def _subscription(access: Access, seen: Seen, uri: str) -> dict[str, Any]:
    session = access.session
    toggled: list[dict[str, Any]] = []
    if access.legacy:
        seen.updates = anyio.Event()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", MCPDeprecationWarning)
            await session.subscribe_resource(uri)
            toggled.append(await _call(access, "toggle-subscriber-updates"))
            with anyio.move_on_after(3):  # the first update is sent at once
                while uri not in seen.updated:
                    await seen.updates.wait()
                    seen.updates = anyio.Event()
            toggled.append(await _call(access, "toggle-subscriber-updates"))
            await session.unsubscribe_resource(uri)
        return {"toggled": toggled, "updated": uri in seen.updated}
    got = False
    async with session.listen(resource_subscriptions=[uri]) as subscription:
        toggled.append(await _call(access, "toggle-subscriber-updates"))
        with anyio.move_on_after(3):
            async for event in subscription:
                if getattr(event, "uri", None) == uri:
                    got = True
                    break
        toggled.append(await _call(access, "toggle-subscriber-updates"))
    return {"toggled": toggled, "updated": got}


async def _filesystem(access: Access, seen: Seen) -> dict[str, Any]:
    root = seen.root
    # server-filesystem reads the roots right after `initialized` and applies them asynchronously:
    # a client that calls at once may be early (directly too), so it asks until they are there
    with anyio.move_on_after(5):
        while str(root) not in (allowed := await _call(access, "list_allowed_directories"))["text"]:
            await anyio.sleep(0.05)
    return {
        "tools": await _names(access, "tools"),
        "allowed": allowed,
        "write": await _call(access, "write_file", path=str(root / "note.txt"), content="fidelity"),
        "read": await _call(access, "read_text_file", path=str(root / "note.txt")),
        "list": await _call(access, "list_directory", path=str(root)),
        "outside": (await _call(access, "read_text_file", path=str(root.parent / "outside.txt")))["error"],
    }


async def _time(access: Access, seen: Seen) -> dict[str, Any]:
    return {
        "tools": await _names(access, "tools"),
        "convert": await _call(
            access, "convert_time", source_timezone="UTC", time="12:00", target_timezone="Asia/Tokyo"
        ),
        "now": await _call(access, "get_current_time", timezone="UTC"),
    }


SCRIPT: dict[str, Callable[[Access, Seen], Awaitable[dict[str, Any]]]] = {
    "ev": partial(_everything, http=False),
    "evh": partial(_everything, http=True),
    "fs": _filesystem,
    "time": _time,
}


async def script(reach: Callable[[str], Any], seen: Seen, legacy: bool) -> dict[str, Any]:
    """The one client script; `reach(server)` is an async context manager giving (session, prefix)."""
    observed: dict[str, Any] = {}
    levelled: set[int] = set()
    for server in SERVERS:
        async with reach(server) as (session, prefix):
            if legacy and id(session) not in levelled and session.server_capabilities.logging is not None:
                levelled.add(id(session))
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", MCPDeprecationWarning)
                    await session.set_logging_level("warning")
            observed[server] = await SCRIPT[server](Access(session, prefix, legacy), seen)
    observed["log-levels-at-or-above-warning"] = set(seen.log_levels) <= WARNING_AND_ABOVE
    return normalise(observed, seen.root)


_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
_TIME = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?([+-]\d{2}:\d{2}|Z)?")


def normalise(value: Any, root: Path) -> Any:
    if isinstance(value, dict):
        return {k: normalise(v, root) for k, v in value.items()}
    if isinstance(value, list):
        return [normalise(v, root) for v in value]
    if isinstance(value, str):
        text = value.replace(root.as_uri(), "<root-uri>").replace(str(root), "<root>")
        return _TIME.sub("<time>", _UUID.sub("<id>", text))
    return value


# ---- the servers and the modes --------------------------------------------------------------------


@dataclass
class Setup:
    daemon: Mcpd
    token: str
    everything_url: str
    serve_url: str
    base: Path


@pytest.fixture(scope="module")
def setup(
    daemon: Mcpd, make_cli: Callable[[], Cli], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Setup]:
    everything = require_everything()
    if not FILESYSTEM.exists():
        pytest.fail(f"{FILESYSTEM} is missing: run `make test` (it installs the npm test upstreams)")
    base = tmp_path_factory.mktemp("fidelity")
    with everything_http() as url, mcplocal_serve(daemon, base) as serve_url:
        op = login_admin(make_cli())
        op.ok(
            "create", "server", "ev", "--transport", "stdio", "--command", str(everything), "--arg", "stdio"
        )
        op.ok("create", "server", "evh", "--transport", "http", "--url", url)
        op.ok("create", "server", "fs", "--transport", "stdio", "--command", str(FILESYSTEM))
        op.ok("create", "server", "time", "--transport", "stdio", "--command", "mcp-server-time")
        op.ok("create", "project", PROJECT, *[arg for s in SERVERS for arg in ("--server", s)])
        for server in SERVERS:
            wait_running(op, server, 1)
        yield Setup(daemon, mint(op, PROJECT, "fidelity"), url, serve_url, base)


def _stdio(command: str, *args: str, **env: str) -> StdioServerParameters:
    return StdioServerParameters(command=command, args=list(args), env={"PATH": PATH, **env})


@asynccontextmanager
async def _http_client(url: str, seen: Seen, mode: str, token: str | None = None) -> AsyncIterator[Client]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with (
        httpx2.AsyncClient(headers=headers, timeout=30) as http,
        seen.client(streamable_http_client(url, http_client=http), mode) as session,
    ):
        yield session


def direct(setup: Setup, seen: Seen) -> Callable[[str], Any]:
    """Each server on its own, as a client would reach it without mcpctl."""

    @asynccontextmanager
    async def reach(server: str) -> AsyncIterator[tuple[Client, str]]:
        if server == "evh":
            async with _http_client(setup.everything_url, seen, "legacy") as session:
                yield session, ""
            return
        params = {
            "ev": _stdio(str(NODE_BIN / "mcp-server-everything"), "stdio"),
            "fs": _stdio(str(FILESYSTEM)),
            "time": _stdio(str(BIN / "mcp-server-time")),
        }[server]
        async with seen.client(stdio_client(params), "legacy") as session:
            yield session, ""

    return reach


def gateway(setup: Setup, seen: Seen, mode: str) -> Callable[[], Any]:
    endpoint = f"/projects/{PROJECT}/mcp"
    if mode == "embedded-legacy":
        return lambda: _http_client(setup.daemon.url + endpoint, seen, "legacy", setup.token)
    if mode == "embedded-2026":
        return lambda: _http_client(setup.daemon.url + endpoint, seen, "2026-07-28", setup.token)
    if mode == "serve-legacy":
        return lambda: _http_client(setup.serve_url + endpoint, seen, "legacy", setup.token)
    if mode == "serve-2026":
        return lambda: _http_client(setup.serve_url + endpoint, seen, "2026-07-28", setup.token)
    assert mode == "stdio"
    params = _stdio(
        MCPLOCAL, "stdio", "--project", PROJECT, "--mcpd-url", setup.daemon.url, MCPCTL_TOKEN=setup.token
    )
    return lambda: seen.client(stdio_client(params), "legacy")


def observe(setup: Setup, mode: str) -> dict[str, Any]:
    root = setup.base / f"root-{mode}"
    root.mkdir()
    (setup.base / "outside.txt").write_text("not yours")
    seen = Seen(root.resolve())

    async def scenario() -> dict[str, Any]:
        with anyio.fail_after(60):
            if mode == "direct":
                return await script(direct(setup, seen), seen, legacy=True)
            async with AsyncExitStack() as stack:
                session = await stack.enter_async_context(gateway(setup, seen, mode)())

                @asynccontextmanager
                async def reach(server: str) -> AsyncIterator[tuple[Client, str]]:
                    yield session, f"{server}__"

                return await script(reach, seen, legacy=mode in ("embedded-legacy", "serve-legacy", "stdio"))

    return run(scenario)


@pytest.fixture(scope="module")
def expected(setup: Setup) -> dict[str, Any]:
    return observe(setup, "direct")


def test_the_script_observes_every_feature_directly(expected: dict[str, Any]) -> None:
    for server in ("ev", "evh"):
        seen = expected[server]
        assert "<root-uri>" in seen["roots"]["text"]
        assert "sampled" in seen["sampling"]["text"] and len(seen["sampled"]) == 1
        assert seen["elicited"] == 1 and "Ada" in seen["elicitation"]["text"]
        assert seen["progress"]["steps"] == [1, 2, 3]
    assert expected["ev"]["subscribed"]["updated"]
    assert expected["evh"]["cancelled"] and expected["evh"]["after-cancel"]["text"] == "Echo: still here"
    assert expected["fs"]["read"] == {"error": False, "text": "fidelity"}
    assert expected["fs"]["outside"] is True
    assert expected["log-levels-at-or-above-warning"]


@pytest.mark.parametrize("mode", ["embedded-legacy", "embedded-2026", "serve-legacy", "serve-2026", "stdio"])
def test_the_gateway_gives_the_same_observable_results(
    setup: Setup, expected: dict[str, Any], mode: str
) -> None:
    found = differences(observe(setup, mode), expected)
    assert not found, "through the gateway != directly:\n" + "\n".join(found)


def differences(actual: Any, expected: Any, path: str = "") -> list[str]:
    """Where two observations differ, one line each (`path: through the gateway != directly`)."""
    if isinstance(actual, dict) and isinstance(expected, dict):
        return [
            line
            for key in dict.fromkeys([*expected, *actual])
            for line in differences(
                actual.get(key, "<missing>"), expected.get(key, "<missing>"), f"{path}/{key}"
            )
        ]
    return [] if actual == expected else [f"{path}: {actual!r} != {expected!r}"]


# ---- whose sampling request it is, with another caller's request in flight on the same instance -------


def _beside_a_long_call(setup: Setup, server: str, tmp: Path) -> tuple[dict[str, Any], Seen, Seen]:
    """Caller A runs a long call on `server`; meanwhile caller B's tool asks for sampling."""
    a, b = Seen(tmp), Seen(tmp)
    endpoint = f"{setup.daemon.url}/projects/{PROJECT}/mcp"

    async def scenario() -> dict[str, Any]:
        with anyio.fail_after(30):
            async with (
                _http_client(endpoint, a, "legacy", setup.token) as first,
                _http_client(endpoint, b, "legacy", setup.token) as second,
                anyio.create_task_group() as group,
            ):
                started = anyio.Event()

                async def on_progress(progress: float, total: float | None, message: str | None) -> None:
                    started.set()

                async def long_call() -> None:
                    await first.call_tool(
                        f"{server}__trigger-long-running-operation",
                        {"duration": 3, "steps": 6},
                        progress_callback=on_progress,
                    )

                group.start_soon(long_call)
                await started.wait()  # A's call is in flight upstream
                sampled = await _call(
                    Access(second, f"{server}__", True), "trigger-sampling-request", prompt="B"
                )
                group.cancel_scope.cancel()
                return sampled

    return run(scenario), a, b


def test_over_http_a_sampling_request_reaches_its_own_caller_while_another_call_runs(
    setup: Setup, tmp_path: Path
) -> None:
    sampled, a, b = _beside_a_long_call(setup, "evh", tmp_path)
    assert not sampled["error"] and '"text": "sampled"' in sampled["text"]
    assert (len(a.sampled), len(b.sampled)) == (0, 1)


def test_over_stdio_a_sampling_request_that_cannot_be_attributed_is_refused_never_misdelivered(
    setup: Setup, tmp_path: Path
) -> None:
    sampled, a, b = _beside_a_long_call(setup, "ev", tmp_path)
    assert sampled["error"] and "sampling/createMessage" in sampled["text"]
    assert (len(a.sampled), len(b.sampled)) == (0, 0)
