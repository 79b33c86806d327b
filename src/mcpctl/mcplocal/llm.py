"""OpenAI-compatible clients for the pipeline (DESIGN §10): chat completions for the summarize stage and
page titles, embeddings for the gate's semantic ranking. vLLM, llama.cpp's server, Ollama's /v1 and
OpenAI itself speak this wire format.

Both clients are best-effort by contract: any failure (timeout, refused connection, HTTP error, a body
that is not the expected JSON, empty content) returns None after one log line, and the caller falls
back to plain behaviour. Log lines name the endpoint (without credentials or query) and the reason,
never the API key, the prompt or the answer.

URLs: the configured URL is the API base (`http://gpu:8000/v1`); `/chat/completions` or `/embeddings`
is appended. A URL that already ends in that path is used as is, and its base is what precedes it.
Model: when none is configured, the first model of `GET {base}/models` is used (vLLM serves one), asked
once per client and remembered; until that succeeds, calls return None.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

if TYPE_CHECKING:
    from mcpctl.mcplocal.settings import GatewaySettings

logger = logging.getLogger(__name__)

EMBEDDINGS_BATCH = 64
FAILURE_PAUSE_SECONDS = 5.0


class _Failure(Exception):
    """Why a call returned None, for the one log line (never holds content or credentials);
    `quiet`: said already (a pause after a failure)."""

    def __init__(self, reason: str, *, quiet: bool = False) -> None:
        super().__init__(reason)
        self.quiet = quiet


class _OpenAIClient:
    """What both clients share: the endpoint, the key, the deadline, the model, one httpx client."""

    _suffix = ""
    _what = ""

    def __init__(
        self,
        url: str,
        model: str | None,
        api_key: str | None,
        timeout_seconds: float,
        *,
        pause_seconds: float = FAILURE_PAUSE_SECONDS,
    ) -> None:
        """`pause_seconds`: after a failure, calls answer None at once for this long (a slow or dead
        endpoint costs one deadline, not one per call)."""
        self.pause_seconds, self._paused_until = pause_seconds, 0.0
        trimmed = url.rstrip("/")
        if trimmed.endswith(self._suffix):
            self.endpoint, self.base = trimmed, trimmed[: -len(self._suffix)]
        else:
            self.endpoint, self.base = trimmed + self._suffix, trimmed
        self.model = model
        self.timeout_seconds = timeout_seconds
        import httpx  # here: only a project with a model pays its import (mcpd's cold start)

        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._http = httpx.AsyncClient(headers=headers, timeout=timeout_seconds, follow_redirects=False)
        self._model_lock = asyncio.Lock()
        self._shown = _without_credentials(self.endpoint)

    async def aclose(self) -> None:
        await self._http.aclose()

    async def _post(self, body: dict[str, Any]) -> Any:
        """The decoded JSON answer to one POST, within the deadline; _Failure otherwise."""
        import httpx

        if time.monotonic() < self._paused_until:
            raise _Failure("paused after a failure", quiet=True)
        try:
            async with asyncio.timeout(self.timeout_seconds):
                body = {"model": await self._model(), **body}
                response = await self._http.post(self.endpoint, json=body)
        except TimeoutError as exc:
            raise _Failure(f"no answer within {self.timeout_seconds:g}s") from exc
        except httpx.HTTPError as exc:
            raise _Failure(type(exc).__name__) from exc
        if response.status_code != 200:
            raise _Failure(f"HTTP {response.status_code}")
        try:
            return response.json()
        except ValueError as exc:
            raise _Failure("the answer is not JSON") from exc

    async def _model(self) -> str:
        if self.model is not None:
            return self.model
        async with self._model_lock:
            if self.model is None:
                response = await self._http.get(self.base + "/models")
                if response.status_code != 200:
                    status = response.status_code
                    raise _Failure(f"no model configured and GET /models answered HTTP {status}")
                try:
                    model = response.json()["data"][0]["id"]
                except (ValueError, KeyError, IndexError, TypeError) as exc:
                    raise _Failure("no model configured and GET /models lists none") from exc
                if not isinstance(model, str) or not model:
                    raise _Failure("no model configured and GET /models lists none")
                self.model = model
        return self.model

    def _log(self, failure: _Failure) -> None:
        if failure.quiet:
            return
        self._paused_until = time.monotonic() + self.pause_seconds
        logger.warning(
            "%s at %s failed: %s (the next %gs go without)",
            self._what,
            self._shown,
            failure,
            self.pause_seconds,
        )


class ChatClient(_OpenAIClient):
    """Chat completions (`POST {base}/chat/completions`), one system and one user message."""

    _suffix = "/chat/completions"
    _what = "chat completion"

    async def complete(self, system: str, user: str, *, max_tokens: int) -> str | None:
        """The assistant's answer, stripped; None on any failure or an empty answer. Temperature 0,
        so the same input tends to the same answer (the pipeline caches it anyway)."""
        messages = [{"role": "system", "content": system}, {"role": "user", "content": user}]
        try:
            answer = await self._post({"messages": messages, "max_tokens": max_tokens, "temperature": 0})
            try:
                content = answer["choices"][0]["message"]["content"]
            except (KeyError, IndexError, TypeError) as exc:
                raise _Failure("the answer has no choices[0].message.content") from exc
            if not isinstance(content, str) or not content.strip():
                raise _Failure("the answer is empty")
        except _Failure as failure:
            self._log(failure)
            return None
        return content.strip()


class EmbeddingsClient(_OpenAIClient):
    """Embeddings (`POST {base}/embeddings`), in batches of EMBEDDINGS_BATCH texts per request."""

    _suffix = "/embeddings"
    _what = "embeddings request"

    async def embed(self, texts: Sequence[str]) -> list[list[float]] | None:
        """One vector per text, in the order of `texts`; None if any batch fails. Each request has
        the deadline of its own."""
        vectors: list[list[float]] = []
        try:
            for start in range(0, len(texts), EMBEDDINGS_BATCH):
                batch = list(texts[start : start + EMBEDDINGS_BATCH])
                vectors.extend(_vectors(await self._post({"input": batch}), len(batch)))
            if len({len(vector) for vector in vectors}) > 1:
                raise _Failure("vectors of different lengths")
        except _Failure as failure:
            self._log(failure)
            return None
        return vectors


def _vectors(answer: Any, expected: int) -> list[list[float]]:
    """`data[*].embedding` ordered by `data[*].index`, checked to be one float vector per input."""
    try:
        items = sorted(answer["data"], key=lambda item: item["index"])
        vectors = [[float(x) for x in item["embedding"]] for item in items]
        indices = [item["index"] for item in items]
    except (KeyError, TypeError, ValueError) as exc:
        raise _Failure("the answer is not a list of embeddings") from exc
    if indices != list(range(expected)):
        raise _Failure(f"{len(indices)} embeddings for {expected} inputs")
    return vectors


def _without_credentials(url: str) -> str:
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, host, parts.path, "", ""))


def clients_from(settings: GatewaySettings) -> tuple[ChatClient | None, EmbeddingsClient | None]:
    """The clients the settings ask for (None where the URL is not set); the caller closes them. The
    API key serves both endpoints."""
    chat = (
        ChatClient(settings.llm_url, settings.llm_model, settings.llm_api_key, settings.llm_timeout_ms / 1000)
        if settings.llm_url
        else None
    )
    embeddings = (
        EmbeddingsClient(
            settings.embeddings_url,
            settings.embeddings_model,
            settings.llm_api_key,
            settings.embeddings_timeout_ms / 1000,
        )
        if settings.embeddings_url
        else None
    )
    return chat, embeddings
