"""journald: journalctl --output=json over real journal files written by systemd-journal-remote."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
from tests.k3s.helpers import BOOT_ID, export_record, journal_remote, k3s_entry

from k3watch.errors import InputError, UsageError
from k3watch.sources.base import Item, JournalPosition
from k3watch.sources.checkpoint import CheckpointStore
from k3watch.sources.journald import JournaldSource, journal_matches

BASE_US = 1_772_445_600_000_000  # 2026-03-02T10:00:00Z


def k3s(seq: int, message: str, unit: str = "k3s.service", pid: str = "1234") -> dict[str, str]:
    entry = k3s_entry(
        f'time="2026-03-02T10:00:{seq % 60:02d}Z" level=info msg="{message}"',
        BASE_US + seq * 1000,
        seq,
        unit,
    )
    entry["_PID"] = pid
    return entry


def kernel(seq: int) -> dict[str, str]:
    return {
        "__REALTIME_TIMESTAMP": str(BASE_US + seq * 1000),
        "__MONOTONIC_TIMESTAMP": str(1_000_000 + seq),
        "_BOOT_ID": BOOT_ID,
        "_HOSTNAME": "server-1",
        "_TRANSPORT": "kernel",
        "SYSLOG_IDENTIFIER": "kernel",
        "PRIORITY": "5",
        "MESSAGE": (
            f'audit: type=1400 audit(1772445600.{seq:03d}:{seq}): apparmor="DENIED" '
            'operation="open" profile="cri-containerd.apparmor.d" name="/etc/shadow" '
            'pid=4242 comm="cat" requested_mask="r" denied_mask="r" fsuid=0 ouid=0'
        ),
    }


def other(seq: int) -> dict[str, str]:
    return k3s(seq, "not ours", unit="cron.service")


def systemd_about_k3s(seq: int) -> dict[str, str]:
    return {
        "__REALTIME_TIMESTAMP": str(BASE_US + seq * 1000),
        "__MONOTONIC_TIMESTAMP": str(1_000_000 + seq),
        "_BOOT_ID": BOOT_ID,
        "_HOSTNAME": "server-1",
        "_PID": "1",
        "_SYSTEMD_UNIT": "init.scope",
        "UNIT": "k3s.service",
        "SYSLOG_IDENTIFIER": "systemd",
        "MESSAGE": "k3s.service: Main process exited, code=exited, status=1/FAILURE",
    }


def write_journal(directory: Path, entries: list[dict[str, str]]) -> None:
    """Append entries to the journal file in ``directory`` (created on first use)."""
    subprocess.run(
        [journal_remote(), "-o", str(directory / "k3s.journal"), "-"],
        input=b"".join(export_record(e) for e in entries),
        check=True,
        capture_output=True,
    )


def messages(items: list[Item]) -> list[str]:
    return [str(item.event.raw["message"]) for item in items]


def collect(source: JournaldSource, count: int, timeout: float = 15.0) -> list[Item]:
    """Poll until ``count`` items came (or the source is done, or the deadline passed)."""
    items: list[Item] = []
    deadline = time.monotonic() + timeout
    while len(items) < count and not source.done and time.monotonic() < deadline:
        items += source.poll(timeout=0.2)
    return items


def read_once(journal: Path, store: CheckpointStore | None = None, **options: object) -> list[Item]:
    source = JournaldSource(directory=str(journal), follow=False, checkpoints=store, **options)  # type: ignore[arg-type]
    items: list[Item] = []
    deadline = time.monotonic() + 15
    while not source.done and time.monotonic() < deadline:
        batch = source.poll(timeout=0.2)
        if batch and store is not None:
            source.commit(batch[-1].position)
        items += batch
    source.close()
    return items


@pytest.fixture
def journal(tmp_path: Path) -> Path:
    directory = tmp_path / "journal"
    directory.mkdir()
    return directory


@pytest.fixture
def store(tmp_path: Path) -> CheckpointStore:
    return CheckpointStore(tmp_path / "checkpoints")


def test_matches_or_units_their_systemd_messages_and_the_kernel_transport() -> None:
    """Terms are separated by "+" (OR); values of one field in a term are ORed by journalctl."""
    assert journal_matches(["k3s", "k3s-agent.service"], kernel=True) == [
        "_SYSTEMD_UNIT=k3s.service",
        "_SYSTEMD_UNIT=k3s-agent.service",
        "+",
        "_PID=1",
        "UNIT=k3s.service",
        "UNIT=k3s-agent.service",
        "+",
        "_TRANSPORT=kernel",
    ]
    assert journal_matches([], kernel=False, extra=[["SYSLOG_IDENTIFIER=kubelet"]]) == [
        "SYSLOG_IDENTIFIER=kubelet"
    ]


def test_once_reads_k3s_agent_kernel_and_systemd_entries_and_nothing_else(journal: Path) -> None:
    """The default selection: both K3s units, systemd's messages about them, kernel messages;
    other units are not read."""
    write_journal(
        journal,
        [
            k3s(1, "server line"),
            other(2),
            kernel(3),
            k3s(4, "agent line", unit="k3s-agent.service", pid="99"),
            systemd_about_k3s(5),
        ],
    )
    items = read_once(journal)
    kernel_items = [i for i in items if i.event.raw.get("component") == "kernel"]
    others = [i for i in items if i not in kernel_items]
    assert sorted(messages(others)) == [
        "agent line",
        "k3s.service: Main process exited, code=exited, status=1/FAILURE",
        "server line",
    ]
    assert [i.event.raw["kernel"]["apparmor"] for i in kernel_items] == ["DENIED"]
    assert all(isinstance(i.position, JournalPosition) for i in items)
    assert all(str(i.event.raw["_key"]).startswith("s=") for i in items)


def test_restart_from_a_committed_cursor_reads_only_later_entries(
    journal: Path, store: CheckpointStore
) -> None:
    """A checkpointed cursor resumes after it; the committed records are not read again."""
    write_journal(journal, [k3s(i, f"m{i}") for i in range(1, 5)])
    source = JournaldSource(directory=str(journal), follow=False, checkpoints=store)
    items = collect(source, 4)
    assert messages(items) == ["m1", "m2", "m3", "m4"]
    source.commit(items[1].position)
    source.close()
    write_journal(journal, [k3s(5, "m5")])
    assert messages(read_once(journal, store)) == ["m3", "m4", "m5"]


def test_a_crash_with_held_records_redelivers_only_the_uncommitted(
    journal: Path, store: CheckpointStore
) -> None:
    """Records of two writers interleave and are held for continuation lines; across a crash
    every record is committed exactly once, in order."""
    write_journal(
        journal,
        [
            k3s(1, "a1", pid="1"),
            k3s(2, "b1", pid="2"),
            k3s(3, "a2", pid="1"),
            k3s(4, "b2", pid="2"),
            k3s(5, "a3", pid="1"),
        ],
    )
    source = JournaldSource(directory=str(journal), follow=True, checkpoints=store, idle_flush=60)
    items = collect(source, 3)
    assert messages(items) == ["a1", "b1", "a2"]
    position = items[0].position
    assert isinstance(position, JournalPosition)
    assert len(position.held) == 2  # b1 and a2 had started and were held
    source.commit(position)
    source.close()  # crash: b1 and a2 were sent but never acknowledged
    again = read_once(journal, store)
    assert messages(items[:1]) + messages(again) == ["a1", "b1", "a2", "b2", "a3"]


def test_follow_reads_entries_appended_to_the_journal(journal: Path) -> None:
    """journalctl --follow: entries written later arrive on later polls."""
    write_journal(journal, [kernel(1)])
    source = JournaldSource(directory=str(journal), idle_flush=60)
    try:
        assert len(collect(source, 1)) == 1
        write_journal(journal, [kernel(2), kernel(3)])
        assert len(collect(source, 2)) == 2
        assert not source.done
    finally:
        source.close()


def test_a_killed_journalctl_is_restarted_after_the_last_cursor(journal: Path) -> None:
    """journalctl dying is reported and counted; it is started again after the last entry read,
    so nothing is read twice and later entries still arrive."""
    write_journal(journal, [kernel(1), kernel(2)])
    errors: list[InputError] = []
    source = JournaldSource(
        directory=str(journal), restart_delay=0.05, idle_flush=60, on_error=errors.append
    )
    try:
        first = collect(source, 2)
        pid = source.pid
        assert pid is not None
        os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 15
        while source.counters.get("restarts") == 0 and time.monotonic() < deadline:
            source.poll(timeout=0.1)
        assert source.counters.get("restarts") == 1
        assert [e.reason for e in errors] == ["journalctl_exited"]
        write_journal(journal, [kernel(3)])
        later = collect(source, 1)
        assert len(later) == 1
        keys = [i.event.raw["_key"] for i in first + later]
        assert len(keys) == len(set(keys)) == 3
        assert source.pid not in (None, pid)
    finally:
        source.close()


def test_start_at_end_reads_only_entries_written_after_the_start(journal: Path) -> None:
    """A first start with start_at=end skips the journal's past."""
    write_journal(journal, [kernel(1)])
    source = JournaldSource(directory=str(journal), start_at="end", idle_flush=60)
    try:
        assert collect(source, 1, timeout=0.5) == []
        write_journal(journal, [kernel(2)])
        (item,) = collect(source, 1)
        assert "1772445600.002:2" in str(item.event.raw["message"])
    finally:
        source.close()


def test_an_unusable_checkpointed_cursor_is_reported_and_reading_starts_afresh(
    journal: Path, store: CheckpointStore
) -> None:
    """journalctl refusing the cursor: invalid_cursor, then a first start."""
    write_journal(journal, [kernel(1)])
    store.save("journald", JournalPosition("not-a-cursor"))
    errors: list[InputError] = []
    items = read_once(journal, store, on_error=errors.append)
    assert len(items) == 1
    assert [e.reason for e in errors] == ["invalid_cursor"]


def test_the_command_resumes_with_after_cursor_or_at_the_first_held_entry(
    store: CheckpointStore,
) -> None:
    """--after-cursor when nothing was held; --cursor (inclusive) at the first held record."""
    store.save("journald", JournalPosition("s=1;i=5"))
    source = JournaldSource(checkpoints=store, units=["k3s"], kernel=False)
    command = source.command()
    assert command[:5] == ["journalctl", "--all", "--output=json", "--no-pager", "--quiet"]
    assert "--follow" in command and "--after-cursor=s=1;i=5" in command
    store.save("journald", JournalPosition("s=1;i=5", held=("s=1;i=3",)))
    source = JournaldSource(checkpoints=store, follow=False, files=["/copy/system.journal"])
    command = source.command()
    assert "--cursor=s=1;i=3" in command and "--follow" not in command
    assert "--file=/copy/system.journal" in command


def test_a_missing_journal_directory_in_once_mode_is_reported_and_done(tmp_path: Path) -> None:
    """journalctl failing (no such directory) ends a --once source with the error reported."""
    errors: list[InputError] = []
    assert read_once(tmp_path / "missing", on_error=errors.append) == []
    assert [e.reason for e in errors] == ["journalctl_exited"]
    assert "status 1" in str(errors[0])


def test_a_missing_journalctl_is_a_usage_error(journal: Path) -> None:
    """A journalctl that cannot be run is a configuration error naming the program."""
    source = JournaldSource(directory=str(journal), journalctl=str(journal / "no-journalctl"))
    with pytest.raises(UsageError, match="cannot run"):
        source.poll()
