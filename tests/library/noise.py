"""The noise budget: alerts someone must look at, per 10,000 events of normal K3s operation.

The simulated cluster is created on its first day: K3s's first start, then an administrator
(`system:admin`) sets up namespaces, bindings and applications. That set-up is real admin work
that should raise alerts; the budget is about the days that follow (system traffic, K3s's own
controllers, kubelets, routine human and CI work). The stream is scanned whole, so baselines
and windows see the first day, and the budget counts what starts after it. K3s's own start-up
on the first day is checked separately: its components must raise nothing.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cache

from tests.library.datasets import normal_k3s_days
from tests.library.evaluate import NOISE_SEVERITY, Evaluation, evaluate

from k3watch.alert import Alert, Severity
from k3watch.event import parse_time
from k3watch.sample import DEFAULT_START

NOISE_BUDGET_PER_10K = 1.0
"""At most one alert at medium or above per 10,000 events of benign traffic."""

NOISE_SEED = 7
NOISE_STREAMS = (2, 4)  # days of simulated K3s traffic after the creation day, no attacks
CREATION_END = DEFAULT_START.timestamp() + 86_400  # end of the cluster's first day
SETUP_IDENTITY = "system:admin"  # the administrator who sets the cluster up on day one


@cache
def noise_run(days: int, seed: int = NOISE_SEED) -> Evaluation:
    """The creation day plus ``days`` benign days, scanned with the built-in library (cached)."""
    return evaluate(normal_k3s_days(days=days + 1, seed=seed))


def after_creation(alerts: list[Alert]) -> list[Alert]:
    return [a for a in alerts if a.first_seen is not None and a.first_seen >= CREATION_END]


def creation_day(alerts: list[Alert]) -> list[Alert]:
    return [a for a in alerts if a.first_seen is None or a.first_seen < CREATION_END]


@dataclass(frozen=True, slots=True)
class NoiseResult:
    days: int
    events: int  # events after the creation day
    alerts: int  # all severities, after the creation day
    noisy: int  # at NOISE_SEVERITY or above, after the creation day

    @property
    def per_10k(self) -> float:
        return 10_000 * self.noisy / self.events if self.events else 0.0

    @property
    def allowed(self) -> int:
        """The most alerts the budget allows for this many events."""
        return math.floor(self.events * NOISE_BUDGET_PER_10K / 10_000)

    @property
    def within_budget(self) -> bool:
        return self.noisy <= self.allowed


@cache
def events_after_creation(days: int, seed: int = NOISE_SEED) -> int:
    return sum(
        1
        for event in normal_k3s_days(days=days + 1, seed=seed)
        if (parse_time(event["requestReceivedTimestamp"]) or 0.0) >= CREATION_END
    )


def noise_result(days: int, severity: Severity = NOISE_SEVERITY) -> NoiseResult:
    run = noise_run(days)
    later = after_creation(run.alerts)
    noisy = [a for a in later if a.severity >= severity]
    return NoiseResult(days, events_after_creation(days), len(later), len(noisy))
