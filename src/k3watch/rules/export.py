"""``k3watch rules export``: the loaded rules as queries for other SIEMs, through pySigma backends.

The backends are optional packages. :data:`TARGETS` names the ones k3watch knows how to feed
(which package, which backend class, which field mapping); a target is available when its
package imports. Each rule is converted on a copy of the rule set (the loaded rules keep serving
k3watch's own engine), after k3watch's export pipeline for the target
(:mod:`k3watch.rules.export_pipelines`). A rule the target cannot express is reported with its
reason instead of a query: see :class:`~k3watch.rules.export_pipelines.SkipReason`.
"""

from __future__ import annotations

import copy
import importlib
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sigma.correlations import SigmaCorrelationRule
from sigma.exceptions import SigmaFeatureNotSupportedByBackendError
from sigma.processing.pipeline import ProcessingPipeline
from sigma.rule import SigmaRule

from k3watch.rules.export_pipelines import (
    ELASTIC_INDEX,
    LOKI_SELECTOR,
    ExportRefused,
    SkipReason,
    elastic_pipeline,
    loki_pipeline,
)
from k3watch.rules.model import CorrelationRule, EventRule, Rule, RuleSet


@dataclass(frozen=True, slots=True)
class Target:
    """A query language k3watch exports to, and the pySigma backend that writes it."""

    name: str
    title: str
    package: str  # the PyPI distribution that provides the backend
    requirement: str  # the version range k3watch is tested with
    module: str
    backend: str  # class name in ``module``
    pipeline: Callable[[str], ProcessingPipeline]
    default_source: str  # where queries search when --source is not given ("" when unused)
    # Fixes k3watch applies to the backend class before using it (see _lucene, _eql, _loki).
    adapt: Callable[[type[Any]], type[Any]] = lambda cls: cls

    @property
    def install_hint(self) -> str:
        # The backends' releases still declare pySigma < 2 although they run on pySigma 2, so
        # pip cannot resolve them together with k3watch: install them without dependencies.
        return f"pip install --no-deps '{self.requirement}'"


class ExportError(Exception):
    """The export cannot start (unknown target, backend not installed)."""


def _lucene(cls: type[Any]) -> type[Any]:
    # Elastic's annotation fields contain "/" (annotations.authorization_k8s_io/decision), which
    # starts a regular expression in Lucene query syntax unless escaped; the backend escapes
    # only spaces and "*" in field names.
    return type("K3watchLuceneBackend", (cls,), {"field_escape_pattern": re.compile(r"[\s*/]")})


def _eql(cls: type[Any]) -> type[Any]:
    # EQL needs such names in backticks (as Elastic's own EQL rules write them).
    pattern = re.compile(cls.field_quote_pattern.pattern + "|.*/")
    return type("K3watchEqlBackend", (cls,), {"field_quote_pattern": pattern})


def _loki(cls: type[Any]) -> type[Any]:
    # The Loki backend sets its field templates at run time, so pySigma never learns that it has
    # a "field does not exist" expression and negates an "exists" test with a NOT token, which
    # LogQL lacks (AttributeError). Send such tests to the templates it does have.
    def exists(self: Any, cond: Any, state: Any) -> Any:
        if cond.value:
            return self.convert_condition_field_exists(cond, state)
        return self.convert_condition_field_not_exists(cond, state)

    # It has no boolean values either; the json parser turns JSON true/false into those strings.
    attributes = {
        "convert_condition_field_eq_val_exists": exists,
        "bool_values": {True: "`true`", False: "`false`"},
    }
    return type("K3watchLogQLBackend", (cls,), attributes)


_ELASTIC_PACKAGE = "pysigma-backend-elasticsearch"
_ELASTIC_REQUIREMENT = "pysigma-backend-elasticsearch>=2.1,<3"
_ELASTIC_MODULE = "sigma.backends.elasticsearch"

TARGETS: dict[str, Target] = {
    "lucene": Target(
        "lucene",
        "Elasticsearch/Kibana Lucene query string",
        _ELASTIC_PACKAGE,
        _ELASTIC_REQUIREMENT,
        _ELASTIC_MODULE,
        "LuceneBackend",
        elastic_pipeline,
        "",
        _lucene,
    ),
    "esql": Target(
        "esql",
        "Elasticsearch ES|QL",
        _ELASTIC_PACKAGE,
        _ELASTIC_REQUIREMENT,
        _ELASTIC_MODULE,
        "ESQLBackend",
        elastic_pipeline,
        ELASTIC_INDEX,
    ),
    "eql": Target(
        "eql",
        "Elasticsearch EQL",
        _ELASTIC_PACKAGE,
        _ELASTIC_REQUIREMENT,
        _ELASTIC_MODULE,
        "EqlBackend",
        elastic_pipeline,
        ELASTIC_INDEX,
        _eql,
    ),
    "loki": Target(
        "loki",
        "Grafana Loki LogQL",
        "pysigma-backend-loki",
        "pysigma-backend-loki>=0.15,<0.16",
        "sigma.backends.loki",
        "LogQLBackend",
        loki_pipeline,
        LOKI_SELECTOR,
        _loki,
    ),
}


def backend_class(target: Target) -> type[Any] | None:
    """The target's backend class, or ``None`` when its package is not installed."""
    try:
        module = importlib.import_module(target.module)
    except ImportError:
        return None
    cls = getattr(module, target.backend, None)
    return target.adapt(cls) if isinstance(cls, type) else None


def describe_targets() -> str:
    """Every target with whether it can be used here (for usage errors and --help)."""
    lines = []
    for target in TARGETS.values():
        state = "" if backend_class(target) else f" — not installed: {target.install_hint}"
        lines.append(f"  {target.name:<7} {target.title}{state}")
    return "\n".join(lines)


def get_target(name: str) -> tuple[Target, type[Any]]:
    """The target called ``name`` and its backend class; :class:`ExportError` if unusable."""
    target = TARGETS.get(name)
    if target is None:
        raise ExportError(f"unknown target '{name}'; the targets are:\n{describe_targets()}")
    cls = backend_class(target)
    if cls is None:
        raise ExportError(
            f"target '{name}' needs the pySigma backend {target.package}, which is not "
            f"installed: {target.install_hint}"
        )
    return target, cls


@dataclass(slots=True)
class ExportResult:
    """One rule for one target: its queries, or why it has none."""

    rule_id: str
    title: str
    target: str
    queries: list[str] = field(default_factory=list)
    reason: SkipReason | None = None
    detail: str = ""

    @property
    def skipped_reason(self) -> str | None:
        return f"{self.reason}: {self.detail}" if self.reason is not None else None

    def to_dict(self) -> dict[str, Any]:
        return {
            "rule_id": self.rule_id,
            "title": self.title,
            "target": self.target,
            "queries": self.queries,
            "skipped_reason": self.skipped_reason,
        }


def export_rules(
    ruleset: RuleSet, target_name: str, source: str | None = None
) -> list[ExportResult]:
    """Convert every rule of ``ruleset`` for ``target_name``; one result per rule, in order.

    ``source`` is where the queries search (an index pattern, a Loki stream selector); the
    target's default when ``None``.
    """
    target, cls = get_target(target_name)
    backend = cls(processing_pipeline=target.pipeline(source or target.default_source))
    rules: list[Rule] = ruleset.all()
    # Backends transform the rules they convert and keep each rule's result on it (correlations
    # read their inputs' results): convert copies, made in one go so references stay shared.
    copies: list[SigmaRule | SigmaCorrelationRule] = copy.deepcopy([r.sigma for r in rules])
    results: dict[int, ExportResult] = {}
    for rule, sigma in zip(rules, copies, strict=True):
        result = ExportResult(rule.id, rule.info.title, target.name)
        results[id(rule)] = result
        blocked = _blocked_input(rule, results)
        if isinstance(rule, EventRule) and rule.first_seen is not None:
            _skip(result, SkipReason.FIRST_SEEN, _FIRST_SEEN)
        elif isinstance(rule, EventRule) and rule.info.reads_component_logs:
            _skip(result, SkipReason.NOT_IN_TARGET, _COMPONENT_LOGS)
        elif blocked is not None:
            _skip(result, SkipReason.INPUT_NOT_EXPORTED, blocked)
        else:
            _convert(backend, rule, sigma, result)
    for rule in rules:
        _explain_orphan_input(rule, results)
    return [results[id(r)] for r in rules]


def _explain_orphan_input(rule: Rule, results: dict[int, ExportResult]) -> None:
    """Say so when no correlation that reads an input rule could be exported either."""
    result = results[id(rule)]
    if result.reason is not SkipReason.CORRELATION_INPUT or not rule.consumers:
        return
    if all(results[id(c)].reason is not None for c, _ in rule.consumers):
        names = ", ".join(f"'{c.info.title}'" for c, _ in rule.consumers)
        result.detail = f"it raises no alert of its own, and {names} could not be exported"


_FIRST_SEEN = "alerting on values never seen before is a k3watch extension with no Sigma query"
_COMPONENT_LOGS = (
    "the rule reads k3watch.log/v1 component-log records; the target holds API-server audit events"
)


def _blocked_input(rule: Rule, results: dict[int, ExportResult]) -> str | None:
    if not isinstance(rule, CorrelationRule):
        return None
    for source in rule.inputs:
        result = results[id(source)]
        if result.reason not in (None, SkipReason.CORRELATION_INPUT):
            return f"'{source.info.title}' cannot be exported ({result.skipped_reason})"
    return None


def _convert(
    backend: Any, rule: Rule, sigma: SigmaRule | SigmaCorrelationRule, result: ExportResult
) -> None:
    try:
        if isinstance(sigma, SigmaCorrelationRule):
            queries = backend.convert_correlation_rule(sigma)
        else:
            queries = backend.convert_rule(sigma)
    except ExportRefused as exc:
        _skip(result, exc.reason, exc.detail)
    except (SigmaFeatureNotSupportedByBackendError, NotImplementedError) as exc:
        _skip(result, SkipReason.UNSUPPORTED, _message(exc))
    except Exception as exc:  # a third-party backend may fail in any way: report, go on
        _skip(result, SkipReason.CONVERSION_FAILED, f"{type(exc).__name__}: {_message(exc)}")
    else:
        result.queries = [str(q) for q in queries]
        if not rule.generate:
            # Sigma: a rule only a correlation reads raises no alert, so it has no query of its
            # own (the backend returns none); the correlation's query contains it.
            names = ", ".join(f"'{c.info.title}'" for c, _ in rule.consumers)
            _skip(result, SkipReason.CORRELATION_INPUT, f"its query is part of {names}")
        elif not result.queries:
            _skip(result, SkipReason.CONVERSION_FAILED, "the backend returned no query")


_CONTEXT = re.compile(r"\s*\(while [^()]* rule [^()]*\)\s*$")


def _message(exc: BaseException) -> str:
    # SigmaError appends the rule's file; backends append "(while converting rule FILE)": the
    # report already names the rule.
    text = str(exc.args[0]) if exc.args else str(exc)
    return _CONTEXT.sub("", text.split("\n", 1)[0]) or type(exc).__name__


def _skip(result: ExportResult, reason: SkipReason, detail: str) -> None:
    result.queries = []
    result.reason = reason
    result.detail = detail


def format_text(results: list[ExportResult]) -> str:
    """The converted queries, each under a comment with its rule's title and id."""
    blocks = [
        "\n".join([f"# {r.title} ({r.rule_id})", *r.queries]) for r in results if r.reason is None
    ]
    return "\n\n".join(blocks) + "\n" if blocks else ""


def summary(results: list[ExportResult]) -> str:
    """``12 rules converted to loki, 5 skipped (3 not in target data, 2 first seen)``."""
    converted = sum(r.reason is None for r in results)
    counts: dict[str, int] = {}
    for result in results:
        if result.reason is not None:
            counts[result.reason] = counts.get(result.reason, 0) + 1
    target = results[0].target if results else "?"
    detail = ", ".join(f"{n} {reason}" for reason, n in sorted(counts.items()))
    skipped = len(results) - converted
    return f"{converted} rules converted to {target}, {skipped} skipped" + (
        f" ({detail})" if detail else ""
    )
