"""The built-in library is quiet on normal K3s days: few alerts anyone has to look at."""

from __future__ import annotations

import pytest
from tests.library.evaluate import NOISE_SEVERITY, describe_alerts, evaluate
from tests.library.noise import (
    NOISE_BUDGET_PER_10K,
    NOISE_STREAMS,
    SETUP_IDENTITY,
    after_creation,
    creation_day,
    noise_result,
    noise_run,
)

from k3watch.sample import generate_events


@pytest.mark.parametrize("days", NOISE_STREAMS, ids=lambda d: f"{d}-day")
def test_normal_k3s_days_stay_within_the_noise_budget(days: int) -> None:
    """At most one alert at medium or above per 10,000 events of benign K3s operation."""
    result = noise_result(days)
    noisy = [a for a in after_creation(noise_run(days).alerts) if a.severity >= NOISE_SEVERITY]
    assert result.within_budget, (
        f"{result.noisy} alerts at {NOISE_SEVERITY.label} or above in {result.events:,} events "
        f"of {days} normal K3s days = {result.per_10k:.1f} per 10,000 (budget "
        f"{NOISE_BUDGET_PER_10K:g}, so at most {result.allowed}). Tune these rules or allowlist "
        f"the benign activity:\n{describe_alerts(noisy)}"
    )


def test_k3s_own_start_up_raises_nothing_at_medium_or_above() -> None:
    """On the creation day only the administrator's set-up may alert, not K3s's components."""
    first_day = [a for a in creation_day(noise_run(2).alerts) if a.severity >= NOISE_SEVERITY]
    by_others = [a for a in first_day if a.group.get("user.username") != SETUP_IDENTITY]
    assert not by_others, describe_alerts(by_others)


def test_the_noise_streams_are_read_whole() -> None:
    for days in NOISE_STREAMS:
        run = noise_run(days)
        assert run.result.parse_errors == {}
        assert noise_result(days).events > 5_000 * days


def test_the_same_cluster_under_attack_is_not_quiet() -> None:
    """The noise test can fail: with the attack scenarios injected, medium+ alerts appear."""
    run = evaluate(generate_events(attacks=True, days=3, seed=7))
    assert len(after_creation(run.at_least(NOISE_SEVERITY))) > noise_result(2).noisy + 5
