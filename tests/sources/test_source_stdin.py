"""stdin: lines from a stream, parsed with the parser chosen by name."""

from __future__ import annotations

import io
import os
import threading
import time

import orjson
import pytest

from k3watch.errors import UsageError
from k3watch.sources.base import Item, Source
from k3watch.sources.stdin import StdinSource


def audit_line(i: int) -> bytes:
    return orjson.dumps({"kind": "Event", "auditID": f"id-{i}", "verb": "get"}) + b"\n"


def read_all(source: StdinSource, timeout: float = 10.0) -> list[Item]:
    items: list[Item] = []
    deadline = time.monotonic() + timeout
    while not source.done and time.monotonic() < deadline:
        items += source.poll(timeout=0.2)
    return items


def test_stdin_source_satisfies_the_source_protocol() -> None:
    """StdinSource is a Source."""
    assert isinstance(StdinSource(stream=io.BytesIO()), Source)


def test_audit_lines_from_a_stream_then_done_at_its_end() -> None:
    """Every line is an event; the last line counts without a newline; the end ends the source."""
    stream = io.BytesIO(audit_line(1) + audit_line(2).rstrip(b"\n"))
    source = StdinSource("audit", stream=stream)
    items = read_all(source)
    assert [i.event.audit_id for i in items] == ["id-1", "id-2"]
    assert all(i.position is None for i in items)
    assert source.done
    assert items[0].event.location == "<stdin>:1"


def test_a_component_format_gets_stable_keys_from_the_streams_content() -> None:
    """Records of a registry parser get keys of the source name, a fingerprint of the first
    line and the offset: the same input gives the same keys."""
    text = b'time="2026-03-02T10:00:00Z" level=info msg="one"\n' + b"plain second\n"
    first = read_all(StdinSource("k3s", stream=io.BytesIO(text)))
    second = read_all(StdinSource("k3s", stream=io.BytesIO(text)))
    assert [i.event.raw["message"] for i in first] == ["one\nplain second"]
    assert [i.event.raw["_key"] for i in first] == [i.event.raw["_key"] for i in second]
    assert str(first[0].event.raw["_key"]).startswith("stdin#")
    assert str(first[0].event.raw["_key"]).endswith("@0")


def test_lines_written_to_a_pipe_arrive_while_it_stays_open() -> None:
    """A pipe that stays open: lines come as they are written; a held record is flushed when
    the pipe is quiet for idle_flush; closing the pipe ends the source."""
    read_end, write_end = os.pipe()
    with open(read_end, "rb", buffering=0) as reader, open(write_end, "wb", buffering=0) as writer:
        source = StdinSource("k3s", stream=reader, idle_flush=0.05)
        writer.write(b'time="2026-03-02T10:00:00Z" level=info msg="held"\n')
        items: list[Item] = []
        deadline = time.monotonic() + 10
        while not items and time.monotonic() < deadline:
            items = source.poll(timeout=0.2)
        assert [i.event.raw["message"] for i in items] == ["held"]
        assert not source.done
        closer = threading.Timer(0.05, writer.close)
        closer.start()
        assert read_all(source) == []
        closer.join()
        assert source.done


def test_bad_lines_are_reported_and_counted() -> None:
    """An invalid line is an error with its line number; the good lines still come."""
    errors: list[object] = []
    source = StdinSource(stream=io.BytesIO(b"nope\n" + audit_line(3)), on_error=errors.append)
    assert [i.event.audit_id for i in read_all(source)] == ["id-3"]
    assert [getattr(e, "reason", "") for e in errors] == ["invalid_json"]
    assert str(errors[0]).startswith("<stdin>:1: invalid JSON")
    assert source.counters.get("lines") == 2


def test_an_unknown_format_is_a_usage_error() -> None:
    """The parser is chosen by name; an unknown name fails at construction."""
    with pytest.raises(UsageError):
        StdinSource("nope", stream=io.BytesIO())
