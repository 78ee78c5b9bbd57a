"""Kernel AppArmor and seccomp records, in every wrapper they are logged in.

The record itself is ``key=value`` fields after an audit stamp ``audit(<seconds>.<ms>:<serial>)``
and is found, after any syslog prefix (see :mod:`k3watch.parse.syslog`), as:

- auditd's ``audit.log``: ``type=AVC msg=audit(1279948288.415:39): apparmor="DENIED" …``
  (also ``type=SECCOMP``, ``type=USER_AVC`` with the fields inside ``msg='…'``, the old
  ``type=APPARMOR_DENIED`` names, ``node=host`` in front, and the interpreted fields that
  auditd's enriched format appends after a ``\\x1d`` byte);
- the kernel log (dmesg, ``kernel:`` in syslog, the journal's kernel transport):
  ``[ 123.456789] audit: type=1400 audit(…): …``, or the older ``audit(…): type=1503 …``;
- the journal's audit transport: ``AVC apparmor="DENIED" …`` with the stamp in other fields;
- D-Bus's own log (``dbus-daemon[…]: apparmor="DENIED" …``), with no stamp.

AppArmor records are ``type=1400`` / ``AVC`` and ``USER_AVC`` with an ``apparmor=`` field, or
the ``1500``–``1506`` AppArmor types; seccomp records are ``type=1326`` / ``SECCOMP``, whose
action is decoded from ``code=``. Strings the kernel wrote in hex (a name with a space) are
decoded; numbers become integers. What the profile name or a path tells about the container
(containerd's ``cri-containerd.apparmor.d`` profile, a container id in a runtime path, a pod
UID in a kubelet path) is returned separately as :func:`container_of`.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, tzinfo
from typing import Any

from k3watch.errors import InputError, Location
from k3watch.event import Event
from k3watch.parse.logs import (
    DEFAULT_MAX_LINE_BYTES,
    LineParser,
    LogRecord,
    Origin,
    Problems,
    decode,
)
from k3watch.parse.syscalls import ARCHES, syscall_name
from k3watch.parse.syslog import prefix_time, split_syslog
from k3watch.parse.timestamps import LocalClock, fraction_us
from k3watch.telemetry import Counters

# Audit record types by number (the names auditd prints).
AUDIT_TYPES = {
    1107: "USER_AVC",
    1326: "SECCOMP",
    1400: "AVC",
    1500: "APPARMOR",
    1501: "APPARMOR_AUDIT",
    1502: "APPARMOR_ALLOWED",
    1503: "APPARMOR_DENIED",
    1504: "APPARMOR_HINT",
    1505: "APPARMOR_STATUS",
    1506: "APPARMOR_ERROR",
}
_TYPE_NUMBERS = {name: number for number, name in AUDIT_TYPES.items()}
# The decision implied by the old AppArmor record types, which had no apparmor= field.
_DECISIONS = {
    1501: "AUDIT",
    1502: "ALLOWED",
    1503: "DENIED",
    1504: "HINT",
    1505: "STATUS",
    1506: "ERROR",
}
# SECCOMP_RET_ACTION_FULL values of code= → action.
SECCOMP_ACTIONS = {
    0x80000000: "kill_process",
    0x00000000: "kill_thread",
    0x00030000: "trap",
    0x00050000: "errno",
    0x7FC00000: "user_notif",
    0x7FF00000: "trace",
    0x7FFC0000: "log",
    0x7FFF0000: "allow",
}
# IP protocol numbers (protocol=6) → name.
PROTOCOLS = {
    0: "ip",
    1: "icmp",
    2: "igmp",
    6: "tcp",
    17: "udp",
    41: "ipv6",
    47: "gre",
    50: "esp",
    58: "icmpv6",
    132: "sctp",
    136: "udplite",
    255: "raw",
}
# Newer kernels write some fields under other names; one name each keeps rules simple.
RENAMES = {
    "requested": "requested_mask",
    "denied": "denied_mask",
    "label": "profile",
    "peer_label": "peer_profile",
}
INT_FIELDS = frozenset(
    {
        "pid",
        "ppid",
        "parent",
        "fsuid",
        "ouid",
        "error",
        "task",
        "peer_pid",
        "capability",
        "lport",
        "fport",
        "src",
        "dest",
        "sig",
        "syscall",
        "ses",
        "auid",
        "uid",
        "gid",
        "euid",
        "suid",
        "egid",
        "sgid",
        "fsgid",
        "compat",
        "sauid",
        "offset",
        "magic_token",
    }
)
# Fields the kernel writes as hex when the string holds a space, a quote or a control byte.
HEX_FIELDS = frozenset(
    {
        "name",
        "name2",
        "profile",
        "label",
        "comm",
        "exe",
        "target",
        "peer",
        "peer_label",
        "namespace",
        "execpath",
        "srcname",
        "tcontext",
        "cwd",
    }
)
_UNKNOWN_VALUES = frozenset({"?", "(null)"})
KERNEL_IDENTS = frozenset({"kernel", "kern", "audit"})

_DMESG = re.compile(r"\[\s*\d+\.\d+\] ?")
_DMESG_HUMAN = re.compile(r"\[[A-Z][a-z]{2} [A-Z][a-z]{2} [ \d]\d \d\d:\d\d:\d\d \d{4}\] ?")
_AUDITD = re.compile(r"(?:node=\S+ )?type=([A-Z0-9_]+|UNKNOWN\[\d+\]) msg=audit\(([^)]*)\): ?")
_PRINTK = re.compile(r"type=(\d+) audit\(([^)]*)\): ?")
_STAMP_FIRST = re.compile(r"audit\(([^)]*)\): ?")
_TYPE_ONLY = re.compile(r"(?:node=\S+ )?type=([A-Z0-9_]+|UNKNOWN\[\d+\])(?: |$)")
_JOURNAL = re.compile(r"(AVC|USER_AVC|SECCOMP|APPARMOR(?:_[A-Z]+)?) ")
_STAMP = re.compile(r"(\d{1,12})\.(\d{1,9}):(\d{1,20})")
_FIELD = re.compile(r"""([A-Za-z_][\w-]*)=("[^"]*"?|'[^']*'?|[^\s"'\x1d]*)""")
_GLUED_KEY = re.compile(r"[A-Z][A-Z0-9_]*=")
_WORD_END = re.compile(r"[\s\x1d]")
_HEX = re.compile(r"(?:[0-9A-F]{2})+")
_CONTAINER_PATH = re.compile(r"/(?:k8s\.io|containers|sandboxes)/([0-9a-f]{64})(?:/|$)")
_POD_PATH = re.compile(r"/pods/([0-9a-f]{8}(?:-[0-9a-f]{4}){3}-[0-9a-f]{12})(?:/|$)")
_PATH_FIELDS = ("name", "name2", "target", "exe", "execpath", "srcname")


@dataclass(slots=True)
class KernelLine:
    """A kernel or audit line: ``kernel`` holds the AppArmor/seccomp fields, else ``None``.

    ``message`` is the line without its syslog, dmesg and ``audit:`` wrappers; ``time`` the
    audit stamp in UTC µs; ``problems`` what could not be read, as (reason, message).
    """

    message: str
    kernel: dict[str, Any] | None = None
    time: int | None = None
    level: str | None = None
    problems: Problems = field(default_factory=list)


def looks_like_record(text: str) -> bool:
    """A cheap test for text worth :func:`parse_kernel` outside a kernel stream."""
    return 'apparmor="' in text or "type=1326" in text or "SECCOMP" in text


def parse_kernel(
    text: str, *, audit_type: int | None = None, stamp: tuple[int, int] | None = None
) -> KernelLine:
    """Read one line's AppArmor or seccomp record.

    ``audit_type`` and ``stamp`` (UTC µs, serial) are for the journal's audit transport,
    which keeps them out of the text.
    """
    payload = _unwrap(text)
    problems: Problems = []
    record_type: str | None = AUDIT_TYPES.get(audit_type, str(audit_type)) if audit_type else None
    stamp_text: str | None = None
    rest: str
    if (match := _AUDITD.match(payload) or _PRINTK.match(payload)) is not None:
        record_type, stamp_text, rest = match[1], match[2], payload[match.end() :]
    elif (match := _STAMP_FIRST.match(payload)) is not None:
        stamp_text, rest = match[1], payload[match.end() :]
    elif (match := _JOURNAL.match(payload) or _TYPE_ONLY.match(payload)) is not None:
        record_type, rest = match[1], payload[match.end() :]
    elif payload.startswith(("apparmor=", "operation=")):
        rest = payload
    else:
        return KernelLine(payload)
    pairs, enriched = _tokens(rest)
    values = {key: value for key, value, _ in pairs}
    if record_type is None and "type" in values:
        record_type = values["type"]
    number = _type_number(record_type)
    decision: str | None
    if "apparmor" in values:
        family, decision = "apparmor", values["apparmor"]
    elif number is not None and 1500 <= number <= 1506:
        family, decision = "apparmor", _DECISIONS.get(number)
    elif number == 1326:
        family, decision = "seccomp", None
    else:
        return KernelLine(payload)

    kernel: dict[str, Any] = {"type": family}
    if decision is not None:
        kernel["apparmor"] = decision
    if record_type is not None:
        kernel["record_type"] = AUDIT_TYPES.get(number, record_type) if number else record_type
    when: int | None = None
    if stamp_text is not None:
        parsed = _STAMP.fullmatch(stamp_text)
        if parsed is None:
            problems.append(
                (
                    "invalid_audit_stamp",
                    f"audit stamp {stamp_text[:40]!r} is not <seconds>.<ms>:<serial>; "
                    "record kept without its time and id",
                )
            )
        else:
            kernel["audit_id"] = stamp_text
            when = int(parsed[1]) * 1_000_000 + fraction_us(parsed[2])
    elif stamp is not None:
        when = stamp[0]
        kernel["audit_id"] = f"{stamp[0] // 1_000_000}.{stamp[0] // 1000 % 1000:03d}:{stamp[1]}"
    for key, value, quoted in pairs:
        if key in ("type", "msg", "apparmor"):
            continue
        _put(kernel, key, value, quoted, problems)
    if family == "seccomp":
        _seccomp(kernel, enriched)
    return KernelLine(payload, kernel, when, _level(kernel), problems)


def container_of(kernel: dict[str, Any]) -> dict[str, str]:
    """What a record tells about its container: runtime, container id, pod UID."""
    out: dict[str, str] = {}
    profile = kernel.get("profile")
    if isinstance(profile, str):
        base = profile.split("//", 1)[0]
        if base == "cri-containerd.apparmor.d":
            out["runtime"] = "containerd"
        elif base == "docker-default":
            out["runtime"] = "docker"
    for key in _PATH_FIELDS:
        value = kernel.get(key)
        if not isinstance(value, str) or "/" not in value:
            continue
        if "id" not in out and (found := _CONTAINER_PATH.search(value)) is not None:
            out["id"] = found[1]
        if "pod_uid" not in out and (found := _POD_PATH.search(value)) is not None:
            out["pod_uid"] = found[1]
    return out


def _unwrap(text: str) -> str:
    """The line without dmesg's ``[ 123.456]`` or ``[Thu May 23 …]`` and ``audit: ``."""
    text = text.lstrip()
    if text.startswith("["):
        match = _DMESG.match(text) or _DMESG_HUMAN.match(text)
        if match is not None:
            text = text[match.end() :]
    if text.startswith("audit: "):
        text = text[7:]
    return text


def _tokens(text: str) -> tuple[list[tuple[str, str, bool]], dict[str, str]]:
    """``(key, value, quoted)`` fields in order, and auditd's interpreted (upper-case) ones.

    Words that are not ``key=value`` are skipped. ``msg='…'`` (a user-space record inside an
    audit record) is read in place; an unterminated quote runs to the end of the text.
    """
    pairs: list[tuple[str, str, bool]] = []
    enriched: dict[str, str] = {}
    position = 0
    length = len(text)
    interpreted = False
    while position < length:
        char = text[position]
        if char.isspace():
            position += 1
            continue
        if char == "\x1d":
            interpreted = True
            position += 1
            continue
        match = _FIELD.match(text, position)
        if match is None:
            end = _WORD_END.search(text, position)
            position = length if end is None else end.start()
            continue
        key, raw = match[1], match[2]
        position = match.end()
        quote = raw[:1] if raw[:1] in ('"', "'") else ""
        if quote:
            value = raw[1:-1] if len(raw) > 1 and raw[-1] == quote else raw[1:]
        else:
            value = raw
            if "=" in raw:
                # auditd's interpreted fields glued to the last value (…code=0x7ffc0000AUID=…)
                glued = _GLUED_KEY.search(raw)
                if glued is not None:
                    value = raw[: glued.start()]
                    position = match.start(2) + glued.start()
        if key == "msg" and quote == "'":
            # A user-space record (USER_AVC): the fields before it are about the daemon
            # that relayed it, not about the subject.
            inner, inner_enriched = _tokens(value)
            pairs = inner
            enriched.update(inner_enriched)
        elif interpreted or key.isupper():
            enriched[key] = value
        else:
            pairs.append((key, value, bool(quote)))
    return pairs, enriched


def _put(kernel: dict[str, Any], key: str, value: str, quoted: bool, problems: Problems) -> None:
    if value in _UNKNOWN_VALUES and not quoted:
        return
    name = RENAMES.get(key, key)
    if name != key and name in kernel:
        return  # the field under its own name wins
    if not quoted and key in HEX_FIELDS and _HEX.fullmatch(value):
        try:
            value = bytes.fromhex(value).decode("utf-8")
        except UnicodeDecodeError:
            problems.append(
                (
                    "undecodable_value",
                    f"{key}= holds hex that is not UTF-8 text ({value[:24]}…); field dropped",
                )
            )
            return
    if name in INT_FIELDS:
        try:
            kernel[name] = int(value, 10)
        except ValueError:
            if quoted:
                kernel[name] = value
            else:
                problems.append(
                    ("invalid_field", f"{key}= is not a number ({value[:40]!r}); field dropped")
                )
        return
    if name == "protocol":
        kernel[name] = PROTOCOLS.get(int(value), value) if value.isdigit() else value
        return
    kernel[name] = value


def _seccomp(kernel: dict[str, Any], enriched: dict[str, str]) -> None:
    code = kernel.get("code")
    if isinstance(code, str):
        try:
            value = int(code, 16) if code[:2].lower() == "0x" else int(code)
        except ValueError:
            value = None
        if value is not None:
            action = SECCOMP_ACTIONS.get(value & 0xFFFF0000)
            if action is not None:
                kernel["action"] = action
                if action == "errno":
                    kernel["errno"] = value & 0xFFFF
    arch = kernel.get("arch")
    if isinstance(arch, str):
        kernel["arch"] = ARCHES.get(arch.lower(), arch)
    number = kernel.get("syscall")
    if isinstance(number, int):
        name = syscall_name(kernel["arch"], number) if isinstance(arch, str) else None
        name = name or enriched.get("SYSCALL")
        if name:
            kernel["syscall_name"] = name


def _type_number(record_type: str | None) -> int | None:
    if record_type is None:
        return None
    if record_type.isdigit():
        return int(record_type) if len(record_type) < 6 else None
    if record_type.startswith("UNKNOWN[") and record_type[8:-1].isdigit():
        return int(record_type[8:-1])
    return _TYPE_NUMBERS.get(record_type)


def _level(kernel: dict[str, Any]) -> str:
    if kernel.get("apparmor") in ("DENIED", "ERROR"):
        return "warning"
    if kernel.get("action") in ("kill_process", "kill_thread", "trap", "errno"):
        return "warning"
    return "info"


def kernel_record(line: KernelLine, record: LogRecord) -> None:
    """Fill ``record`` (already holding the wrapper's fields) from a kernel line."""
    record.message = line.message
    record.component = "kernel"
    if line.kernel is not None:
        record.format = "kernel"
        record.kernel = line.kernel
        record.level = line.level
        container = container_of(line.kernel)
        if container:
            record.container = container
    if line.time is not None:
        record.time = line.time


class KernelParser(LineParser):
    """AppArmor and seccomp records from dmesg, kern.log, syslog or auditd's audit.log.

    Other lines are counted in ``skipped{not_apparmor_or_seccomp}`` and dropped, unless
    ``keep_other`` is set (then they come out as plain records). ``host`` names the node for
    inputs whose lines do not (dmesg, audit.log); ``tz`` and ``now`` resolve syslog times
    without a zone or a year (see :class:`~k3watch.parse.timestamps.LocalClock`).
    """

    def __init__(
        self,
        counters: Counters,
        on_error: Callable[[InputError], None],
        *,
        host: str | None = None,
        tz: tzinfo = UTC,
        now: Callable[[], float] = time.time,
        keep_other: bool = False,
        max_line_bytes: int = DEFAULT_MAX_LINE_BYTES,
    ) -> None:
        super().__init__(counters, on_error, max_line_bytes=max_line_bytes)
        self.host = host
        self.keep_other = keep_other
        self.clock = LocalClock(tz, now)
        # A line whose msg='…' is still open: the next line may continue it (auditd wraps
        # long user-space records).
        self._held: tuple[str, Origin, bool] | None = None

    def parse_line(
        self,
        line: bytes | str,
        source: str,
        lineno: int = 1,
        offset: int = 0,
        *,
        truncated: bool = False,
    ) -> list[Event]:
        self.counters.inc("lines")
        text = decode(line)
        out: list[Event] = []
        if self._held is not None:
            held, origin, cut = self._held
            self._held = None
            if text[:1].isspace() and text.strip():
                self.counters.inc("joined")
                return self._read(f"{held} {text.strip()}", origin, cut or truncated)
            out = self._read(held, origin, cut)
        if not text.strip():
            self.counters.inc("skipped", reason="blank")
            return out
        origin = Origin(source, lineno, offset)
        start = text.find("msg='")
        if start >= 0 and text.count("'", start) % 2 == 1:
            self._held = (text, origin, truncated)
            return out
        return out + self._read(text, origin, truncated)

    def flush(self) -> list[Event]:
        if self._held is None:
            return []
        held, origin, cut = self._held
        self._held = None
        return self._read(held, origin, cut)

    def _read(self, text: str, origin: Origin, truncated: bool) -> list[Event]:
        record = LogRecord(text, "text", host=self.host, truncated=truncated)
        prefix = split_syslog(text)
        content = text
        if prefix is not None:
            content = prefix.message
            record.format = "syslog"
            record.host = prefix.host or self.host
            record.ident = prefix.ident
            record.pid = prefix.pid
            record.level = prefix.level
            record.time = prefix_time(prefix, self.clock)
        line = parse_kernel(content)
        for reason, message in line.problems:
            self.report(reason, message, Location(origin.name, origin.line))
        if line.kernel is None and not self.keep_other:
            self.counters.inc("skipped", reason="not_apparmor_or_seccomp")
            return []
        kernel_record(line, record)
        return [self.emit(record, origin)]
