"""k3watch's pySigma processing pipelines for ``rules export``: audit field paths as each target
stores them.

Rules reach these pipelines already processed by the loader (SigmaHQ field names mapped, filters
merged, ``--pipeline`` files and placeholders applied), so every field is a raw audit event path
or a k3watch derived field. Three steps adapt them to a target:

1. **Derived fields.** ``k3watch.pod.spec`` and ``k3watch.pod.containers`` are only a choice
   among raw paths by ``objectRef.resource``, and ``k3watch.object.name`` a fallback from
   ``objectRef.name`` to the request body: each is rewritten into the equivalent raw-path
   condition. The others (``k3watch.exec.*`` decode ``requestURI``, ``k3watch.csr`` decodes a
   certificate request) have no equivalent in any stored field: the rule is refused.
2. **Field names.** Elastic's Kubernetes integration stores the event under ``kubernetes.audit``
   and replaces the dots of annotation keys with ``_``; it drops ``requestObject.metadata`` and
   ``responseObject.metadata``. Loki's ``| json`` parser names a nested field by joining its keys
   with ``_`` (the backend sanitizes the names the same way), and skips arrays.
3. **Where to search.** An index pattern for ES|QL and EQL, a stream selector and the ``json``
   parser for Loki.

A construct a target cannot express raises :class:`ExportRefused`, which carries the reason
shown to the user; nothing is silently dropped or approximated.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import StrEnum

from sigma.conditions import ConditionAND, ConditionOR
from sigma.correlations import SigmaCorrelationRule
from sigma.exceptions import SigmaTransformationError
from sigma.processing.pipeline import ProcessingItem, ProcessingPipeline
from sigma.processing.transformations import AddConditionTransformation, SetStateTransformation
from sigma.processing.transformations.base import (
    DetectionItemTransformation,
    FieldMappingTransformationBase,
    PreprocessingTransformation,
)
from sigma.rule import SigmaDetection, SigmaDetectionItem, SigmaRule
from sigma.types import SigmaExists, SigmaNull, SigmaString, SigmaType

from k3watch.event import DERIVED_FIELDS, WORKLOAD_RESOURCES


class SkipReason(StrEnum):
    """Why a rule was not exported; docs/export.md explains each one."""

    DERIVED_FIELD = "derived field"
    FIRST_SEEN = "first seen"
    CORRELATION_INPUT = "correlation input"
    NOT_IN_TARGET = "not in target data"
    UNSUPPORTED = "not supported by target"
    INPUT_NOT_EXPORTED = "input not exported"
    CONVERSION_FAILED = "conversion failed"


class ExportRefused(SigmaTransformationError):
    """A rule uses something the target's data or query language cannot express."""

    def __init__(self, reason: SkipReason, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


# --- derived fields ---

# Where the pod spec sits in a request body, by resource: the same choice `k3watch.pod.spec`
# makes (k3watch.event._derived_pod_spec), spelled out as alternatives a query can test.
_POD_SPEC_LOCATIONS: tuple[tuple[tuple[str, ...], str], ...] = (
    (("pods",), "requestObject.spec"),
    (tuple(sorted(WORKLOAD_RESOURCES)), "requestObject.spec.template.spec"),
    (("cronjobs",), "requestObject.spec.jobTemplate.spec.template.spec"),
)
_CONTAINER_LISTS = ("containers", "initContainers", "ephemeralContainers")

_Rewrite = Callable[[SigmaDetectionItem, str], SigmaDetection]


def _derived_root(field: str) -> str | None:
    for root in DERIVED_FIELDS:
        if field == root or field.startswith(root + "."):
            return root
    return None


def _with_field(item: SigmaDetectionItem, field: str) -> SigmaDetectionItem:
    # The values were already built from the rule's modifiers: keep them, only move the field.
    return dataclasses.replace(item, field=field, auto_modifiers=False)


def _test(field: str, values: Sequence[SigmaType]) -> SigmaDetectionItem:
    return SigmaDetectionItem(field, [], list(values), auto_modifiers=False)


def _all(*items: SigmaDetectionItem | SigmaDetection) -> SigmaDetection:
    return SigmaDetection(list(items), item_linking=ConditionAND)


def _any(items: Sequence[SigmaDetectionItem | SigmaDetection]) -> SigmaDetection:
    return SigmaDetection(list(items), item_linking=ConditionOR)


def _join(path: str, rest: str) -> str:
    return f"{path}.{rest}" if rest else path


def _resource_is(resources: tuple[str, ...]) -> SigmaDetectionItem:
    return _test("objectRef.resource", [SigmaString(r) for r in resources])


def _rewrite_pod_spec(item: SigmaDetectionItem, rest: str) -> SigmaDetection:
    return _any(
        [
            _all(_resource_is(resources), _with_field(item, _join(path, rest)))
            for resources, path in _POD_SPEC_LOCATIONS
        ]
    )


def _rewrite_pod_containers(item: SigmaDetectionItem, rest: str) -> SigmaDetection:
    return _any(
        [
            _all(_resource_is(resources), _with_field(item, _join(f"{path}.{name}", rest)))
            for resources, path in _POD_SPEC_LOCATIONS
            for name in _CONTAINER_LISTS
        ]
    )


def _rewrite_object_name(item: SigmaDetectionItem, rest: str) -> SigmaDetection:
    # objectRef.name when set, else the request body's name, else its generateName (a missing or
    # empty name falls through, as in k3watch.event._derived_object_name).
    absent = [SigmaNull()]
    return _any(
        [
            _with_field(item, "objectRef.name"),
            _all(_test("objectRef.name", absent), _with_field(item, "requestObject.metadata.name")),
            _all(
                _test("objectRef.name", absent),
                _test("requestObject.metadata.name", absent),
                _with_field(item, "requestObject.metadata.generateName"),
            ),
        ]
    )


_REWRITES: dict[str, _Rewrite] = {
    "k3watch.pod.spec": _rewrite_pod_spec,
    "k3watch.pod.containers": _rewrite_pod_containers,
    "k3watch.object.name": _rewrite_object_name,
}
_WHY_NOT: dict[str, str] = {
    "k3watch.exec.command": "k3watch decodes it from the command= parameters of requestURI",
    "k3watch.exec.argv": "k3watch decodes it from the command= parameters of requestURI",
    "k3watch.exec.container": "k3watch decodes it from the container= parameter of requestURI",
    "k3watch.csr": "k3watch decodes it from the PEM certificate request in the request body",
}


def refuse_derived(field: str) -> ExportRefused:
    """The refusal for a derived field that no query can compute."""
    root = _derived_root(field) or field
    why = _WHY_NOT.get(root, "k3watch computes it from the event")
    return ExportRefused(SkipReason.DERIVED_FIELD, f"{field}: {why}; no stored field holds it")


@dataclass
class DerivedFieldTransformation(DetectionItemTransformation):
    """Rewrite derived fields that have an exact raw-path equivalent; refuse the others."""

    def apply_detection_item(
        self, detection_item: SigmaDetectionItem
    ) -> SigmaDetection | SigmaDetectionItem | None:
        field = detection_item.field
        root = _derived_root(field) if field else None
        if field is None or root is None:
            return None
        rewrite = _REWRITES.get(root)
        if rewrite is None:
            raise refuse_derived(field)
        if any(_tests_absence(v) for v in detection_item.value):
            # "Missing" depends on the resource for a derived field: not one raw-field test.
            raise ExportRefused(
                SkipReason.DERIVED_FIELD,
                f"{field}: testing a derived field for absence has no raw-field equivalent",
            )
        return rewrite(detection_item, field[len(root) + 1 :])

    def apply(self, rule: SigmaRule | SigmaCorrelationRule) -> None:
        if isinstance(rule, SigmaCorrelationRule):
            # A correlation groups or counts by field names; a derived one exists in no store.
            condition_field = getattr(rule.condition, "fieldref", None)
            fields = [*(rule.group_by or []), *([condition_field] if condition_field else [])]
            for name in fields:
                if isinstance(name, str) and _derived_root(name):
                    raise refuse_derived(name)
        super().apply(rule)


def _tests_absence(value: SigmaType) -> bool:
    return isinstance(value, SigmaNull) or (isinstance(value, SigmaExists) and not value.exists)


# --- Elastic (Kubernetes integration) ---

ELASTIC_PREFIX = "kubernetes.audit."
ELASTIC_DATASET = "kubernetes.audit_logs"
ELASTIC_INDEX = "logs-kubernetes.audit_logs-*"
_ELASTIC_DROPPED = ("requestObject.metadata", "responseObject.metadata")


def elastic_field(field: str) -> str:
    """``field`` (a raw audit path) as the Elastic Kubernetes integration indexes it."""
    for dropped in _ELASTIC_DROPPED:
        if field == dropped or field.startswith(dropped + "."):
            raise ExportRefused(
                SkipReason.NOT_IN_TARGET,
                f"{field}: the Elastic Kubernetes integration removes {dropped} at ingest",
            )
    if field.startswith("annotations."):
        # The integration renames annotation keys (authorization.k8s.io/decision becomes
        # authorization_k8s_io/decision) so that Elasticsearch does not read them as paths.
        field = "annotations." + field[len("annotations.") :].replace(".", "_")
    return ELASTIC_PREFIX + field


@dataclass
class ElasticFieldTransformation(FieldMappingTransformationBase):
    """Audit paths → ``kubernetes.audit.*`` (detection items, correlation group-by and fields)."""

    def apply_field_name(self, field: str | None) -> str | None:
        return None if field is None else elastic_field(field)


def elastic_pipeline(index: str) -> ProcessingPipeline:
    """k3watch's pipeline for the Elasticsearch targets (Lucene, ES|QL, EQL)."""
    return ProcessingPipeline(
        name="k3watch audit events in Elastic's Kubernetes integration",
        priority=50,
        items=[
            ProcessingItem(DerivedFieldTransformation(), identifier="k3watch_derived_fields"),
            ProcessingItem(ElasticFieldTransformation(), identifier="k3watch_elastic_fields"),
            # Added after the field mapping, which would otherwise prefix it too. The dataset
            # keeps a Lucene query on a shared index pattern to audit events.
            ProcessingItem(
                AddConditionTransformation({"event.dataset": ELASTIC_DATASET}),
                identifier="k3watch_elastic_dataset",
            ),
            ProcessingItem(SetStateTransformation("index", index), identifier="k3watch_index"),
        ],
    )


# --- Loki (LogQL over JSON lines) ---

# Keys whose value is a list in audit events and the Kubernetes objects they carry. LogQL's
# json parser skips arrays, so a path through one of these yields no label at all.
LIST_KEYS = frozenset(
    {
        "sourceIPs", "groups", "extra", "containers", "initContainers", "ephemeralContainers",
        "volumes", "volumeMounts", "volumeDevices", "env", "envFrom", "ports", "args", "command",
        "add", "drop", "subjects", "rules", "webhooks", "imagePullSecrets", "tolerations",
        "finalizers", "ownerReferences", "hostAliases", "verbs", "apiGroups", "resourceNames",
        "nonResourceURLs", "usages", "items", "conditions", "clusterRoleSelectors",
    }
)  # fmt: skip
LOKI_SELECTOR = '{job=~".+"}'


def loki_field(field: str) -> None:
    """Refuse ``field`` when LogQL's json parser does not extract it; Loki keeps the name."""
    if field.startswith("annotations."):
        return  # annotation keys are single (dotted) keys of a flat map of strings
    for part in field.split("."):
        if part in LIST_KEYS:
            raise ExportRefused(
                SkipReason.NOT_IN_TARGET,
                f"{field}: '{part}' is a list, and LogQL's json parser skips lists",
            )


@dataclass
class LokiFieldTransformation(FieldMappingTransformationBase):
    """Refuse paths through lists; the backend itself writes ``a.b`` as the label ``a_b``."""

    def apply_field_name(self, field: str | None) -> None:
        if field is not None:
            loki_field(field)


@dataclass
class CustomAttributeTransformation(PreprocessingTransformation):
    """Set a custom attribute that a backend reads from the rule (here: Loki's parser and stream
    selector, ``loki_parser`` and ``logsource_loki_selection``)."""

    attribute: str
    value: str

    def apply(self, rule: SigmaRule | SigmaCorrelationRule) -> None:
        super().apply(rule)
        rule.custom_attributes[self.attribute] = self.value


def loki_pipeline(selector: str) -> ProcessingPipeline:
    """k3watch's pipeline for Grafana Loki: JSON audit lines in the streams ``selector`` picks."""
    return ProcessingPipeline(
        name="k3watch audit events as JSON lines in Loki",
        priority=50,
        items=[
            ProcessingItem(DerivedFieldTransformation(), identifier="k3watch_derived_fields"),
            ProcessingItem(LokiFieldTransformation(), identifier="k3watch_loki_fields"),
            ProcessingItem(CustomAttributeTransformation("loki_parser", "json")),
            ProcessingItem(CustomAttributeTransformation("logsource_loki_selection", selector)),
        ],
    )
