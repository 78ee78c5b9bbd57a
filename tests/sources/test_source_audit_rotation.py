"""audit_file: rotations (rename, gzip, copytruncate) and restarts from checkpoints."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest
from tests.sources.test_source_audit_file import (
    Errors,
    append,
    audit_line,
    copytruncate,
    expected,
    ids,
    lines,
    lumberjack,
    read_once,
    source,
)

from k3watch.errors import InputError
from k3watch.sources.checkpoint import CheckpointStore


@pytest.fixture
def log(tmp_path: Path) -> Path:
    directory = tmp_path / "logs"
    directory.mkdir()
    return directory / "audit.log"


@pytest.fixture
def store(tmp_path: Path) -> CheckpointStore:
    return CheckpointStore(tmp_path / "checkpoints")


def test_a_rotated_backups_incomplete_last_line_is_read(log: Path, store: CheckpointStore) -> None:
    """A backup will not grow any more, so its last line counts without a newline."""
    log.write_bytes(lines(0) + audit_line(1)[:-1])
    backup = lumberjack(log, 1)
    log.write_bytes(lines(2))
    src = source(log, store, follow=False, read_backups=True)
    assert ids(src.poll()) == expected(0, 1, 2)
    assert backup.exists()


def test_rename_rotation_finishes_the_old_file_then_reads_the_new_one(log: Path) -> None:
    """Lines written just before a rename are read from the renamed file, then the new file
    from its start."""
    log.write_bytes(lines(0))
    src = source(log)
    assert ids(src.poll()) == expected(0)
    append(log, lines(1))
    lumberjack(log, 1)
    log.write_bytes(lines(2, 3))
    assert ids(src.poll()) == expected(1, 2, 3)
    assert src.counters.get("rotations", "renamed") == 1
    src.close()


def test_rename_then_gzip_is_finished_through_the_open_descriptor(log: Path) -> None:
    """The renamed file compressed and deleted before the source looks: its open descriptor
    still reads the rest."""
    log.write_bytes(lines(0))
    src = source(log)
    src.poll()
    append(log, lines(1))
    packed = lumberjack(log, 1, compress=True)
    log.write_bytes(lines(2))
    assert ids(src.poll()) == expected(1, 2)
    assert packed.name.endswith(".log.gz")
    src.close()


def test_several_renames_between_polls_read_every_backup_in_order(log: Path) -> None:
    """Two rotations before the next poll: the old file, the backup rotated after it, then the
    new live file."""
    log.write_bytes(lines(0))
    src = source(log)
    src.poll()
    append(log, lines(1))
    lumberjack(log, 1)
    log.write_bytes(lines(2, 3))
    lumberjack(log, 2, compress=True)
    log.write_bytes(lines(4))
    assert ids(src.poll()) == expected(1, 2, 3, 4)
    src.close()


def test_writes_to_a_renamed_file_within_rotate_wait_are_read(log: Path) -> None:
    """A writer that has not reopened its file yet still appends to the renamed one: with
    rotate_wait those lines are read before moving to the new file."""
    log.write_bytes(lines(0))
    src = source(log, rotate_wait=30)
    src.poll()
    backup = lumberjack(log, 1)
    log.write_bytes(lines(3))
    assert src.poll() == []  # the renamed file may still grow
    append(backup, lines(1, 2))
    assert ids(src.poll()) == expected(1, 2)
    src.close()


def test_copytruncate_reads_the_rest_from_the_copy_then_the_truncated_file(log: Path) -> None:
    """Lines written between the last read and the truncation are read from the copy (.1);
    then the file is read again from its start."""
    log.write_bytes(lines(0))
    src = source(log)
    src.poll()
    append(log, lines(1, 2))
    copytruncate(log)
    append(log, lines(3))
    assert ids(src.poll()) == expected(1, 2, 3)
    assert src.counters.get("rotations", "truncated") == 1
    src.close()


def test_copytruncate_regrown_past_the_old_size_is_detected_by_fingerprint(log: Path) -> None:
    """A truncated file that grew back beyond the offset read is told apart by its first
    line, not read from the middle."""
    log.write_bytes(lines(0))
    src = source(log)
    src.poll()
    copytruncate(log)
    append(log, lines(1, 2, 3))
    assert ids(src.poll()) == expected(1, 2, 3)
    assert src.parser_counters.total("parse_errors") == 0
    src.close()


def test_truncation_without_a_copy_is_reported_and_the_file_read_again(log: Path) -> None:
    """A truncation with no backup holding the old content: reported, then the new content."""
    errors = Errors()
    log.write_bytes(lines(0))
    src = source(log, on_error=errors.append)
    src.poll()
    with open(log, "r+b") as file:
        file.truncate(0)
    append(log, lines(1))
    assert ids(src.poll()) == expected(1)
    assert errors.reasons() == ["truncated_without_copy"]
    assert src.counters.get("dropped", "truncated_without_copy") == 1
    src.close()


def test_restart_resumes_after_the_committed_position(log: Path, store: CheckpointStore) -> None:
    """Committed items are not delivered again; the rest and new lines are."""
    log.write_bytes(lines(0, 1, 2))
    src = source(log, store)
    items = src.poll()
    src.commit(items[1].position)
    src.close()
    append(log, lines(3))
    assert ids(read_once(log, store)) == expected(2, 3)


def test_a_crash_redelivers_exactly_the_uncommitted_items(
    log: Path, store: CheckpointStore
) -> None:
    """At-least-once: the batch that was delivered but not committed comes again, and nothing
    committed does, across two crashes."""
    log.write_bytes(lines(*range(6)))
    delivered: list[str | None] = []
    src = source(log, store)
    first = src.poll(max_items=2)
    src.commit(first[-1].position)  # acknowledged
    second = src.poll(max_items=2)  # sent, never acknowledged: the agent crashes
    delivered += ids(first) + ids(second)
    src.close()
    src = source(log, store)
    third = src.poll(max_items=3)
    src.commit(third[-1].position)
    delivered += ids(third)
    src.close()  # crash again, after a commit
    delivered += ids(read_once(log, store))
    assert delivered == expected(0, 1, 2, 3, 2, 3, 4, 5)


def test_rotations_while_down_read_the_checkpointed_file_and_every_newer_backup(
    log: Path, store: CheckpointStore
) -> None:
    """The checkpointed file, renamed and gzip-compressed while the agent was down, is found
    by fingerprint; its rest (offset in uncompressed bytes), every backup rotated after it, and
    the live file follow, in order."""
    log.write_bytes(lines(0, 1))
    src = source(log, store)
    items = src.poll()
    src.commit(items[0].position)
    src.close()
    append(log, lines(2))
    lumberjack(log, 1, compress=True)
    log.write_bytes(lines(3, 4))
    lumberjack(log, 2)
    log.write_bytes(lines(5))
    lumberjack(log, 3, compress=True)
    log.write_bytes(lines(6))
    assert ids(read_once(log, store)) == expected(1, 2, 3, 4, 5, 6)


def test_copytruncates_while_down_are_read_from_their_copies(
    log: Path, store: CheckpointStore
) -> None:
    """Two copytruncates while down: the checkpointed content is found in .2 by its first line,
    then .1, then the live file."""
    log.write_bytes(lines(0, 1))
    src = source(log, store)
    src.commit(src.poll()[0].position)
    src.close()
    append(log, lines(2))
    copytruncate(log)
    append(log, lines(3))
    copytruncate(log)
    append(log, lines(4))
    assert ids(read_once(log, store)) == expected(1, 2, 3, 4)


def test_older_backups_than_the_checkpointed_file_are_not_read_again(
    log: Path, store: CheckpointStore
) -> None:
    """Backups rotated before the checkpointed file was written stay unread."""
    log.write_bytes(lines(0))
    lumberjack(log, 1)
    log.write_bytes(lines(1, 2))
    src = source(log, store)
    items = src.poll()
    src.commit(items[-1].position)
    src.close()
    lumberjack(log, 2)
    log.write_bytes(lines(3))
    assert ids(read_once(log, store)) == expected(3)


def test_a_checkpointed_file_that_is_gone_is_reported_and_the_live_file_read(
    log: Path, store: CheckpointStore
) -> None:
    """The checkpointed file deleted while down: reported, and the live file read whole."""
    log.write_bytes(lines(0, 1))
    src = source(log, store)
    src.commit(src.poll()[0].position)
    src.close()
    lumberjack(log, 1).unlink()
    log.write_bytes(lines(2))
    errors: list[InputError] = []
    assert ids(read_once(log, store, errors)) == expected(2)
    assert [e.reason for e in errors] == ["checkpoint_file_gone"]


def test_an_eventlist_line_resumes_after_the_last_committed_item(
    log: Path, store: CheckpointStore
) -> None:
    """A line with several events: committing in its middle re-delivers only the rest."""
    batch = {
        "kind": "EventList",
        "apiVersion": "audit.k8s.io/v1",
        "items": [orjson.loads(audit_line(i)) for i in (1, 2, 3)],
    }
    log.write_bytes(lines(0) + orjson.dumps(batch) + b"\n" + lines(4))
    src = source(log, store)
    items = src.poll()
    assert ids(items) == expected(0, 1, 2, 3, 4)
    src.commit(items[2].position)
    src.close()
    assert ids(read_once(log, store)) == expected(3, 4)


def test_read_backups_on_first_start_reads_history_oldest_first(log: Path) -> None:
    """With read_backups and no checkpoint: backups by rotation order, then the live file."""
    log.write_bytes(lines(0))
    lumberjack(log, 1, compress=True)
    log.write_bytes(lines(1))
    lumberjack(log, 2)
    log.write_bytes(lines(2))
    assert ids(source(log, follow=False, read_backups=True).poll()) == expected(0, 1, 2)
    assert ids(source(log, follow=False).poll()) == expected(2)


def test_a_file_created_and_rotated_before_it_was_opened_is_read(log: Path) -> None:
    """The log did not exist at the first poll; by the next one it was written and rotated
    twice: both backups come first, then the new file."""
    src = source(log)
    assert src.poll() == []
    log.write_bytes(lines(0))
    lumberjack(log, 1)
    log.write_bytes(lines(1))
    lumberjack(log, 2, compress=True)
    log.write_bytes(lines(2))
    assert ids(src.poll()) == expected(0, 1, 2)
    src.close()


def test_backups_rotated_while_the_live_file_was_missing_are_read(log: Path) -> None:
    """After a rename with no new file yet, a new file written and rotated before the source
    saw it is read from its backup; the backups known before are not read again."""
    log.write_bytes(lines(0))
    src = source(log)
    src.poll()
    lumberjack(log, 1)
    assert src.poll() == []  # the old file finished; no live file yet
    log.write_bytes(lines(1))
    lumberjack(log, 2)
    log.write_bytes(lines(2))
    assert ids(src.poll()) == expected(1, 2)
    src.close()
