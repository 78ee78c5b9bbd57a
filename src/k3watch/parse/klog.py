"""klog lines, the format of the Kubernetes components (kubelet, API server, scheduler…).

::

    I0523 20:29:53.123456    1234 kubelet.go:2160] "SyncLoop ADD" source="api" pods=["a/b"]

The header holds the level letter (I, W, E, F), month and day, the local wall-clock time with
microseconds (no year, no zone: see :class:`~k3watch.parse.timestamps.LocalClock`), the
process id and the caller. Structured messages (``InfoS``/``ErrorS``) are a quoted message
followed by ``key=value`` pairs whose values are Go-quoted strings, bare numbers, ``{…}`` or
``[…]`` renderings of Go values, or a multi-line string written as ``key=<`` on the line,
then the value's lines indented with a tab, then `` >`` alone.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from k3watch.parse import gostring
from k3watch.parse.logs import LEVELS

_HEADER = re.compile(
    r"([IWEF])(\d\d)(\d\d) (\d\d):(\d\d):(\d\d)\.(\d{6}) +(\d+) ([^\s:\]]+):(\d+)\] ?"
)
_KEY = re.compile(r"[^\s=\"]+")
_OPENERS = {"{": "}", "[": "]", "(": ")"}
_CLOSERS = frozenset("}])")


@dataclass(frozen=True, slots=True)
class KlogLine:
    """A klog header and the text after it (the body: a message, maybe structured)."""

    level: str
    month: int
    day: int
    hour: int
    minute: int
    second: int
    micro: int
    pid: int
    caller: str
    body: str


def parse_klog(text: str) -> KlogLine | None:
    """The line read as klog, or ``None`` if it has no klog header."""
    if not text or text[0] not in "IWEF":
        return None
    match = _HEADER.match(text)
    if match is None:
        return None
    return KlogLine(
        level=LEVELS[match[1]],
        month=int(match[2]),
        day=int(match[3]),
        hour=int(match[4]),
        minute=int(match[5]),
        second=int(match[6]),
        micro=int(match[7]),
        pid=int(match[8]),
        caller=f"{match[9]}:{match[10]}",
        body=text[match.end() :],
    )


def split_structured(body: str) -> tuple[str, dict[str, str]] | None:
    """``(message, fields)`` of a structured message; ``None`` if the body is plain text.

    Every value is kept as text: Go strings unquoted, other values as written.
    """
    if not body.startswith('"'):
        return None
    scanned = gostring.scan(body, 0)
    if scanned is None:
        return None
    message, position = scanned
    fields: dict[str, str] = {}
    length = len(body)
    while position < length:
        if body[position] != " ":
            return None
        while position < length and body[position] == " ":
            position += 1
        if position >= length:
            break
        key = _KEY.match(body, position)
        if key is None or key.end() >= length or body[key.end()] != "=":
            return None
        position = key.end() + 1
        value = _scan_value(body, position)
        if value is None:
            return None
        fields[key[0]], position = value
    return message, fields


def _scan_value(body: str, position: int) -> tuple[str, int] | None:
    if position >= len(body):
        return "", position
    head = body[position]
    if head == '"':
        return gostring.scan(body, position)
    if head == "<" and body.startswith("<\n", position):
        return _multiline(body, position + 2)
    return _bare(body, position)


def _multiline(body: str, position: int) -> tuple[str, int] | None:
    """A ``key=<`` value: tab-indented lines up to a line holding `` >``."""
    end = body.find("\n >", position - 1)
    if end < 0:
        return None
    lines = body[position:end].split("\n")
    text = "\n".join(line[1:] if line.startswith("\t") else line for line in lines)
    return text, end + 3


def _bare(body: str, position: int) -> tuple[str, int]:
    """A value up to the next space outside brackets and quotes (``{Type:containerd ID:…}``)."""
    depth: list[str] = []
    index = position
    length = len(body)
    while index < length:
        char = body[index]
        if char == " " and not depth:
            break
        if char == '"':
            scanned = gostring.QUOTED.match(body, index)
            if scanned is not None:
                index = scanned.end()
                continue
        elif char in _OPENERS:
            depth.append(_OPENERS[char])
        elif char in _CLOSERS and depth and depth[-1] == char:
            depth.pop()
        index += 1
    return body[position:index], index
