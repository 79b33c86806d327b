"""The one error tree and its one table of HTTP statuses (DESIGN §8)."""

from __future__ import annotations

import inspect

import pytest

from mcpctl.core import errors
from mcpctl.core.errors import (
    REASON_BY_STATUS,
    STATUS_BY_ERROR,
    AlreadyExistsError,
    ConflictError,
    ForbiddenError,
    InsufficientStorageError,
    InvalidError,
    LimitExceededError,
    McpctlError,
    NotFoundError,
    PayloadTooLargeError,
    TooManyRequestsError,
    UnauthenticatedError,
    UpstreamError,
    UpstreamTimeoutError,
    UsageError,
    status_for,
)

DOCUMENTED = [
    # class, parent, status, code
    (McpctlError, Exception, 500, "internal"),
    (InvalidError, McpctlError, 400, "invalid"),
    (UsageError, InvalidError, 400, "invalid"),
    (UnauthenticatedError, McpctlError, 401, "unauthenticated"),
    (ForbiddenError, McpctlError, 403, "forbidden"),
    (LimitExceededError, ForbiddenError, 403, "limit_exceeded"),
    (NotFoundError, McpctlError, 404, "not_found"),
    (ConflictError, McpctlError, 409, "conflict"),
    (AlreadyExistsError, ConflictError, 409, "already_exists"),
    (PayloadTooLargeError, McpctlError, 413, "payload_too_large"),
    (TooManyRequestsError, McpctlError, 429, "too_many_requests"),
    (InsufficientStorageError, McpctlError, 507, "insufficient_storage"),
    (UpstreamError, McpctlError, 502, "upstream_error"),
    (UpstreamTimeoutError, UpstreamError, 504, "upstream_timeout"),
]


@pytest.mark.parametrize(
    ("cls", "parent", "status", "code"), DOCUMENTED, ids=[row[0].__name__ for row in DOCUMENTED]
)
def test_every_error_class_has_its_documented_place_status_and_code(
    cls: type[McpctlError], parent: type[Exception], status: int, code: str
) -> None:
    error = cls("boom", retry_after=1) if cls is TooManyRequestsError else cls("boom")
    assert cls.__bases__ == (parent,)
    assert status_for(error) == status
    assert error.code == code


def test_the_status_table_lists_every_error_class_in_the_module() -> None:
    defined = {obj for _, obj in inspect.getmembers(errors, inspect.isclass) if issubclass(obj, McpctlError)}
    assert defined == {cls for cls, _ in STATUS_BY_ERROR} == {row[0] for row in DOCUMENTED}


def test_the_status_table_lists_each_class_before_its_ancestors() -> None:
    order = [cls for cls, _ in STATUS_BY_ERROR]
    for i, cls in enumerate(order):
        assert not any(issubclass(cls, earlier) for earlier in order[:i]), cls


def test_every_status_in_the_table_has_a_reason_phrase() -> None:
    assert {status for _, status in STATUS_BY_ERROR} <= set(REASON_BY_STATUS)


def test_no_error_maps_to_422() -> None:
    assert 422 not in {status for _, status in STATUS_BY_ERROR}


def test_a_subclass_defined_elsewhere_gets_the_status_of_its_nearest_documented_ancestor() -> None:
    class ServerInUseError(ConflictError):
        pass

    assert status_for(ServerInUseError("in use")) == 409


def test_an_error_keeps_its_message_details_and_an_overridden_code() -> None:
    error = LimitExceededError("too many tokens", details={"limit": 5}, code="token_limit_exceeded")
    assert error.message == str(error) == "too many tokens"
    assert error.details == {"limit": 5}
    assert error.code == "token_limit_exceeded"
    assert status_for(error) == 403
    assert LimitExceededError.code == "limit_exceeded"  # the override is per instance


def test_details_default_to_a_fresh_empty_dict() -> None:
    first, second = NotFoundError("a"), NotFoundError("b")
    assert first.details == {}
    first.details["x"] = 1
    assert second.details == {}


@pytest.mark.parametrize(("seconds", "header"), [(0, "1"), (0.2, "1"), (1.0, "1"), (7.01, "8")])
def test_retry_after_is_whole_seconds_rounded_up_and_never_zero(seconds: float, header: str) -> None:
    assert TooManyRequestsError("slow down", retry_after=seconds).retry_after_header == header
