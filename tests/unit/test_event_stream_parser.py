"""The incremental event-stream parser (sse.py): whole events out of bytes as they arrive, whatever
the line endings and however the bytes are split, within a size limit."""

from __future__ import annotations

import pytest

from mcpctl.mcpd.supervisor.sse import Event, EventStreamParser, EventTooLarge

LIMIT = 1024


def parse(*chunks: bytes, limit: int = LIMIT) -> list[Event]:
    parser = EventStreamParser(limit)
    events: list[Event] = []
    for chunk in chunks:
        events += parser.feed(chunk)
    return events


def bytewise(data: bytes) -> list[bytes]:
    return [data[i : i + 1] for i in range(len(data))]


STREAM = b'event: message\nid: 7\nretry: 250\ndata: {"a": 1}\n\n: a comment\ndata: second\n\n'
EXPECTED = [
    Event("message", '{"a": 1}', "7", 250),
    Event("message", "second", "7", 250),  # the id and the retry carry over
]


@pytest.mark.parametrize("ending", [b"\n", b"\r\n", b"\r"], ids=["lf", "crlf", "cr"])
def test_each_line_ending_ends_lines(ending: bytes) -> None:
    assert parse(STREAM.replace(b"\n", ending)) == EXPECTED


@pytest.mark.parametrize("ending", [b"\n", b"\r\n", b"\r"], ids=["lf", "crlf", "cr"])
def test_events_fed_byte_by_byte_come_out_whole_and_once(ending: bytes) -> None:
    assert parse(*bytewise(STREAM.replace(b"\n", ending))) == EXPECTED


def test_a_crlf_split_across_chunks_is_one_line_ending() -> None:
    # were the CR and the LF counted as two line endings, "one" would be dispatched alone
    chunks = [b"data: one\r", b"\ndata: two\r", b"\n\r", b"\n", b"data: three\r", b"\n\r\n"]
    assert parse(*chunks) == [Event("message", "one\ntwo", None, None), Event("message", "three", None, None)]


def test_an_empty_chunk_between_a_cr_and_its_lf_changes_nothing() -> None:
    assert parse(b"data: one\r", b"", b"\ndata: two\r\n\r\n") == [Event("message", "one\ntwo", None, None)]


def test_an_event_is_dispatched_only_at_its_blank_line() -> None:
    parser = EventStreamParser(LIMIT)
    assert parser.feed(b"data: x\n") == []
    assert parser.feed(b"\n") == [Event("message", "x", None, None)]
    assert parser.feed(b"data: unfinished") == []


def test_multi_line_data_is_joined_with_newlines() -> None:
    assert parse(b"data: first\ndata:second\ndata\ndata:  indented\n\n") == [
        Event("message", "first\nsecond\n\n indented", None, None)
    ]


def test_comments_and_unknown_fields_are_ignored() -> None:
    stream = b": keep-alive\n:\nfoo: bar\nevent: custom\ndata: x\n\n: only a comment\n\n"
    assert parse(stream) == [Event("custom", "x", None, None)]


def test_the_event_type_resets_after_each_event() -> None:
    assert [e.event for e in parse(b"event: ping\ndata: 1\n\ndata: 2\n\n")] == ["ping", "message"]


def test_an_id_without_data_is_reported_as_a_priming_event() -> None:
    assert parse(b"id: prime-1\n\n") == [Event("message", "", "prime-1", None)]


def test_an_event_without_data_or_id_is_not_dispatched() -> None:
    assert parse(b"event: nothing\n\nretry: 100\n\n") == []


def test_the_last_id_carries_over_until_replaced() -> None:
    events = parse(b"id: 1\ndata: a\n\ndata: b\n\nid: 2\ndata: c\n\n")
    assert [(e.data, e.id) for e in events] == [("a", "1"), ("b", "1"), ("c", "2")]


def test_an_id_containing_nul_is_ignored() -> None:
    assert [e.id for e in parse(b"id: 1\ndata: a\n\nid: x\x00y\ndata: b\n\n")] == ["1", "1"]


@pytest.mark.parametrize(
    "value",
    [b"soon", b"-5", b"1.5", b"\xc2\xb2", "\u0663".encode()],
    ids=["word", "negative", "fraction", "superscript-two", "arabic-indic-three"],
)
def test_a_retry_that_is_not_ascii_digits_is_ignored(value: bytes) -> None:
    assert parse(b"retry: 100\ndata: a\n\nretry: " + value + b"\ndata: b\n\n") == [
        Event("message", "a", None, 100),
        Event("message", "b", None, 100),
    ]


def test_a_single_leading_space_is_stripped_from_a_value() -> None:
    assert parse(b"data:no space\n\ndata:  two spaces\n\n") == [
        Event("message", "no space", None, None),
        Event("message", " two spaces", None, None),
    ]


def test_invalid_utf8_is_replaced_not_fatal() -> None:
    assert parse(b"data: caf\xff\n\n") == [Event("message", "caf\ufffd", None, None)]


def test_an_event_within_the_limit_is_accepted() -> None:
    assert parse(b"data: " + b"x" * (LIMIT - 1) + b"\n\n") == [
        Event("message", "x" * (LIMIT - 1), None, None)
    ]


def test_an_event_whose_data_lines_exceed_the_limit_together_is_refused() -> None:
    parser = EventStreamParser(LIMIT)
    half = b"data: " + b"x" * (LIMIT // 2) + b"\n"
    parser.feed(half)
    with pytest.raises(EventTooLarge):
        parser.feed(half)


def test_an_unterminated_line_longer_than_the_limit_is_refused_before_it_ends() -> None:
    parser = EventStreamParser(LIMIT)
    parser.feed(b"data: ")
    with pytest.raises(EventTooLarge):
        for chunk in [b"x" * 256] * 8:
            parser.feed(chunk)


def test_the_limit_counts_bytes_not_characters() -> None:
    # 600 two-byte characters: 1200 bytes of data, over the 1024-byte limit
    with pytest.raises(EventTooLarge):
        parse(("data: " + "\u00e9" * 600 + "\n\n").encode())


def test_the_limit_applies_per_event() -> None:
    line = b"data: " + b"x" * (LIMIT // 2) + b"\n\n"
    assert len(parse(line * 8)) == 8
