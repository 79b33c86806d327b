"""Fair shares of the project endpoint's legacy (2025-11-25) sessions (DESIGN §12).

Sessions are capped per token and per project, with a total cap as a memory backstop. A caller over
a cap pays with its own oldest session; a caller that holds none gets 429 with Retry-After. Only at
the total cap, and only for a caller whose project holds fewer sessions than the largest, is another
project's session closed: the oldest of that largest project's largest holder. So one token, or one
project, can never crowd the others out: finding 6 was one token's 10,000 sessions answering every
other project's `initialize` with 503 for half an hour.

Pure bookkeeping, no I/O: the session manager asks `plan` before it opens a session, closes what it
names, and reports opened and closed sessions with `add` and `remove`.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from mcpctl.core.errors import TooManyRequestsError

# Sessions end when their client deletes them or after the idle timeout; nothing says when, so a
# refused caller is told to come back in a while rather than in a precise number of seconds.
RETRY_AFTER_SECONDS = 30.0


@dataclass(frozen=True)
class SessionLimits:
    per_token: int
    per_project: int
    total: int

    def __post_init__(self) -> None:
        if min(self.per_token, self.per_project, self.total) < 1:
            raise ValueError("session limits must be positive")


class SessionLedger:
    """Who holds which session, oldest first, and who pays for the next one."""

    def __init__(self, limits: SessionLimits):
        self.limits = limits
        self._where: dict[str, tuple[str, str]] = {}  # session id → (project, owner)
        self._owned: dict[str, dict[str, None]] = {}  # owner → its session ids, oldest first
        self._per_project: Counter[str] = Counter()
        self._project_of: dict[str, str] = {}  # owner → its project

    def __len__(self) -> int:
        return len(self._where)

    def held_by(self, owner: str) -> int:
        return len(self._owned.get(owner, ()))

    def held_in(self, project: str) -> int:
        return self._per_project[project]

    def plan(self, project: str, owner: str) -> str | None:
        """The session to close so that `owner` (of `project`) may open one more: None when there is
        room; TooManyRequestsError when the caller holds nothing it could give up."""
        mine = self._owned.get(owner)
        oldest_mine = next(iter(mine)) if mine else None
        if mine and len(mine) >= self.limits.per_token:
            return oldest_mine
        if self._per_project[project] >= self.limits.per_project:
            if oldest_mine is not None:
                return oldest_mine
            raise _refused("sessions_per_project", f'project "{project}" has too many open sessions')
        if len(self._where) >= self.limits.total:
            victim = oldest_mine or self._largest_share_oldest(project)
            if victim is None:
                raise _refused("sessions_total", "the endpoint has too many open sessions")
            return victim
        return None

    def _largest_share_oldest(self, project: str) -> str | None:
        largest, count = max(self._per_project.items(), key=lambda item: item[1], default=("", 0))
        if count <= self._per_project[project]:
            return None
        holders = [
            owner for owner, held in self._project_of.items() if held == largest and owner in self._owned
        ]
        biggest = max(holders, key=lambda owner: len(self._owned[owner]))
        return next(iter(self._owned[biggest]))

    def add(self, session_id: str, project: str, owner: str) -> None:
        self._where[session_id] = (project, owner)
        self._owned.setdefault(owner, {})[session_id] = None
        self._per_project[project] += 1
        self._project_of[owner] = project

    def remove(self, session_id: str) -> None:
        """Forget a session (idempotent: a session may be reported closed more than once)."""
        found = self._where.pop(session_id, None)
        if found is None:
            return
        project, owner = found
        owned = self._owned[owner]
        del owned[session_id]
        if not owned:
            del self._owned[owner]
            del self._project_of[owner]
        self._per_project[project] -= 1
        if self._per_project[project] <= 0:
            del self._per_project[project]


def _refused(limit: str, message: str) -> TooManyRequestsError:
    return TooManyRequestsError(
        f"{message}; try again later", retry_after=RETRY_AFTER_SECONDS, details={"limit": limit}
    )
