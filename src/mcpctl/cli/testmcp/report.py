"""What `test mcp` found: one outcome per step, in a fixed order, and the exit code they add up to.

A step passes, fails or is skipped. A failure has a kind, and the kind decides the exit code:

    transport   cannot connect, TLS, no answer within --timeout, the connection dropped   exit 1
    auth        the endpoint refused the given token (or wanted one): 401/403              exit 1
    contract    the endpoint answered, but not as MCP says it must                         exit 2
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

Status = Literal["PASS", "FAIL", "SKIP"]
FailureKind = Literal["transport", "auth", "contract"]

HEALTH = "health"
CONNECT = "connect"
SESSION = "session"
TOOLS_LIST = "tools/list"
EXPECTED_TOOLS = "expected-tools"
CALL = "call"
AUTH = "auth"
LATENCY = "latency"
STEPS = (HEALTH, CONNECT, SESSION, TOOLS_LIST, EXPECTED_TOOLS, CALL, AUTH, LATENCY)

_SEVERITY: tuple[FailureKind, ...] = ("transport", "auth", "contract")

EXIT_PASS = 0
EXIT_TRANSPORT = 1
EXIT_CONTRACT = 2


@dataclass
class StepResult:
    """One check. `data` holds the machine-readable facts behind `detail` (for `-o json`)."""

    name: str
    status: Status
    detail: str
    duration_ms: float = 0.0
    failure: FailureKind | None = None
    warnings: list[str] = field(default_factory=list)
    data: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "status": self.status,
            "detail": self.detail,
            "durationMs": round(self.duration_ms, 1),
            "failure": self.failure,
            "warnings": list(self.warnings),
            "data": self.data,
        }


class StepFailed(Exception):
    """Raised inside a step: the step fails with this kind and detail."""

    def __init__(self, kind: FailureKind, detail: str, data: dict[str, Any] | None = None) -> None:
        super().__init__(detail)
        self.kind: FailureKind = kind
        self.detail = detail
        self.data = data or {}


class StepSkipped(Exception):
    """Raised inside a step: there is nothing to check (e.g. no --token for the auth step)."""

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


@dataclass
class Report:
    url: str
    steps: list[StepResult] = field(default_factory=list)
    protocol_version: str | None = None
    server: dict[str, Any] | None = None
    duration_ms: float = 0.0

    def step(self, name: str) -> StepResult | None:
        return next((s for s in self.steps if s.name == name), None)

    @property
    def failure(self) -> FailureKind | None:
        """The worst failure: a transport or auth failure outranks a contract failure."""
        kinds = {s.failure for s in self.steps if s.status == "FAIL"}
        return next((kind for kind in _SEVERITY if kind in kinds), None)

    @property
    def exit_code(self) -> int:
        failure = self.failure
        if failure is None:
            return EXIT_PASS
        return EXIT_CONTRACT if failure == "contract" else EXIT_TRANSPORT

    @property
    def result(self) -> Literal["PASS", "FAIL"]:
        return "PASS" if self.failure is None else "FAIL"

    def failed_steps(self) -> list[StepResult]:
        return [s for s in self.steps if s.status == "FAIL"]

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": "McpTestReport",
            "url": self.url,
            "result": self.result,
            "exitCode": self.exit_code,
            "failure": self.failure,
            "failedSteps": [s.name for s in self.failed_steps()],
            "protocolVersion": self.protocol_version,
            "server": self.server,
            "durationMs": round(self.duration_ms, 1),
            "steps": [s.to_dict() for s in self.steps],
        }


def percentile(samples: Sequence[float], p: float) -> float:
    """The nearest-rank percentile (a value that was measured, never an interpolation)."""
    if not samples:
        raise ValueError("no samples")
    if not 0 < p <= 100:
        raise ValueError("p must be in (0, 100]")
    ordered = sorted(samples)
    rank = math.ceil(p / 100 * len(ordered))
    return ordered[max(rank, 1) - 1]


def latency_summary(samples_ms: Sequence[float]) -> dict[str, float]:
    """p50, p95 and max of call durations in milliseconds, rounded to 0.1 ms."""
    return {
        "p50Ms": round(percentile(samples_ms, 50), 1),
        "p95Ms": round(percentile(samples_ms, 95), 1),
        "maxMs": round(max(samples_ms), 1),
    }
