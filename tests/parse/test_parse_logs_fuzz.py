"""Property tests: no input makes a log parser raise; what comes out is always well formed."""

from __future__ import annotations

import io
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tests.parse.mutations import joined, mutate

from k3watch.errors import InputError
from k3watch.event import Event
from k3watch.parse.logs import KIND
from k3watch.parse.registry import PARSERS, create_parser
from k3watch.telemetry import Counters

GOLDEN = Path(__file__).parents[1] / "golden"
APPARMOR = Path(__file__).parents[1] / "corpus" / "apparmor-libapparmor-testsuite"
NAMES = sorted(PARSERS)

# Real lines of every format, to be damaged.
LINES = [
    line
    for name in NAMES
    for path in sorted((GOLDEN / name).glob("*.input"))
    for line in path.read_bytes().splitlines()
    if line
] + [path.read_bytes().strip() for path in sorted(APPARMOR.glob("*.in"))[::3]]

# Pieces that drive the joining, quoting and wrapper logic into their corners.
FRAGMENTS = [
    b"Trace[1]: x",
    b"\tat main.go:12",
    b"panic: boom",
    b'time="',
    b'msg="unterminated',
    b"I0101 00:00:00.000000 1 a.go:1] ",
    b'I1340 25:61:61.000000 1 a.go:1] "m" k=<',
    b" >",
    b"{",
    b'{"level":"info","ts":1e308,"msg":1}',
    b'{"MESSAGE":[255,254],"__REALTIME_TIMESTAMP":"99999999999999999999"}',
    b'{"MESSAGE":null,"_TRANSPORT":"audit","_AUDIT_ID":"x"}',
    b'type=AVC msg=audit(1.2:3): apparmor="DENIED" msg=\'',
    b"type=1326 code=0xffffffffffff syscall=-1 arch=c000003e",
    b"name=FFFF comm=00",
    b"May 23 20:29:53 host k3s[99999999999]: ",
    b"<999>1 - - - - - - ",
    b"\x1b[36mINFO\x1b[0m[",
    b"\x1e",
    b"\r",
    b"",
]

FUZZ = settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def parse_all(name: str, data: bytes, limit: int = 512) -> tuple[list[Event], list[InputError]]:
    """Events and diagnostics, with small limits so that the limit paths are exercised."""
    errors: list[InputError] = []
    counters = Counters("fuzz")
    options: dict[str, object] = {"max_line_bytes": limit, "now": lambda: 1718000000.0}
    if name != "kernel":
        options["max_record_bytes"] = 2 * limit
    parser = create_parser(name, counters, errors.append, **options)
    events = list(parser.parse_stream(io.BytesIO(data), "fuzz"))
    check(events, errors)
    assert counters.get("events") == len(events)
    return events, errors


def check(events: list[Event], errors: list[InputError]) -> None:
    for event in events:
        raw = event.raw
        assert raw["kind"] == KIND
        assert isinstance(raw["message"], str) and isinstance(raw["format"], str)
        assert isinstance(raw["_key"], str) and isinstance(raw["source"], dict)
        assert "time" not in raw or (isinstance(raw["time"], str) and raw["time"].endswith("Z"))
        assert event.source == "fuzz" and event.line >= 1
    for error in errors:
        assert error.location is not None and error.location.source == "fuzz"
        assert error.reason and error.message


@st.composite
def damaged(draw: st.DrawFn) -> bytes:
    """Real lines with bytes deleted, inserted, flipped or cut off, mixed with fragments."""
    lines = []
    for _ in range(draw(st.integers(1, 6))):
        if draw(st.booleans()):
            lines.append(draw(st.sampled_from(FRAGMENTS)))
            continue
        lines.append(mutate(draw, draw(st.sampled_from(LINES))))
    return joined(draw, lines)


@FUZZ
@given(name=st.sampled_from(NAMES), data=st.binary(max_size=1500))
def test_arbitrary_bytes_never_raise(name: str, data: bytes) -> None:
    """Any bytes give well-formed events and located diagnostics, never an exception."""
    parse_all(name, data)


@FUZZ
@given(name=st.sampled_from(NAMES), data=damaged())
def test_damaged_real_lines_never_raise(name: str, data: bytes) -> None:
    """Real lines of every format, damaged, never make any parser raise."""
    parse_all(name, data)


@FUZZ
@given(name=st.sampled_from(NAMES), lines=st.lists(st.text(max_size=120), max_size=8))
def test_text_lines_never_raise(name: str, lines: list[str]) -> None:
    """parse_line takes str as well as bytes, including lone surrogates."""
    errors: list[InputError] = []
    parser = create_parser(name, Counters("fuzz"), errors.append)
    events = list(parser.parse_lines([line.replace("\n", " ") for line in lines], "fuzz"))
    check(events, errors)


@FUZZ
@given(data=damaged())
def test_every_line_is_accounted_for(data: bytes) -> None:
    """The K3s parser turns every non-blank line into a record or a joined continuation."""
    counters = Counters("fuzz")
    parser = create_parser("k3s", counters, lambda _: None, now=lambda: 1718000000.0)
    events = list(parser.parse_stream(io.BytesIO(data), "fuzz"))
    joined = counters.get("joined") + counters.get("dropped", "continuation_overflow")
    assert len(events) + joined + counters.get("skipped", "blank") == counters.get("lines")
