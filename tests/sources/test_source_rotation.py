"""Backups of a live log by rotation order, fingerprints, and finding a file that moved."""

from __future__ import annotations

import gzip
import os
import shutil
from pathlib import Path

import pytest

from k3watch.sources.rotation import (
    FINGERPRINT_BYTES,
    backup_key,
    find_file,
    fingerprint_of,
    last_line_start,
    list_backups,
    same_content,
)


def touch(directory: Path, *names: str) -> None:
    for name in names:
        (directory / name).write_bytes(f"{name}\n".encode())


def test_lumberjack_backups_sort_by_time_and_skip_other_logs(tmp_path: Path) -> None:
    """The API server's audit-<time>.log[.gz] backups come oldest first; other files and the
    live file itself are not backups."""
    touch(
        tmp_path,
        "audit.log",
        "audit-2026-03-02T10-11-12.123.log",
        "audit-2026-03-01T23-59-59.999.log.gz",
        "audit-2026-03-02T09-00-00.000.log",
        "policy.yaml",
        "other-2026-03-02T10-11-12.123.log",
        ".audit.log.swp",
    )
    assert [p.name for p in list_backups(tmp_path / "audit.log")] == [
        "audit-2026-03-01T23-59-59.999.log.gz",
        "audit-2026-03-02T09-00-00.000.log",
        "audit-2026-03-02T10-11-12.123.log",
    ]


def test_numbered_and_dateext_backups_of_names_with_or_without_extension(tmp_path: Path) -> None:
    """logrotate's .N (highest first) and -YYYYMMDD backups, for kern.log and syslog alike."""
    touch(tmp_path, "syslog", "syslog.1", "syslog.2.gz", "syslog.10", "syslogd.1")
    assert [p.name for p in list_backups(tmp_path / "syslog")] == [
        "syslog.10",
        "syslog.2.gz",
        "syslog.1",
    ]
    touch(tmp_path, "kern.log", "kern.log-20260301.gz", "kern.log-20260302")
    assert [p.name for p in list_backups(tmp_path / "kern.log")] == [
        "kern.log-20260301.gz",
        "kern.log-20260302",
    ]
    assert backup_key("kern.log", "kern.log.old") is None


def test_a_backup_being_compressed_is_listed_once_uncompressed(tmp_path: Path) -> None:
    """While gzip runs both names exist; the plain one is complete, the .gz may not be."""
    touch(tmp_path, "audit.log", "audit.log.1", "audit.log.1.gz")
    assert [p.name for p in list_backups(tmp_path / "audit.log")] == ["audit.log.1"]


def test_a_missing_directory_has_no_backups(tmp_path: Path) -> None:
    assert list_backups(tmp_path / "nowhere" / "audit.log") == []


def test_the_fingerprint_covers_the_first_line_at_most_fingerprint_bytes() -> None:
    """Only the first line counts (so it is fixed once that line is complete), capped."""
    assert fingerprint_of(b"first\nsecond\n") == fingerprint_of(b"first\nother\n")
    assert fingerprint_of(b"first\n").size == 6
    long = fingerprint_of(b"y" * 5000)
    assert long.size == FINGERPRINT_BYTES


def test_a_copy_and_a_compressed_backup_have_the_same_content(tmp_path: Path) -> None:
    """same_content reads through gzip; find_file prefers the same inode, then a copy."""
    live = tmp_path / "audit.log"
    live.write_bytes(b"line one\nline two\n")
    fingerprint = fingerprint_of(live.read_bytes())
    copy = tmp_path / "audit.log.1"
    shutil.copyfile(live, copy)
    packed = tmp_path / "audit.log.2.gz"
    packed.write_bytes(gzip.compress(live.read_bytes()))
    assert same_content(packed, fingerprint) and same_content(copy, fingerprint)
    other = tmp_path / "audit.log.3"
    other.write_bytes(b"something else\n")
    candidates = [other, packed, copy, live]
    assert find_file(candidates, os.stat(live).st_ino, fingerprint) == 3
    assert find_file(candidates, -1, fingerprint) == 1
    assert find_file(candidates, -1, fingerprint, min_size=1000) == 1  # size unknown for gzip
    assert find_file([other, copy], -1, fingerprint, min_size=1000) is None
    assert find_file([other], os.stat(other).st_ino, None) == 0


@pytest.mark.parametrize(
    ("data", "expected"),
    [(b"", (0, 1)), (b"a\nb\n", (4, 3)), (b"a\nb\npart", (4, 3)), (b"part", (0, 1))],
)
def test_last_line_start_skips_to_the_incomplete_last_line(
    tmp_path: Path, data: bytes, expected: tuple[int, int]
) -> None:
    """Reading "from the end" starts at the incomplete last line, with its line number."""
    path = tmp_path / "f"
    path.write_bytes(data)
    with open(path, "rb") as file:
        assert last_line_start(file.fileno(), len(data)) == expected
