"""The spool on disk: durable frames, the acknowledged pointer, the size cap, torn and damaged
frames, private files."""

from __future__ import annotations

import logging
import os
import stat
from pathlib import Path

import orjson
import pytest

from k3watch.agent.spool import Spool, SpoolBusyError
from k3watch.agent.spool_directory import ACKED_FILE, SUFFIX
from k3watch.agent.spool_format import PREFIX, FrameHeader


def header(
    count: int, first: float | None = 1_772_445_600.0, last: float | None = None
) -> FrameHeader:
    return FrameHeader("audit_file", "audit", "audit", count, first, last or first)


def events(start: int, count: int, pad: int = 0) -> list[bytes]:
    return [
        orjson.dumps({"auditID": f"id-{n}", "stage": "ResponseComplete", "pad": "x" * pad})
        for n in range(start, start + count)
    ]


def drain(spool: Spool) -> list[bytes]:
    """Read and acknowledge every frame; the events in order."""
    out: list[bytes] = []
    while (frame := spool.read()) is not None:
        out.extend(frame.lines)
        spool.ack(frame)
    return out


def segments(directory: Path) -> list[Path]:
    return sorted(directory.glob(f"*{SUFFIX}"))


def test_frames_come_back_in_order_and_survive_a_reopen(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool", max_size=1 << 30)
    spool.append(header(3), events(0, 3))
    spool.append(header(2), events(3, 2))
    first = spool.read()
    assert first is not None and first.lines == events(0, 3)
    assert first.header.count == 3 and first.header.source == "audit_file"
    spool.ack(first)
    second = spool.read()
    assert second is not None
    batch_id = spool.batch_id("node-1", second)
    spool.close()

    again = Spool(tmp_path / "spool", max_size=1 << 30)
    assert again.backlog_events == 2 and again.backlog_frames == 1
    frame = again.read()
    assert frame is not None and frame.lines == events(3, 2)
    assert again.batch_id("node-1", frame) == batch_id, "a frame sent again keeps its batch id"
    again.ack(frame)
    assert again.read() is None and again.backlog_events == 0
    again.close()


@pytest.mark.parametrize("encoding", ["zstd", "gzip", "identity"])
def test_frames_are_stored_compressed_and_read_back_as_written(
    tmp_path: Path, encoding: str
) -> None:
    spool = Spool(tmp_path / "spool", max_size=1 << 30, encoding=encoding)
    lines = events(0, 200, pad=300)
    spool.append(header(200), lines)
    frame = spool.read()
    assert frame is not None
    assert frame.header.encoding == encoding
    assert frame.lines == lines
    if encoding != "identity":
        assert len(frame.body) < len(b"\n".join(lines)) // 5
    spool.close()


def test_acknowledged_segments_are_deleted(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool", max_size=1 << 30, segment_bytes=4096)
    for n in range(20):
        spool.append(header(10), events(n * 10, 10, pad=20))
    assert len(segments(spool.directory)) > 3
    assert len(drain(spool)) == 200
    assert len(segments(spool.directory)) == 1, "only the segment being written is kept"
    spool.close()


def test_a_new_spool_never_reuses_the_batch_ids_of_a_deleted_one(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool", max_size=1 << 30)
    spool.append(header(1), events(0, 1))
    frame = spool.read()
    assert frame is not None
    old = spool.batch_id("node-1", frame)
    spool.close()
    for path in (tmp_path / "spool").iterdir():
        path.unlink()
    fresh = Spool(tmp_path / "spool", max_size=1 << 30)
    fresh.append(header(1), events(0, 1))
    frame = fresh.read()
    assert frame is not None and fresh.batch_id("node-1", frame) != old
    fresh.close()


def test_when_full_the_oldest_events_are_dropped_counted_and_logged(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="k3watch.agent.spool")
    spool = Spool(tmp_path / "spool", max_size=64 * 1024, segment_bytes=8 * 1024)
    written = 0
    for n in range(100):
        t = 1_772_445_600.0 + n
        spool.append(header(10, t, t + 0.5), events(n * 10, 10, pad=60))
        written += 10
    assert spool.size <= 64 * 1024
    dropped = spool.counters.get("dropped", reason="spool_full")
    assert dropped > 0
    assert spool.backlog_events == written - dropped
    delivered = drain(spool)
    assert len(delivered) == written - dropped
    # What is left is the newest events, in order.
    assert delivered == events(written - len(delivered), len(delivered), pad=60)
    messages = [r.getMessage() for r in caplog.records if "spool full" in r.getMessage()]
    assert messages, "dropping events is never silent"
    assert "2026-03-02T10:00:00" in messages[0], "the lost time range is named"
    total = sum(int(m.split("dropped the ")[1].split()[0]) for m in messages)
    assert total == dropped
    spool.close()


def test_a_torn_frame_at_the_tail_is_cut_away_on_open(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    spool = Spool(tmp_path / "spool", max_size=1 << 30)
    spool.append(header(2), events(0, 2))
    spool.append(header(2), events(2, 2))
    spool.close()
    last = segments(tmp_path / "spool")[-1]
    size = last.stat().st_size
    with last.open("r+b") as out:  # the second frame was being written when the power went
        out.truncate(size - 7)
    caplog.set_level(logging.WARNING, logger="k3watch.agent.spool")
    again = Spool(tmp_path / "spool", max_size=1 << 30)
    assert again.counters.get("torn_frames") == 1
    assert again.backlog_events == 2
    assert any("incomplete frame" in r.getMessage() for r in caplog.records)
    again.append(header(1), events(9, 1))
    assert drain(again) == events(0, 2) + events(9, 1)
    again.close()


def test_a_frame_with_a_bad_checksum_at_the_tail_is_cut_away(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool", max_size=1 << 30)
    spool.append(header(1), events(0, 1))
    spool.append(header(1), events(1, 1))
    spool.close()
    last = segments(tmp_path / "spool")[-1]
    data = bytearray(last.read_bytes())
    data[-3] ^= 0xFF
    last.write_bytes(bytes(data))
    again = Spool(tmp_path / "spool", max_size=1 << 30)
    assert again.counters.get("torn_frames") == 1
    assert drain(again) == events(0, 1)
    again.close()


def test_a_damaged_older_segment_is_skipped_counted_and_logged(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    spool = Spool(tmp_path / "spool", max_size=1 << 30, segment_bytes=2048)
    for n in range(6):
        spool.append(header(5), events(n * 5, 5, pad=50))
    spool.close()
    first = segments(tmp_path / "spool")[0]
    data = bytearray(first.read_bytes())
    header_length = PREFIX.unpack(data[: PREFIX.size])[1]
    data[PREFIX.size + header_length + 5] ^= 0xFF  # in the first frame's events
    first.write_bytes(bytes(data))
    caplog.set_level(logging.ERROR, logger="k3watch.agent.spool")
    again = Spool(tmp_path / "spool", max_size=1 << 30, segment_bytes=2048)
    delivered = drain(again)
    lost = again.counters.get("dropped", reason="corrupt")
    assert lost > 0 and len(delivered) == 30 - lost
    assert delivered == events(lost, 30 - lost, pad=50)
    assert any("damaged" in r.getMessage() for r in caplog.records)
    assert again.backlog_events == 0
    again.close()


def test_the_acknowledged_position_is_written_atomically_and_files_are_private(
    tmp_path: Path,
) -> None:
    spool = Spool(tmp_path / "spool", max_size=1 << 30)
    spool.append(header(1), events(0, 1))
    frame = spool.read()
    assert frame is not None
    spool.ack(frame)
    acked = orjson.loads((spool.directory / ACKED_FILE).read_bytes())
    assert (acked["segment"], acked["offset"]) == (frame.segment, frame.end)
    assert stat.S_IMODE(spool.directory.stat().st_mode) == 0o700
    for path in spool.directory.iterdir():
        assert stat.S_IMODE(path.stat().st_mode) & 0o077 == 0, path.name
    assert not [p for p in os.listdir(spool.directory) if p.endswith(".tmp")]
    spool.close()


def test_a_second_process_cannot_open_the_same_spool(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool", max_size=1 << 30)
    with pytest.raises(SpoolBusyError):
        Spool(tmp_path / "spool", max_size=1 << 30)
    spool.close()
    Spool(tmp_path / "spool", max_size=1 << 30).close()
