"""A JSON-lines file of alerts, rotated by size: the same one-object-per-line contract as
``k3watch scan --format json`` (and ``JsonLinesSink``), for log shippers and SIEM agents.

The file is created with mode 0600 (alerts name users and objects). Each batch is written
with one ``write`` and made durable with ``fsync`` before the outbox forgets it. When the next
batch would take the file past ``max_size``, ``PATH`` becomes ``PATH.1``, ``PATH.1`` becomes
``PATH.2``… and the oldest copy beyond ``backups`` is deleted. A file moved away by another
tool (logrotate) is noticed and a new one is started.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import orjson

from k3watch.alerting.config import FileConfig
from k3watch.alerting.sinks.destination import DeliveryError, Notification
from k3watch.telemetry import Counters


class JsonLinesFileDestination:
    """Appends alert contracts to a file, one per line."""

    max_batch = 256

    def __init__(self, config: FileConfig, *, counters: Counters | None = None) -> None:
        self.config = config
        self.name = config.name
        self.counters = counters or Counters(f"destination_{config.name}")
        self.path = Path(config.path)
        self.max_size = config.max_size_bytes
        self._fd: int | None = None

    def deliver(self, notifications: Sequence[Notification]) -> None:
        """Append every notification, then fsync; raise DeliveryError on any I/O error."""
        data = b"".join(orjson.dumps(n.alert) + b"\n" for n in notifications)
        try:
            fd = self._open()
            size = os.fstat(fd).st_size
            if size and size + len(data) > self.max_size:
                self._rotate()
                fd = self._open()
            _write_all(fd, data)
            os.fsync(fd)
        except OSError as exc:
            self._close_fd()
            raise DeliveryError(
                self.name,
                f"cannot write {self.path}: {exc.strerror or exc}",
                reason="io",
                hint="check the directory exists, is writable and has free space",
            ) from exc

    def close(self) -> None:
        self._close_fd()

    def _open(self) -> int:
        if self._fd is not None and not self._same_file(self._fd):
            self._close_fd()  # rotated or removed by someone else: start a new file
        if self._fd is None:
            self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        return self._fd

    def _same_file(self, fd: int) -> bool:
        try:
            on_disk = os.stat(self.path)
        except FileNotFoundError:
            return False
        opened = os.fstat(fd)
        return (on_disk.st_dev, on_disk.st_ino) == (opened.st_dev, opened.st_ino)

    def _rotate(self) -> None:
        self._close_fd()
        if self.config.backups == 0:
            os.truncate(self.path, 0)
            self.counters.inc("rotated")
            return
        for index in range(self.config.backups - 1, 0, -1):
            older = self._backup(index)
            if older.exists():
                os.replace(older, self._backup(index + 1))
        os.replace(self.path, self._backup(1))
        self.counters.inc("rotated")

    def _backup(self, index: int) -> Path:
        return self.path.with_name(f"{self.path.name}.{index}")

    def _close_fd(self) -> None:
        if self._fd is not None:
            try:
                os.close(self._fd)
            finally:
                self._fd = None


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]
