"""Random write / rotate / poll / commit / crash schedules: nothing lost, nothing duplicated
beyond the uncommitted tail.

The simulated agent keeps, in order, what it committed; the uncommitted items of a crashed
source are thrown away (they were never acknowledged). Whatever the schedule, the committed
sequence must be exactly what a single uninterrupted reading of the same history gives.
"""

from __future__ import annotations

import gzip
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from k3watch.sources.base import Item
from k3watch.sources.checkpoint import CheckpointStore
from k3watch.sources.tail import FileSource

Op = tuple[str, int]

OPS = st.lists(
    st.one_of(
        st.tuples(st.just("write"), st.integers(1, 4)),
        st.tuples(st.just("partial"), st.integers(1, 60)),
        st.tuples(st.just("poll"), st.integers(1, 5)),
        st.tuples(st.just("commit"), st.integers(0, 6)),
        st.tuples(st.just("crash"), st.just(0)),
        st.tuples(st.just("rotate"), st.just(0)),
        st.tuples(st.just("compress"), st.just(0)),
    ),
    max_size=45,
)
SCHEMES = st.sampled_from(["lumberjack", "numbered", "copytruncate"])


def audit_line(i: int) -> bytes:
    event = {"kind": "Event", "auditID": f"id-{i:04d}", "stage": "ResponseComplete"}
    return orjson.dumps({**event, "verb": "get", "requestURI": f"/api/v1/pods/p{i}"}) + b"\n"


def k3s_line(i: int) -> bytes:
    """Lines of three writers (syslog pids); every third is a continuation line."""
    pid = 100 + i % 3
    prefix = f"Mar  2 10:00:00 node-1 k3s[{pid}]: "
    if i % 3 == 2:
        return f"{prefix}\tstep {i} of the record above\n".encode()
    return f'{prefix}time="2026-03-02T10:00:00Z" level=info msg="message {i}"\n'.encode()


class History:
    """The log's writer and rotator, keeping what it wrote."""

    def __init__(self, directory: Path, scheme: str, make_line: Callable[[int], bytes]) -> None:
        self.log = directory / "audit.log"
        self.scheme = scheme
        self.make_line = make_line
        self.count = 0
        self.carry = b""  # the rest of a line written in part
        self.rotations = 0

    def write(self, count: int) -> None:
        data = self.carry
        self.carry = b""
        for _ in range(count):
            data += self.make_line(self.count)
            self.count += 1
        self._append(data)

    def partial(self, size: int) -> None:
        self.write(0)
        line = self.make_line(self.count)
        self.count += 1
        cut = min(size, len(line) - 1)
        self._append(line[:cut])
        self.carry = line[cut:]

    def complete(self) -> None:
        if self.carry:
            self.write(0)

    def rotate(self) -> None:
        self.complete()  # writers rotate between whole lines
        if not self.log.exists():
            return
        self.rotations += 1
        if self.scheme == "lumberjack":
            minute, second = divmod(self.rotations, 60)
            stamp = f"2026-03-02T10-{minute:02d}-{second:02d}.000"
            os.rename(self.log, self.log.with_name(f"audit-{stamp}.log"))
            return
        for backup in sorted(self._numbered(), key=lambda p: -self._number(p)):
            gz = ".gz" if backup.name.endswith(".gz") else ""
            os.rename(backup, self.log.with_name(f"audit.log.{self._number(backup) + 1}{gz}"))
        first = self.log.with_name("audit.log.1")
        if self.scheme == "numbered":
            os.rename(self.log, first)
        else:
            shutil.copyfile(self.log, first)
            with open(self.log, "r+b") as file:
                file.truncate(0)

    def compress(self) -> None:
        """gzip the newest uncompressed backup (as --audit-log-compress or logrotate do)."""
        plain = [
            p for p in self.log.parent.iterdir() if p.name != "audit.log" and ".gz" not in p.name
        ]
        if not plain:
            return
        if self.scheme == "lumberjack":
            newest = max(plain, key=lambda p: p.name)  # the latest timestamp
        else:
            newest = min(plain, key=self._number)
        packed = newest.with_name(newest.name + ".gz")
        packed.write_bytes(gzip.compress(newest.read_bytes()))
        newest.unlink()

    def _numbered(self) -> list[Path]:
        return [p for p in self.log.parent.iterdir() if p.name.startswith("audit.log.")]

    @staticmethod
    def _number(path: Path) -> int:
        return int(path.name.removesuffix(".gz").rsplit(".", 1)[1])

    def _append(self, data: bytes) -> None:
        with open(self.log, "ab") as file:
            file.write(data)


def keys(items: list[Item]) -> list[str]:
    return [str(item.event.raw.get("_key") or item.event.audit_id) for item in items]


def run_schedule(scheme: str, ops: list[Op], format: str) -> tuple[list[str], list[str]]:
    """(what the agent committed, what one uninterrupted reading of the history gives)."""
    make_line = audit_line if format == "audit" else k3s_line
    with tempfile.TemporaryDirectory() as temporary:
        root = Path(temporary)
        (root / "logs").mkdir()
        history = History(root / "logs", scheme, make_line)
        store = CheckpointStore(root / "checkpoints")

        def start(follow: bool = True) -> FileSource:
            return FileSource(
                history.log,
                format=format,
                name="fuzz",
                checkpoints=store,
                follow=follow,
                read_backups=True,
                rotate_wait=0,
                idle_flush=3600,
            )

        source = start()
        committed: list[str] = []
        pending: list[Item] = []
        for op, argument in ops:
            if op == "write":
                history.write(argument)
            elif op == "partial":
                history.partial(argument)
            elif op == "poll":
                pending += source.poll(max_items=argument)
            elif op == "commit" and pending:
                count = min(max(argument, 1), len(pending))
                source.commit(pending[count - 1].position)
                committed += keys(pending[:count])
                del pending[:count]
            elif op == "crash":
                source.close()
                pending = []
                source = start()
            elif op == "rotate":
                if scheme == "copytruncate":
                    # The source reads promptly: a copy of lines it never saw, of a file with no
                    # complete line yet, cannot be told from the file growing (see the docs).
                    history.complete()
                    pending += source.poll(max_items=10_000)
                history.rotate()
            elif op == "compress":
                history.compress()
        source.close()
        history.complete()
        final = start(follow=False)
        while not final.done:
            batch = final.poll()
            if batch:
                final.commit(batch[-1].position)
            committed += keys(batch)
        final.close()

        # Every byte written is still on disk (nothing deleted): read it all in one go.
        reference = FileSource(
            history.log, format=format, follow=False, read_backups=True, name="reference"
        )
        expected = keys(reference.poll(max_items=1_000_000))
        if format == "audit":
            assert expected == [f"id-{i:04d}" for i in range(history.count)]
        return committed, expected


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scheme=SCHEMES, ops=OPS)
def test_audit_log_schedules_commit_every_event_exactly_once(scheme: str, ops: list[Op]) -> None:
    """Audit log: the committed auditIDs are every event written, once each, in order."""
    committed, expected = run_schedule(scheme, ops, "audit")
    assert committed == expected


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scheme=SCHEMES, ops=OPS)
def test_component_log_schedules_commit_every_record_exactly_once(
    scheme: str, ops: list[Op]
) -> None:
    """A component log whose parser holds records for continuation lines: the committed keys
    are exactly those of one uninterrupted reading, even when a crash came while records were
    held."""
    committed, expected = run_schedule(scheme, ops, "k3s")
    assert committed == expected
