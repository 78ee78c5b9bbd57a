"""k3watch agrees with Falco's and Panther's labelled cases, and every disagreement is explained."""

from __future__ import annotations

from tests.library.agreement import (
    FALCO,
    PANTHER,
    agreement_markdown,
    disagreements,
    falco_idea,
    falco_ruleset,
    score,
    unknown_titles,
)
from tests.library.agreement_map import (
    EXPLAINED_DISAGREEMENTS,
    FALCO_NEAR_MISSES,
    FALCO_RULES,
    FALCO_RULES_FILES,
    PANTHER_RULES,
    PRIVILEGED,
)
from tests.library.datasets import falco_cases, load_panther
from tests.library.evaluate import evaluate, library

# Measured when this harness was written (library of 2026-11-27, 107 rules): Falco 50/54 (93%),
# Panther 181/234 (77%). The thresholds sit just below; raise them as rules improve.
MIN_FALCO_AGREEMENT = 0.90
MIN_PANTHER_AGREEMENT = 0.75
MIN_SCORED_CASES = {FALCO: 50, PANTHER: 220}  # so the ratio cannot rest on a handful of cases


def test_the_map_names_only_rules_the_library_has() -> None:
    assert unknown_titles() == [], (
        "agreement_map.py names rules that no longer load or were renamed; update the map"
    )


def test_every_labelled_rule_idea_and_rules_file_is_in_the_map() -> None:
    cases = falco_cases()
    assert {falco_idea(case) for case in cases} <= FALCO_RULES.keys()
    negatives = {case.name for case in cases if not case.detect}
    assert negatives == FALCO_NEAR_MISSES.keys(), "each negative Falco case names its idea"
    assert {f for case in cases for f in case.rules_files} <= FALCO_RULES_FILES.keys()
    corpus = load_panther()
    panther_ids = {c.rule_id for c in corpus.cases} | {c.rule_id for c in corpus.skipped}
    assert panther_ids == PANTHER_RULES.keys()


def test_agreement_with_falco_is_high() -> None:
    falco = score(FALCO)
    assert falco.total >= MIN_SCORED_CASES[FALCO], falco
    assert falco.ratio >= MIN_FALCO_AGREEMENT, f"Falco agreement {falco}\n{agreement_markdown()}"


def test_agreement_with_panther_is_high() -> None:
    panther = score(PANTHER)
    assert panther.total >= MIN_SCORED_CASES[PANTHER], panther
    assert panther.ratio >= MIN_PANTHER_AGREEMENT, (
        f"Panther agreement {panther}\n{agreement_markdown()}"
    )


def test_every_disagreement_is_explained() -> None:
    unexplained = [o for o in disagreements() if o.key not in EXPLAINED_DISAGREEMENTS]
    assert not unexplained, (
        "new disagreements with labelled cases: fix the rule, or add a one-line reason to "
        "EXPLAINED_DISAGREEMENTS in tests/library/agreement_map.py:\n"
        + "\n".join(f"    {o.key!r}: {o.describe()} [{o.idea}]" for o in unexplained)
    )


def test_no_explanation_is_stale() -> None:
    current = {o.key for o in disagreements()}
    stale = sorted(set(EXPLAINED_DISAGREEMENTS) - current)
    assert not stale, (
        "these cases now agree (or were renamed): remove them from EXPLAINED_DISAGREEMENTS:\n"
        + "\n".join(f"    {key!r}" for key in stale)
    )


def test_explanations_are_one_line() -> None:
    for key, reason in EXPLAINED_DISAGREEMENTS.items():
        assert reason and "\n" not in reason and len(reason) <= 200, key


def test_falco_trust_overrides_work_through_a_k3watch_filter() -> None:
    """Falco's trusted-nginx cases are quiet only because of the equivalent Sigma filter."""
    case = next(c for c in falco_cases() if c.name == "create_privileged_trusted_pod")
    privileged = next(r for r in library().all() if r.info.title == PRIVILEGED)
    assert evaluate(case.events).matches(privileged) == 1
    assert evaluate(case.events, ruleset=falco_ruleset(case)).matches(privileged) == 0


def test_the_markdown_table_lists_every_scored_idea_and_disagreement() -> None:
    text = agreement_markdown()
    assert "| Source | Rule idea | k3watch rule(s) | Cases | Agreement | Disagreements |" in text
    for outcome in disagreements():
        assert f"`{outcome.case}`" in text
    for idea in {**FALCO_RULES, **PANTHER_RULES}:
        assert f"| {idea} |" in text, idea
