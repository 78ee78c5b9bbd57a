"""journalctl --output=json entries: MESSAGE in its three encodings, keys, times, joining."""

from __future__ import annotations

import io
from typing import Any

import orjson

from k3watch.errors import InputError
from k3watch.event import Event
from k3watch.parse.journald_json import JournaldParser
from k3watch.telemetry import Counters

T0 = 1716496193_402113  # 2024-05-23T20:29:53.402113Z in µs


def entry(message: Any, number: int = 1, **extra: Any) -> bytes:
    fields = {
        "__CURSOR": f"s=abc;i={number:x}",
        "__REALTIME_TIMESTAMP": str(T0 + number * 1000),
        "_HOSTNAME": "server",
        "PRIORITY": "6",
        "SYSLOG_IDENTIFIER": "k3s",
        "_PID": "334",
        "_TRANSPORT": "stdout",
        "_SYSTEMD_UNIT": "k3s.service",
        "_SYSTEMD_INVOCATION_ID": "3c9d0e1f",
        "MESSAGE": message,
    }
    fields.update(extra)
    return orjson.dumps({k: v for k, v in fields.items() if v is not None})


def parse(*lines: bytes) -> tuple[list[Event], list[InputError], Counters]:
    errors: list[InputError] = []
    counters = Counters("journald")
    parser = JournaldParser(counters, errors.append)
    events = list(parser.parse_stream(io.BytesIO(b"\n".join(lines)), "journal.json"))
    return events, errors, counters


def test_string_message() -> None:
    """A string MESSAGE is read as the line it is; the cursor is the key."""
    events, errors, counters = parse(entry('time="2024-05-23T20:29:53Z" level=info msg="hi"'))
    assert errors == []
    raw = events[0].raw
    assert raw["message"] == "hi" and raw["format"] == "logrus" and raw["component"] == "k3s"
    assert raw["_key"] == "s=abc;i=1"
    assert raw["source"] == {"cursor": "s=abc;i=1", "invocation": "3c9d0e1f"}
    assert (raw["host"], raw["unit"], raw["pid"]) == ("server", "k3s.service", 334)
    assert counters.get("events") == 1 and counters.get("lines") == 1


def test_byte_array_message_is_decoded() -> None:
    """journalctl writes non-printable text (colour codes) as an array of bytes."""
    text = "\x1b[36mINFO\x1b[0m[2024-05-23T20:40:01Z] Starting k3s  \x1b[36mnode\x1b[0m=server"
    events, errors, _ = parse(entry(list(text.encode())))
    assert errors == []
    raw = events[0].raw
    assert (raw["message"], raw["fields"]) == ("Starting k3s", {"node": "server"})
    assert raw["time"] == "2024-05-23T20:40:01.000000Z"


def test_byte_array_with_invalid_utf8_keeps_the_rest_of_the_text() -> None:
    """Bytes that are not UTF-8 become U+FFFD; the entry is read, not reported."""
    events, errors, _ = parse(entry(list(b"plain \xff\xfe text")))
    assert errors == []
    assert events[0].raw["message"] == "plain \ufffd\ufffd text"


def test_null_message_is_reported_and_kept_empty() -> None:
    """A MESSAGE over 4 KiB read without --all is null: reported, kept, marked truncated."""
    nulled = entry("x").replace(b'"MESSAGE":"x"', b'"MESSAGE":null')
    events, errors, counters = parse(nulled)
    assert [e.reason for e in errors] == ["message_omitted"]
    assert "--all" in str(errors[0]) and str(errors[0]).startswith("journal.json:1: ")
    raw = events[0].raw
    assert raw["message"] == "" and raw["truncated"] is True and events[0].truncated
    assert raw["time"] == "2024-05-23T20:29:53.403113Z"
    assert counters.get("parse_errors", "message_omitted") == 1


def test_entry_without_message_is_reported() -> None:
    events, errors, _ = parse(entry(None))
    assert [e.reason for e in errors] == ["missing_message"]
    assert events[0].raw["message"] == ""


def test_plain_text_takes_its_level_from_priority() -> None:
    events, _, _ = parse(
        entry(
            "something plain", PRIORITY="3", SYSLOG_IDENTIFIER="sshd", _SYSTEMD_UNIT="ssh.service"
        )
    )
    raw = events[0].raw
    assert (raw["level"], raw["format"], raw["ident"]) == ("error", "journald", "sshd")
    assert "component" not in raw


def test_klog_time_is_resolved_against_the_journal_time() -> None:
    """klog's local time without year is placed next to the entry's real time."""
    line = 'I0523 22:29:53.402000     334 kubelet.go:2403] "SyncLoop ADD" source="api"'
    events, errors, _ = parse(entry(line))
    assert errors == []
    assert events[0].raw["time"] == "2024-05-23T20:29:53.402000Z"  # the node runs at +02:00


def test_continuation_entries_join_and_keep_the_first_cursor() -> None:
    """Each line of a multi-line klog message is its own entry; they become one record."""
    events, _, counters = parse(
        entry(
            'I0523 20:29:53.000100     334 trace.go:236] Trace[1]: "List" (total time: 812ms):', 1
        ),
        entry("Trace[1]: [812.3ms] [812.3ms] END", 2),
        entry('time="2024-05-23T20:29:54Z" level=info msg="next"', 3),
    )
    assert [e.raw["_key"] for e in events] == ["s=abc;i=1", "s=abc;i=3"]
    assert events[0].raw["message"].endswith("\nTrace[1]: [812.3ms] [812.3ms] END")
    assert counters.get("joined") == 1


def test_entries_without_a_cursor_are_keyed_by_file_offset() -> None:
    first = entry('time="2024-05-23T20:29:53Z" level=info msg="a"', __CURSOR=None)
    events, _, _ = parse(first, entry('time="2024-05-23T20:29:54Z" level=info msg="b"', 2))
    assert events[0].raw["_key"] == "journal.json@0"
    assert events[0].raw["source"] == {"file": "journal.json", "offset": 0, "line": 1}


def test_bad_json_lines_are_located_and_the_rest_is_read() -> None:
    events, errors, counters = parse(b"{not json", b"[1]", entry("ok", 3))
    assert [(e.reason, str(e.location)) for e in errors] == [
        ("invalid_json", "journal.json:1"),
        ("not_an_object", "journal.json:2"),
    ]
    assert [e.raw["message"] for e in events] == ["ok"]
    assert counters.by_reason("parse_errors") == {"invalid_json": 1, "not_an_object": 1}


def test_audit_transport_gets_its_stamp_from_the_entry() -> None:
    """journald keeps an audit record's id and time in fields; they make the audit id."""
    events, errors, _ = parse(
        entry(
            'AVC apparmor="DENIED" operation="open" profile="cri-containerd.apparmor.d" '
            'name="/etc/shadow" pid=80211 comm="cat" requested_mask="r" denied_mask="r"',
            _TRANSPORT="audit",
            SYSLOG_IDENTIFIER="audit",
            _AUDIT_TYPE="1400",
            _AUDIT_ID="412",
            _SOURCE_REALTIME_TIMESTAMP="1716498000117000",
            _SYSTEMD_UNIT=None,
        )
    )
    assert errors == []
    kernel = events[0].raw["kernel"]
    assert kernel["audit_id"] == "1716498000.117:412" and kernel["record_type"] == "AVC"
    assert events[0].raw["time"] == "2024-05-23T21:00:00.117000Z"
