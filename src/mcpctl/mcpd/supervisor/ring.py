"""A bounded buffer of text lines: an instance's stderr, never more than it was told to keep."""

from __future__ import annotations

from collections import deque


class LineRing:
    """The last lines written, bounded by count and by total characters."""

    def __init__(self, max_lines: int = 1000, max_chars: int = 256 * 1024, max_line: int = 4096):
        self._lines: deque[str] = deque()
        self._chars = 0
        self.max_lines = max_lines
        self.max_chars = max_chars
        self.max_line = max_line
        self.dropped = 0

    def append(self, line: str) -> None:
        if len(line) > self.max_line:
            line = line[: self.max_line] + "…"
        self._lines.append(line)
        self._chars += len(line)
        while self._lines and (len(self._lines) > self.max_lines or self._chars > self.max_chars):
            self._chars -= len(self._lines.popleft())
            self.dropped += 1

    def tail(self, n: int | None = None) -> list[str]:
        lines = list(self._lines)
        return lines if n is None or n >= len(lines) else lines[len(lines) - n :]

    def __len__(self) -> int:
        return len(self._lines)
