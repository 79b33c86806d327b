"""Who pays for a new legacy session: the fair-share rule of the project endpoint (DESIGN §12)."""

from __future__ import annotations

import itertools

import pytest

from mcpctl.core.errors import TooManyRequestsError
from mcpctl.core.session_shares import SessionLedger, SessionLimits

_ids = itertools.count()


def open_session(ledger: SessionLedger, project: str, owner: str) -> tuple[str, str | None]:
    """Open one session as the manager does: close what the ledger names, then add the new one."""
    victim = ledger.plan(project, owner)
    if victim is not None:
        ledger.remove(victim)
    session = f"s{next(_ids)}"
    ledger.add(session, project, owner)
    return session, victim


def test_a_token_at_its_cap_pays_with_its_own_oldest_session() -> None:
    ledger = SessionLedger(SessionLimits(per_token=2, per_project=10, total=100))
    first, _ = open_session(ledger, "p", "t")
    second, _ = open_session(ledger, "p", "t")
    _, victim = open_session(ledger, "p", "t")
    assert victim == first
    assert ledger.held_by("t") == 2 and ledger.held_in("p") == 2
    assert open_session(ledger, "p", "t")[1] == second


def test_a_full_project_refuses_a_token_that_holds_nothing_but_not_another_project() -> None:
    ledger = SessionLedger(SessionLimits(per_token=5, per_project=3, total=100))
    mine = [open_session(ledger, "p", "t")[0] for _ in range(3)]
    with pytest.raises(TooManyRequestsError) as refused:
        ledger.plan("p", "newcomer")
    assert refused.value.details == {"limit": "sessions_per_project"} and refused.value.retry_after > 0
    assert ledger.plan("p", "t") == mine[0]
    assert ledger.plan("other", "u") is None


def test_at_the_total_cap_the_largest_projects_largest_holder_pays_for_a_smaller_project() -> None:
    ledger = SessionLedger(SessionLimits(per_token=10, per_project=10, total=6))
    big_oldest = open_session(ledger, "big", "hog")[0]
    for _ in range(3):
        open_session(ledger, "big", "hog")
    open_session(ledger, "big", "small-holder")
    open_session(ledger, "small", "u")
    assert ledger.plan("small", "v") == big_oldest
    # a caller whose project is as large as the largest pays itself, or waits
    open_session(ledger, "small", "v")  # evicts big's oldest: big 4, small 2
    assert ledger.plan("big", "hog") is not None and ledger.plan("big", "hog") != big_oldest


def test_at_the_total_cap_a_caller_as_large_as_everyone_else_with_nothing_to_give_gets_429() -> None:
    ledger = SessionLedger(SessionLimits(per_token=10, per_project=10, total=2))
    open_session(ledger, "a", "t1")
    open_session(ledger, "b", "t2")
    with pytest.raises(TooManyRequestsError) as refused:
        ledger.plan("a", "t3")
    assert refused.value.details == {"limit": "sessions_total"}


def test_removing_is_idempotent_and_forgets_empty_holders() -> None:
    ledger = SessionLedger(SessionLimits(per_token=2, per_project=2, total=2))
    session, _ = open_session(ledger, "p", "t")
    ledger.remove(session)
    ledger.remove(session)
    assert (len(ledger), ledger.held_by("t"), ledger.held_in("p")) == (0, 0, 0)
