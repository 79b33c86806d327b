"""Batches on the data-plane link (core/link_protocol.py): several frames in one message, one per line,
in order, within BATCH_BYTES; a frame larger than that goes alone; without batching, one per message."""

from __future__ import annotations

import collections

import pytest

from mcpctl.core import link_protocol as wire


def _outbox(*frames: dict[str, object]) -> collections.deque[str]:
    return collections.deque(wire.encode(frame) for frame in frames)


def test_a_batch_holds_the_frames_in_order_and_reads_back_as_them() -> None:
    sent = [{"t": "call", "id": n, "params": {"text": f"line\nbreak {n}"}} for n in range(5)]
    outbox = _outbox(*sent)
    message = wire.batch(outbox, batching=True)
    assert not outbox
    assert [wire.decode(text) for text in wire.frames(message)] == sent  # a newline in a value stays escaped


def test_without_batching_a_message_is_one_frame() -> None:
    outbox = _outbox({"t": "cancel", "id": 1}, {"t": "cancel", "id": 2})
    assert wire.decode(wire.batch(outbox, batching=False)) == {"t": "cancel", "id": 1}
    assert len(outbox) == 1


@pytest.mark.parametrize("first_big", [True, False])
def test_a_batch_stays_within_its_size_and_a_larger_frame_goes_alone(first_big: bool) -> None:
    small = {"t": "note", "id": 1, "message": {}}
    big = {"t": "answer", "id": 2, "message": {"text": "x" * wire.BATCH_BYTES}}
    outbox = _outbox(*([big, small, small] if first_big else [small, small, big, small]))
    messages = []
    while outbox:
        messages.append(wire.batch(outbox, batching=True))
    assert all(len(m) <= wire.BATCH_BYTES for m in messages if "\n" in m)
    assert [len(wire.frames(m)) for m in messages] == ([1, 2] if first_big else [2, 1, 1])


def test_many_small_frames_fill_batches_up_to_the_size() -> None:
    outbox = _outbox(*({"t": "cancel", "id": n} for n in range(20_000)))
    messages = []
    while outbox:
        messages.append(wire.batch(outbox, batching=True))
    assert len(messages) > 1
    assert all(len(m) <= wire.BATCH_BYTES for m in messages)
    ids = [wire.decode(text)["id"] for m in messages for text in wire.frames(m)]
    assert ids == list(range(20_000))
