"""How often k3watch agrees with Falco's and Panther's labelled test cases.

Each labelled case is scanned on its own with the built-in library (plus, for Falco cases that
load an override file, the k3watch filter doing the same). A case of a covered rule idea agrees
when one of the covering k3watch rules matches a case that must fire, or none matches a case
that must stay quiet. Cases of uncovered ideas are counted, not scored.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from tests.library.agreement_map import (
    ANY_RULE,
    EXPLAINED_DISAGREEMENTS,
    FALCO_NEAR_MISSES,
    FALCO_RULES,
    FALCO_RULES_FILES,
    PANTHER_RULES,
    Coverage,
)
from tests.library.datasets import FalcoCase, falco_cases, load_panther
from tests.library.evaluate import evaluate, library

from k3watch.rules.model import Rule, RuleSet

FALCO = "Falco"
PANTHER = "Panther"


@dataclass(frozen=True, slots=True)
class Outcome:
    """One labelled case of a covered idea, and what k3watch did with it."""

    source: str
    idea: str
    case: str
    must_fire: bool
    fired: tuple[str, ...]  # titles of the covering rules that matched

    @property
    def agrees(self) -> bool:
        return bool(self.fired) == self.must_fire

    @property
    def key(self) -> str:
        """The name used in EXPLAINED_DISAGREEMENTS: ``"Falco: create_privileged_pod"``."""
        return f"{self.source}: {self.case}"

    def describe(self) -> str:
        if self.must_fire:
            return "expected to fire, " + (
                f"fired ({', '.join(self.fired)})" if self.fired else "k3watch stayed quiet"
            )
        return "expected quiet, " + (
            f"k3watch fired ({', '.join(self.fired)})" if self.fired else "stayed quiet"
        )


@dataclass(frozen=True, slots=True)
class IdeaRow:
    """One Falco rule or Panther rule id, with its coverage and case outcomes."""

    source: str
    idea: str
    coverage: Coverage
    cases: int  # labelled cases that name this idea
    skipped: int  # cases whose log could not be turned into an audit event
    outcomes: tuple[Outcome, ...]

    @property
    def agreeing(self) -> int:
        return sum(o.agrees for o in self.outcomes)

    @property
    def disagreements(self) -> list[Outcome]:
        return [o for o in self.outcomes if not o.agrees]


def unknown_titles(ruleset: RuleSet | None = None) -> list[str]:
    """Titles named in the agreement map that no loaded rule has (renamed or removed rules)."""
    ruleset = ruleset or library()
    known = {rule.info.title for rule in ruleset.all()}
    named = {
        title
        for coverage in [*FALCO_RULES.values(), *PANTHER_RULES.values()]
        for title in coverage.titles
        if title != ANY_RULE
    }
    return sorted(named - known)


def _rules_titled(ruleset: RuleSet, titles: Sequence[str]) -> list[Rule]:
    """The loaded rules with these titles; a title no rule has is skipped (``unknown_titles``
    reports it, so that one renamed rule fails one test instead of the whole evaluation)."""
    return [rule for rule in ruleset.all() if rule.info.title in titles]


def _fired(
    events: Sequence[dict[str, Any]], coverage: Coverage, ruleset: RuleSet
) -> tuple[str, ...]:
    result = evaluate(events, ruleset=ruleset)
    if ANY_RULE in coverage.titles:
        titles = tuple(result.matched_titles()) or tuple(a.title for a in result.alerts)
        return tuple(sorted(set(titles)))
    rules = _rules_titled(ruleset, coverage.titles)
    return tuple(sorted({rule.info.title for rule in rules if result.matches(rule)}))


def falco_idea(case: FalcoCase) -> str:
    """The Falco rule a case is about: the one it expects, or the one it is a near miss of."""
    if case.expected_rules:
        return next(iter(case.expected_rules))
    try:
        return FALCO_NEAR_MISSES[case.name]
    except KeyError:
        raise KeyError(
            f"Falco case {case.name!r} expects nothing: add it to FALCO_NEAR_MISSES"
        ) from None


def falco_ruleset(case: FalcoCase) -> RuleSet:
    """The library plus the k3watch counterparts of the case's extra Falco rules files."""
    extra: list[Path] = []
    for name in case.rules_files:
        if name not in FALCO_RULES_FILES:
            raise KeyError(f"Falco rules file {name!r} ({case.name}) is not in FALCO_RULES_FILES")
        extra.extend(FALCO_RULES_FILES[name])
    return library(*extra)


@cache
def falco_outcomes() -> tuple[Outcome, ...]:
    out = []
    for case in falco_cases():
        idea = falco_idea(case)
        coverage = FALCO_RULES[idea]
        if not coverage.covered:
            continue
        fired = _fired(case.events, coverage, falco_ruleset(case))
        out.append(Outcome(FALCO, idea, case.name, case.detect, fired))
    return tuple(out)


@cache
def panther_outcomes() -> tuple[Outcome, ...]:
    out = []
    ruleset = library()
    for case in load_panther().cases:
        coverage = PANTHER_RULES[case.rule_id]
        if not coverage.covered:
            continue
        fired = _fired([case.event], coverage, ruleset)
        out.append(Outcome(PANTHER, case.rule_id, case.name, case.must_fire, fired))
    return tuple(out)


def outcomes() -> tuple[Outcome, ...]:
    return falco_outcomes() + panther_outcomes()


def disagreements() -> list[Outcome]:
    return [o for o in outcomes() if not o.agrees]


def idea_rows() -> list[IdeaRow]:
    """Every Falco rule and Panther rule id of the labelled cases, in the maps' order."""
    rows = []
    falco_counts: dict[str, int] = {}
    for case in falco_cases():
        idea = falco_idea(case)
        falco_counts[idea] = falco_counts.get(idea, 0) + 1
    by_idea: dict[tuple[str, str], list[Outcome]] = {}
    for outcome in outcomes():
        by_idea.setdefault((outcome.source, outcome.idea), []).append(outcome)
    for idea, coverage in FALCO_RULES.items():
        if idea in falco_counts:
            found = tuple(by_idea.get((FALCO, idea), ()))
            rows.append(IdeaRow(FALCO, idea, coverage, falco_counts[idea], 0, found))
    corpus = load_panther()
    for idea, coverage in PANTHER_RULES.items():
        cases = sum(c.rule_id == idea for c in corpus.cases)
        skipped = sum(c.rule_id == idea for c in corpus.skipped)
        if cases or skipped:
            found = tuple(by_idea.get((PANTHER, idea), ()))
            rows.append(IdeaRow(PANTHER, idea, coverage, cases + skipped, skipped, found))
    return rows


@dataclass(frozen=True, slots=True)
class Score:
    agreeing: int
    total: int

    @property
    def ratio(self) -> float:
        return self.agreeing / self.total if self.total else 1.0

    def __str__(self) -> str:
        return f"{self.agreeing}/{self.total} ({self.ratio:.0%})"


def score(source: str | None = None) -> Score:
    chosen = [o for o in outcomes() if source is None or o.source == source]
    return Score(sum(o.agrees for o in chosen), len(chosen))


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def agreement_markdown() -> str:
    """The agreement tables for docs/rules.md: covered ideas, then the uncovered ones."""
    rows = idea_rows()
    lines = [
        f"Agreement with labelled cases: Falco {score(FALCO)}, Panther {score(PANTHER)}, "
        f"overall {score()} (covered rule ideas only).",
        "",
    ]
    missing = unknown_titles()
    if missing:
        lines += [
            f"**Warning**: agreement_map.py names rules that did not load: {', '.join(missing)}.",
            "",
        ]
    lines += [
        "| Source | Rule idea | k3watch rule(s) | Cases | Agreement | Disagreements |",
        "|---|---|---|---|---|---|",
    ]
    for row in rows:
        if not row.coverage.covered:
            continue
        titles = "; ".join("any rule" if t == ANY_RULE else t for t in row.coverage.titles)
        scored = len(row.outcomes)
        agreement = f"{row.agreeing}/{scored}" if scored else "—"
        if row.skipped:
            agreement += f" ({row.skipped} not mappable)"
        wrong = "; ".join(f"`{o.case}` ({o.describe()})" for o in row.disagreements) or "—"
        lines.append(
            f"| {row.source} | {_cell(row.idea)} | {_cell(titles)} | {row.cases} | "
            f"{agreement} | {_cell(wrong)} |"
        )
    explained = [o for o in disagreements() if o.key in EXPLAINED_DISAGREEMENTS]
    if explained:
        lines += ["", "Why k3watch disagrees:", ""]
        lines += [f"- `{o.key}`: {EXPLAINED_DISAGREEMENTS[o.key]}." for o in explained]
    lines += [
        "",
        "| Source | Rule idea not covered | Cases | Why |",
        "|---|---|---|---|",
    ]
    for row in rows:
        if row.coverage.covered:
            continue
        lines.append(
            f"| {row.source} | {_cell(row.idea)} | {row.cases} | {_cell(row.coverage.note)} |"
        )
    skipped = load_panther().skipped
    if skipped:
        kinds: dict[str, int] = {}
        for case in skipped:
            kinds[case.kind] = kinds.get(case.kind, 0) + 1
        detail = "; ".join(f"{kind} ({n})" for kind, n in kinds.items())
        lines += [
            "",
            f"{len(skipped)} of {len(skipped) + len(load_panther().cases)} Panther cases are "
            "not scored: their log is not an API-server audit event, or lacks what one must "
            f"say ({detail}).",
        ]
    return "\n".join(lines)
