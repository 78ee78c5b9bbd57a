"""AuditParser behaviour beyond the golden cases: limits, counters, gzip, read errors."""

from __future__ import annotations

import gzip
import io
import json
from typing import Any

import orjson
import pytest

from k3watch.errors import InputError
from k3watch.event import Event
from k3watch.parse.audit import AuditParser
from k3watch.telemetry import Counters


def event(n: int = 0, **extra: Any) -> dict[str, Any]:
    """A small v1 audit event; ``extra`` adds or replaces fields."""
    raw: dict[str, Any] = {
        "kind": "Event",
        "apiVersion": "audit.k8s.io/v1",
        "level": "Metadata",
        "auditID": f"00000000-0000-4000-8000-{n:012d}",
        "stage": "ResponseComplete",
        "requestURI": f"/api/v1/namespaces/default/configmaps/cm-{n}",
        "verb": "get",
        "user": {"username": "system:k3s-supervisor", "groups": ["system:masters"]},
        "objectRef": {"resource": "configmaps", "namespace": "default", "name": f"cm-{n}"},
        "requestReceivedTimestamp": "2024-05-01T10:20:30.123456Z",
    }
    raw.update(extra)
    return raw


def line(raw: object) -> bytes:
    return orjson.dumps(raw)


class Run:
    """A parser wired to lists, for assertions."""

    def __init__(self, **limits: int) -> None:
        self.errors: list[InputError] = []
        self.counters = Counters("test")
        self.parser = AuditParser(self.counters, self.errors.append, **limits)

    def stream(self, data: bytes, source: str = "audit.log") -> list[Event]:
        return list(self.parser.parse_stream(io.BytesIO(data), source))

    def bytes(self, data: bytes, source: str = "body") -> list[Event]:
        return list(self.parser.parse_bytes(data, source))

    @property
    def messages(self) -> list[str]:
        return [str(error) for error in self.errors]

    @property
    def reasons(self) -> list[str]:
        return [error.reason for error in self.errors]


def test_kind_zero_is_reported_with_the_kind_it_found() -> None:
    """``{"kind": 0}`` gives "kind must be 'Event' or 'EventList', got 0" at its line."""
    run = Run()
    assert run.stream(b'{"kind": 0}\n') == []
    assert len(run.errors) == 1
    error = run.errors[0]
    assert "kind must be 'Event' or 'EventList', got 0" in error.message
    assert str(error.location) == "audit.log:1"
    assert error.reason == "unknown_kind"


def test_counters_count_events_and_each_error_by_reason() -> None:
    """Good events count in ``events``; each diagnostic in ``parse_errors{reason}``."""
    run = Run()
    data = b"\n".join([line(event(1)), b"garbage", b"7", line(event(2)), b'{"kind": 0}', b""])
    assert len(run.stream(data)) == 2
    assert run.counters.get("events") == 2
    assert run.counters.by_reason("parse_errors") == {
        "invalid_json": 1,
        "not_an_object": 1,
        "unknown_kind": 1,
    }
    assert len(run.errors) == 3


def test_counters_are_flushed_when_the_consumer_stops_early() -> None:
    """Events taken before the consumer closes the stream are counted, no more and no less."""
    run = Run()
    data = b"\n".join(line(event(n)) for n in range(10))
    events = run.parser.parse_stream(io.BytesIO(data), "audit.log")
    taken = [next(events) for _ in range(3)]
    events.close()  # type: ignore[attr-defined]
    assert len(taken) == 3
    assert run.counters.get("events") == 3


def test_counters_keep_up_during_a_long_stream() -> None:
    """On an endless stream the events counter lags by less than a few hundred events."""
    run = Run()
    data = b"\n".join(line(event(n)) for n in range(1000))
    events = run.parser.parse_stream(io.BytesIO(data), "audit.log")
    for _ in range(700):
        next(events)
    assert 700 - 256 <= run.counters.get("events") <= 700


def test_invalid_utf8_keeps_the_event_and_reports_once() -> None:
    """Invalid UTF-8 is replaced, the event comes out, and one invalid_utf8 diagnostic says so."""
    run = Run()
    data = line(event(1)).replace(b"system:k3s-supervisor", b"sys\xfftem") + b"\n"
    events = run.stream(data)
    assert [e.user for e in events] == ["sys\ufffdtem"]
    assert run.reasons == ["invalid_utf8"]
    assert str(run.errors[0].location) == "audit.log:1"
    assert "replaced" in run.errors[0].message


def test_event_over_max_event_bytes_keeps_metadata_and_drops_bodies() -> None:
    """An oversized event keeps its metadata, loses both bodies, and is marked truncated."""
    run = Run(max_event_bytes=2000)
    big = event(
        1,
        level="RequestResponse",
        requestObject={"data": "x" * 3000},
        responseObject={"data": "y"},
    )
    events = run.stream(line(event(0)) + b"\n" + line(big) + b"\n")
    assert [e.truncated for e in events] == [False, True]
    raw = events[1].raw
    assert "requestObject" not in raw and "responseObject" not in raw
    assert raw["verb"] == "get" and raw["level"] == "RequestResponse"
    assert run.reasons == ["event_too_large"]
    assert str(run.errors[0].location) == "audit.log:2"
    assert "requestObject and responseObject dropped" in run.errors[0].message


def test_only_the_oversized_item_of_a_batch_is_truncated() -> None:
    """In a batch over the limit each item is measured; small items keep their bodies."""
    run = Run(max_event_bytes=2000)
    small = event(1, requestObject={"a": 1})
    big = event(2, requestObject={"data": "x" * 3000})
    batch = {"kind": "EventList", "apiVersion": "audit.k8s.io/v1", "items": [small, big, small]}
    events = run.stream(line(batch) + b"\n")
    assert [e.truncated for e in events] == [False, True, False]
    assert "requestObject" in events[0].raw
    assert [str(e.location) for e in run.errors] == ["audit.log:1[1]"]


def test_line_over_max_line_bytes_is_skipped_and_reading_goes_on() -> None:
    """A line over the hard limit gives one line_too_long diagnostic; the next line is read."""
    run = Run(max_line_bytes=600)
    long_line = line(event(1, requestObject={"data": "x" * 1000}))
    events = run.stream(long_line + b"\n" + line(event(2)) + b"\n")
    assert [e.line for e in events] == [2]
    assert run.reasons == ["line_too_long"]
    assert str(run.errors[0].location) == "audit.log:1"


def test_multi_line_value_over_max_line_bytes_is_skipped_without_follow_on_errors() -> None:
    """A pretty-printed value over the limit is reported once and skipped to its closing line."""
    run = Run(max_line_bytes=600)
    big = json.dumps(event(1, requestObject={"items": [f"item-{n}" for n in range(200)]}), indent=2)
    data = big.encode() + b"\n" + line(event(2)) + b"\n"
    events = run.stream(data)
    assert [e.audit_id for e in events] == [event(2)["auditID"]]
    assert run.reasons == ["line_too_long"]
    assert str(run.errors[0].location) == "audit.log:1"


def test_overlong_line_inside_a_pretty_value_skips_that_value_only() -> None:
    """A too-long line in a multi-line value drops the value once; the next value is read."""
    run = Run(max_line_bytes=800)
    pretty = json.dumps(event(1, requestObject={"data": "x" * 1000}), indent=2).encode()
    events = run.stream(pretty + b"\n" + json.dumps(event(2), indent=2).encode() + b"\n")
    assert [e.audit_id for e in events] == [event(2)["auditID"]]
    assert run.reasons == ["line_too_long"]


def test_brackets_and_quotes_inside_strings_do_not_end_a_pretty_value_early() -> None:
    """Bracket counting ignores ``{ } [ ]`` and escaped quotes inside JSON strings."""
    run = Run()
    tricky = event(1, userAgent='curl "}]" {[', annotations={"note": 'a \\"} ] [ {\\"'})
    data = json.dumps(tricky, indent=2).encode() + b"\n" + line(event(2)) + b"\n"
    events = run.stream(data)
    assert [e.raw for e in events] == [tricky, event(2)]
    assert run.errors == []


def test_batch_item_locations_print_line_and_index() -> None:
    """A bad item prints as ``audit.log:3[5]``: the line the batch starts on and its index."""
    run = Run()
    items: list[object] = [event(n) for n in range(5)] + ["oops"]
    batch = line({"kind": "EventList", "apiVersion": "audit.k8s.io/v1", "items": items})
    events = run.stream(line(event(10)) + b"\n\n" + batch + b"\n")
    assert [e.location for e in events] == ["audit.log:1"] + [f"audit.log:3[{n}]" for n in range(5)]
    assert [str(e) for e in run.errors] == [
        "audit.log:3[5]: expected a JSON object (an audit Event), got string; item skipped"
    ]


def test_events_from_object_validates_and_expands_a_decoded_value() -> None:
    """A decoded webhook body yields its items; a list of numbers reports each bad item."""
    run = Run()
    batch = {"kind": "EventList", "apiVersion": "audit.k8s.io/v1", "items": [event(1), event(2)]}
    assert [e.item for e in run.parser.events_from_object(batch, "webhook", 1)] == [0, 1]
    assert list(run.parser.events_from_object([1, 2, 3], "webhook", 4)) == []
    assert [str(e.location) for e in run.errors] == ["webhook:4[0]", "webhook:4[1]", "webhook:4[2]"]
    assert set(run.reasons) == {"not_an_object"}


def test_events_from_object_applies_max_event_bytes_when_size_is_given() -> None:
    """With ``size`` over the limit the event is truncated; without it the limit is not applied."""
    run = Run(max_event_bytes=100)
    assert [e.truncated for e in run.parser.events_from_object(event(1), "w", 1)] == [False]
    found = list(run.parser.events_from_object(event(2, requestObject={}), "w", 1, size=500))
    assert [e.truncated for e in found] == [True]
    assert "requestObject" not in found[0].raw


def test_parse_bytes_accepts_a_gzip_webhook_body() -> None:
    """A gzip-compressed EventList body (found by magic bytes) yields its items."""
    run = Run()
    batch = {"kind": "EventList", "apiVersion": "audit.k8s.io/v1", "items": [event(1), event(2)]}
    events = run.bytes(gzip.compress(line(batch)))
    assert [e.location for e in events] == ["body:1[0]", "body:1[1]"]
    assert run.errors == []


def test_parse_bytes_reports_a_corrupt_gzip_body_once() -> None:
    """A body with gzip magic but corrupt data gives one invalid_gzip diagnostic."""
    run = Run()
    assert run.bytes(b"\x1f\x8b" + b"not really gzip" * 10) == []
    assert run.reasons == ["invalid_gzip"]


def test_parse_stream_reports_gzip_input_instead_of_reading_binary_lines() -> None:
    """Compressed bytes handed to parse_stream give one diagnostic, not one per binary line."""
    run = Run()
    data = gzip.compress(b"\n".join(line(event(n)) for n in range(200)))
    assert run.stream(data) == []
    assert run.reasons == ["compressed"]


def test_truncated_gzip_file_keeps_its_complete_lines(tmp_path: Any) -> None:
    """A gzip file cut mid-write yields the lines before the cut, then one located diagnostic."""
    from k3watch.sources.files import InputFile, open_input

    data = b"".join(line(event(n)) + b"\n" for n in range(2000))
    compressed = gzip.compress(data)
    path = tmp_path / "audit.log.1.gz"
    path.write_bytes(compressed[: len(compressed) * 3 // 4])
    run = Run()
    with open_input(InputFile("audit.log.1.gz", path, None)) as stream:
        events = list(run.parser.parse_stream(stream, "audit.log.1.gz"))
    assert 0 < len(events) < 2000
    assert [e.line for e in events] == list(range(1, len(events) + 1))
    assert run.reasons == ["truncated_gzip"]
    location = run.errors[0].location
    assert location is not None and location.source == "audit.log.1.gz"
    assert location.line is not None and location.line > len(events)


class _FailingStream(io.RawIOBase):
    """Returns ``data`` and then fails like a disk with a bad sector."""

    def __init__(self, data: bytes) -> None:
        self._data = data

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        if not self._data:
            raise OSError(5, "Input/output error")
        chunk, self._data = self._data[:size], self._data[size:]
        return chunk


def test_read_error_ends_the_stream_with_one_diagnostic() -> None:
    """An OSError while reading keeps the events read so far and reports read_error once."""
    run = Run()
    stream = _FailingStream(line(event(1)) + b"\n" + line(event(2)) + b"\n")
    events = list(run.parser.parse_stream(stream, "audit.log"))  # type: ignore[arg-type]
    assert [e.line for e in events] == [1, 2]
    assert run.reasons == ["read_error"]
    assert "Input/output error" in run.errors[0].message


@pytest.mark.parametrize(
    ("api_version", "accepted"),
    [
        ("audit.k8s.io/v1", True),
        ("audit.k8s.io/v1beta1", True),
        (None, True),
        ("v1", False),
        ("audit.k8s.io", False),
        (3, False),
    ],
)
def test_api_version_must_be_in_the_audit_group_when_present(
    api_version: object, accepted: bool
) -> None:
    """v1, v1beta1 and a missing apiVersion are events; other groups are not."""
    raw = event(1)
    if api_version is None:
        del raw["apiVersion"]
    else:
        raw["apiVersion"] = api_version
    run = Run()
    assert len(run.stream(line(raw))) == (1 if accepted else 0)
    assert run.reasons == ([] if accepted else ["unknown_api_version"])


def test_blank_and_whitespace_lines_are_ignored_silently() -> None:
    """Empty lines, spaces and CRLF-only lines produce neither events nor diagnostics."""
    run = Run()
    assert run.stream(b"\n\n   \n\t\r\n\r\n") == []
    assert run.errors == []
    assert run.counters.snapshot() == {}
