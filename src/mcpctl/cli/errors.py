"""What can go wrong in the CLI, and how each failure is shown (kubectl conventions).

    CliError                 exit 1  "error: …"
    ├── NotLoggedInError     exit 1  "error: not logged in (run: mcpctl login)"
    ├── UnreachableError     exit 1  "error: cannot reach mcpd at URL: …"
    └── ServerError          exit 1  "Error from server (Reason): …"

Usage mistakes are `click.UsageError` (exit 2), raised by click itself or by the commands.
"""

from __future__ import annotations

from http import HTTPStatus

import click

from mcpctl.core.errors import REASON_BY_STATUS

_REASON_BY_CODE = {
    "not_found": "NotFound",
    "forbidden": "Forbidden",
    "already_exists": "AlreadyExists",
    "conflict": "Conflict",
    "invalid": "BadRequest",
    "unauthenticated": "Unauthorized",
}


def reason_for(status: int, code: str | None) -> str:
    """The kubectl-style reason phrase for an mcpd error: from its code, else from its status."""
    if code in _REASON_BY_CODE:
        return _REASON_BY_CODE[code]
    if code is not None and code.endswith("_limit_exceeded"):
        return "Forbidden"
    if status in REASON_BY_STATUS:
        return REASON_BY_STATUS[status]
    try:
        return HTTPStatus(status).phrase.title().replace(" ", "").replace("-", "")
    except ValueError:
        return "Unknown"


class CliError(Exception):
    """A failure reported as one line on stderr, exit 1."""

    exit_code = 1

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def format(self) -> str:
        return f"error: {self.message}"


class NotLoggedInError(CliError):
    def __init__(self) -> None:
        super().__init__("not logged in (run: mcpctl login)")


class UnreachableError(CliError):
    def __init__(self, url: str, detail: str) -> None:
        super().__init__(f"cannot reach mcpd at {url}: {detail}")
        self.detail = detail


class ServerError(CliError):
    """mcpd answered with an error status."""

    def __init__(self, status: int, code: str | None, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.reason = reason_for(status, code)

    def format(self) -> str:
        return f"Error from server ({self.reason}): {self.message}"


def usage_error(message: str) -> click.UsageError:
    """A usage mistake found by a command (exit 2), as opposed to one click finds while parsing."""
    return click.UsageError(message, click.get_current_context(silent=True))
