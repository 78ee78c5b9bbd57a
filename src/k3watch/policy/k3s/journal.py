"""The last ``Running kube-apiserver`` line K3s logged: what the API server really runs with.

K3s logs every API-server flag in that one line each time it starts the API server. On systemd
installs it is in the ``k3s.service`` journal; on openrc installs in ``/var/log/k3s.log``.
kube-bench's K3s checks read the same line.

The journal is read with ``journalctl --output=json --all --reverse`` (``--all`` because
fields over 4 KiB are otherwise replaced by null, and the flag line is long), stopping at the
first match, so only the end of a long journal is read.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import orjson

from k3watch.policy.k3s.apiserver import RUNNING_MARKER, running_args
from k3watch.policy.k3s.layout import OPENRC_LOG, Layout

UNIT = "k3s.service"
_TIMEOUT = 120.0  # seconds; the search stops at the first match, so this is generous
_LOGRUS_TIME = re.compile(r'time="([^"]+)"')


@dataclass(frozen=True, slots=True)
class RunningLine:
    """A ``Running kube-apiserver`` log line, its flags, and where and when it was logged."""

    args: tuple[str, ...]
    source: str  # "journal (k3s.service)", "journal file …", "/var/log/k3s.log"
    time: datetime | None


@dataclass(frozen=True, slots=True)
class JournalResult:
    """The line found (or None) and, when none, why: absent tool, no match, an error."""

    line: RunningLine | None
    note: str


def find_running_line(layout: Layout, journal_file: Path | None = None) -> JournalResult:
    """The last ``Running kube-apiserver`` line from the journal or the openrc log.

    ``journal_file`` reads that journal file. Otherwise the node's own journal is read: the
    system's when the root is ``/``, the journal directories under the root when it is not
    (``journalctl --root``), never the host's journal for a stand-in root.
    """
    if journal_file is not None:
        return _from_journal(["--file", str(journal_file)], f"journal file {journal_file}")
    result = JournalResult(None, "no journal")
    if layout.is_real_root:
        result = _from_journal(["--merge"], f"journal ({UNIT})")
    elif any(layout.host(d).is_dir() for d in ("/var/log/journal", "/run/log/journal")):
        result = _from_journal(["--root", str(layout.root)], f"journal ({UNIT})")
    if result.line is None:
        log = layout.host(OPENRC_LOG)
        if log.is_file():
            from_log = _from_log_file(log, OPENRC_LOG)
            if from_log.line is not None:
                return from_log
    return result


def _from_journal(selector: list[str], label: str) -> JournalResult:
    journalctl = shutil.which("journalctl")
    if journalctl is None:
        return JournalResult(None, "journalctl is not installed")
    command = [
        journalctl,
        *selector,
        f"--unit={UNIT}",
        "--output=json",
        "--all",
        "--reverse",
        "--no-pager",
        "--quiet",
    ]
    try:
        process = subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL
        )
    except OSError as exc:
        return JournalResult(None, f"cannot run journalctl: {exc}")
    found: RunningLine | None = None
    # A journal that never ends (a hung journalctl) must not hang the check.
    timer = threading.Timer(_TIMEOUT, process.kill)
    timer.start()
    err = b""
    try:
        assert process.stdout is not None
        for raw in process.stdout:
            found = _match_entry(raw, label)
            if found is not None:
                process.kill()  # the rest of the journal is older: no need to read it
                break
        _, err = process.communicate()
    finally:
        timer.cancel()
    if found is not None:
        return JournalResult(found, "")
    if process.returncode not in (0, None):
        message = err.decode("utf-8", "replace").strip().splitlines()
        return JournalResult(None, f"journalctl failed: {message[-1] if message else '?'}")
    return JournalResult(None, f"no 'Running kube-apiserver' line in the {label}")


def _match_entry(raw: bytes, label: str) -> RunningLine | None:
    try:
        entry = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(entry, dict):
        return None
    message = entry.get("MESSAGE")
    if isinstance(message, list):  # journald exports non-UTF-8 fields as byte arrays
        message = bytes(b for b in message if isinstance(b, int)).decode("utf-8", "replace")
    if not isinstance(message, str) or RUNNING_MARKER not in message:
        return None
    args = running_args(message)
    if args is None:
        return None
    return RunningLine(tuple(args), label, _entry_time(entry, message))


def _entry_time(entry: dict[str, object], message: str) -> datetime | None:
    stamp = entry.get("__REALTIME_TIMESTAMP")
    if isinstance(stamp, str) and stamp.isdigit():
        return datetime.fromtimestamp(int(stamp) / 1e6, tz=UTC)
    return _logrus_time(message)


def _logrus_time(message: str) -> datetime | None:
    match = _LOGRUS_TIME.search(message)
    if match is None:
        return None
    try:
        value = datetime.fromisoformat(match.group(1).replace("Z", "+00:00"))
    except ValueError:
        return None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _from_log_file(path: Path, label: str) -> JournalResult:
    """The last matching line of a plain log file (read forward: it is rotated, so bounded)."""
    last: str | None = None
    try:
        with path.open("r", encoding="utf-8", errors="replace") as handle:
            for line in handle:
                if RUNNING_MARKER in line:
                    last = line
    except OSError as exc:
        return JournalResult(None, f"cannot read {label}: {exc}")
    if last is None:
        return JournalResult(None, f"no 'Running kube-apiserver' line in {label}")
    args = running_args(last.rstrip("\n"))
    if args is None:
        return JournalResult(None, f"no 'Running kube-apiserver' line in {label}")
    return JournalResult(RunningLine(tuple(args), label, _logrus_time(last)), "")
