"""Run audit events through ``k3watch scan`` with the built-in library and collect what it says.

The events are written as JSON lines to a temporary file and scanned by ``k3watch.scan.scan``
itself — the function behind the ``k3watch scan`` command — so parsing, the engine, the
suppression window and the flush at the end of the stream are exactly a user's.
"""

from __future__ import annotations

import tempfile
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import orjson

from k3watch.alert import Alert, Severity
from k3watch.errors import InputError
from k3watch.rules.loader import load_rules
from k3watch.rules.model import CorrelationRule, Rule, RuleSet
from k3watch.scan import ScanOptions, ScanResult, scan
from k3watch.telemetry import Counters

NOISE_SEVERITY = Severity.MEDIUM  # "an alert someone has to look at"


@cache
def library(*extra: Path) -> RuleSet:
    """The built-in library (plus ``extra`` rule or filter files), loaded once per process.

    Rules that fail to load are left out, as ``k3watch scan`` does (``ruleset.errors`` has them;
    tests/rules/test_library.py fails on them).
    """
    return load_rules(extra)


@dataclass(slots=True)
class Evaluation:
    """What one scan produced: every alert (all severities), the counters and the input errors."""

    ruleset: RuleSet
    alerts: list[Alert]
    result: ScanResult
    counters: Counters
    errors: list[InputError] = field(default_factory=list)

    @property
    def events(self) -> int:
        return self.result.events

    def at_least(self, severity: Severity = NOISE_SEVERITY) -> list[Alert]:
        return [a for a in self.alerts if a.severity >= severity]

    def matches(self, rule: Rule) -> int:
        """How often ``rule`` matched (or its correlation hit), alerting or not.

        Correlation inputs (informational, ``generate: false``) never alert on their own; this
        is how to tell whether they saw an event.
        """
        name = "correlation_hits" if isinstance(rule, CorrelationRule) else "rule_matches"
        return self.counters.get(name, reason=rule.id)

    def matched_titles(self) -> Counter[str]:
        """Rule title → matches, for every rule that matched at least once."""
        return Counter(
            {rule.info.title: n for rule in self.ruleset.all() if (n := self.matches(rule))}
        )

    def per_10k(self, severity: Severity = NOISE_SEVERITY) -> float:
        """Alerts at ``severity`` or above per 10,000 events."""
        return 10_000 * len(self.at_least(severity)) / self.events if self.events else 0.0


def evaluate(
    events: Iterable[dict[str, Any]],
    *,
    ruleset: RuleSet | None = None,
    options: ScanOptions | None = None,
    workdir: Path | None = None,
) -> Evaluation:
    """Scan ``events`` (in the given order) as one audit log; return every alert it raised."""
    ruleset = ruleset if ruleset is not None else library()
    options = options or ScanOptions()
    alerts: list[Alert] = []
    errors: list[InputError] = []
    counters = Counters("scan")
    with tempfile.TemporaryDirectory(dir=workdir, prefix="k3watch-eval-") as tmp:
        path = Path(tmp) / "audit.log"
        path.write_bytes(b"".join(orjson.dumps(e) + b"\n" for e in events))
        result = scan(
            [str(path)],
            ruleset,
            options,
            on_alert=alerts.append,
            on_error=errors.append,
            counters=counters,
        )
    return Evaluation(ruleset, alerts, result, counters, errors)


def describe_alert(alert: Alert) -> str:
    """One line per alert, for assertion messages and the report."""
    group = ", ".join(f"{k}={_plain(v)}" for k, v in alert.group.items())
    return (
        f"[{alert.severity.label}] {alert.title} ({group}) x{alert.count}: "
        f"{_shorten(alert.summary, 160)}"
    )


def describe_alerts(alerts: Sequence[Alert], limit: int = 40) -> str:
    lines = [f"  - {describe_alert(a)}" for a in alerts[:limit]]
    if len(alerts) > limit:
        lines.append(f"  … and {len(alerts) - limit} more")
    return "\n".join(lines)


def _plain(value: Any) -> str:
    if isinstance(value, list):
        return ",".join(map(str, value))
    return "?" if value is None else str(value)


def _shorten(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
