"""The kernel parser against public AppArmor and seccomp lines (tests/corpus).

- apparmor-libapparmor-testsuite: 178 ``.in`` files (179 lines: one record is wrapped over
  two lines) with a ``.out`` file each listing the fields libapparmor parses. Each ``.out``
  label is mapped to our field below and compared. libapparmor's ``AA_RECORD_INVALID`` must
  be a line we did not read as an AppArmor decision: no record, a record without an
  ``apparmor`` decision (the pre-2.6 text records), or a reported problem (a broken audit
  stamp, a hex value that is not text). For those, libapparmor's ``Operation`` and ``Info``
  (the audit type name and the raw text of a record it could not read) are not compared.
- go-libaudit-testdata: every AppArmor and seccomp line of the auditd logs and YAML cases.
- spo-enricher-test-lines: the Security Profiles Operator's seccomp and AppArmor lines,
  including its deliberately malformed ones.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import pytest

from k3watch.errors import InputError
from k3watch.event import Event
from k3watch.parse.kernel import KernelParser
from k3watch.telemetry import Counters

CORPUS = Path(__file__).parents[1] / "corpus"
APPARMOR = CORPUS / "apparmor-libapparmor-testsuite"
LIBAUDIT = CORPUS / "go-libaudit-testdata"
SPO = CORPUS / "spo-enricher-test-lines" / "spo_enricher_audit_lines.txt"
CASES = sorted(path.stem for path in APPARMOR.glob("*.in"))
INVALID = "AA_RECORD_INVALID"


def parse(data: bytes, name: str) -> tuple[list[Event], list[InputError]]:
    errors: list[InputError] = []
    parser = KernelParser(Counters("corpus"), errors.append)
    return list(parser.parse_stream(io.BytesIO(data), name)), errors


def expected_fields(case: str) -> dict[str, str]:
    """The ``Label: value`` lines of a ``.out`` file (``Name2:`` may have an empty value)."""
    fields: dict[str, str] = {}
    for line in (APPARMOR / f"{case}.out").read_text(errors="replace").splitlines():
        label, sep, value = line.partition(": ")
        if sep:
            fields[label] = value
        elif line.endswith(":"):
            fields[line[:-1]] = ""
    fields.pop("File", None)
    return fields


def _first(kernel: dict[str, Any], *names: str) -> Any:
    for name in names:
        value = kernel.get(name)
        if value is not None and value != "none":
            return value
    return None


def libapparmor_view(kernel: dict[str, Any]) -> dict[str, str]:
    """Our kernel fields under libapparmor's ``.out`` labels."""
    view: dict[str, Any] = {}
    audit_id = kernel.get("audit_id")
    if isinstance(audit_id, str):
        view["Audit ID"] = audit_id
        view["Epoch"] = audit_id.split(".", 1)[0]
        view["Audit subid"] = audit_id.rpartition(":")[2]
    error = kernel.get("error")
    protocol = kernel.get("protocol")
    view.update(
        {
            "Operation": kernel.get("operation"),
            "Mask": kernel.get("requested_mask"),
            "Denied Mask": _first(kernel, "denied_mask", "mask"),
            "fsuid": kernel.get("fsuid"),
            "ouid": kernel.get("ouid"),
            "Profile": kernel.get("profile"),
            "Peer profile": _first(kernel, "peer_profile", "tcontext"),
            "Peer": kernel.get("peer"),
            "Name": _first(kernel, "name", "capname"),
            "Command": _first(kernel, "comm", "exe"),
            "Name2": _first(kernel, "target", "name2"),
            "Namespace": kernel.get("namespace"),
            "Info": kernel.get("info"),
            "ErrorCode": abs(error) if isinstance(error, int) else error,
            "Parent": kernel.get("parent"),
            "PID": kernel.get("pid"),
            "Task": kernel.get("task"),
            "Token": kernel.get("magic_token"),
            "Attribute": kernel.get("attribute"),
            "Peer PID": kernel.get("peer_pid"),
            "Signal": kernel.get("signal"),
            "Network family": kernel.get("family"),
            "Socket type": kernel.get("sock_type"),
            # An IP protocol number without a name stays a number; libapparmor prints it so.
            "Protocol": f"unknown({protocol})" if str(protocol).isdigit() else protocol,
            "Local addr": _first(kernel, "laddr", "saddr"),
            "Foreign addr": _first(kernel, "faddr", "daddr"),
            "Local port": _first(kernel, "lport", "src"),
            "Foreign port": _first(kernel, "fport", "dest"),
            "Net Addr": _first(kernel, "addr"),
            "Peer Addr": _first(kernel, "peer_addr"),
            "DBus bus": kernel.get("bus"),
            "DBus path": kernel.get("path"),
            "DBus interface": kernel.get("interface"),
            "DBus member": _first(kernel, "member", "method"),
            "FS Type": kernel.get("fstype"),
            "Flags": kernel.get("flags"),
            "Src name": kernel.get("srcname"),
            "Execpath": kernel.get("execpath"),
            "Class": kernel.get("class"),
        }
    )
    return {label: str(value) for label, value in view.items() if value is not None}


def test_the_corpus_has_every_pair() -> None:
    """All 178 vendored libapparmor cases are present, each with its expected output."""
    assert len(CASES) == 178
    assert all((APPARMOR / f"{case}.out").exists() for case in CASES)


@pytest.mark.parametrize("case", CASES)
def test_apparmor_record_matches_libapparmor(case: str) -> None:
    """Our reading of each libapparmor test line has the fields its .out file lists."""
    expected = expected_fields(case)
    record_type = expected.pop("Event type")
    events, errors = parse((APPARMOR / f"{case}.in").read_bytes(), f"{case}.in")
    assert len(events) <= 1
    kernel = events[0].raw["kernel"] if events else None
    if kernel is None or "apparmor" not in kernel or errors:
        got_type = INVALID
    else:
        got_type = f"AA_RECORD_{kernel['apparmor']}"
    assert got_type == record_type
    got = libapparmor_view(kernel) if kernel else {}
    if record_type == INVALID:
        expected.pop("Operation", None)
        expected.pop("Info", None)
        common = expected.keys() & got.keys()
        assert {k: got[k] for k in common} == {k: expected[k] for k in common}
    else:
        assert got == expected


def _security_lines(path: Path) -> list[str]:
    return [
        line.strip()
        for line in path.read_text(errors="replace").splitlines()
        if "apparmor=" in line or "type=SECCOMP" in line or "type=1326" in line
    ]


def test_go_libaudit_apparmor_and_seccomp_lines_parse_without_errors() -> None:
    """Each AppArmor and seccomp line of go-libaudit's auditd logs and YAML cases is read."""
    lines = [
        line
        for path in sorted(LIBAUDIT.rglob("*"))
        if path.suffix in (".log", ".yaml")
        for line in _security_lines(path)
    ]
    assert len(lines) == 5
    events, errors = parse("\n".join(lines).encode(), "go-libaudit")
    assert errors == []
    assert len(events) == len(lines)
    kinds = [(e.raw["kernel"]["type"], e.raw["kernel"].get("apparmor")) for e in events]
    assert kinds.count(("apparmor", "DENIED")) == 2
    assert kinds.count(("apparmor", "AUDIT")) == 2
    seccomp = next(e.raw["kernel"] for e in events if e.raw["kernel"]["type"] == "seccomp")
    assert seccomp["action"] == "kill_thread"  # code=0x0
    assert seccomp["arch"] == "i386" and seccomp["syscall"] == 132 and seccomp["comm"] == "sshd"
    ptrace = events[0].raw["kernel"]
    assert ptrace["profile"] == "docker-default" and ptrace["peer"] == "unconfined"
    assert events[0].raw["container"] == {"runtime": "docker"}


def test_security_profiles_operator_lines() -> None:
    """SPO's lines all give a record; only its malformed ``uid=invalid`` ones report errors."""
    lines = SPO.read_text().splitlines()
    assert len(lines) == 12
    for line in lines:
        events, errors = parse(line.encode(), "spo")
        assert len(events) == 1, line
        kernel = events[0].raw["kernel"]
        if "=invalid" in line:
            assert [e.reason for e in errors] == ["invalid_field"]
        else:
            assert errors == [], line
        if kernel["type"] == "seccomp" and "code=" in line:
            assert kernel["action"] == "log"
            assert kernel["syscall_name"] in ("write", "rt_sigaction", "close", "clone", "read")
        if kernel["type"] == "apparmor":
            assert kernel["apparmor"] == "DENIED" and kernel["operation"] == "exec"


def test_enriched_syscall_name_agrees_with_the_table() -> None:
    """auditd's interpreted SYSCALL= (glued to code=) matches the number's table name."""
    line = next(line for line in SPO.read_text().splitlines() if "SYSCALL=clone" in line)
    events, errors = parse(line.encode(), "spo")
    assert errors == []
    kernel = events[0].raw["kernel"]
    assert kernel["code"] == "0x7ffc0000"
    assert kernel["syscall"] == 56 and kernel["syscall_name"] == "clone"
    assert "AUID" not in kernel and "SYSCALL" not in kernel
