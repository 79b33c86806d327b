"""Tokens in URLs are spotted in every percent-encoding, and access log lines lose the query string."""

from __future__ import annotations

import logging
from urllib.parse import quote

import pytest

from mcpctl.core.urlsecrets import RedactQueryFilter, redact_query, token_in_query

# A fixed token: parametrized ids must be the same in every xdist worker.
TOKEN = "mcpctl_pat_YfnyRc4Uyfc8ZIHJwdvMslJZVM1YZiBQMGBQk9eiumM1u9449"


def _encoded(text: str, *, times: int) -> str:
    for _ in range(times):
        text = quote(text, safe="")
    return text


@pytest.mark.parametrize(
    "query",
    [
        f"x={TOKEN}",
        f"x={TOKEN.replace('_', '%5F')}",
        f"x={TOKEN.replace('_', '%5f')}",
        f"x={TOKEN.replace('_', '%255F')}",
        f"x={TOKEN.replace('m', '%6D', 1)}",
        f"x={TOKEN.upper()}",
        "access_token=abc",
        "access%5Ftoken=abc",
        "%61ccess_token=abc",
        "Token=abc",
        "a=1&api_key=abc",
        "x=" + _encoded(TOKEN, times=8),
    ],
)
def test_a_token_in_the_query_is_found_in_any_encoding(query: str) -> None:
    assert token_in_query(query.encode())


@pytest.mark.parametrize("query", ["", "a=1", "page=2&sort=name", "q=100%25", "x=mcpctl"])
def test_a_query_without_a_token_passes(query: str) -> None:
    assert not token_in_query(query.encode())


def test_redaction_keeps_the_path_and_drops_the_query() -> None:
    assert redact_query("/projects/p/mcp") == "/projects/p/mcp"
    redacted = redact_query(f"/projects/p/mcp?x={TOKEN}")
    assert redacted.startswith("/projects/p/mcp?") and TOKEN not in redacted


def test_the_access_log_filter_rewrites_uvicorns_path_argument() -> None:
    args = ("127.0.0.1:5000", "POST", f"/projects/p/mcp?access_token={TOKEN}", "1.1", 400)
    record = logging.LogRecord(
        "uvicorn.access", logging.INFO, __file__, 1, '%s - "%s %s HTTP/%s" %d', args, None
    )
    assert RedactQueryFilter().filter(record)
    line = record.getMessage()
    assert TOKEN not in line and "/projects/p/mcp" in line
