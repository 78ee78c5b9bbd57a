"""audit_file: following the API-server audit log through rotations, resuming from checkpoints."""

from __future__ import annotations

import gzip
import os
import shutil
from pathlib import Path

import orjson
import pytest

from k3watch.errors import InputError
from k3watch.sources.audit_file import AuditFileSource
from k3watch.sources.base import FilePosition, Item, Source
from k3watch.sources.checkpoint import CheckpointStore


def audit_line(i: int, **extra: object) -> bytes:
    event = {
        "kind": "Event",
        "apiVersion": "audit.k8s.io/v1",
        "level": "Metadata",
        "auditID": f"id-{i:04d}",
        "stage": "ResponseComplete",
        "requestURI": "/api/v1/namespaces/default/pods",
        "verb": "list",
        "user": {"username": "alice"},
        "requestReceivedTimestamp": "2026-03-02T10:00:00.000000Z",
        **extra,
    }
    return orjson.dumps(event) + b"\n"


def lines(*numbers: int) -> bytes:
    return b"".join(audit_line(i) for i in numbers)


def append(path: Path, data: bytes) -> None:
    with open(path, "ab") as file:
        file.write(data)


def ids(items: list[Item]) -> list[str | None]:
    return [item.event.audit_id for item in items]


def expected(*numbers: int) -> list[str | None]:
    return [f"id-{i:04d}" for i in numbers]


def lumberjack(log: Path, second: int, *, compress: bool = False) -> Path:
    """Rotate as the API server does: rename to audit-<time>.log, maybe gzip it."""
    backup = log.with_name(f"audit-2026-03-02T10-11-{second:02d}.000.log")
    os.rename(log, backup)
    if compress:
        packed = backup.with_name(backup.name + ".gz")
        packed.write_bytes(gzip.compress(backup.read_bytes()))
        backup.unlink()
        return packed
    return backup


def copytruncate(log: Path) -> None:
    """Rotate as logrotate's copytruncate does: shift .N, copy to .1, truncate in place."""
    numbered = sorted(
        (p for p in log.parent.iterdir() if p.name.startswith(log.name + ".")),
        key=lambda p: -int(p.name.removesuffix(".gz").rsplit(".", 1)[1]),
    )
    for backup in numbered:
        base, _, number = backup.name.removesuffix(".gz").rpartition(".")
        gz = ".gz" if backup.name.endswith(".gz") else ""
        os.rename(backup, backup.with_name(f"{base}.{int(number) + 1}{gz}"))
    shutil.copyfile(log, log.with_name(log.name + ".1"))
    with open(log, "r+b") as file:
        file.truncate(0)


class Errors(list[InputError]):
    def reasons(self) -> list[str]:
        return [e.reason for e in self]


@pytest.fixture
def log(tmp_path: Path) -> Path:
    directory = tmp_path / "logs"
    directory.mkdir()
    return directory / "audit.log"


@pytest.fixture
def store(tmp_path: Path) -> CheckpointStore:
    return CheckpointStore(tmp_path / "checkpoints")


def source(log: Path, store: CheckpointStore | None = None, **options: object) -> AuditFileSource:
    options.setdefault("rotate_wait", 0)
    return AuditFileSource(log, checkpoints=store, **options)  # type: ignore[arg-type]


def read_once(
    log: Path, store: CheckpointStore, errors: list[InputError] | None = None
) -> list[Item]:
    """Run a --once source from the checkpoint, commit everything, return what it delivered."""
    src = source(log, store, follow=False, on_error=(errors if errors is not None else []).append)
    items: list[Item] = []
    while not src.done:
        batch = src.poll()
        if batch:
            src.commit(batch[-1].position)
        items += batch
    src.close()
    return items


def test_audit_file_source_satisfies_the_source_protocol(log: Path) -> None:
    """The source is a Source (name, counters, done, poll, commit, close)."""
    log.write_bytes(b"")
    src = source(log)
    assert isinstance(src, Source)
    src.close()
    assert src.done


def test_once_mode_reads_every_line_then_is_done(log: Path) -> None:
    """--once reads what the file holds, in order, and then reports done."""
    log.write_bytes(lines(0, 1, 2))
    src = source(log, follow=False)
    items = src.poll()
    assert ids(items) == expected(0, 1, 2)
    assert src.done
    assert src.counters.get("items") == 3
    assert src.parser_counters.get("events") == 3


def test_each_item_carries_the_position_after_its_line(log: Path) -> None:
    """A position names the file (path, inode, fingerprint of its first line) and the offset
    and line number just after the item's line."""
    data = lines(0, 1)
    log.write_bytes(data)
    items = source(log, follow=False).poll()
    first, second = (item.position for item in items)
    assert isinstance(first, FilePosition) and isinstance(second, FilePosition)
    assert (first.offset, first.line) == (len(audit_line(0)), 2)
    assert (second.offset, second.line) == (len(data), 3)
    assert first.inode == log.stat().st_ino == second.inode
    assert first.fingerprint.size == len(audit_line(0))
    assert first.path == str(log)


def test_follow_mode_reads_lines_as_they_are_appended(log: Path) -> None:
    """A following source returns new lines on later polls and is never done."""
    log.write_bytes(lines(0))
    src = source(log)
    assert ids(src.poll()) == expected(0)
    assert src.poll() == []
    append(log, lines(1, 2))
    assert ids(src.poll()) == expected(1, 2)
    assert not src.done
    src.close()


def test_poll_waits_up_to_its_timeout_for_new_lines(log: Path) -> None:
    """poll(timeout=…) returns as soon as a line arrives (here: already there) or when the
    timeout passes with nothing."""
    log.write_bytes(b"")
    src = source(log, poll_interval=0.01)
    assert src.poll(timeout=0.05) == []
    append(log, lines(0))
    assert ids(src.poll(timeout=5)) == expected(0)
    src.close()


def test_poll_returns_at_most_max_items_and_keeps_the_rest(log: Path) -> None:
    """Items beyond max_items wait for the next poll, in order."""
    log.write_bytes(lines(*range(5)))
    src = source(log, follow=False)
    assert ids(src.poll(max_items=2)) == expected(0, 1)
    assert not src.done
    assert ids(src.poll(max_items=10)) == expected(2, 3, 4)
    assert src.done


def test_a_partial_last_line_waits_for_its_newline(log: Path) -> None:
    """Half a line is not parsed; once the rest and the newline arrive it is one event."""
    second = audit_line(1)
    log.write_bytes(lines(0) + second[:40])
    src = source(log)
    assert ids(src.poll()) == expected(0)
    append(log, second[40:-1])
    assert src.poll() == []
    append(log, b"\n")
    assert ids(src.poll()) == expected(1)
    assert src.parser_counters.total("parse_errors") == 0
    src.close()


def test_once_mode_leaves_a_live_files_incomplete_last_line_for_later(
    log: Path, store: CheckpointStore
) -> None:
    """At the end of --once the live file's incomplete line is not emitted (it is still being
    written); the next run reads it whole."""
    last = audit_line(1)
    log.write_bytes(lines(0) + last[:30])
    assert ids(read_once(log, store)) == expected(0)
    append(log, last[30:])
    assert ids(read_once(log, store)) == expected(1)


def test_start_at_end_reads_only_lines_written_later(log: Path) -> None:
    """A first start with start_at=end skips what is there (an incomplete line included)."""
    log.write_bytes(lines(0, 1) + audit_line(2)[:20])
    src = source(log, start_at="end")
    assert src.poll() == []
    append(log, audit_line(2)[20:] + lines(3))
    assert ids(src.poll()) == expected(2, 3)
    assert src.poll()[0:0] == []
    src.close()


def test_a_missing_file_is_reported_once_and_read_when_it_appears(log: Path) -> None:
    """Following a file that does not exist yet: one not_found error, then its lines."""
    errors = Errors()
    src = source(log, on_error=errors.append)
    assert src.poll() == []
    assert src.poll() == []
    assert errors.reasons() == ["not_found"]
    log.write_bytes(lines(0))
    assert ids(src.poll()) == expected(0)
    src.close()


def test_a_missing_directory_in_once_mode_is_reported_and_done(tmp_path: Path) -> None:
    """--once on a path whose directory does not exist: not_found, then done."""
    errors = Errors()
    src = source(tmp_path / "nowhere" / "audit.log", follow=False, on_error=errors.append)
    assert src.poll() == []
    assert src.done
    assert errors.reasons() == ["not_found"]
    assert src.counters.get("failed", "not_found") == 1


def test_a_directory_at_the_path_is_reported(tmp_path: Path) -> None:
    """A directory where the log should be is an error, not a crash."""
    (tmp_path / "audit.log").mkdir()
    errors = Errors()
    src = source(tmp_path / "audit.log", follow=False, on_error=errors.append)
    assert src.poll() == []
    assert src.done
    assert errors.reasons() == ["is_a_directory"]


def test_a_huge_line_is_skipped_and_reported_and_the_next_lines_read(log: Path) -> None:
    """A line over max_line_bytes is reported (line_too_long) and skipped; memory stays
    bounded because the line is not kept."""
    huge = audit_line(1, requestObject={"blob": "x" * 50_000})
    log.write_bytes(lines(0) + huge + lines(2))
    errors = Errors()
    src = source(log, follow=False, max_line_bytes=10_000, on_error=errors.append)
    assert ids(src.poll()) == expected(0, 2)
    assert errors.reasons() == ["line_too_long"]
    assert str(errors[0]).startswith(f"{log}:2:")


def test_a_huge_line_arriving_in_pieces_is_skipped_once_complete(log: Path) -> None:
    """An over-long line written in several appends is skipped as one line."""
    huge = audit_line(1, requestObject={"blob": "y" * 30_000})
    log.write_bytes(lines(0))
    errors = Errors()
    src = source(log, max_line_bytes=10_000, on_error=errors.append)
    src.poll()
    for start in range(0, len(huge), 7_000):
        append(log, huge[start : start + 7_000])
        src.poll()
    append(log, lines(2))
    assert ids(src.poll()) == expected(2)
    assert errors.reasons() == ["line_too_long"]
    src.close()


def test_invalid_utf8_is_replaced_reported_and_the_event_kept(log: Path) -> None:
    """Invalid UTF-8 in a line: the event is parsed with U+FFFD and reported."""
    bad = audit_line(0, user={"username": "al-ice"}).replace(b"al-ice", b"al\xffice")
    log.write_bytes(bad + lines(1))
    errors = Errors()
    items = source(log, follow=False, on_error=errors.append).poll()
    assert ids(items) == expected(0, 1)
    assert items[0].event.raw["user"]["username"] == "al\ufffdice"
    assert errors.reasons() == ["invalid_utf8"]


def test_lines_that_are_not_events_are_reported_never_raised(log: Path) -> None:
    """Invalid JSON and non-events are counted by reason; the good lines still come."""
    log.write_bytes(lines(0) + b"{not json\n" + b"[1]\n" + b"\n" + lines(1))
    errors = Errors()
    src = source(log, follow=False, on_error=errors.append)
    assert ids(src.poll()) == expected(0, 1)
    assert errors.reasons() == ["invalid_json", "not_an_object"]
    assert src.parser_counters.get("parse_errors", "invalid_json") == 1


def test_a_damaged_checkpoint_is_reported_and_the_source_starts_afresh(
    log: Path, store: CheckpointStore
) -> None:
    """A checkpoint file that is not JSON: invalid_checkpoint, then a first start."""
    store.directory.mkdir(mode=0o700)
    store.path_for("audit_file").write_bytes(b"{garbage")
    log.write_bytes(lines(0))
    errors: list[InputError] = []
    assert ids(read_once(log, store, errors)) == expected(0)
    assert [e.reason for e in errors] == ["invalid_checkpoint"]


def test_an_unopenable_live_file_while_following_is_reported_once_and_retried(log: Path) -> None:
    """Any open error of the live file (here a symlink loop) is reported once; the source
    keeps polling without spinning and reads the file once it can be opened."""
    os.symlink(log.name, log)
    errors = Errors()
    src = source(log, on_error=errors.append)
    assert src.poll() == [] and src.poll() == []
    assert errors.reasons() == ["unreadable"]
    log.unlink()
    log.write_bytes(lines(0))
    assert ids(src.poll()) == expected(0)
    src.close()
