"""A week of a small cluster with known answers, written through the real SqliteStore, for the
review report tests: ``build(directory, rules)`` writes it; the tests state what the report
must say of it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.store.helpers import SMALL, T0, audit, batch, incoming

from k3watch.rules.model import RuleSet
from k3watch.store.base import AlertChange, AlertRecord, IngestErrors
from k3watch.store.sqlite import SqliteStore

DAY = 86400.0
START = T0
END = T0 + 7 * DAY
MINUTE = 60.0
GAP_START = T0 + 2 * DAY  # server-1 sends nothing for an hour from here
GAP_END = GAP_START + 3600.0
SILENT_FROM = END - 3 * 3600.0  # server-2 sends nothing after this
WEBHOOK_ERROR = (
    "Error in audit plugin 'webhook' affecting 400 audit events: Post"
    ' "https://10.0.0.9:9765/k8s-audit": dial tcp 10.0.0.9:9765: connect: connection refused\n'
    "Impacted events:\n"
    '2026-03-04T10:00:00.000000Z AUDIT: id="x" stage="ResponseComplete" ip="10.0.0.5"'
)
LOG_ERROR = (
    "Error in audit plugin 'log' affecting 3 audit events: write"
    " /var/lib/rancher/k3s/server/logs/audit.log: no space left on device"
)


class _Writer:
    def __init__(self, store: SqliteStore) -> None:
        self.store = store
        self.n = 0
        self.batches = 0

    def next_id(self) -> int:
        self.n += 1
        return self.n

    def audit(self, t: float, node: str = "server-1", **fields: Any) -> dict[str, Any]:
        """One audit event (``decision=None`` leaves the annotation out)."""
        return self.raws([(t, fields)], node)[0]

    def raws(
        self, items: list[tuple[float, dict[str, Any]]], node: str = "server-1"
    ) -> list[dict[str, Any]]:
        raws = []
        events = []
        for t, given in items:
            fields = dict(given)
            n = fields.pop("n", None) or self.next_id()
            drop_decision = "decision" in fields and fields["decision"] is None
            if drop_decision:
                fields.pop("decision")
            raw = audit(n, t, **fields)
            if drop_decision:
                raw.pop("annotations")
            raws.append(raw)
            events.append(incoming(raw, t))
        self.batches += 1
        self.store.write(batch(f"b{self.batches}", events, node=node))
        return raws


def _session(w: _Writer, t: float, user: str, pod: str, sub: str, stages: tuple[str, ...]) -> None:
    n = w.next_id()
    uri = f"/api/v1/namespaces/shop/pods/{pod}/{sub}"
    if sub == "exec":
        uri += "?command=sh&command=-c&command=id&container=app"
    items = []
    for offset, stage in enumerate(stages):
        fields = {"n": n, "user": user, "verb": "create", "resource": "pods", "namespace": "shop"}
        fields |= {"name": pod, "stage": stage, "uri": uri, "ip": "192.168.5.5"}
        items.append((t + offset * 30.0, fields))
    raws = []
    for time_, fields in items:
        raw = audit(fields.pop("n"), time_, **fields)
        raw["objectRef"]["subresource"] = sub
        raws.append(incoming(raw, time_))
    w.batches += 1
    w.store.write(batch(f"b{w.batches}", raws))


def build(directory: Path, rules: RuleSet) -> SqliteStore:
    """Write the dataset into a new store under ``directory`` and return it (open)."""
    store = SqliteStore(directory / "events.sqlite", _layout=SMALL)
    w = _Writer(store)
    # background: the scheduler renews its lease every 10 minutes on both API servers, from a
    # day before the period; server-1 is silent for an hour, server-2 stops 3 hours before
    # the end
    for node in ("server-1", "server-2"):
        items = []
        t = START - DAY
        while t < END:
            silent = node == "server-1" and GAP_START <= t < GAP_END
            if not silent and not (node == "server-2" and t >= SILENT_FROM):
                items.append(
                    (t, {"user": "system:kube-scheduler", "verb": "update", "resource": "leases",
                         "namespace": "kube-system", "ip": "10.0.0.1"})
                )  # fmt: skip
            t += 10 * MINUTE
        for at in range(0, len(items), 100):
            w.raws(items[at : at + 100], node)
    # bob was seen before the period
    w.audit(START - 12 * 3600, user="bob", verb="list", resource="pods", ip="10.0.0.2")
    # new in the period: two people, a service account, two source IPs
    w.audit(START + DAY, user="carol", verb="list", resource="pods", ip="192.168.5.5")
    w.audit(START + 3 * DAY, user="dave@example.com", verb="get", resource="nodes",
            ip="192.168.6.6")  # fmt: skip
    deployer = "system:serviceaccount:ci:deployer"
    w.audit(START + 2 * DAY, user=deployer, verb="get", resource="deployments", ip="10.0.0.1")
    # RBAC changes: three, one of them also logged at RequestReceived; a read does not count
    w.audit(START + DAY + 600, user="carol", verb="create", resource="rolebindings",
            namespace="shop", name="carol-admin", ip="192.168.5.5")  # fmt: skip
    rbac = START + 2 * DAY + 300
    w.raws(
        [
            (rbac, {"n": 9001, "user": deployer, "verb": "patch", "resource": "clusterroles",
                    "namespace": None, "name": "edit", "stage": "RequestReceived"}),
            (rbac, {"n": 9001, "user": deployer, "verb": "patch", "resource": "clusterroles",
                    "namespace": None, "name": "edit"}),
        ]
    )  # fmt: skip
    w.audit(START + 4 * DAY, user="bob", verb="delete", resource="roles", namespace="shop",
            name="old-role", ip="10.0.0.2")  # fmt: skip
    w.audit(START + 4 * DAY + 60, user="bob", verb="get", resource="roles", namespace="shop")
    # sessions: an exec (two stages), an attach (completed), a port-forward (started only);
    # a pod whose name starts with "exec" is not a session
    _session(w, START + 3 * DAY + 60, "dave@example.com", "web-1", "exec",
             ("ResponseStarted", "ResponseComplete"))  # fmt: skip
    _session(w, START + 5 * DAY, "carol", "db-0", "attach", ("ResponseComplete",))
    _session(w, START + 5 * DAY + 60, "bob", "web-2", "portforward", ("ResponseStarted",))
    w.audit(START + 5 * DAY + 120, user="bob", verb="get", resource="pods", namespace="shop",
            name="executor-1", uri="/api/v1/namespaces/shop/pods/executor-1/log")  # fmt: skip
    # secrets: carol twice, dave once; the controller manager's reads are not people's
    for k in range(2):
        w.audit(START + DAY + 900 + k, user="carol", verb="get", resource="secrets",
                namespace="shop", name="db-pass", ip="192.168.5.5")  # fmt: skip
    w.audit(START + 3 * DAY + 900, user="dave@example.com", verb="list", resource="secrets",
            namespace="shop", name="", ip="192.168.6.6")  # fmt: skip
    for k in range(5):
        w.audit(START + DAY + 10 + k, user="system:kube-controller-manager", verb="get",
                resource="secrets", namespace="kube-system", name="k3s-serving")  # fmt: skip
    # denied: eve forbidden 4 times on day 2, anonymous 401 twice (no authorizer decision), bob
    # a 403 from admission after the authorizer allowed it
    for k in range(4):
        w.audit(START + DAY + 3600 + k, user="eve", verb="list", resource="secrets",
                namespace="kube-system", code=403, decision="forbid", ip="192.168.9.9")  # fmt: skip
    for k in range(2):
        w.audit(START + 2 * DAY + 7200 + k, user="system:anonymous", verb="get", resource="pods",
                code=401, decision=None, ip="192.168.9.9")  # fmt: skip
    w.audit(START + 6 * DAY, user="bob", verb="create", resource="pods", code=403)
    # the K3s log of server-1: the webhook lost 400 events twice, the log backend 3
    logs = []
    for k, (t, message) in enumerate(
        [
            (START + DAY, WEBHOOK_ERROR),
            (START + 4 * DAY, WEBHOOK_ERROR),
            (START + 5 * DAY, LOG_ERROR),
        ]
    ):
        raw = {"kind": "k3watch.log/v1", "time": t, "message": message, "host": "server-1"}
        logs.append(incoming(raw, t, key=f"journal@{k}"))
    store.write(batch("logs", logs, node="server-1", source="journald"))
    _alerts(store, rules)
    store.add_ingest_errors(
        [
            IngestErrors(START + 3600, "prod", "server-1", "audit", "json", 3),
            IngestErrors(START + 2 * DAY, "prod", "server-2", "audit", "http_413", 1),
            IngestErrors(START - 2 * DAY, "prod", "server-2", "audit", "json", 50),
        ]
    )
    return store


def _alerts(store: SqliteStore, rules: RuleSet) -> None:
    """Rule 0 (critical): 3 alerts, one a false positive; rule 1 (high): 1, acknowledged;
    rule 2: 1 resolved; rule 3: one before the period only."""
    infos = [r.info for r in alert_rules(rules)]
    records = []
    plan = [(0, START + DAY), (0, START + 2 * DAY), (0, START + 3 * DAY), (1, START + 4 * DAY),
            (2, START + 5 * DAY), (3, START - 3 * DAY)]  # fmt: skip
    for k, (rule, t) in enumerate(plan):
        info = infos[rule]
        records.append(
            AlertRecord(
                fingerprint=f"fp-{k}",
                rule_id=info.id,
                title=info.title,
                severity=("critical", "high", "medium", "low")[rule],
                tags=info.tags,
                cluster="prod",
                group={"user": "eve"},
                summary=f"{info.title} by eve",
                first_seen=t,
                last_seen=t + 60,
                count=k + 1,
                event_keys=(),
                user="eve",
            )
        )
    store.write(batch("alerts", []), records)
    store.change_alert(3, AlertChange("reviewer", "false_positive", "test traffic"))
    store.change_alert(4, AlertChange("reviewer", "ack"))
    store.change_alert(5, AlertChange("reviewer", "resolve"))


def alert_rules(rules: RuleSet) -> list[Any]:
    """The four built-in rules the dataset's alerts name."""
    return [r for r in rules.all() if r.generate][:4]
