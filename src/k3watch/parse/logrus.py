"""logrus lines, the format of K3s's own code and of containerd.

Two forms, both from logrus's text formatter:

- key/value, written when the output is not a terminal (files, the journal)::

      time="2024-05-23T20:29:53Z" level=info msg="Starting k3s v1.29.4+k3s1" key=value

  ``time``, ``level`` and ``msg`` come first; values with spaces or special characters are
  Go-quoted.
- terminal, written with colours when the output is a terminal (and copied from there)::

      INFO[2019-05-24T08:36:50.442513672+00:00] Starting k3s v0.5.0          key=value

  The level is cut to four letters, the bracket holds the time (or the seconds since start),
  the message is padded to 44 characters and the fields follow it, each after a space (their
  keys coloured when colours are on).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from k3watch.parse import gostring
from k3watch.parse.logs import LEVELS, strip_ansi

# key=value with a Go-quoted or a bare value; a quote left open (a cut line) runs to the end.
_PAIR = re.compile(r'([^\s="]+)=("(?:[^"\\]|\\.)*(?:"|\\?$)|[^\s"]*)')
_TERMINAL = re.compile(
    r"(?:\x1b\[[0-9;]*m)?(PANI|FATA|ERRO|WARN|INFO|DEBU|TRAC)(?:\x1b\[0m)?\[([^\]]{0,64})\] ?"
)
_COLOURED_KEY = re.compile(r" \x1b\[[0-9;]*m([^\x1b=\s]+)\x1b\[0m=")
_FIELD_KEY = re.compile(r"[A-Za-z_][\w.\-/]*")
_GAP = re.compile(r"  +")
_STARTS = ('time="', "time=", "level=")


@dataclass(frozen=True, slots=True)
class LogrusLine:
    """One logrus line: ``time`` is the time text as written (``None`` if the line had none)."""

    level: str | None
    message: str
    time: str | None
    fields: dict[str, str] = field(default_factory=dict)
    form: str = "text"  # "text" (key/value) or "terminal"


def parse_logrus(text: str) -> LogrusLine | None:
    """The line read as logrus, or ``None`` if it is not in either logrus form."""
    if text.startswith(_STARTS):
        return _text_form(text)
    head = text[:24]
    if "[" in head:
        match = _TERMINAL.match(text)
        if match is not None:
            return _terminal_form(text, match)
    return None


def _value(raw: str) -> str:
    if raw[:1] == '"':
        inner = raw[1:]
        # Closed if it ends in a quote that no odd run of backslashes escapes.
        if inner.endswith('"') and (len(inner) - 1 - len(inner[:-1].rstrip("\\"))) % 2 == 0:
            inner = inner[:-1]
        return gostring.unquote(inner)
    return raw


def _pairs(text: str, position: int) -> tuple[list[tuple[str, str]], int]:
    """key=value pairs from ``position``; returns them and where reading stopped."""
    pairs: list[tuple[str, str]] = []
    length = len(text)
    while True:
        while position < length and text[position] == " ":
            position += 1
        if position >= length:
            return pairs, position
        match = _PAIR.match(text, position)
        if match is None:
            return pairs, position
        end = match.end()
        if end < length and text[end] != " ":
            return pairs, position  # glued to more text: not a pair
        pairs.append((match[1], _value(match[2])))
        position = end


def _text_form(text: str) -> LogrusLine:
    pairs, stop = _pairs(text, 0)
    level: str | None = None
    message: str | None = None
    when: str | None = None
    fields: dict[str, str] = {}
    for key, value in pairs:
        if key == "time" and when is None:
            when = value
        elif key == "level" and level is None:
            level = LEVELS.get(value, value.lower() or None)
        elif key == "msg" and message is None:
            message = value
        else:
            fields[key] = value
    rest = text[stop:].strip()
    if rest:
        # Not key/value from here on (a hand-written line?): keep it as part of the message.
        message = f"{message} {rest}" if message else rest
    return LogrusLine(level, message or "", when, fields, "text")


def _terminal_form(text: str, match: re.Match[str]) -> LogrusLine:
    level = LEVELS.get(match[1])
    when = match[2] or None
    rest = text[match.end() :]
    fields: dict[str, str] = {}
    if "\x1b[" in rest:
        parts = _COLOURED_KEY.split(rest)
        message = strip_ansi(parts[0]).rstrip()
        for index in range(1, len(parts) - 1, 2):
            fields[parts[index]] = _value(strip_ansi(parts[index + 1]).rstrip())
        return LogrusLine(level, message, when, fields, "terminal")
    # The fields follow the padded message after at least two spaces: take the first gap
    # after which everything reads as key=value pairs.
    for tries, gap in enumerate(_GAP.finditer(rest)):
        if tries == 16:
            break
        pairs, stop = _pairs(rest, gap.end())
        if pairs and stop == len(rest) and all(_FIELD_KEY.fullmatch(k) for k, _ in pairs):
            return LogrusLine(level, rest[: gap.start()].rstrip(), when, dict(pairs), "terminal")
    return LogrusLine(level, rest.rstrip(), when, fields, "terminal")
