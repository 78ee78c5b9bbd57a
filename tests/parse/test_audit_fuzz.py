"""Property tests: no input makes the audit parser raise, and valid lines are never lost."""

from __future__ import annotations

import io
from pathlib import Path

import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tests.parse.mutations import joined, mutate

from k3watch.errors import InputError
from k3watch.event import Event
from k3watch.parse.audit import AuditParser
from k3watch.telemetry import Counters

GOLDEN = Path(__file__).parents[1] / "golden" / "audit"

# Valid one-line events taken from the golden JSON-lines case.
VALID_LINES = [line for line in (GOLDEN / "jsonl.input").read_bytes().splitlines() if line]

# Pieces that drive the multi-line logic into its corners when mixed with valid lines.
FRAGMENTS = [
    b"{",
    b"[",
    b"}",
    b"]",
    b"",
    b"  ",
    b'  "verb": "get",',
    b'  "user": {',
    b"  },",
    b'{"kind": "EventList", "items": [',
    b'{"kind": 0}',
    b"[1, 2]",
    b"null",
    b'"\\u00e9\xff\xfe"',
    b'{"a": "unterminated',
    b"\x1f\x8b\x08",
    b"\r",
]

FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def parse_all(
    data: bytes, *, whole: bool, max_event_bytes: int = 1024, max_line_bytes: int = 4096
) -> tuple[list[Event], list[InputError]]:
    """Events and diagnostics, with small limits so that the limit paths get exercised."""
    errors: list[InputError] = []
    parser = AuditParser(Counters("fuzz"), errors.append, max_event_bytes, max_line_bytes)
    if whole:
        events = list(parser.parse_bytes(data, "fuzz"))
    else:
        events = list(parser.parse_stream(io.BytesIO(data), "fuzz"))
    return events, errors


def check_invariants(events: list[Event], errors: list[InputError]) -> None:
    for event in events:
        assert type(event.raw) is dict
        assert event.source == "fuzz" and event.line >= 1
    for error in errors:
        assert error.location is not None and error.location.source == "fuzz"
        assert error.reason and error.message


@st.composite
def mutated_lines(draw: st.DrawFn) -> bytes:
    """Valid event lines with bytes deleted, inserted, flipped or cut off."""
    lines = []
    for _ in range(draw(st.integers(1, 4))):
        lines.append(mutate(draw, draw(st.sampled_from(VALID_LINES))))
    return joined(draw, lines)


@FUZZ
@given(data=st.binary(max_size=2000), whole=st.booleans())
def test_arbitrary_bytes_never_raise(data: bytes, whole: bool) -> None:
    """Any bytes give events with dict raw and located diagnostics, never an exception."""
    check_invariants(*parse_all(data, whole=whole))


@FUZZ
@given(data=mutated_lines(), whole=st.booleans())
def test_mutated_event_lines_never_raise(data: bytes, whole: bool) -> None:
    """Damaged event lines give events or located diagnostics, never an exception."""
    check_invariants(*parse_all(data, whole=whole))


@FUZZ
@given(
    pieces=st.lists(
        st.one_of(
            st.sampled_from(VALID_LINES).map(lambda line: (True, line)),
            st.sampled_from(FRAGMENTS).map(lambda line: (False, line)),
            st.binary(max_size=40).map(lambda line: (False, line.replace(b"\n", b" "))),
        ),
        max_size=12,
    )
)
def test_valid_event_lines_survive_any_neighbours(pieces: list[tuple[bool, bytes]]) -> None:
    """Every valid one-line event comes out at its own line number, whatever surrounds it."""
    data = b"\n".join(line for _, line in pieces)
    events, errors = parse_all(data, whole=False, max_event_bytes=1 << 20, max_line_bytes=1 << 20)
    check_invariants(events, errors)
    if data.startswith(b"\x1f\x8b"):
        return  # gzip magic on line 1: the stream is reported as compressed and not read
    valid_lines = [n for n, (valid, _) in enumerate(pieces, 1) if valid]
    top_level = {e.line for e in events if e.item is None}
    assert set(valid_lines) <= top_level
    by_line = {e.line: e.raw for e in events if e.item is None}
    for n in valid_lines:
        assert by_line[n] == orjson.loads(pieces[n - 1][1])


def general_path(data: bytes) -> list[Event]:
    """What the general path (the whole line decoded first) makes of one line."""
    parser = AuditParser(Counters("fuzz"), lambda error: None, 1024, 4096)
    try:
        obj = orjson.loads(data)
    except orjson.JSONDecodeError:
        return []
    return parser.event_from_line(obj, data, "fuzz", 3)


@FUZZ
@given(data=st.one_of(mutated_lines(), st.sampled_from(VALID_LINES)))
def test_unparsed_events_are_what_the_general_path_reads(data: bytes) -> None:
    """A line taken without decoding it is a plain event the general path reads the same:
    the same object once decoded, the same time; a line it declines goes the general way."""
    parser = AuditParser(Counters("fuzz"), lambda error: None, 1024, 4096)
    event = parser.unparsed_event(data, "fuzz", 3)
    if event is None:
        return
    [expected] = general_path(data)
    assert event.data == data and expected.data == data
    assert (event.source, event.line, event.item) == ("fuzz", 3, None)
    assert event.time == expected.time
    assert event.raw == expected.raw


def test_valid_lines_are_taken_without_decoding() -> None:
    parser = AuditParser(Counters("fuzz"), lambda error: None)
    for line in VALID_LINES:
        event = parser.unparsed_event(line, "fuzz", 1)
        assert event is not None and event._raw is None  # nothing decoded yet
        assert event.raw == orjson.loads(line)
    assert parser.counters.get("events") == len(VALID_LINES)


def test_unusual_lines_are_left_to_the_general_path() -> None:
    parser = AuditParser(Counters("fuzz"), lambda error: None, max_event_bytes=2000)
    event = orjson.loads(VALID_LINES[0])
    declined = {
        "invalid UTF-8": VALID_LINES[0].replace(b'"auditID"', b'"x":"\xff","auditID"'),
        "not ASCII": orjson.dumps({**event, "x": "é"}),
        "over max_event_bytes": orjson.dumps({**event, "x": "a" * 2000}),
        "no auditID": orjson.dumps({k: v for k, v in event.items() if k != "auditID"}),
        "auditID not a string": orjson.dumps({**event, "auditID": 7}),
        "numeric time": orjson.dumps({**event, "requestReceivedTimestamp": 1.5}),
        "a batch": orjson.dumps({"kind": "EventList", "auditID": "x", "items": [event]}),
        "v1beta1": orjson.dumps({**event, "apiVersion": "audit.k8s.io/v1beta1"}),
        "not an object": b"[1]",
        "nested too deep": b'{"auditID":"x","a":' + b"[" * 5000 + b"]" * 5000 + b"}",
        "trailing bytes": VALID_LINES[0] + b" x",
    }
    for why, line in declined.items():
        assert parser.unparsed_event(line, "fuzz", 1) is None, why


def test_a_number_beyond_a_double_reads_as_infinity() -> None:
    """orjson refuses such a number, which the check accepted: decoding falls back."""
    line = b'{"auditID":"a","stage":"ResponseComplete","x":1e999}'
    event = AuditParser(Counters("fuzz"), lambda error: None).unparsed_event(line, "fuzz", 1)
    assert event is not None and event.raw["x"] == float("inf")
