"""LineSplitter and the line decoders the live sources share."""

from __future__ import annotations

import orjson
from hypothesis import given
from hypothesis import strategies as st

from k3watch.errors import InputError
from k3watch.sources.lines import AuditLines, Line, LineSplitter, LogLines, line_decoder
from k3watch.telemetry import Counters


def split_in_pieces(data: bytes, cuts: list[int], limit: int) -> tuple[list[Line], LineSplitter]:
    splitter = LineSplitter(limit)
    lines: list[Line] = []
    start = 0
    for cut in sorted(set(cuts)):
        lines += splitter.feed(data[start:cut])
        start = cut
    lines += splitter.feed(data[start:])
    return lines, splitter


def test_lines_carry_offsets_numbers_and_lose_their_line_ends() -> None:
    """\\n and a \\r before it are stripped; offset/end/number describe each line."""
    lines, splitter = split_in_pieces(b"ab\r\ncd\n\nef", [], 100)
    assert [(ln.data, ln.offset, ln.end, ln.number) for ln in lines] == [
        (b"ab", 0, 4, 1),
        (b"cd", 4, 7, 2),
        (b"", 7, 8, 3),
    ]
    assert (splitter.offset, splitter.line, splitter.pending) == (8, 4, 2)
    last = splitter.finish()
    assert last is not None and (last.data, last.offset, last.end, last.number) == (b"ef", 8, 10, 4)
    assert splitter.finish() is None


def test_a_long_line_keeps_only_its_first_bytes_and_is_marked_cut() -> None:
    """Over max_line_bytes: the first bytes are kept, cut is set, offsets stay exact."""
    lines, _ = split_in_pieces(b"x" * 50 + b"\nshort\n", [10, 20, 30], 16)
    assert [(ln.data, ln.cut, ln.end) for ln in lines] == [
        (b"x" * 16, True, 51),
        (b"short", False, 57),
    ]


@given(
    data=st.lists(st.sampled_from([b"a", b"bb", b"\n", b"\r", b"long-line-" * 3]), max_size=40).map(
        b"".join
    ),
    cuts=st.lists(st.integers(0, 400), max_size=10),
    limit=st.integers(1, 40),
)
def test_any_chunking_gives_the_same_lines(data: bytes, cuts: list[int], limit: int) -> None:
    """Feeding bytes in arbitrary pieces gives the same lines as feeding them at once, and the
    lines with the held rest tile the input exactly."""
    whole, whole_splitter = split_in_pieces(data, [], limit)
    pieces, splitter = split_in_pieces(data, cuts, limit)
    assert pieces == whole
    assert splitter.offset == whole_splitter.offset
    position = 0
    for line in pieces:
        assert line.offset == position
        position = line.end
    assert position + splitter.pending == len(data)


def test_the_audit_decoder_reports_bad_lines_with_their_location() -> None:
    """Invalid JSON, non-events and cut lines are reported by reason at source:line."""
    errors: list[InputError] = []
    decoder = line_decoder("audit", Counters("parse"), errors.append, max_line_bytes=1000)
    assert isinstance(decoder, AuditLines)
    assert decoder.decode(Line(b"{oops", 0, 6, 3), "audit.log") == []
    assert decoder.decode(Line(b'{"a": 1}', 6, 15, 4), "audit.log") == []
    assert decoder.decode(Line(b'{"auditID": "x"', 15, 1030, 5, cut=True), "audit.log") == []
    assert [(e.reason, str(e.location)) for e in errors] == [
        ("invalid_json", "audit.log:3"),
        ("not_an_event", "audit.log:4"),
        ("line_too_long", "audit.log:5"),
    ]
    assert decoder.parser.counters.get("parse_errors", "invalid_json") == 1


def test_the_audit_decoder_numbers_the_events_of_an_eventlist_line() -> None:
    """Every event of one line starts at that line; index tells them apart."""
    decoder = line_decoder("audit", Counters("parse"), lambda e: None)
    line = orjson.dumps({"kind": "EventList", "items": [{"auditID": "a"}, {"auditID": "b"}]})
    records = decoder.decode(Line(line, 100, 100 + len(line) + 1, 7), "audit.log")
    assert [(r.event.audit_id, r.offset, r.line, r.index) for r in records] == [
        ("a", 100, 7, 0),
        ("b", 100, 7, 1),
    ]


def test_a_log_decoder_reports_which_records_it_holds() -> None:
    """The k3s parser holds a record per writer until its next line; held() tells where they
    start, and flush() hands them out."""
    decoder = line_decoder("k3s", Counters("parse"), lambda e: None)
    assert isinstance(decoder, LogLines) and decoder.holds
    first = b'time="2026-03-02T10:00:00Z" level=info msg="one"'
    assert decoder.decode(Line(first, 0, len(first) + 1, 1), "k3s.log") == []
    assert decoder.held() == [(0, 1)]
    records = decoder.flush()
    assert [(r.event.raw["message"], r.offset, r.line) for r in records] == [("one", 0, 1)]
    assert decoder.held() == []


def test_the_kernel_decoder_holds_an_open_auditd_message() -> None:
    """auditd wraps long records: a line with an open msg='… is held for the next line."""
    decoder = line_decoder("kernel", Counters("parse"), lambda e: None)
    line = b'type=USER_AVC msg=audit(1772445600.123:5): pid=1 msg=\'apparmor="DENIED"'
    assert decoder.decode(Line(line, 10, 10 + len(line) + 1, 2), "audit.log") == []
    assert decoder.held() == [(10, 2)]
