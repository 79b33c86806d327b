"""Check-level comparison: what passes against the fixture directly must pass through a target.

A check is identified by its scenario, its id and its occurrence (the suite runs some checks several
times in one scenario: the second `sep-2575-http-server-meta-invalid-400` of `server-stateless` is
occurrence 2). Statuses are ranked SUCCESS > WARNING > FAILURE; a check that is SUCCESS directly must be
SUCCESS through the target, one that is WARNING directly at least WARNING, and a check the target's run
does not have at all (the scenario wrote no result, or ended before it) is lost too. INFO and SKIPPED
checks are observations, not verdicts: they are not compared (a scenario's own pass/fail still is).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from conformance.suites import Check, Outcome

RANK = {"SUCCESS": 2, "WARNING": 1, "FAILURE": 0}


@dataclass(frozen=True)
class LostCheck:
    """A check that passes directly (`direct`: its status there) but not through `target` (`status`:
    its status there, None when the target's run does not have it)."""

    spec_version: str
    target: str
    scenario: str
    check: str
    occurrence: int
    direct: str
    status: str | None
    message: str

    @property
    def label(self) -> str:
        """`scenario/check`, with `#n` for a check's n-th run within its scenario (n > 1)."""
        suffix = f"#{self.occurrence}" if self.occurrence > 1 else ""
        return f"{self.scenario}/{self.check}{suffix}"

    def to_json(self) -> dict[str, object]:
        return {
            "specVersion": self.spec_version,
            "target": self.target,
            "scenario": self.scenario,
            "check": self.check,
            "occurrence": self.occurrence,
            "direct": self.direct,
            "status": self.status,
            "message": self.message,
        }


def keyed(checks: Iterable[Check]) -> dict[tuple[str, int], Check]:
    """Each check by (id, occurrence), occurrences counted from 1 in the order the suite ran them."""
    seen: Counter[str] = Counter()
    out: dict[tuple[str, int], Check] = {}
    for check in checks:
        seen[check.id] += 1
        out[(check.id, seen[check.id])] = check
    return out


def lost_checks(
    spec_version: str, target: str, direct: Mapping[str, Outcome], through: Mapping[str, Outcome]
) -> list[LostCheck]:
    """Every check that passes in `direct` and does not pass (or is missing) in `through`."""
    lost: list[LostCheck] = []
    for scenario, outcome in direct.items():
        other = through.get(scenario)
        theirs = keyed(other.results) if other is not None else {}
        for (check_id, occurrence), check in keyed(outcome.results).items():
            wanted = RANK.get(check.status)
            if wanted is None:
                continue  # INFO, SKIPPED: not a verdict
            got = theirs.get((check_id, occurrence))
            if got is not None and RANK.get(got.status, -1) >= wanted:
                continue
            if other is None:
                message = "no result for the scenario"
            elif got is None:
                message = "the check did not run" + (
                    f" (the scenario failed: {other.failures[0]})" if other.failures else ""
                )
            else:
                message = got.message or f"{got.status} without a message"
            lost.append(
                LostCheck(
                    spec_version,
                    target,
                    scenario,
                    check_id,
                    occurrence,
                    check.status,
                    None if got is None else got.status,
                    message,
                )
            )
    return lost
