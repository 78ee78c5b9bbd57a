"""CheckpointStore: atomic, private, round-trips every position, reports damage."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from k3watch.errors import InputError
from k3watch.sources.base import FilePosition, Fingerprint, HeldRecord, JournalPosition
from k3watch.sources.checkpoint import CheckpointStore

FILE_POSITION = FilePosition(
    path="/var/lib/rancher/k3s/server/logs/audit-2026-03-02T10-11-12.123.log.gz",
    inode=1234,
    fingerprint=Fingerprint(512, "ab" * 32),
    offset=4096,
    line=17,
    held=(HeldRecord(1000, 5), HeldRecord(2000, 9, 2)),
)


def test_positions_round_trip(tmp_path: Path) -> None:
    """A saved file or journal position loads back equal; no checkpoint loads as None."""
    store = CheckpointStore(tmp_path / "cp")
    assert store.load("audit_file") is None
    store.save("audit_file", FILE_POSITION)
    journal = JournalPosition("s=1;i=2;t=5f", held=("s=1;i=1;t=5e",))
    store.save("journald", journal)
    assert store.load("audit_file") == FILE_POSITION
    assert store.load("journald") == journal


def test_checkpoints_are_private(tmp_path: Path) -> None:
    """The directory is created 0700 and each checkpoint file is 0600."""
    store = CheckpointStore(tmp_path / "cp")
    store.save("audit_file", FILE_POSITION)
    assert stat.S_IMODE(os.stat(store.directory).st_mode) == 0o700
    assert stat.S_IMODE(os.stat(store.path_for("audit_file")).st_mode) == 0o600


def test_a_save_replaces_the_file_atomically_and_leaves_no_temporary(tmp_path: Path) -> None:
    """Saving again replaces the file by rename (a new inode), with nothing left beside it."""
    store = CheckpointStore(tmp_path / "cp")
    store.save("audit_file", FILE_POSITION)
    before = os.stat(store.path_for("audit_file")).st_ino
    store.save("audit_file", JournalPosition("s=9"))
    assert os.stat(store.path_for("audit_file")).st_ino != before
    assert sorted(p.name for p in store.directory.iterdir()) == ["audit_file.json"]
    assert store.load("audit_file") == JournalPosition("s=9")


def test_saving_none_changes_nothing(tmp_path: Path) -> None:
    """Sources without positions (webhook, stdin) never write a checkpoint."""
    store = CheckpointStore(tmp_path / "cp")
    store.save("webhook", None)
    assert not store.directory.exists()


def test_source_names_become_safe_file_names(tmp_path: Path) -> None:
    """A name with slashes (a path) cannot escape the directory."""
    store = CheckpointStore(tmp_path / "cp")
    path = store.path_for("/var/log/../k3s.log")
    assert path.parent == store.directory
    store.save("/var/log/../k3s.log", FILE_POSITION)
    assert store.load("/var/log/../k3s.log") == FILE_POSITION


@pytest.mark.parametrize(
    "content",
    [
        b"{not json",
        b"[]",
        b'{"version": 99, "kind": "file"}',
        b'{"version": 1, "kind": "tape"}',
        b'{"version": 1, "kind": "journal", "cursor": 5, "held": []}',
        b'{"version": 1, "kind": "file", "path": "/x", "inode": -1, "offset": 0, "line": 1, '
        b'"fingerprint": {"size": 1, "sha256": "00"}, "held": []}',
    ],
)
def test_a_damaged_checkpoint_is_an_input_error_naming_the_file(
    tmp_path: Path, content: bytes
) -> None:
    """Whatever is wrong with the file, load raises InputError(invalid_checkpoint) with the
    checkpoint's path and a hint, never another exception."""
    store = CheckpointStore(tmp_path / "cp")
    store.directory.mkdir()
    store.path_for("audit_file").write_bytes(content)
    with pytest.raises(InputError) as raised:
        store.load("audit_file")
    assert raised.value.reason == "invalid_checkpoint"
    assert str(store.path_for("audit_file")) in str(raised.value)
    assert "delete the file" in str(raised.value)


def test_remove_forgets_a_checkpoint(tmp_path: Path) -> None:
    """After remove the source starts afresh (load gives None)."""
    store = CheckpointStore(tmp_path / "cp")
    store.save("journald", JournalPosition("s=1"))
    store.remove("journald")
    store.remove("journald")
    assert store.load("journald") is None
