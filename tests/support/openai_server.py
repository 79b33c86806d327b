"""A small, real OpenAI-compatible HTTP server for tests (vLLM cannot run here), on 127.0.0.1.

It speaks the wire format of `POST /v1/chat/completions`, `POST /v1/embeddings` and `GET /v1/models`,
with deterministic answers:

- chat: a title request (the system message mentions "title") gets the user message's first six
  words; any other gets "Summary: " and its first twelve words. Answers hold at most `max_tokens` words.
- embeddings: a bag-of-words hashing vector (DIMENSIONS floats, L2-normalised; words lowercased,
  camelCase/snake_case split, crudely stemmed), so texts sharing words are near in cosine terms.

Knobs (attributes in-process, `POST /control` with a JSON object of them from another process):
`fail` (every /v1 call answers HTTP 500), `delay` (seconds before answering), `api_key` (require
`Authorization: Bearer <key>`, else 401), `reply` (a raw body every /v1 POST answers with 200: for
malformed answers). `GET /counts` answers the calls per endpoint
(`{"chat": n, "embeddings": n, "models": n}`); `POST /reset` zeroes them and the knobs.

In-process: the `openai_server` fixture (registered by tests/conftest.py) yields a running
`OpenAIServer`; `server.url` is the base (`http://127.0.0.1:PORT/v1`), `server.counts` the counters,
`server.requests` every /v1 request seen (path, headers, JSON body).
As a process: `python -m tests.support.openai_server --port 0 [--api-key K] [--model M]` prints
`URL http://127.0.0.1:PORT/v1` on its first stdout line, then serves until SIGTERM;
`running_subprocess()` below does that with a bounded wait.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import math
import re
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

DIMENSIONS = 256
DEFAULT_MODEL = "mcpctl-test-model"
START_TIMEOUT = 15.0
ROOT = Path(__file__).resolve().parents[2]
_WORD = re.compile(r"[A-Za-z0-9]+")
_NUMBERED = re.compile(r"^\[(\d+)\]\n", re.MULTILINE)
_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")


def words(text: str) -> list[str]:
    """Lowercased words, camelCase and snake_case split (`listFiles`, `list_files` → list, files)."""
    return [word.lower() for chunk in _WORD.findall(text) for word in _CAMEL.split(chunk)]


def stem(word: str) -> str:
    for suffix, replacement in (("ies", "y"), ("ing", ""), ("ed", ""), ("es", ""), ("s", "")):
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            return word[: -len(suffix)] + replacement
    return word


def embedding(text: str) -> list[float]:
    """A deterministic, normalised signed-hashing bag-of-words vector."""
    vector = [0.0] * DIMENSIONS
    for word in words(text):
        digest = hashlib.blake2b(stem(word).encode(), digest_size=8).digest()
        vector[int.from_bytes(digest[:4], "big") % DIMENSIONS] += 1.0 if digest[4] & 1 else -1.0
    norm = math.sqrt(sum(x * x for x in vector))
    return [x / norm for x in vector] if norm else vector


def chat_answer(system: str, user: str, max_tokens: int) -> str:
    """A title request whose user message numbers its excerpts (`[n]` lines) gets one `[n] title`
    line per excerpt, as a model following the instruction would answer."""
    if "title" in system.lower():
        numbered = _NUMBERED.split(user)
        if len(numbered) > 1:  # ["", "1", excerpt, "2", excerpt, …]
            pairs = zip(numbered[1::2], numbered[2::2], strict=False)
            return "\n".join(f"[{n}] {words_of(excerpt, 6)}" for n, excerpt in pairs)
        answer = words_of(user, 6)
    else:
        answer = "Summary: " + words_of(user, 12)
    return " ".join(answer.split()[: max(1, max_tokens)])


def words_of(text: str, count: int) -> str:
    return " ".join(_WORD.findall(text)[:count])


@dataclass
class OpenAIServer:
    """The server's state and knobs; `serve()` runs it in a thread until `stop()`."""

    model: str = DEFAULT_MODEL
    api_key: str | None = None
    fail: bool = False
    reply: str | None = None  # if set, every /v1 POST answers 200 with this body as it is
    delay: float = 0.0
    counts: dict[str, int] = field(default_factory=lambda: {"chat": 0, "embeddings": 0, "models": 0})
    requests: list[dict[str, Any]] = field(default_factory=list)
    port: int = 0
    _server: uvicorn.Server | None = None
    _thread: threading.Thread | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def reset(self) -> None:
        with self._lock:
            self.counts = dict.fromkeys(self.counts, 0)
            self.requests.clear()
            self.fail, self.delay, self.reply = False, 0.0, None

    # -- the app -------------------------------------------------------------------------------------

    def app(self) -> Starlette:
        return Starlette(
            routes=[
                Route("/v1/chat/completions", self._chat, methods=["POST"]),
                Route("/v1/embeddings", self._embeddings, methods=["POST"]),
                Route("/v1/models", self._models, methods=["GET"]),
                Route("/counts", self._counts, methods=["GET"]),
                Route("/control", self._control, methods=["POST"]),
                Route("/reset", self._reset, methods=["POST"]),
            ]
        )

    async def _enter(self, request: Request, name: str) -> tuple[dict[str, Any], Response | None]:
        """Count and record the call, apply the knobs; (body, an error response or None)."""
        body: dict[str, Any] = {}
        if request.method == "POST":
            try:
                body = await request.json()
            except ValueError:
                return body, _error(400, "the body is not JSON", "invalid_request_error")
        with self._lock:
            self.counts[name] += 1
            self.requests.append({"path": request.url.path, "headers": dict(request.headers), "body": body})
            fail, delay, api_key, reply = self.fail, self.delay, self.api_key, self.reply
        if delay:
            await asyncio.sleep(delay)
        if api_key is not None and request.headers.get("authorization") != f"Bearer {api_key}":
            return body, _error(401, "Incorrect API key provided.", "invalid_request_error")
        if fail:
            return body, _error(500, "the test server was told to fail", "server_error")
        if reply is not None and request.method == "POST":
            return body, Response(reply, media_type="application/json")
        if request.method == "POST" and body.get("model") != self.model:
            return body, _error(404, f"The model `{body.get('model')}` does not exist.", "NotFoundError")
        return body, None

    async def _chat(self, request: Request) -> Response:
        body, error = await self._enter(request, "chat")
        if error is not None:
            return error
        messages = body.get("messages", [])
        system = " ".join(m.get("content", "") for m in messages if m.get("role") == "system")
        user = " ".join(m.get("content", "") for m in messages if m.get("role") == "user")
        content = chat_answer(system, user, int(body.get("max_tokens") or 256))
        prompt_tokens, completion_tokens = len(words(system + " " + user)), len(content.split())
        return JSONResponse(
            {
                "id": f"chatcmpl-{hashlib.sha256(user.encode()).hexdigest()[:16]}",
                "object": "chat.completion",
                "created": int(time.time()),
                "model": self.model,
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": content},
                        "finish_reason": "stop",
                    }
                ],
                "usage": {
                    "prompt_tokens": prompt_tokens,
                    "completion_tokens": completion_tokens,
                    "total_tokens": prompt_tokens + completion_tokens,
                },
            }
        )

    async def _embeddings(self, request: Request) -> Response:
        body, error = await self._enter(request, "embeddings")
        if error is not None:
            return error
        texts = body.get("input", [])
        texts = [texts] if isinstance(texts, str) else texts
        tokens = sum(len(words(text)) for text in texts)
        return JSONResponse(
            {
                "object": "list",
                "data": [
                    {"object": "embedding", "index": i, "embedding": embedding(text)}
                    for i, text in enumerate(texts)
                ],
                "model": self.model,
                "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
            }
        )

    async def _models(self, request: Request) -> Response:
        _, error = await self._enter(request, "models")
        if error is not None:
            return error
        entry = {"id": self.model, "object": "model", "created": 0, "owned_by": "mcpctl-tests"}
        return JSONResponse({"object": "list", "data": [entry]})

    async def _counts(self, request: Request) -> JSONResponse:
        with self._lock:
            return JSONResponse(dict(self.counts))

    async def _control(self, request: Request) -> JSONResponse:
        knobs = await request.json()
        with self._lock:
            for name in ("fail", "delay", "api_key", "reply"):
                if name in knobs:
                    setattr(self, name, knobs[name])
        return JSONResponse({"fail": self.fail, "delay": self.delay})

    async def _reset(self, request: Request) -> JSONResponse:
        self.reset()
        return JSONResponse({})

    # -- running -------------------------------------------------------------------------------------

    def serve(self, port: int = 0) -> None:
        """Start serving in a background thread; returns once it accepts connections."""
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", port))
        sock.listen(128)
        self.port = sock.getsockname()[1]
        config = uvicorn.Config(self.app(), log_level="warning", timeout_graceful_shutdown=1, lifespan="off")
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, kwargs={"sockets": [sock]}, daemon=True)
        self._thread.start()
        deadline = time.monotonic() + START_TIMEOUT
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError("the OpenAI test server did not start")
            time.sleep(0.01)

    def stop(self) -> None:
        if self._server is not None and self._thread is not None:
            self._server.should_exit = True
            self._thread.join(timeout=START_TIMEOUT)


def _error(status: int, message: str, kind: str) -> JSONResponse:
    return JSONResponse(
        {"error": {"message": message, "type": kind, "param": None, "code": status}}, status_code=status
    )


@pytest.fixture
def openai_server() -> Iterator[OpenAIServer]:
    """A running OpenAI-compatible test server in this process (a thread), stopped afterwards."""
    server = OpenAIServer()
    server.serve()
    try:
        yield server
    finally:
        server.stop()


@dataclass
class ServerProcess:
    """The server as a subprocess: its base URL, and the process."""

    url: str
    process: subprocess.Popen[str]

    @property
    def root(self) -> str:
        return self.url.removesuffix("/v1")


@contextmanager
def running_subprocess(*args: str) -> Iterator[ServerProcess]:
    """`python -m tests.support.openai_server --port 0 ARGS…` until the block ends."""
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.support.openai_server", "--port", "0", *args],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        line = _first_line(process)
        if not line.startswith("URL "):
            raise RuntimeError(f"the OpenAI test server did not start: {line!r}")
        yield ServerProcess(line.split()[1], process)
    finally:
        process.terminate()
        try:
            process.wait(timeout=START_TIMEOUT)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        if process.stdout is not None:
            process.stdout.close()


def _first_line(process: subprocess.Popen[str]) -> str:
    stdout = process.stdout
    assert stdout is not None
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.append(stdout.readline()), daemon=True)
    reader.start()
    reader.join(START_TIMEOUT)
    return lines[0].strip() if lines else ""


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="OpenAI-compatible test server")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--api-key", default=None)
    parser.add_argument("--model", default=DEFAULT_MODEL)
    args = parser.parse_args(argv)
    server = OpenAIServer(model=args.model, api_key=args.api_key)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", args.port))
    sock.listen(128)  # connections queue from here on, so the URL is usable once printed
    server.port = sock.getsockname()[1]
    print(f"URL {server.url}", flush=True)
    config = uvicorn.Config(server.app(), log_level="warning", timeout_graceful_shutdown=1, lifespan="off")
    uvicorn.Server(config).run(sockets=[sock])


if __name__ == "__main__":
    main()
