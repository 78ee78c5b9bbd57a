"""Helpers for the K3s tests: node trees, /proc entries and real journal files."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest
from click.testing import Result

Invoke = Callable[..., Result]

SERVER = "/var/lib/rancher/k3s/server"
CONFIG = "/etc/rancher/k3s/config.yaml"
DROPINS = "/etc/rancher/k3s/config.yaml.d"
POLICY = f"{SERVER}/audit-policy.yaml"
LOG_DIR = f"{SERVER}/logs"
DROPIN = f"{DROPINS}/90-k3watch-audit.yaml"
WEBHOOK = f"{SERVER}/audit-webhook-kubeconfig.yaml"

# What `k3watch k3s setup` writes, as flags: the values the CIS checks want.
GOOD_FLAGS = (
    f"audit-log-path={LOG_DIR}/audit.log",
    f"audit-policy-file={POLICY}",
    "audit-log-maxage=30",
    "audit-log-maxbackup=10",
    "audit-log-maxsize=100",
)

# A policy the API server accepts and lint passes: secrets at Metadata, a catch-all.
GOOD_POLICY = """\
apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: [RequestReceived]
rules:
  - level: Metadata
    resources:
      - group: ""
        resources: [secrets, configmaps, serviceaccounts/token]
      - group: authentication.k8s.io
        resources: [tokenreviews]
  - level: RequestResponse
    verbs: [create, update, patch, delete]
  - level: Metadata
"""


@dataclass(frozen=True)
class Node:
    """A node's ``/`` under a test directory."""

    root: Path

    def path(self, node_path: str) -> Path:
        return self.root / node_path.lstrip("/")

    def write(self, node_path: str, text: str, mode: int = 0o600) -> Path:
        path = self.path(node_path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        path.chmod(mode)
        return path

    def mkdir(self, node_path: str, mode: int = 0o700) -> Path:
        path = self.path(node_path)
        path.mkdir(parents=True, exist_ok=True)
        path.chmod(mode)
        return path

    def mode(self, node_path: str) -> int:
        return self.path(node_path).stat().st_mode & 0o7777

    def process(
        self, pid: int, argv: Sequence[str], start_ticks: int = 100, btime: int = 0
    ) -> None:
        """A /proc/<pid> entry (cmdline and stat) and /proc/stat's boot time."""
        proc = self.path(f"/proc/{pid}")
        proc.mkdir(parents=True, exist_ok=True)
        (proc / "cmdline").write_bytes(b"\0".join(a.encode() for a in argv) + b"\0")
        fields = ["S"] + ["0"] * 18 + [str(start_ticks)] + ["0"] * 10
        (proc / "stat").write_text(f"{pid} (k3s-server) {' '.join(fields)}\n")
        self.path("/proc/stat").write_text(f"cpu 0 0 0 0\nbtime {btime}\n")

    def audited(self, *, policy: str = GOOD_POLICY, flags: Sequence[str] = GOOD_FLAGS) -> None:
        """A node set up by hand the way set-up does it: policy, log dir, drop-in."""
        self.write(POLICY, policy)
        self.mkdir(LOG_DIR)
        self.write(DROPIN, dropin(flags))


def dropin(flags: Sequence[str], key: str = "kube-apiserver-arg+") -> str:
    return f"{key}:\n" + "".join(f'  - "{flag}"\n' for flag in flags)


def journal_remote() -> str:
    """The systemd-journal-remote binary (Debian installs it outside PATH)."""
    for candidate in (
        shutil.which("systemd-journal-remote"),
        "/usr/lib/systemd/systemd-journal-remote",
        "/lib/systemd/systemd-journal-remote",
    ):
        if candidate and Path(candidate).is_file():
            return candidate
    pytest.skip(
        "systemd-journal-remote is NOT INSTALLED: the journal tests need it "
        "(run scripts/install-test-deps.sh, which installs Debian's systemd-journal-remote)"
    )


def export_record(fields: dict[str, str]) -> bytes:
    """One entry in the journal export format (text fields only, so no binary framing)."""
    lines = []
    for name, value in fields.items():
        assert "\n" not in value, "multi-line values need the binary field form"
        lines.append(f"{name}={value}\n".encode())
    return b"".join(lines) + b"\n"


def make_journal(directory: Path, entries: Sequence[dict[str, str]]) -> Path:
    """A real journal file written by systemd-journal-remote from export-format records."""
    out = directory / "k3s.journal"
    stream = b"".join(export_record(e) for e in entries)
    subprocess.run(
        [journal_remote(), "-o", str(out), "-"],
        input=stream,
        check=True,
        capture_output=True,
    )
    assert out.is_file()
    return out


BOOT_ID = "0123456789abcdef0123456789abcdef"


def k3s_entry(
    message: str, realtime_us: int, seq: int, unit: str = "k3s.service"
) -> dict[str, str]:
    """A journal entry as K3s's unit logs it."""
    return {
        "__REALTIME_TIMESTAMP": str(realtime_us),
        "__MONOTONIC_TIMESTAMP": str(1_000_000 + seq),
        "_BOOT_ID": BOOT_ID,
        "_HOSTNAME": "server-1",
        "_SYSTEMD_UNIT": unit,
        "SYSLOG_IDENTIFIER": "k3s",
        "_COMM": "k3s-server",
        "_PID": "1234",
        "PRIORITY": "6",
        "MESSAGE": message,
    }


def running_message(flags: Sequence[str], time: str = "2026-01-05T10:00:00Z") -> str:
    """A logrus ``Running kube-apiserver`` line, as K3s writes it to the journal."""
    body = "Running kube-apiserver " + " ".join(f"--{f}" for f in sorted(flags))
    escaped = body.replace("\\", "\\\\").replace('"', '\\"')
    return f'time="{time}" level=info msg="{escaped}"'
