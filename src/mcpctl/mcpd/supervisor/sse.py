"""Server-sent events read as they arrive: bytes in, whole events out (the WHATWG event-stream
format: `event`, `data`, `id`, `retry` fields, a blank line ends an event, comments ignored).

Incremental and synchronous, so an HTTP response's body callback can feed it chunk by chunk and act
on each event at once (a progress notification must not wait for the stream's end).
"""

from __future__ import annotations

from dataclasses import dataclass


class EventTooLarge(ValueError):
    """One event (or one unterminated line) exceeds the parser's limit."""


@dataclass(slots=True)
class Event:
    event: str
    data: str
    id: str | None
    retry: int | None


class EventStreamParser:
    def __init__(self, max_event_bytes: int):
        self.max_event_bytes = max_event_bytes
        self._partial: list[bytes] = []  # the unterminated line so far, in pieces (no re-copying)
        self._partial_size = 0
        self._after_cr = False  # the last chunk ended in CR: a LF starting the next one is its pair
        self._event = ""
        self._data: list[str] = []
        self._size = 0
        self._id: str | None = None  # the stream's last event id (it carries over to later events)
        self._id_seen = False
        self._retry: int | None = None

    def feed(self, chunk: bytes) -> list[Event]:
        """The events that `chunk` completes, in order. Work is linear in the bytes fed."""
        if not chunk:
            return []
        if self._after_cr and chunk.startswith(b"\n"):
            chunk = chunk[1:]
        self._after_cr = chunk.endswith(b"\r")
        if b"\r" in chunk:  # CRLF and a lone CR end lines too
            chunk = chunk.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        pieces = chunk.split(b"\n")
        rest = pieces.pop()
        if pieces and self._partial:
            pieces[0] = b"".join(self._partial) + pieces[0]
            self._partial, self._partial_size = [], 0
        if rest:
            self._partial.append(rest)
            self._partial_size += len(rest)
            if self._partial_size > self.max_event_bytes:
                raise EventTooLarge(f"an event-stream line longer than {self.max_event_bytes} bytes")
        events: list[Event] = []
        for raw in pieces:
            if not raw:
                event = self._dispatch()
                if event is not None:
                    events.append(event)
                continue
            line = raw.decode("utf-8", errors="replace")
            if line.startswith(":"):
                continue
            name, colon, value = line.partition(":")
            if colon and value.startswith(" "):
                value = value[1:]
            if name == "data":
                # the value's bytes, as the limit is (after "data:" and its optional space)
                self._size += (len(raw) - 5 - (raw[5:6] == b" ") if colon else 0) + 1
                if self._size > self.max_event_bytes:
                    raise EventTooLarge(f"an event larger than {self.max_event_bytes} bytes")
                self._data.append(value)
            elif name == "event":
                self._event = value
            elif name == "id" and "\0" not in value:
                self._id = value
                self._id_seen = True
            elif name == "retry" and value.isascii() and value.isdigit():
                self._retry = int(value)
        return events

    def _dispatch(self) -> Event | None:
        if not self._data:
            # an event without data is not dispatched, but its id still counts (a priming event)
            primed = self._id_seen
            self._event, self._size, self._id_seen = "", 0, False
            return Event("message", "", self._id, self._retry) if primed else None
        event = Event(self._event or "message", "\n".join(self._data), self._id, self._retry)
        self._event, self._data, self._size, self._id_seen = "", [], 0, False
        return event
