"""Load Sigma rules, filters and correlations from YAML files into a compiled ``RuleSet``.

pySigma parses every document (its object model is the reference for what Sigma means); filters
are applied to the rules they name; processing pipelines (field mappings, placeholders) run next;
then each rule is compiled. A broken rule is reported with its file and line and skipped: the
other rules still load.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import yaml
from sigma.collection import SigmaCollection
from sigma.correlations import SigmaCorrelationRule
from sigma.exceptions import SigmaError, SigmaRuleLocation
from sigma.filters import SigmaFilter
from sigma.processing.pipeline import ProcessingItem, ProcessingPipeline
from sigma.processing.transformations import ValueListPlaceholderTransformation
from sigma.rule import SigmaRule

from k3watch.alert import Severity
from k3watch.errors import Location, RuleError
from k3watch.rules.compile import build_predicate
from k3watch.rules.extension import Extension, parse_extension
from k3watch.rules.fields import Getter, compile_getter
from k3watch.rules.ir import CompileError, audit_needs, requirements, rule_to_ir
from k3watch.rules.model import (
    AUDIT_LEVELS,
    CORRELATION_TYPES,
    CorrelationRule,
    EventRule,
    Rule,
    RuleInfo,
    RuleOrigin,
    RuleSet,
)

DEFAULT_GROUP_BY = ("user.username",)
_RULE_SUFFIXES = (".yml", ".yaml")


def builtin_library() -> Path:
    """The directory of the built-in rule library shipped in the package."""
    return Path(str(resources.files("k3watch.rules") / "library"))


def builtin_pipeline() -> Path:
    return Path(str(resources.files("k3watch.rules") / "pipelines" / "sigmahq_kubernetes.yml"))


@dataclass(slots=True)
class _Doc:
    """One YAML document of a rule file, with what pySigma made of it."""

    data: dict[str, Any]
    node: yaml.Node | None  # None for documents that come from the configuration
    location: Location
    builtin: bool
    sigma: SigmaRule | SigmaCorrelationRule | SigmaFilter | None = None
    extension: Extension | None = None


def load_rules(
    paths: Sequence[Path | str] = (),
    *,
    builtin: bool = True,
    pipelines: Sequence[Path | str] = (),
    placeholders: dict[str, list[str]] | None = None,
    documents: Sequence[tuple[dict[str, Any], str]] = (),
    disabled: Sequence[str] = (),
) -> RuleSet:
    """Load the built-in library (unless ``builtin=False``) and every rule under ``paths``.

    ``documents`` are more Sigma documents given as data, each with a label saying where it
    comes from (the configuration's allowlist entries become filters this way). ``disabled``
    names rules (id, name or title) that are turned off: see :func:`_disable`.
    """
    ruleset = RuleSet(
        origin=RuleOrigin(
            tuple(str(p) for p in paths),
            builtin,
            tuple(str(p) for p in pipelines),
            tuple((k, tuple(v)) for k, v in (placeholders or {}).items()),
            tuple(documents),
            tuple(disabled),
        )
    )
    docs: list[_Doc] = [_Doc(data, None, Location(label), False) for data, label in documents]
    sources: list[tuple[Path, bool]] = []
    if builtin:
        sources.extend((p, True) for p in _rule_files(builtin_library(), ruleset))
    for path in paths:
        sources.extend((p, False) for p in _rule_files(Path(path), ruleset))
    for path, is_builtin in sources:
        docs.extend(_read_documents(path, is_builtin, ruleset))
    for doc in docs:
        _parse_sigma(doc, ruleset)
    pipeline = _build_pipeline(pipelines, placeholders or {}, ruleset)
    _assemble(docs, pipeline, ruleset)
    if disabled:
        _disable(ruleset, disabled)
    return ruleset


# --- files and documents ---


def _rule_files(path: Path, ruleset: RuleSet) -> list[Path]:
    if path.is_dir():
        return sorted(
            p for p in path.rglob("*") if p.suffix in _RULE_SUFFIXES and not p.name.startswith(".")
        )
    if path.is_file():
        return [path]
    ruleset.errors.append(RuleError("no such rule file or directory", Location(str(path))))
    return []


def _read_documents(path: Path, is_builtin: bool, ruleset: RuleSet) -> list[_Doc]:
    name = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        ruleset.errors.append(RuleError(f"cannot read rule file: {exc}", Location(name)))
        return []
    out: list[_Doc] = []
    try:
        loader = yaml.SafeLoader(text)
        try:
            while loader.check_node():
                node = loader.get_node()
                if node is None:
                    break
                data = loader.construct_document(node)
                location = Location(name, node.start_mark.line + 1)
                if data is None:
                    continue
                if not isinstance(data, dict):
                    ruleset.errors.append(RuleError("a rule document must be a mapping", location))
                    continue
                out.append(_Doc(data, node, location, is_builtin))
        finally:
            loader.dispose()
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        problem = getattr(exc, "problem", None) or str(exc)
        ruleset.errors.append(RuleError(f"invalid YAML: {problem}", Location(name, line)))
    return out


def _parse_sigma(doc: _Doc, ruleset: RuleSet) -> None:
    data = doc.data
    source = SigmaRuleLocation(Path(doc.location.source), doc.location.line)
    try:
        doc.extension = parse_extension(data.get("k3watch"), doc.node, doc.location)
        if "action" in data:
            raise RuleError(
                "Sigma 'action' documents (v1 rule collections) are not supported",
                doc.location,
                "write each rule as a complete document",
            )
        if "correlation" in data:
            doc.sigma = SigmaCorrelationRule.from_dict(data, source=source)
        elif "filter" in data:
            doc.sigma = SigmaFilter.from_dict(data, source=source)
        elif "detection" in data:
            doc.sigma = SigmaRule.from_dict(data, source=source)
        else:
            raise RuleError(
                "not a Sigma rule: it has no 'detection', 'correlation' or 'filter' section",
                doc.location,
            )
    except RuleError as exc:
        ruleset.errors.append(exc)
    except (SigmaError, ValueError, TypeError, KeyError, AttributeError) as exc:
        ruleset.errors.append(RuleError(_sigma_message(exc), _locate(doc, str(exc))))


def _sigma_message(exc: Exception) -> str:
    text = exc.args[0] if exc.args else str(exc)
    return str(text).split("\n", 1)[0]


_QUOTED = re.compile(r"'([^']+)'|\"([^\"]+)\"")


def _locate(doc: _Doc, message: str) -> Location:
    """The line in ``doc`` that an error message most likely refers to (else the document)."""
    tokens = [a or b for a, b in _QUOTED.findall(message)]
    lines = _key_lines(doc.node)
    for token in tokens:
        for key, line in lines:
            if key == token or key.split("|", 1)[0] == token or token in key.split("|")[1:]:
                return Location(doc.location.source, line)
    for token in tokens:
        for key, line in lines:
            if token and token in key:
                return Location(doc.location.source, line)
    return doc.location


def _key_lines(node: yaml.Node | None) -> list[tuple[str, int]]:
    out: list[tuple[str, int]] = []
    if node is None:
        return out
    stack = [node]
    while stack:
        current = stack.pop()
        if isinstance(current, yaml.MappingNode):
            for key_node, value_node in current.value:
                if isinstance(key_node, yaml.ScalarNode):
                    out.append((str(key_node.value), key_node.start_mark.line + 1))
                if isinstance(value_node, yaml.ScalarNode):
                    out.append((str(value_node.value), value_node.start_mark.line + 1))
                stack.append(value_node)
        elif isinstance(current, yaml.SequenceNode):
            for item in current.value:
                if isinstance(item, yaml.ScalarNode):
                    out.append((str(item.value), item.start_mark.line + 1))
                stack.append(item)
    out.sort(key=lambda pair: pair[1])
    return out


# --- pipelines ---


def _build_pipeline(
    paths: Sequence[Path | str], placeholders: dict[str, list[str]], ruleset: RuleSet
) -> ProcessingPipeline:
    pipeline = ProcessingPipeline()
    for path in [builtin_pipeline(), *(Path(p) for p in paths)]:
        try:
            pipeline = pipeline + ProcessingPipeline.from_yaml(path.read_text(encoding="utf-8"))
        except (OSError, SigmaError, yaml.YAMLError, ValueError, TypeError) as exc:
            ruleset.errors.append(
                RuleError(
                    f"cannot load processing pipeline: {_sigma_message(exc)}", Location(str(path))
                )
            )
    if placeholders:
        values = {name: list(v) for name, v in placeholders.items()}
        pipeline = pipeline + ProcessingPipeline(
            items=[
                ProcessingItem(
                    ValueListPlaceholderTransformation(list(values)),
                    identifier="k3watch_placeholders",
                )
            ],
            vars=values,
        )
    return pipeline


# --- assembly ---


def _assemble(docs: list[_Doc], pipeline: ProcessingPipeline, ruleset: RuleSet) -> None:
    rules = [d for d in docs if isinstance(d.sigma, SigmaRule | SigmaCorrelationRule)]
    filters = [d for d in docs if isinstance(d.sigma, SigmaFilter)]
    _check_duplicate_ids(rules, ruleset)
    rules = [d for d in rules if d.sigma is not None]

    # Filters may name rules by title too (pySigma resolves ids and names).
    titles = {
        d.sigma.title: str(d.sigma.id)
        for d in rules
        if isinstance(d.sigma, SigmaRule) and d.sigma.id is not None
    }
    for filter_doc in filters:
        sigma_filter = filter_doc.sigma
        assert isinstance(sigma_filter, SigmaFilter)
        if isinstance(sigma_filter.filter.rules, list):
            for reference in sigma_filter.filter.rules:
                reference.reference = titles.get(reference.reference, reference.reference)
        applied = 0
        for doc in rules:
            if not isinstance(doc.sigma, SigmaRule):
                continue
            try:
                before = doc.sigma.detection.condition[:]
                sigma_filter.apply_on_rule(doc.sigma)
                applied += doc.sigma.detection.condition != before
            except SigmaError as exc:
                ruleset.errors.append(RuleError(_sigma_message(exc), filter_doc.location))
                break
        if applied:
            ruleset.filters += 1
        else:
            ruleset.warnings.append(
                RuleError("filter applies to no loaded rule", filter_doc.location)
            )

    collection = SigmaCollection(
        [d.sigma for d in rules if d.sigma is not None], resolve_references=False
    )
    compiled: dict[int, EventRule | CorrelationRule] = {}
    failed: set[int] = set()
    for doc in rules:
        sigma = doc.sigma
        assert isinstance(sigma, SigmaRule | SigmaCorrelationRule)
        try:
            if isinstance(sigma, SigmaCorrelationRule):
                sigma.resolve_rule_references(collection)
            _apply_pipeline(pipeline, sigma)
            if isinstance(sigma, SigmaRule):
                compiled[id(sigma)] = _compile_event_rule(doc, sigma)
        except RuleError as exc:
            ruleset.errors.append(exc)
            failed.add(id(sigma))
        except (SigmaError, CompileError, ValueError, TypeError, KeyError) as exc:
            ruleset.errors.append(RuleError(_sigma_message(exc), _locate(doc, str(exc))))
            failed.add(id(sigma))

    correlations = [d for d in rules if isinstance(d.sigma, SigmaCorrelationRule)]
    pending = [d for d in correlations if id(d.sigma) not in failed]
    ordered: list[CorrelationRule] = []  # inputs before the correlations that read them
    while pending:
        progress = False
        for doc in list(pending):
            sigma = doc.sigma
            assert isinstance(sigma, SigmaCorrelationRule)
            refs = [r.rule for r in sigma.rules or []]
            if any(id(r) in failed for r in refs):
                bad = next(r for r in refs if id(r) in failed)
                ruleset.errors.append(
                    RuleError(f"references rule '{bad.title}', which did not load", doc.location)
                )
                failed.add(id(sigma))
                pending.remove(doc)
                progress = True
            elif all(id(r) in compiled for r in refs):
                try:
                    correlation = _compile_correlation(doc, sigma, compiled)
                    compiled[id(sigma)] = correlation
                    ordered.append(correlation)
                except RuleError as exc:
                    ruleset.errors.append(exc)
                    failed.add(id(sigma))
                pending.remove(doc)
                progress = True
        if not progress:
            for doc in pending:
                ruleset.errors.append(
                    RuleError("correlation references form a cycle", doc.location)
                )
            break

    for doc in rules:
        result = compiled.get(id(doc.sigma))
        if isinstance(result, EventRule):
            result.index = len(ruleset.event_rules)
            ruleset.event_rules.append(result)
    # Dependency order: the engine closes windows in this order at the end of a stream, so a
    # correlation's final hits still reach the correlations that consume them.
    ruleset.correlations.extend(ordered)
    _wire_consumers(ruleset)


def _check_duplicate_ids(rules: list[_Doc], ruleset: RuleSet) -> None:
    seen: dict[str, Location] = {}
    for doc in rules:
        sigma = doc.sigma
        if sigma is None or sigma.id is None:
            continue
        key = str(sigma.id)
        if key in seen:
            ruleset.errors.append(
                RuleError(f"duplicate rule id {key} (first defined at {seen[key]})", doc.location)
            )
            doc.sigma = None
        else:
            seen[key] = doc.location


def _apply_pipeline(pipeline: ProcessingPipeline, sigma: SigmaRule | SigmaCorrelationRule) -> None:
    # A pipeline keeps per-rule state: apply a fresh copy to every rule.
    fresh = ProcessingPipeline() + pipeline
    fresh.vars = dict(pipeline.vars)
    fresh.apply(sigma)


def _info(
    doc: _Doc,
    sigma: SigmaRule | SigmaCorrelationRule,
    kind: str,
    audit: tuple[str, tuple[str, ...]] = ("Metadata", ()),
    logsource: str = "",
) -> RuleInfo:
    extension = doc.extension or Extension()
    level = sigma.level.name.lower() if sigma.level is not None else "medium"
    if isinstance(sigma, SigmaRule):
        ls = sigma.logsource
        logsource = "/".join(p for p in (ls.product, ls.service, ls.category) if p)
    return RuleInfo(
        id=str(sigma.id) if sigma.id is not None else (sigma.name or str(doc.location)),
        title=sigma.title,
        severity=Severity.parse(level),
        tags=tuple(f"{t.namespace}.{t.name}" for t in sigma.tags),
        description=(sigma.description or "").strip(),
        falsepositives=tuple(str(f) for f in (sigma.falsepositives or [])),
        references=tuple(str(r) for r in (sigma.references or [])),
        response=extension.response,
        status=sigma.status.name.lower() if sigma.status is not None else "",
        author=sigma.author or "",
        kind=kind,
        location=doc.location,
        name=sigma.name,
        logsource=logsource,
        builtin=doc.builtin,
        audit_level=extension.audit_level or audit[0],
        audit_resources=audit[1],
    )


def _compile_event_rule(doc: _Doc, sigma: SigmaRule) -> EventRule:
    extension = doc.extension or Extension()
    ir = rule_to_ir(sigma)
    group_by = extension.group_by if extension.group_by is not None else DEFAULT_GROUP_BY
    first_seen = extension.first_seen
    kind = "first_seen" if first_seen is not None else "event"
    requires = requirements(ir)
    return EventRule(
        info=_info(doc, sigma, kind, audit_needs(ir, requires)),
        predicate=build_predicate(ir),
        requires=requires,
        ir=ir,
        group_by=group_by,
        group_getters=tuple(compile_getter(f) for f in group_by),
        first_seen=first_seen,
        first_seen_getters=tuple(compile_getter(f) for f in first_seen.fields)
        if first_seen
        else (),
        summary=extension.summary,
        tests=extension.tests,
        sigma=sigma,
    )


def _compile_correlation(
    doc: _Doc, sigma: SigmaCorrelationRule, compiled: dict[int, EventRule | CorrelationRule]
) -> CorrelationRule:
    extension = doc.extension or Extension()
    kind = sigma.type.name.lower()
    if kind not in CORRELATION_TYPES:
        raise RuleError(
            f"correlation type '{kind}' is not supported",
            _locate(doc, f"'{kind}'"),
            f"supported: {', '.join(CORRELATION_TYPES)}",
        )
    condition = sigma.condition
    op = getattr(getattr(condition, "op", None), "name", None)
    if op is None:
        raise RuleError(
            "extended (boolean) correlation conditions are not supported",
            _locate(doc, "'condition'"),
        )
    op = op.lower()
    threshold = float(condition.count)  # type: ignore[union-attr]
    value_field = getattr(condition, "fieldref", None)
    if isinstance(value_field, list):
        raise RuleError("value_count over several fields is not supported", doc.location)
    refs = [r.rule for r in sigma.rules or []]
    if kind == "temporal_ordered" and not (op == "gte" and threshold == len(refs)):
        raise RuleError(
            "temporal_ordered supports only the default condition (all rules, in order)",
            _locate(doc, "'condition'"),
        )
    group_by = tuple(sigma.group_by or ())
    inputs = [compiled[id(r)] for r in refs]
    group_getters: list[tuple[Getter, ...]] = []
    value_getters: list[Getter | None] = []
    for ref in refs:
        fields = [_aliased(sigma, name, ref) for name in group_by]
        group_getters.append(tuple(compile_getter(f) for f in fields))
        if value_field:
            value_getters.append(compile_getter(_aliased(sigma, value_field, ref)))
        else:
            value_getters.append(None)
    if kind == "value_count" and not value_field:
        raise RuleError("value_count needs 'field' in its condition", _locate(doc, "'condition'"))
    return CorrelationRule(
        info=_info(doc, sigma, kind, _inputs_audit(inputs), _inputs_logsource(inputs)),
        type=kind,
        timespan=float(sigma.timespan.seconds),
        group_by=group_by,
        op=op,
        threshold=threshold,
        value_field=value_field,
        inputs=inputs,
        input_group_getters=group_getters,
        input_value_getters=value_getters,
        summary=extension.summary,
        tests=extension.tests,
        generate_inputs=bool(sigma.generate),
        sigma=sigma,
    )


def _inputs_audit(inputs: list[EventRule | CorrelationRule]) -> tuple[str, tuple[str, ...]]:
    """A correlation needs what its inputs need."""
    level = max((i.info.audit_level for i in inputs), key=AUDIT_LEVELS.index, default="Metadata")
    resources: set[str] = set()
    for source in inputs:
        if not source.info.audit_resources:
            return level, ()
        resources.update(source.info.audit_resources)
    return level, tuple(sorted(resources))


def _inputs_logsource(inputs: list[EventRule | CorrelationRule]) -> str:
    """A correlation reads the log its inputs read, when they all read the same one."""
    sources = {source.info.logsource for source in inputs}
    return sources.pop() if len(sources) == 1 else ""


def _aliased(sigma: SigmaCorrelationRule, name: str, ref: SigmaRule | SigmaCorrelationRule) -> str:
    alias = sigma.aliases.aliases.get(name) if sigma.aliases else None
    if alias is None:
        return name
    for reference, field_name in alias.mapping.items():
        target = getattr(reference, "rule", None)
        if target is ref or reference.reference in (str(ref.id), ref.name):
            return field_name
    return name


def _wire_consumers(ruleset: RuleSet) -> None:
    """Connect inputs to the correlations that read them, and decide who alerts on its own.

    As in Sigma, a rule referenced by a correlation produces no alerts of its own unless one of
    those correlations says ``generate: true``.
    """
    generate: dict[int, bool] = {}
    for correlation in ruleset.correlations:
        for step, source in enumerate(correlation.inputs):
            source.consumers.append((correlation, step))
            generate[id(source)] = generate.get(id(source), False) or correlation.generate_inputs
    for rule in ruleset.all():
        if id(rule) in generate:
            rule.generate = generate[id(rule)]


def _disable(ruleset: RuleSet, names: Sequence[str]) -> None:
    """Turn off the rules named (by id, name or title). A disabled correlation is dropped, and
    so are the inputs only it read (they never alerted on their own). A disabled event rule is
    dropped unless a correlation still reads it; then it keeps running for that correlation
    and never alerts on its own. A name that matches no rule is a warning (the library may
    have moved on)."""
    wanted = {name.strip() for name in names if name.strip()}
    matched: set[str] = set()

    def off(rule: Rule) -> bool:
        hits = wanted & {rule.id, rule.info.title, rule.info.name or rule.id}
        matched.update(hits)
        return bool(hits)

    # Consumers before their inputs (correlations are in dependency order), so that what the
    # kept correlations read is known when their inputs are decided.
    correlations: list[CorrelationRule] = []
    silenced: list[Rule] = []
    read: set[int] = set()
    for correlation in reversed(ruleset.correlations):
        if not _keep(correlation, off(correlation), read, ruleset, silenced):
            continue
        correlations.insert(0, correlation)
        read.update(id(source) for source in correlation.inputs)
    rules = [
        rule for rule in ruleset.event_rules if _keep(rule, off(rule), read, ruleset, silenced)
    ]
    for index, rule in enumerate(rules):
        rule.index = index
    ruleset.event_rules, ruleset.correlations = rules, correlations
    for any_rule in ruleset.all():  # wired again without what was dropped
        any_rule.consumers.clear()
        any_rule.generate = True
    _wire_consumers(ruleset)
    for quiet in silenced:
        quiet.generate = False
    for name in sorted(wanted - matched):
        ruleset.warnings.append(
            RuleError(f"rules.disable names no loaded rule: {name!r}", Location("rules.disable"))
        )


def _keep(
    rule: Rule, turned_off: bool, read: set[int], ruleset: RuleSet, silenced: list[Rule]
) -> bool:
    """Whether ``rule`` stays (see ``_disable``); a disabled rule still read is silenced."""
    if not rule.generate and id(rule) not in read:
        return False  # an input of dropped correlations only: it never alerted
    if turned_off:
        ruleset.disabled.append(rule.info)
        if id(rule) not in read:
            return False
        silenced.append(rule)
    return True


def iter_rule_files(paths: Iterable[Path]) -> list[Path]:
    """Rule files under ``paths`` (for commands that work on files, like lint)."""
    ruleset = RuleSet()
    return [f for p in paths for f in _rule_files(p, ruleset)]
