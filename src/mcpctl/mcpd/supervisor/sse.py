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
        self._buffer = b""
        self._event = ""
        self._data: list[str] = []
        self._size = 0
        self._id: str | None = None  # the stream's last event id (it carries over to later events)
        self._id_seen = False
        self._retry: int | None = None

    def feed(self, chunk: bytes) -> list[Event]:
        """The events that `chunk` completes, in order."""
        buffer = self._buffer + chunk
        if b"\r" in buffer:  # CRLF and lone CR end lines too; a CR at the end may be half a CRLF
            held = buffer.endswith(b"\r")
            buffer = buffer[:-1] if held else buffer
            buffer = buffer.replace(b"\r\n", b"\n").replace(b"\r", b"\n") + (b"\r" if held else b"")
        *lines, rest = buffer.split(b"\n")
        if len(rest) > self.max_event_bytes:
            raise EventTooLarge(f"an event-stream line longer than {self.max_event_bytes} bytes")
        self._buffer = rest
        events: list[Event] = []
        for raw in lines:
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
                self._size += len(value) + 1
                if self._size > self.max_event_bytes:
                    raise EventTooLarge(f"an event larger than {self.max_event_bytes} bytes")
                self._data.append(value)
            elif name == "event":
                self._event = value
            elif name == "id" and "\0" not in value:
                self._id = value
                self._id_seen = True
            elif name == "retry" and value.isdigit():
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
