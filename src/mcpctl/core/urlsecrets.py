"""Bearer tokens in URLs (DESIGN §12, RFC 6750 §2.3): spotting them and keeping URLs out of logs.

URLs end up in access logs, proxies and shell histories, so a token there is refused rather than
used. The check looks at the query string as a server would see it after percent-decoding (repeatedly:
`%255F` is `%5F` after one pass and `_` after two), so `?x=mcpctl%5Fpat%5F…` is caught like the plain
form. Access logs keep the path only: a query string may hold a token, or anything else a client
should not have put there, and logs are read by more people than the API is.
"""

from __future__ import annotations

import logging
from urllib.parse import parse_qsl, unquote_plus

from mcpctl.core.tokens import PREFIX

QUERY_TOKEN_KEYS = frozenset({"access_token", "token", "bearer", "authorization", "api_key", "apikey"})
_DECODE_ROUNDS = 4  # a query encoded more often than this is refused as a token, not decoded forever
REDACTED_QUERY = "?[redacted]"


def _decoded_forms(query: str) -> list[str]:
    """`query` and each successive percent-decoding of it, until it stops changing (bounded)."""
    forms = [query]
    for _ in range(_DECODE_ROUNDS):
        decoded = unquote_plus(forms[-1])
        if decoded == forms[-1]:
            return forms
        forms.append(decoded)
    forms.append("\x00still-encoded")  # never settled: treat as suspicious (see token_in_query)
    return forms


def token_in_query(query: bytes | str) -> bool:
    """Whether a raw query string carries a bearer token: a parameter named like one (`access_token`,
    `token`, …) or an McpToken anywhere, in any percent-encoding."""
    if not query:
        return False  # every request to the project endpoint asks this; most have no query
    text = query.decode("latin-1") if isinstance(query, bytes) else query
    forms = _decoded_forms(text)
    if forms[-1].startswith("\x00"):
        return True
    for form in forms:
        if PREFIX in form.lower():
            return True
        keys = (key for key, _ in parse_qsl(form, keep_blank_values=True))
        if any(key.strip().lower() in QUERY_TOKEN_KEYS for key in keys):
            return True
    return False


def redact_query(path: str) -> str:
    """`path` without its query string (replaced by a marker when there was one)."""
    base, mark, _ = path.partition("?")
    return base + REDACTED_QUERY if mark else base


class RedactQueryFilter(logging.Filter):
    """For uvicorn's access logger: its records carry `(client, method, full_path, version, status)`
    as arguments; the full path loses its query string before any handler formats it."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if isinstance(args, tuple) and len(args) >= 3 and isinstance(args[2], str):
            record.args = (*args[:2], redact_query(args[2]), *args[3:])
        return True


def redact_access_logs(logger_name: str = "uvicorn.access") -> None:
    """Install the query redaction on the access logger (idempotent), whatever the log level."""
    logger = logging.getLogger(logger_name)
    if not any(isinstance(f, RedactQueryFilter) for f in logger.filters):
        logger.addFilter(RedactQueryFilter())
