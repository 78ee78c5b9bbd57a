"""API-server flags: from ``kube-apiserver-arg`` values, and from the running server's log line.

K3s turns each ``kube-apiserver-arg`` value (``name=value``, a leading ``--`` allowed, no ``=``
meaning ``true``) into an API-server flag over its own defaults. The same name given twice:
the later value wins; ``name+=value`` appends to the earlier values and ``name-=value``
prepends (newer K3s releases), which for a single-valued flag such as ``audit-log-path`` still
means the last value wins. K3s then logs every flag, sorted, in one line:
``Running kube-apiserver --advertise-address=… --audit-log-path=… …``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from k3watch.errors import Location
from k3watch.policy.k3s.config import Item

# The flags audit logging is made of; the checks and set-up look at these.
AUDIT_FLAGS = (
    "audit-log-path",
    "audit-policy-file",
    "audit-log-maxage",
    "audit-log-maxbackup",
    "audit-log-maxsize",
    "audit-log-format",
    "audit-log-mode",
    "audit-webhook-config-file",
    "audit-webhook-mode",
    "audit-webhook-batch-max-size",
    "audit-webhook-batch-max-wait",
)

RUNNING_MARKER = "Running kube-apiserver "


@dataclass(frozen=True, slots=True)
class FlagValue:
    """A flag's effective value, where it was set, and the settings of it that lost."""

    name: str
    value: str
    location: Location
    shadowed: tuple[Item, ...] = ()


def split_arg(text: str) -> tuple[str, str]:
    """``--name=value`` or ``name=value`` → (name, value); a bare name means ``true``."""
    name, sep, value = text.removeprefix("--").partition("=")
    return name, (value if sep else "true")


def resolve_flags(items: Iterable[Item]) -> dict[str, FlagValue]:
    """The effective API-server flags the ``kube-apiserver-arg`` items give, in K3s's way."""
    values: dict[str, list[Item]] = {}
    for item in items:
        raw_name, value = split_arg(item.value)
        name = raw_name.rstrip("+-")
        entry = Item(value, item.location)
        earlier = values.get(name, [])
        if raw_name.endswith("+"):
            values[name] = [*earlier, entry]
        elif raw_name.endswith("-"):
            values[name] = [entry, *earlier]
        else:
            values[name] = [*earlier, entry]  # kept only to report what the last one shadows
    out: dict[str, FlagValue] = {}
    for name, entries in values.items():
        winner = entries[-1]
        out[name] = FlagValue(name, winner.value, winner.location, tuple(entries[:-1]))
    return out


def running_args(message: str) -> list[str] | None:
    """The flags in a ``Running kube-apiserver`` log message, or None when it is not one.

    The message is either the bare text or a logrus line (``time="…" level=info msg="…"``)
    whose ``msg`` is quoted with Go's ``%q`` escapes.
    """
    start = message.find(RUNNING_MARKER)
    if start < 0:
        return None
    text = message[start + len(RUNNING_MARKER) :]
    quoted = message.rfind('msg="', 0, start)
    if quoted >= 0:
        text = _unquote_to_end(text)
    return _split_flags(text)


def _unquote_to_end(text: str) -> str:
    """The rest of a Go-quoted string: up to the closing quote, with ``\\"`` and ``\\\\`` undone."""
    out: list[str] = []
    i = 0
    while i < len(text):
        char = text[i]
        if char == "\\" and i + 1 < len(text):
            out.append(text[i + 1])
            i += 2
            continue
        if char == '"':
            break
        out.append(char)
        i += 1
    return "".join(out)


_FLAG_START = re.compile(r"(?:^|\s)(?=--[A-Za-z0-9])")


def _split_flags(text: str) -> list[str]:
    """Split ``--a=1 --b=x y --c`` into flags; text without ``--`` belongs to the flag before.

    K3s joins the flags with single spaces and does not quote values, so a value holding a
    space (rare: paths and lists of names have none) is rejoined with the flag it follows.
    """
    pieces = [p.strip() for p in _FLAG_START.split(text.strip())]
    return [p for p in pieces if p.startswith("--")]


def flags_from_args(args: Sequence[str], location: Location) -> dict[str, FlagValue]:
    """The flags of a ``Running kube-apiserver`` line (each flag appears once there)."""
    return resolve_flags(Item(arg, location) for arg in args)
