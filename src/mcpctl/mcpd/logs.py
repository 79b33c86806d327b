"""Logging setup: plain or JSON lines, with the request id and principal from contextvars; access log
lines without query strings (they may carry tokens, DESIGN §12)."""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime

from mcpctl.core.urlsecrets import redact_access_logs
from mcpctl.mcpd.context import principal_var, request_id_var


class _ContextFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = request_id_var.get() or "-"
        record.principal = principal_var.get() or "-"
        return True


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        data = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
            "requestId": getattr(record, "request_id", "-"),
            "principal": getattr(record, "principal", "-"),
        }
        if record.exc_info:
            data["exception"] = self.formatException(record.exc_info)
        return json.dumps(data)


def configure(level: str, *, json_lines: bool) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(_ContextFilter())
    handler.setFormatter(
        JsonFormatter()
        if json_lines
        else logging.Formatter(
            "%(asctime)s %(levelname)s %(name)s [%(request_id)s %(principal)s] %(message)s"
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    redact_access_logs()  # query strings may carry tokens: never logged, at any level
