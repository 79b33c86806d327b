"""The OpenAI-compatible clients against a real OpenAI-compatible HTTP server (tests/support)."""

from __future__ import annotations

import logging
import math
import time

import anyio
import httpx
import pytest

from mcpctl.mcplocal.llm import EMBEDDINGS_BATCH, ChatClient, EmbeddingsClient, clients_from
from mcpctl.mcplocal.settings import GatewaySettings
from tests.support.openai_server import DEFAULT_MODEL, OpenAIServer, running_subprocess

pytestmark = pytest.mark.anyio
KEY = "sk-test-0123456789abcdef"
SECRET_CONTENT = "the quarterly numbers for project nightingale"


def cosine(a: list[float], b: list[float]) -> float:
    return sum(x * y for x, y in zip(a, b, strict=True)) / (math.hypot(*a) * math.hypot(*b))


async def test_a_completion_is_the_assistant_content_of_the_first_choice(openai_server: OpenAIServer) -> None:
    chat = ChatClient(openai_server.url, DEFAULT_MODEL, None, 5.0)
    try:
        summary = await chat.complete("Summarize the tool result.", "Alpha beta gamma. Delta.", max_tokens=50)
        title = await chat.complete("Give this page a title.", "Listing files in a folder", max_tokens=8)
    finally:
        await chat.aclose()
    assert summary == "Summary: Alpha beta gamma Delta"
    assert title == "Listing files in a folder"
    body = openai_server.requests[0]["body"]
    assert body["model"] == DEFAULT_MODEL and body["temperature"] == 0 and body["max_tokens"] == 50
    assert [m["role"] for m in body["messages"]] == ["system", "user"]
    assert openai_server.counts["chat"] == 2


async def test_a_url_ending_in_the_endpoint_path_is_used_as_it_is(openai_server: OpenAIServer) -> None:
    chat = ChatClient(openai_server.url + "/chat/completions/", DEFAULT_MODEL, None, 5.0)
    embeddings = EmbeddingsClient(openai_server.url + "/embeddings", DEFAULT_MODEL, None, 5.0)
    try:
        assert await chat.complete("s", "hello", max_tokens=5) is not None
        assert await embeddings.embed(["hello"]) is not None
    finally:
        await chat.aclose()
        await embeddings.aclose()
    assert [r["path"] for r in openai_server.requests] == ["/v1/chat/completions", "/v1/embeddings"]


async def test_without_a_configured_model_the_first_served_one_is_asked_once(
    openai_server: OpenAIServer,
) -> None:
    chat = ChatClient(openai_server.url, None, None, 5.0)
    try:
        for _ in range(3):
            assert await chat.complete("s", "hello world", max_tokens=5) == "Summary: hello world"
    finally:
        await chat.aclose()
    assert openai_server.counts == {"chat": 3, "embeddings": 0, "models": 1}


async def test_embeddings_come_back_in_input_order_across_batches(openai_server: OpenAIServer) -> None:
    texts = [f"tool number {i} reads files" if i % 2 else f"weather forecast {i}" for i in range(150)]
    client = EmbeddingsClient(openai_server.url, DEFAULT_MODEL, None, 5.0)
    try:
        vectors = await client.embed(texts)
        single = await client.embed([texts[101]])
        assert await client.embed([]) == []
    finally:
        await client.aclose()
    assert vectors is not None and single is not None and len(vectors) == 150
    assert vectors[101] == single[0]
    assert openai_server.counts["embeddings"] == math.ceil(150 / EMBEDDINGS_BATCH) + 1


async def test_embeddings_of_similar_texts_are_nearer_than_of_unrelated_ones(
    openai_server: OpenAIServer,
) -> None:
    client = EmbeddingsClient(openai_server.url, DEFAULT_MODEL, None, 5.0)
    try:
        vectors = await client.embed(["list the files in a directory", "listing files", "current weather"])
    finally:
        await client.aclose()
    assert vectors is not None
    query, near, far = vectors
    assert cosine(query, near) > cosine(query, far) + 0.2


async def test_a_server_error_is_none_not_an_exception(openai_server: OpenAIServer) -> None:
    openai_server.fail = True
    chat = ChatClient(openai_server.url, DEFAULT_MODEL, None, 5.0)
    embeddings = EmbeddingsClient(openai_server.url, DEFAULT_MODEL, None, 5.0)
    try:
        assert await chat.complete("s", "hello", max_tokens=5) is None
        assert await embeddings.embed(["hello"]) is None
    finally:
        await chat.aclose()
        await embeddings.aclose()
    assert openai_server.counts["chat"] == openai_server.counts["embeddings"] == 1


@pytest.mark.parametrize(
    "reply",
    [
        "not json",
        "[]",
        '{"choices": []}',
        '{"choices": [{"message": {"role": "assistant", "content": "  "}}]}',
        '{"choices": [{"message": {"role": "assistant", "content": null}}]}',
        '{"data": [{"index": 1, "embedding": [1.0]}]}',
        '{"data": [{"index": 0, "embedding": ["x"]}, {"index": 1, "embedding": [1.0]}]}',
        '{"data": [{"index": 0, "embedding": [1.0]}, {"index": 1, "embedding": [1.0, 2.0]}]}',
    ],
)
async def test_a_malformed_or_empty_answer_is_none(openai_server: OpenAIServer, reply: str) -> None:
    openai_server.reply = reply
    chat = ChatClient(openai_server.url, DEFAULT_MODEL, None, 5.0)
    embeddings = EmbeddingsClient(openai_server.url, DEFAULT_MODEL, None, 5.0)
    try:
        assert await chat.complete("s", "hello", max_tokens=5) is None
        assert await embeddings.embed(["hello", "world"]) is None
    finally:
        await chat.aclose()
        await embeddings.aclose()


async def test_a_slow_server_is_none_within_the_deadline(openai_server: OpenAIServer) -> None:
    openai_server.delay = 3.0
    chat = ChatClient(openai_server.url, DEFAULT_MODEL, None, 0.3)
    embeddings = EmbeddingsClient(openai_server.url, DEFAULT_MODEL, None, 0.3)
    try:
        started = time.monotonic()
        assert await chat.complete("s", "hello", max_tokens=5) is None
        assert await embeddings.embed(["hello"]) is None
        elapsed = time.monotonic() - started
    finally:
        await chat.aclose()
        await embeddings.aclose()
    assert elapsed < 2.0


async def test_an_unreachable_server_or_a_wrong_model_is_none(openai_server: OpenAIServer) -> None:
    openai_server.stop()
    chat = ChatClient(openai_server.url, DEFAULT_MODEL, None, 2.0)
    try:
        assert await chat.complete("s", "hello", max_tokens=5) is None
    finally:
        await chat.aclose()
    other = OpenAIServer()
    other.serve()
    chat = ChatClient(other.url, "no-such-model", None, 2.0)
    try:
        assert await chat.complete("s", "hello", max_tokens=5) is None
    finally:
        await chat.aclose()
        other.stop()


async def test_the_api_key_is_sent_as_a_bearer_and_never_logged(
    openai_server: OpenAIServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    openai_server.api_key = KEY
    good = ChatClient(openai_server.url, None, KEY, 5.0)
    bad = EmbeddingsClient(openai_server.url, DEFAULT_MODEL, KEY + "-wrong", 5.0)
    try:
        assert await good.complete("s", SECRET_CONTENT, max_tokens=50) is not None
        assert await bad.embed([SECRET_CONTENT]) is None
        openai_server.fail = True
        assert await good.complete("s", SECRET_CONTENT, max_tokens=50) is None
    finally:
        await good.aclose()
        await bad.aclose()
    assert openai_server.requests[0]["headers"]["authorization"] == f"Bearer {KEY}"
    failures = [r for r in caplog.records if r.name == "mcpctl.mcplocal.llm"]
    assert len(failures) == 2, "each failure logs one line"
    for record in caplog.records:
        text = record.getMessage()
        assert KEY not in text and "nightingale" not in text


async def test_the_settings_make_the_clients_they_name() -> None:
    settings = GatewaySettings(
        llm_url="http://127.0.0.1:9/v1", llm_api_key=KEY, llm_timeout_ms=1500, embeddings_url=None
    )
    chat, embeddings = clients_from(settings)
    assert embeddings is None and chat is not None
    try:
        assert chat.endpoint == "http://127.0.0.1:9/v1/chat/completions" and chat.timeout_seconds == 1.5
    finally:
        await chat.aclose()
    assert clients_from(GatewaySettings()) == (None, None)


def test_the_server_runs_as_a_process_and_counts_calls() -> None:
    with running_subprocess("--api-key", KEY) as server:
        headers = {"Authorization": f"Bearer {KEY}"}
        body = {"model": DEFAULT_MODEL, "input": ["a", "b"]}
        answer = httpx.post(server.url + "/embeddings", json=body, headers=headers, timeout=10)
        assert answer.status_code == 200 and [d["index"] for d in answer.json()["data"]] == [0, 1]
        assert httpx.post(server.url + "/embeddings", json=body, timeout=10).status_code == 401
        httpx.post(server.root + "/control", json={"fail": True}, timeout=10)
        assert httpx.get(server.url + "/models", headers=headers, timeout=10).status_code == 500
        counts = httpx.get(server.root + "/counts", timeout=10).json()
    assert counts == {"chat": 0, "embeddings": 2, "models": 1}


async def test_after_a_failure_calls_go_without_the_endpoint_for_a_pause(openai_server: OpenAIServer) -> None:
    """Security review: a slow or failing endpoint costs one deadline per pause, not one per call."""
    chat = ChatClient(openai_server.url, DEFAULT_MODEL, None, 5.0, pause_seconds=0.5)
    try:
        openai_server.fail = True
        assert await chat.complete("s", "u", max_tokens=5) is None
        openai_server.fail = False
        assert await chat.complete("s", "u", max_tokens=5) is None
        assert openai_server.counts["chat"] == 1, "no request during the pause"
        await anyio.sleep(0.6)
        assert await chat.complete("s", "u", max_tokens=5) == "Summary: u"
        assert openai_server.counts["chat"] == 2
    finally:
        await chat.aclose()
