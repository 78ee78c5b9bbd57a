"""``rules.disable``: rules turned off by the configuration."""

from __future__ import annotations

from tests.conftest import builtin_rules

from k3watch.rules.loader import load_rules


def test_a_disabled_rule_is_gone_and_listed_as_disabled() -> None:
    full = builtin_rules()
    target = next(r for r in full.event_rules if r.generate)
    ruleset = load_rules(disabled=[target.info.title])
    assert target.id not in {r.id for r in ruleset.all()}
    assert [info.id for info in ruleset.disabled] == [target.id]
    assert [r.index for r in ruleset.event_rules] == list(range(len(ruleset.event_rules)))
    assert ruleset.origin is not None and ruleset.origin.load().disabled[0].id == target.id


def test_a_disabled_correlation_takes_its_silent_inputs_along() -> None:
    full = builtin_rules()
    correlation = next(c for c in full.correlations if c.generate)
    only_its = [
        i
        for i in correlation.inputs
        if not i.generate and all(c is correlation for c, _ in i.consumers)
    ]
    ruleset = load_rules(disabled=[correlation.id])
    ids = {r.id for r in ruleset.all()}
    assert correlation.id not in ids
    assert only_its and not ids & {i.id for i in only_its}  # they never alerted: not now either
    assert all(r.generate or r.consumers for r in ruleset.all())


def test_a_disabled_input_still_feeds_its_correlation_but_never_alerts() -> None:
    full = builtin_rules()
    correlation = next(c for c in full.correlations if c.generate)
    source = correlation.inputs[0]
    ruleset = load_rules(disabled=[source.id])
    kept = next(r for r in ruleset.event_rules if r.id == source.id)
    assert not kept.generate and kept.consumers
    assert correlation.id in {c.id for c in ruleset.correlations}
    assert source.id in {info.id for info in ruleset.disabled}


def test_an_unknown_name_is_a_warning() -> None:
    ruleset = load_rules(disabled=["No such rule"])
    assert [w.message for w in ruleset.warnings] == [
        "rules.disable names no loaded rule: 'No such rule'"
    ]
    assert len(ruleset) == len(builtin_rules())
