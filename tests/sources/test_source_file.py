"""file: component logs (k3s.log, containerd.log, kern.log, syslog) with a registry parser."""

from __future__ import annotations

import gzip
import os
from pathlib import Path

import pytest

from k3watch.errors import UsageError
from k3watch.sources.base import FilePosition, HeldRecord, Item
from k3watch.sources.checkpoint import CheckpointStore
from k3watch.sources.rotation import fingerprint_of
from k3watch.sources.tail import FileSource


def syslog(pid: int, text: str) -> str:
    return f"Mar  2 10:00:00 node-1 k3s[{pid}]: {text}\n"


def header(pid: int, message: str) -> str:
    return syslog(pid, f'time="2026-03-02T10:00:00Z" level=info msg="{message}"')


def messages(items: list[Item]) -> list[str]:
    return [str(item.event.raw["message"]) for item in items]


def source(path: Path, store: CheckpointStore | None = None, **options: object) -> FileSource:
    options.setdefault("format", "k3s")
    options.setdefault("rotate_wait", 0)
    options.setdefault("idle_flush", 3600)
    return FileSource(path, name="k3s", checkpoints=store, **options)  # type: ignore[arg-type]


def drain_once(path: Path, store: CheckpointStore) -> list[Item]:
    src = source(path, store, follow=False)
    items: list[Item] = []
    while not src.done:
        batch = src.poll()
        if batch:
            src.commit(batch[-1].position)
        items += batch
    return items


@pytest.fixture
def store(tmp_path: Path) -> CheckpointStore:
    return CheckpointStore(tmp_path / "checkpoints")


def test_continuation_lines_join_their_record_and_keys_name_file_and_offset(tmp_path: Path) -> None:
    """A headerless line joins the record of its writer; each record's _key is the watched
    path, the file's fingerprint and the record's first byte offset."""
    log = tmp_path / "k3s.log"
    text = header(1, "first") + syslog(1, "\tsecond line of first") + header(1, "next")
    log.write_text(text)
    items = source(log, follow=False).poll()
    assert messages(items) == ["first\n\tsecond line of first", "next"]
    fingerprint = fingerprint_of(text.encode())
    offsets = [0, len(header(1, "first") + syslog(1, "\tsecond line of first"))]
    assert [item.event.raw["_key"] for item in items] == [
        f"{log}#{fingerprint.sha256[:16]}@{offset}" for offset in offsets
    ]
    assert items[0].event.source == str(log)


def test_a_held_record_is_flushed_after_idle_flush(tmp_path: Path) -> None:
    """A following source holds a record for continuation lines, then emits it once the file
    has been quiet for idle_flush seconds."""
    log = tmp_path / "k3s.log"
    log.write_text(header(1, "alone"))
    src = source(log, idle_flush=0.05, poll_interval=0.01)
    assert src.poll() == []
    assert messages(src.poll(timeout=5)) == ["alone"]
    src.close()


def test_positions_hold_records_not_yet_emitted(tmp_path: Path) -> None:
    """The position after an item lists the records started before it but still held."""
    log = tmp_path / "k3s.log"
    lines = [header(101, "B"), header(100, "A"), header(100, "A2")]
    log.write_text("".join(lines))
    src = source(log)
    (item,) = src.poll()
    assert messages([item]) == ["A"]
    position = item.position
    assert isinstance(position, FilePosition)
    assert position.offset == len("".join(lines))
    b_offset, a2_offset = 0, len(lines[0] + lines[1])
    assert position.held == (HeldRecord(b_offset, 1), HeldRecord(a2_offset, 3))
    assert (position.resume_offset, position.resume_line) == (0, 1)
    src.close()


def test_crashes_while_records_are_held_deliver_each_record_once(
    tmp_path: Path, store: CheckpointStore
) -> None:
    """Two crashes, each after committing while other writers' records were held: every
    record is committed exactly once, in order."""
    log = tmp_path / "k3s.log"
    log.write_text(
        header(101, "B")
        + header(100, "A")
        + header(100, "A2")
        + header(100, "C")
        + header(101, "B2")
    )
    committed: list[str] = []
    first = source(log, store)
    items = first.poll()
    assert messages(items) == ["A", "A2", "B"]
    first.commit(items[0].position)
    committed += messages(items[:1])
    first.close()

    second = source(log, store)
    items = second.poll()
    assert messages(items) == ["A2", "B"]  # A was committed: not delivered again
    second.commit(items[0].position)
    committed += messages(items[:1])
    second.close()

    committed += messages(drain_once(log, store))
    assert committed == ["A", "A2", "B", "C", "B2"]


def test_keys_stay_the_same_when_a_record_is_read_again_from_a_compressed_backup(
    tmp_path: Path, store: CheckpointStore
) -> None:
    """Records re-delivered after a crash come from the renamed, compressed file with the
    same _key as the first time, so the server can drop the duplicates."""
    log = tmp_path / "k3s.log"
    log.write_text(header(1, "one") + header(1, "two") + header(1, "three"))
    src = source(log, store)
    items = src.poll()
    src.commit(items[0].position)
    first_keys = [item.event.raw["_key"] for item in items]
    src.close()
    backup = tmp_path / "k3s.log.1.gz"
    backup.write_bytes(gzip.compress(log.read_bytes()))
    log.unlink()
    log.write_text(header(1, "four"))
    again = drain_once(log, store)
    assert messages(again) == ["two", "three", "four"]
    assert again[0].event.raw["_key"] == first_keys[1]
    assert again[0].event.source == str(backup)


def test_kern_log_rotated_by_number_with_the_kernel_parser(tmp_path: Path) -> None:
    """kern.log with the kernel parser: AppArmor denials kept, other kernel lines dropped;
    kern.log.1 is read before kern.log."""
    log = tmp_path / "kern.log"
    denial = (
        "Mar  2 10:00:00 node-1 kernel: [   12.345678] audit: type=1400 "
        'audit(1772445600.123:42): apparmor="DENIED" operation="open" '
        'profile="cri-containerd.apparmor.d" name="/etc/shadow" pid=4242 comm="cat" '
        'requested_mask="r" denied_mask="r" fsuid=0 ouid=0\n'
    )
    (tmp_path / "kern.log.1").write_text(denial)
    log.write_text("Mar  2 10:00:01 node-1 kernel: [   13.0] eth0: link up\n" + denial)
    src = source(log, format="kernel", follow=False, read_backups=True)
    items = src.poll()
    assert len(items) == 2
    assert all(item.event.raw["kernel"]["apparmor"] == "DENIED" for item in items)
    assert items[0].event.source == str(tmp_path / "kern.log.1")
    assert src.parser_counters.get("skipped", "not_apparmor_or_seccomp") == 1


def test_syslog_without_an_extension_follows_its_rotation(tmp_path: Path) -> None:
    """/var/log/syslog style names (no extension) rotate to syslog.1 and are followed."""
    log = tmp_path / "syslog"
    log.write_text(header(1, "one") + header(1, "two"))
    src = source(log, format="syslog")
    assert messages(src.poll()) == ["one"]
    os.rename(log, tmp_path / "syslog.1")
    log.write_text(header(1, "three"))
    assert messages(src.poll()) == ["two"]  # flushed at the end of the renamed file
    with open(log, "a") as file:
        file.write(header(1, "four"))
    assert messages(src.poll()) == ["three"]
    src.close()


def test_containerd_log_records_are_containerd_component(tmp_path: Path) -> None:
    """containerd.log with the containerd parser: component containerd, options applied."""
    log = tmp_path / "containerd.log"
    log.write_text('time="2026-03-02T10:00:00Z" level=info msg="starting containerd"\n')
    items = source(log, format="containerd", follow=False, parser_options={"host": "node-1"}).poll()
    assert items[0].event.raw["component"] == "containerd"
    assert items[0].event.raw["host"] == "node-1"


def test_once_mode_flushes_held_records_at_the_end(tmp_path: Path) -> None:
    """--once emits the record the parser still holds when the file ends."""
    log = tmp_path / "k3s.log"
    log.write_text(header(1, "last"))
    src = source(log, follow=False)
    assert messages(src.poll()) == ["last"]
    assert src.done


def test_an_unknown_format_is_a_usage_error(tmp_path: Path) -> None:
    """A parser name not in the registry fails at construction, naming the known ones."""
    with pytest.raises(UsageError, match="unknown log format"):
        FileSource(tmp_path / "x.log", format="nope")


def test_over_long_component_lines_are_cut_and_reported(tmp_path: Path) -> None:
    """A component line over max_line_bytes keeps its start, marked truncated, and is
    reported as line_too_long."""
    log = tmp_path / "k3s.log"
    log.write_text(header(1, "x" * 5000) + header(1, "next"))
    errors: list[object] = []
    src = source(log, follow=False, max_line_bytes=1000, on_error=errors.append)
    items = src.poll()
    assert [item.event.raw.get("truncated") for item in items] == [True, None]
    assert [getattr(e, "reason", None) for e in errors] == ["line_too_long"]


JOURNAL_EXPORTS = sorted((Path(__file__).parents[1] / "golden" / "journald").glob("*.input"))


def test_a_journal_export_file_keeps_cursor_keys_and_resumes_exactly(tmp_path: Path) -> None:
    """``journalctl -o json`` output read as a file: each record keeps its journal cursor as
    its key (the file offset would name nothing stable), and resuming after any committed item
    delivers each record exactly once, continuation lines and interleaved writers included."""
    log = tmp_path / "journal.json"
    log.write_bytes(b"".join(p.read_bytes() for p in JOURNAL_EXPORTS))
    every = source(log, format="journald", follow=False).poll(10_000)
    keys = [str(item.event.raw["_key"]) for item in every]
    assert len(keys) == len(set(keys)) > 20
    assert keys == [str(item.event.raw["source"]["cursor"]) for item in every]
    for stop in range(len(every)):
        store = CheckpointStore(tmp_path / f"checkpoints-{stop}")
        first = source(log, store, format="journald", follow=False)
        taken: list[Item] = []
        while len(taken) <= stop:
            batch = first.poll(1)
            assert batch
            taken += batch
        first.commit(taken[-1].position)
        first.close()
        rest = drain_once_as(log, store, "journald")
        assert [str(i.event.raw["_key"]) for i in taken + rest] == keys, stop


def drain_once_as(path: Path, store: CheckpointStore, format: str) -> list[Item]:
    src = source(path, store, format=format, follow=False)
    items: list[Item] = []
    while not src.done:
        batch = src.poll()
        if batch:
            src.commit(batch[-1].position)
        items += batch
    return items
