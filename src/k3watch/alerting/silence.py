"""Silences: label matchers with an expiry, as in Alertmanager, decided before delivery.

An alert's labels are its rule id and title, severity, cluster, namespace, user, each tag
(``tag``, matched against every tag) and its group values. A silence hides an alert when every
matcher matches; the alert is still stored, marked with the silence that hid it.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from functools import lru_cache
from typing import Any

from k3watch.store.base import Matcher, Silence

LABELS = ("rule_id", "rule", "severity", "cluster", "namespace", "user", "tag")


def parse_matcher(text: str) -> Matcher:
    """``name=value``, ``name!=value``, ``name=~regex``, ``name!~regex``."""
    match = re.fullmatch(r"\s*([A-Za-z_][A-Za-z0-9_.]*)\s*(=~|!~|!=|=)\s*(.*?)\s*", text)
    if not match:
        raise ValueError(f"matcher {text!r} must look like name=value, name!=value or name=~regex")
    name, op, value = match.groups()
    value = value.strip("\"'")
    matcher = Matcher(name, value, regex="~" in op, equal=op[0] == "=")
    if matcher.regex:
        _compiled(value)
    return matcher


def format_matcher(matcher: Matcher) -> str:
    op = ("=" if matcher.equal else "!") + (
        "~" if matcher.regex else "=" if not matcher.equal else ""
    )
    return f"{matcher.name}{op}{matcher.value}"


@lru_cache(maxsize=1024)
def _compiled(pattern: str) -> re.Pattern[str]:
    try:
        return re.compile(pattern)
    except re.error as exc:
        raise ValueError(f"invalid regular expression {pattern!r}: {exc}") from None


def alert_labels(
    rule_id: str,
    title: str,
    severity: str,
    cluster: str,
    namespace: str | None,
    user: str | None,
    tags: Sequence[str],
    group: Mapping[str, Any],
) -> dict[str, list[str]]:
    """The labels silences match against (each label may have several values)."""
    labels: dict[str, list[str]] = {
        str(k): [str(v)] for k, v in group.items() if v is not None and not isinstance(v, dict)
    }
    labels |= {
        "rule_id": [rule_id],
        "rule": [title],
        "severity": [severity],
        "cluster": [cluster],
        "namespace": [namespace or ""],
        "user": [user or ""],
        "tag": list(tags),
    }
    return labels


def matches(silence: Silence, labels: Mapping[str, Sequence[str]]) -> bool:
    """Whether every matcher of ``silence`` matches the labels (a missing label is "")."""
    for matcher in silence.matchers:
        values = labels.get(matcher.name) or ("",)
        if matcher.regex:
            pattern = _compiled(matcher.value)
            hit = any(pattern.fullmatch(v) for v in values)
        else:
            hit = matcher.value in values
        if hit != matcher.equal:
            return False
    return True


class ActiveSilences:
    """The silences in force, reloaded from the store at most every ``refresh`` seconds (and
    at once after ``invalidate``), so that matching costs no query per alert."""

    def __init__(
        self,
        load: Callable[[float], Iterable[Silence]],
        *,
        refresh: float = 5.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._load = load
        self._refresh = refresh
        self._clock = clock
        self._loaded_at = float("-inf")
        self._silences: list[Silence] = []
        self._lock = threading.Lock()

    def invalidate(self) -> None:
        with self._lock:
            self._loaded_at = float("-inf")

    def match(self, labels: Mapping[str, Sequence[str]]) -> Silence | None:
        """The first active silence that hides an alert with these labels."""
        now = self._clock()
        with self._lock:
            if now - self._loaded_at >= self._refresh:
                self._silences = list(self._load(now))
                self._loaded_at = now
            current = self._silences
        for silence in current:
            if silence.starts <= now < silence.ends and matches(silence, labels):
                return silence
        return None
