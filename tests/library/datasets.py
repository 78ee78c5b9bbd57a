"""Audit events for evaluating the rule library: real public data and generated K3s days.

Every helper returns plain ``audit.k8s.io/v1`` event dicts (or labelled cases holding them), so
the evaluation runs them through ``k3watch scan`` exactly as a user's log would be.

* ``hkerma_events()`` — 16,563 real benign events (the truncated 16,564th row is skipped) of an
  admin installing Helm charts on a kubeadm cluster while operators run, from a Logstash CSV;
* ``normal_k3s_days()`` — the project's K3s simulator without the attack scenarios;
* ``falco_cases()`` — Falco's labelled k8s-audit test cases (trace events + expected rules);
* ``panther_cases()`` — Panther's labelled Kubernetes rule tests, unwrapped from the EKS, AKS and
  GKE shapes into audit events where that is faithful (``load_panther().skipped`` says why not).

Datasets are read once per process and cached: treat the returned events as read-only.
"""

from __future__ import annotations

import csv
import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, quote, urlencode

from k3watch.event import parse_time
from k3watch.sample import generate_events

CORPUS = Path(__file__).resolve().parent.parent / "corpus"

# --- hkerma: kubernetes-event-dataset (PerfSPEC), a Logstash-flattened CSV --------------------

HKERMA_DIR = CORPUS / "hkerma-perfspec-audit-csv"
HKERMA_CSV = HKERMA_DIR / "audit-logs.csv"

HKERMA_COLUMNS: tuple[tuple[str, str | None, str], ...] = (
    # (Logstash field, audit field it becomes or None, evidence)
    ("host", None, 'Logstash\'s own host field, always {"name":"k8s-master-perfspec"}'),
    (
        "[requestReceivedTimestamp]",
        "requestReceivedTimestamp",
        "RFC 3339, µs; same for both stages of a request",
    ),
    (
        "[user][username]",
        "user.username",
        "kubernetes-admin, system:node:…, system:serviceaccount:…",
    ),
    ("[verb]", "verb", "the 8 audit verbs; 'watch' exactly on rows whose URI has watch=true"),
    (
        "[objectRef][resource]",
        "objectRef.resource",
        "equals the resource in requestURI on every row",
    ),
    (
        "[objectRef][subresource]",
        "objectRef.subresource",
        "only status, token, binding; matches the URI",
    ),
    (
        "[objectRef][name]",
        "objectRef.name",
        "the URI's name, the fieldSelector name, or the body's name on create",
    ),
    ("[responseObject][metadata][name]", None, "always empty: the policy logs at Metadata level"),
    ("[requestURI]", "requestURI", "path and query"),
    (
        "[auditID]",
        "auditID",
        "a UUID; repeated only for ResponseStarted + ResponseComplete of one watch",
    ),
    (
        "[stage]",
        "stage",
        "ResponseStarted (watches only) or ResponseComplete; the policy omits RequestReceived",
    ),
    (
        "[responseStatus][code]",
        "responseStatus.code",
        "200, 201 (creates only), 403, 404, 409, 503",
    ),
    ("[responseObject][metadata][uid]", None, "always empty (no bodies at Metadata level)"),
    ("[responseObject][metadata][ownerReferences][0][uid]", None, "always empty"),
    ("[responseObject][details][uid]", None, "always empty"),
)
"""The 15 CSV columns, in order.

Derived from the rows (value sets per column, and ``objectRef`` columns cross-checked against
``requestURI`` on every row: ``hkerma_uri_mismatches``) and confirmed by the ``csv { fields => … }``
list of the upstream repository's ``logstash.conf`` (same commit as the CSV). Note: the corpus'
SOURCES.md calls the 6th–8th columns "namespace, name, ?"; they are subresource, name and the
response's name. The namespace is not in the CSV: it is recovered from ``requestURI`` as the API
server does (``parse_request_uri``), and so are ``apiGroup`` and ``apiVersion``.
"""

HKERMA_POLICY_LEVEL = "Metadata"  # audit-policy.yaml: one catch-all rule, level Metadata
_HKERMA_STAGES = frozenset({"ResponseStarted", "ResponseComplete", "Panic"})
_UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
# Namespace subresources: /api/v1/namespaces/NAME/status is the namespace's own subresource.
_NAMESPACE_SUBRESOURCES = frozenset({"status", "finalize"})


@dataclass(frozen=True, slots=True)
class SkippedRow:
    """A CSV row that could not become an event, and why."""

    line: int
    reason: str


@dataclass(frozen=True, slots=True)
class HkermaData:
    events: list[dict[str, Any]]
    skipped: list[SkippedRow]
    rows: int


def parse_request_uri(uri: str) -> dict[str, str] | None:
    """The objectRef the API server derives from a request path (k8s RequestInfoFactory).

    ``None`` for non-resource requests (``/readyz``, discovery such as ``/apis/apps/v1``).
    Keys: resource, namespace, name, apiGroup ('' for the core group), apiVersion, subresource.
    """
    path, _, query = uri.partition("?")
    parts = [p for p in path.strip("/").split("/") if p]
    if len(parts) < 3 or parts[0] not in ("api", "apis"):
        return None
    if parts[0] == "api":
        group, version, rest = "", parts[1], parts[2:]
    else:
        if len(parts) < 4:
            return None
        group, version, rest = parts[1], parts[2], parts[3:]
    if rest[0] == "watch":  # legacy /api/v1/watch/... form
        rest = rest[1:]
        if not rest:
            return None
    namespace = ""
    if rest[0] == "namespaces" and len(rest) > 1:
        namespace = rest[1]
        if len(rest) > 2 and rest[2] not in _NAMESPACE_SUBRESOURCES:
            rest = rest[2:]
    ref = {
        "resource": rest[0],
        "namespace": namespace,
        "name": rest[1] if len(rest) > 1 else "",
        "apiGroup": group,
        "apiVersion": version,
        "subresource": rest[2] if len(rest) > 2 else "",
    }
    if not ref["name"]:  # list/watch of one object by name
        for key, value in parse_qsl(query):
            if key == "fieldSelector" and value.startswith("metadata.name="):
                ref["name"] = value.split("=", 1)[1].split(",", 1)[0]
    return ref


def hkerma_row_to_event(row: list[str]) -> dict[str, Any]:
    """One CSV row as an ``audit.k8s.io/v1`` event; ``ValueError`` says why a row is unusable."""
    if len(row) != len(HKERMA_COLUMNS):
        raise ValueError(f"row has {len(row)} of {len(HKERMA_COLUMNS)} columns")
    received, username, verb, resource, subresource, name = row[1:7]
    uri, audit_id, stage, code = row[8:12]
    if parse_time(received) is None:
        raise ValueError(f"requestReceivedTimestamp {received!r} is not RFC 3339")
    if not _UUID.match(audit_id):
        raise ValueError(f"auditID {audit_id!r} is not a UUID")
    if stage not in _HKERMA_STAGES:
        raise ValueError(f"stage {stage!r} is not an audit stage")
    if not code.isdigit():
        raise ValueError(f"responseStatus.code {code!r} is not a number")
    event: dict[str, Any] = {
        "kind": "Event",
        "apiVersion": "audit.k8s.io/v1",
        "level": HKERMA_POLICY_LEVEL,
        "auditID": audit_id,
        "stage": stage,
        "requestURI": uri,
        "verb": verb,
        "user": {"username": username},
    }
    if resource:
        from_uri = parse_request_uri(uri) or {}
        ref = {"resource": resource}
        if from_uri.get("namespace"):
            ref["namespace"] = from_uri["namespace"]
        if name:
            ref["name"] = name
        if from_uri.get("apiGroup"):
            ref["apiGroup"] = from_uri["apiGroup"]
        if from_uri.get("apiVersion"):
            ref["apiVersion"] = from_uri["apiVersion"]
        if subresource:
            ref["subresource"] = subresource
        event["objectRef"] = ref
    event["responseStatus"] = {"code": int(code)}
    event["requestReceivedTimestamp"] = received
    return event


def hkerma_rows(path: Path = HKERMA_CSV) -> Iterator[tuple[int, list[str]]]:
    """(line number, raw CSV row) for every row, the truncated one included."""
    with path.open(newline="", encoding="utf-8") as handle:
        reader = csv.reader(handle)
        for row in reader:
            yield reader.line_num, row


@cache
def load_hkerma(path: Path = HKERMA_CSV) -> HkermaData:
    """Every usable row as an event, in file order, and the rows skipped with a reason."""
    events: list[dict[str, Any]] = []
    skipped: list[SkippedRow] = []
    rows = 0
    data = path.read_bytes()
    last_line = data.count(b"\n") + (0 if data.endswith(b"\n") else 1)
    for line, row in hkerma_rows(path):
        rows += 1
        try:
            events.append(hkerma_row_to_event(row))
        except ValueError as exc:
            reason = str(exc)
            if line == last_line and not data.endswith(b"\n"):
                reason += (
                    f"; the file was cut mid-row at {len(data):,} bytes (last line has no "
                    "newline): truncated row"
                )
            skipped.append(SkippedRow(line, reason))
    return HkermaData(events, skipped, rows)


def hkerma_events() -> list[dict[str, Any]]:
    """The hkerma CSV as audit events: 16,563 of its 16,564 rows (the truncated last is skipped).

    In file order. Logstash's workers reordered the log a little (an event's received time is
    up to 60 s before the latest one above it); scanned in time order instead, the same alerts
    come out (one correlation alert's count differs by one).
    """
    return load_hkerma().events


def hkerma_uri_mismatches(path: Path = HKERMA_CSV) -> list[str]:
    """Rows whose resource, subresource or name columns disagree with their requestURI.

    The check that pins the column mapping: empty means those columns are exactly the objectRef
    the API server derived from the URI (a create's name comes from its body, so a name the URI
    lacks is accepted on create).
    """
    out = []
    for line, row in hkerma_rows(path):
        if len(row) != len(HKERMA_COLUMNS):
            continue
        verb, resource, subresource, name, uri = row[3], row[4], row[5], row[6], row[8]
        ref = parse_request_uri(uri)
        if ref is None:
            if resource or subresource or name:
                out.append(f"line {line}: non-resource URI {uri} but resource={resource!r}")
            continue
        wanted_name = ref["name"] or (name if verb == "create" else "")
        got = (resource, subresource, name)
        want = (ref["resource"], ref["subresource"], wanted_name)
        if got != want:
            out.append(f"line {line}: CSV {got} vs URI {want} ({uri})")
    return out


# --- normal K3s days from the simulator -------------------------------------------------------


def normal_k3s_days(days: float = 1, seed: int = 7, **kwargs: Any) -> list[dict[str, Any]]:
    """A simulated K3s cluster's audit stream without the attack scenarios (benign only)."""
    return list(generate_events(attacks=False, days=days, seed=seed, **kwargs))


# --- Falco's k8s audit test cases -------------------------------------------------------------

FALCO_DIR = CORPUS / "falco-k8s-audit-traces"
# Rules files every Falco case loads; the others change what fires (allowlists, overrides).
FALCO_BASE_RULES_FILES = frozenset(
    {"falco_rules.yaml", "k8s_audit_rules.yaml", "engine_v4_k8s_audit_rules.yaml"}
)


@dataclass(frozen=True, slots=True)
class FalcoCase:
    """One case of falco_k8s_audit_tests.yaml: a trace and what Falco must (not) raise."""

    name: str
    trace_file: str
    events: tuple[dict[str, Any], ...]
    detect: bool
    expected_rules: Mapping[str, int]  # Falco rule name → alert count (empty when not detect)
    rules_files: tuple[str, ...]  # extra rules files beyond FALCO_BASE_RULES_FILES


def read_trace(path: Path) -> tuple[dict[str, Any], ...]:
    """A Falco trace file: one JSON value per line."""
    return tuple(
        json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()
    )


@cache
def falco_cases() -> tuple[FalcoCase, ...]:
    """Every labelled Falco case (66), with its trace's events."""
    out = []
    labels = (FALCO_DIR / "falco_k8s_audit_labels.jsonl").read_text(encoding="utf-8")
    for line in labels.splitlines():
        if not line.strip():
            continue
        label = json.loads(line)
        out.append(
            FalcoCase(
                name=label["test_name"],
                trace_file=label["trace_file"],
                events=read_trace(FALCO_DIR / label["trace_file"]),
                detect=bool(label["detect"]),
                expected_rules=dict(label["expected_rule_counts"]),
                rules_files=tuple(
                    f for f in label["rules_files"] if f not in FALCO_BASE_RULES_FILES
                ),
            )
        )
    return tuple(out)


# --- Panther's Kubernetes rule tests ----------------------------------------------------------

PANTHER_FILE = CORPUS / "panther-k8s-rule-tests" / "panther_k8s_rule_tests.jsonl"


@dataclass(frozen=True, slots=True)
class PantherCase:
    """One Panther rule test, with its log as an audit event."""

    rule_id: str
    test_name: str
    must_fire: bool
    event: dict[str, Any]
    shape: str  # "audit" (native / EKS), "aks" (diagnostic wrapper) or "gke" (Cloud Audit Log)

    @property
    def name(self) -> str:
        return f"{self.rule_id}: {self.test_name}"


@dataclass(frozen=True, slots=True)
class SkippedCase:
    rule_id: str
    test_name: str
    must_fire: bool
    kind: str  # the family of the reason, e.g. "Azure activity-log operation"
    reason: str

    @property
    def name(self) -> str:
        return f"{self.rule_id}: {self.test_name}"


@dataclass(frozen=True, slots=True)
class PantherCorpus:
    cases: tuple[PantherCase, ...]
    skipped: tuple[SkippedCase, ...] = field(default=())


class Unmappable(ValueError):
    """A log that cannot be turned into an audit event without inventing fields."""

    def __init__(self, kind: str, detail: str) -> None:
        super().__init__(f"{kind}: {detail}")
        self.kind = kind


_PANTHER_TIME = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(\.\d+)?$")
_TIME_FIELDS = ("requestReceivedTimestamp", "stageTimestamp", "timestamp")


def _rfc3339(value: Any) -> Any:
    """Panther's normalized UTC time ('2022-11-29 00:09:04.38') as RFC 3339; others unchanged."""
    if isinstance(value, str) and _PANTHER_TIME.match(value):
        head, _, frac = value.partition(".")
        micro = (frac + "000000")[:6]
        return f"{head.replace(' ', 'T')}.{micro}Z"
    return value


def _plain_audit(log: Mapping[str, Any]) -> dict[str, Any]:
    # p_* are Panther's enrichment columns (p_log_type, p_any_ip_addresses…), not audit fields.
    event = {k: v for k, v in log.items() if not k.startswith("p_")}
    for name in _TIME_FIELDS:
        if name in event:
            event[name] = _rfc3339(event[name])
    return event


# google.rpc.Code → HTTP status, as GKE maps them (only the codes the test logs use).
_GRPC_TO_HTTP = {3: 400, 5: 404, 6: 409, 7: 403, 10: 409, 16: 401}
_VERBS = frozenset(
    {"create", "get", "list", "watch", "update", "patch", "delete", "deletecollection"}
)


def _gke_to_audit(log: Mapping[str, Any]) -> dict[str, Any]:
    """A GKE Cloud Audit Log entry for a Kubernetes API request as an audit.k8s.io/v1 event."""
    payload = log["protoPayload"]
    method = payload.get("methodName", "")
    service = payload.get("serviceName", "k8s.io")
    if not method.startswith("io.k8s.") or service != "k8s.io":
        raise Unmappable(
            "GCP log of another service",
            f"{service or '?'} {method or '?'} is not a Kubernetes API request (the test only "
            "carries an IAM permission)",
        )
    verb = method.rsplit(".", 1)[-1]
    if verb not in _VERBS:
        raise Unmappable(
            "GKE non-resource request", f"methodName {method} has no verb and no recorded URL"
        )
    auth = payload.get("authorizationInfo") or log.get("authorizationInfo") or []
    resource_name = payload.get("resourceName") or (auth[0].get("resource") if auth else None)
    if not resource_name:
        raise Unmappable(
            "GKE log without the object", "no resourceName or authorizationInfo.resource"
        )
    parts = resource_name.strip("/").split("/")
    if len(parts) < 3 or resource_name.startswith("/"):
        raise Unmappable("GKE non-resource request", f"{resource_name!r} is not an API object")
    group, version, rest = parts[0], parts[1], parts[2:]
    namespace = ""
    if rest[0] == "namespaces" and len(rest) > 2:
        namespace, rest = rest[1], rest[2:]
    ref: dict[str, Any] = {"resource": rest[0]}
    if namespace:
        ref["namespace"] = namespace
    if len(rest) > 1:
        ref["name"] = rest[1]
    if group != "core":
        ref["apiGroup"] = group
    ref["apiVersion"] = version
    if len(rest) > 2:
        ref["subresource"] = rest[2]

    request = payload.get("request")
    response = payload.get("response")
    status = payload.get("status") or {}
    if isinstance(response, Mapping) and response.get("kind") == "Status" and "code" in response:
        code = int(response["code"])
    elif status.get("code") not in (None, 0):  # 0 is OK: the code depends on the verb
        if status["code"] not in _GRPC_TO_HTTP:
            raise Unmappable(
                "GKE log without an HTTP status", f"gRPC status {status['code']} is not mapped"
            )
        code = _GRPC_TO_HTTP[status["code"]]
    elif isinstance(response, Mapping) and response.get("status") == "Failure":
        raise Unmappable(
            "GKE log without an HTTP status", "the response is a Failure without a code"
        )
    elif auth and auth[0].get("granted") is False:
        code = 403
    else:
        code = 201 if verb == "create" else 200

    event: dict[str, Any] = {"kind": "Event", "apiVersion": "audit.k8s.io/v1"}
    event["verb"] = verb
    principal = (payload.get("authenticationInfo") or {}).get("principalEmail")
    if principal:
        event["user"] = {"username": principal}
    meta = payload.get("requestMetadata") or {}
    caller = meta.get("callerIp") or meta.get("callerIP")
    if caller:
        event["sourceIPs"] = [caller]
    if meta.get("callerSuppliedUserAgent"):
        event["userAgent"] = meta["callerSuppliedUserAgent"]
    event["objectRef"] = ref
    event["requestURI"] = _request_uri(ref, request)
    event["responseStatus"] = {"code": code}
    if auth and isinstance(auth[0].get("granted"), bool):  # the authorizer's decision
        decision = "allow" if auth[0]["granted"] else "forbid"
        event["annotations"] = {"authorization.k8s.io/decision": decision}
    if isinstance(request, Mapping):
        event["requestObject"] = {k: v for k, v in request.items() if k != "@type"}
    if isinstance(response, Mapping) and response.get("kind") != "Status":
        event["responseObject"] = {k: v for k, v in response.items() if k != "@type"}
    when = payload.get("timestamp") or log.get("timestamp")
    if when:
        event["requestReceivedTimestamp"] = _rfc3339(when)
    return event


def _request_uri(ref: Mapping[str, Any], request: Any) -> str:
    """The URL path of the request; exec/attach options (GKE logs them as the body) as query."""
    prefix = "/api/" if "apiGroup" not in ref else f"/apis/{ref['apiGroup']}/"
    path = prefix + ref["apiVersion"]
    if "namespace" in ref:
        path += f"/namespaces/{ref['namespace']}"
    path += f"/{ref['resource']}"
    if "name" in ref:
        path += f"/{ref['name']}"
    if "subresource" in ref:
        path += f"/{ref['subresource']}"
    if ref.get("subresource") in ("exec", "attach") and isinstance(request, Mapping):
        query: list[tuple[str, str]] = []
        command = request.get("command") or []
        for arg in [command] if isinstance(command, str) else command:
            query.append(("command", str(arg)))
        if request.get("container"):
            query.append(("container", str(request["container"])))
        if query:
            path += "?" + urlencode(query, quote_via=quote)
    return path


def panther_event(log: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
    """A Panther test log as (shape, audit event); ``Unmappable`` when it is not one."""
    if "protoPayload" in log:
        return "gke", _gke_to_audit(log)
    if "properties" in log or "operationName" in log or "category" in log:
        props = log.get("properties")
        if str(log.get("category", "")).startswith("kube-audit") and isinstance(props, Mapping):
            try:
                inner = json.loads(props.get("log", ""))
            except ValueError as exc:
                raise Unmappable("AKS log not JSON", str(exc)) from None
            if not isinstance(inner, dict):
                raise Unmappable("AKS log not JSON", "properties.log is not a JSON object")
            return "aks", _plain_audit(inner)
        raise Unmappable(
            "Azure activity-log operation",
            f"{log.get('operationName', '?')} is an ARM operation, not an API-server audit event "
            "(no verb, user or object body)",
        )
    if "operation" in log and not ({"verb", "objectRef", "user", "requestURI"} & log.keys()):
        raise Unmappable("GCP log without a Kubernetes request", "only an 'operation' block")
    return "audit", _plain_audit(log)


@cache
def load_panther(path: Path = PANTHER_FILE) -> PantherCorpus:
    """Every Panther case mapped to an audit event, and the ones skipped with a reason."""
    cases: list[PantherCase] = []
    skipped: list[SkippedCase] = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.strip():
            continue
        row = json.loads(line)
        rule_id, test_name, must_fire = row["rule_id"], row["test_name"], row["expected_result"]
        try:
            shape, event = panther_event(row["log"])
        except Unmappable as exc:
            skipped.append(SkippedCase(rule_id, test_name, must_fire, exc.kind, str(exc)))
            continue
        cases.append(PantherCase(rule_id, test_name, must_fire, event, shape))
    return PantherCorpus(tuple(cases), tuple(skipped))


def panther_cases() -> tuple[PantherCase, ...]:
    """The Panther cases that map to audit events (see ``load_panther().skipped`` for the rest)."""
    return load_panther().cases
