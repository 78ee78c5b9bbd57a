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

# Not a quote nor a backslash: [^"\\], written as ranges, which the regex engine tests
# several times faster (most of a line's characters go through this test).
_PLAIN = r"[\x00-!#-\[\]-\U0010ffff]"
# The inside of a Go-quoted string: runs of plain characters and escapes, never given back
# (no shorter reading could end at a closing quote), and unrolled so that a run is one step;
# ``(?:[^"\\]|\\.)*`` reads long messages several times slower.
_QUOTED = rf"{_PLAIN}*+(?:\\.{_PLAIN}*+)*+"
# key=value with a Go-quoted or a bare value; a quote left open (a cut line) runs to the end.
# Groups: key, the inside of a closed quoted value, a quoted value left open (with its quote),
# a bare value. A pair glued to more text (``a=b"c``, ``k="v"x``) is not a pair; neither is
# anything after it. The atomic group keeps the first way a pair matches, so that the
# lookahead cannot make it backtrack into another reading.
_PAIR_BODY = rf'([^\s="]++)=(?:"({_QUOTED})"|("{_QUOTED}\\?$)|([^\s"]*+))'
# One pair (after the spaces before it), or the text from where the pairs stop (group 5).
_PAIR = re.compile(rf" *+(?:(?>{_PAIR_BODY})(?= |\Z)|((?s:.*)))")
# The head of nearly every line, read in one match: a plain time, a bare level and a closed
# quoted message, each followed by one space (or the end for the message). Any other head
# (another order, a quoted level, escapes in the time) is read pair by pair instead.
_HEAD = re.compile(rf'time="({_PLAIN}*+)" level=([^\s"]*+) msg="({_QUOTED})"(?= |\Z)')
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


# A line's level, message, time and fields, as in LogrusLine.
LogrusParts = tuple[str | None, str, str | None, dict[str, str]]


def parse_logrus(text: str) -> LogrusLine | None:
    """The line read as logrus, or ``None`` if it is not in either logrus form."""
    if text.startswith(_STARTS):
        return LogrusLine(*_text_form(text), "text")
    head = text[:24]
    if "[" in head:
        match = _TERMINAL.match(text)
        if match is not None:
            return _terminal_form(text, match)
    return None


def logrus_parts(text: str) -> LogrusParts | None:
    """What :func:`parse_logrus` reads, without the :class:`LogrusLine` (for hot paths)."""
    if text.startswith(_STARTS):
        return _text_form(text)
    line = parse_logrus(text)
    return None if line is None else (line.level, line.message, line.time, line.fields)


def logrus_text(text: str) -> LogrusParts:
    """What :func:`logrus_parts` reads from a line known to be in the key/value form (one
    that starts with ``time=`` or ``level=``)."""
    return _text_form(text)


def _value(raw: str) -> str:
    if raw[:1] == '"':
        inner = raw[1:]
        # Closed if it ends in a quote that no odd run of backslashes escapes.
        if inner.endswith('"') and (len(inner) - 1 - len(inner[:-1].rstrip("\\"))) % 2 == 0:
            inner = inner[:-1]
        return gostring.unquote(inner)
    return raw


def _pairs(text: str, position: int) -> tuple[list[tuple[str, str]], str]:
    """key=value pairs from ``position``; returns them and the text where reading stopped."""
    pairs: list[tuple[str, str]] = []
    # Each match is a pair or, last, the rest of the text (empty at the end).
    for key, closed, left_open, bare, rest in _PAIR.findall(text, position):
        if not key:
            return pairs, rest
        if closed:
            pairs.append((key, gostring.unquote(closed)))
        elif left_open:
            pairs.append((key, _value(left_open)))
        else:
            pairs.append((key, bare))  # also a closed quoted value that is empty
    return pairs, ""


def _text_form(text: str) -> LogrusParts:
    level: str | None = None
    message: str | None = None
    when: str | None = None
    head = _HEAD.match(text)
    if head is None:
        pairs, rest = _pairs(text, 0)
    else:
        # The same first three pairs as the general reading, in one match.
        when, written, message = head.groups()
        level = LEVELS.get(written) or written.lower() or None
        message = gostring.unquote(message)
        if head.end() == len(text):
            return level, message, when, {}
        pairs, rest = _pairs(text, head.end())
    fields: dict[str, str] = {}
    for key, value in pairs:
        if key == "time" and when is None:
            when = value
        elif key == "level" and level is None:
            level = LEVELS.get(value) or value.lower() or None
        elif key == "msg" and message is None:
            message = value
        else:
            fields[key] = value
    rest = rest.strip()
    if rest:
        # Not key/value from here on (a hand-written line?): keep it as part of the message.
        message = f"{message} {rest}" if message else rest
    return level, message or "", when, fields


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
        pairs, left = _pairs(rest, gap.end())
        if pairs and not left and all(_FIELD_KEY.fullmatch(k) for k, _ in pairs):
            return LogrusLine(level, rest[: gap.start()].rstrip(), when, dict(pairs), "terminal")
    return LogrusLine(level, rest.rstrip(), when, fields, "terminal")
