"""Who caused each alert on the hkerma data: the admin's Helm installs, or routine churn.

The data says who the human is: Helm stores each release in a ``sh.helm.release.v1.<release>.v<n>``
secret written by the identity running ``helm install`` — here one identity,
``kubernetes-admin`` (kubeadm's admin kubeconfig). Its charts are the namespaces of those
secrets (``helm install my-<chart> --namespace <chart>``, per the dataset's collect.py). An alert
is the admin's when every event behind it was the admin's, and belongs to the charts whose
objects those events touched: objects in a chart's namespace, or cluster-scoped objects named
after its release (``my-cert-manager-webhook``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from typing import Any

from tests.library.datasets import hkerma_events
from tests.library.evaluate import Evaluation, evaluate

from k3watch.alert import Alert

HELM_RELEASE_PREFIX = "sh.helm.release.v1."
WRITE_VERBS = frozenset({"create", "update", "patch"})


@cache
def hkerma_run() -> Evaluation:
    """The hkerma events scanned with the built-in library (cached)."""
    return evaluate(hkerma_events())


@dataclass(frozen=True, slots=True)
class Releases:
    """Helm releases found in the data: who wrote them and where."""

    writers: frozenset[str]  # identities that wrote release secrets
    namespaces: Mapping[str, str]  # release name (my-<chart>) → its namespace


@cache
def helm_releases() -> Releases:
    writers = set()
    namespaces = {}
    for event in hkerma_events():
        ref = event.get("objectRef") or {}
        name = ref.get("name", "")
        if (
            ref.get("resource") == "secrets"
            and name.startswith(HELM_RELEASE_PREFIX)
            and event["verb"] in WRITE_VERBS
            and event["responseStatus"]["code"] < 400
        ):
            writers.add(event["user"]["username"])
            release = name[len(HELM_RELEASE_PREFIX) :].rsplit(".v", 1)[0]
            namespaces[release] = ref["namespace"]
    return Releases(frozenset(writers), namespaces)


def the_admin() -> str:
    """The one human: the only identity that wrote Helm release records."""
    writers = helm_releases().writers
    if len(writers) != 1:
        raise LookupError(f"expected one identity writing Helm releases, found {sorted(writers)}")
    return next(iter(writers))


@cache
def _by_audit_id() -> dict[str, list[dict[str, Any]]]:
    index: dict[str, list[dict[str, Any]]] = {}
    for event in hkerma_events():
        index.setdefault(event["auditID"], []).append(event)
    return index


def chart_of(event: Mapping[str, Any]) -> str | None:
    """The chart (namespace) whose install touched this event's object, if any."""
    releases = helm_releases().namespaces
    ref = event.get("objectRef") or {}
    namespace = ref.get("namespace")
    if namespace in releases.values():
        return namespace
    name = ref.get("name", "")
    # Cluster-scoped objects carry the release name; the longest matching release wins.
    for release in sorted(releases, key=len, reverse=True):
        if name == release or name.startswith(release + "-"):
            return releases[release]
    return None


@dataclass(frozen=True, slots=True)
class Attribution:
    """What is known about the events behind one alert."""

    alert: Alert
    users: frozenset[str]
    charts: frozenset[str]
    unattributed: int  # events touching no chart's objects

    @property
    def by_admin(self) -> bool:
        return self.users == {the_admin()}

    def reason(self) -> str:
        """One line: why this alert exists."""
        if self.by_admin:
            charts = ", ".join(sorted(self.charts)) or "no chart"
            return f"the admin ({the_admin()}) installing charts: {charts}"
        others = ", ".join(sorted(self.users - {the_admin()}))
        return f"not the admin: {others} (routine churn; should stay below medium)"


def attribute(alert: Alert) -> Attribution:
    index = _by_audit_id()
    events = [e for event_id in alert.event_ids for e in index.get(event_id, ())]
    if not events and alert.sample is not None:
        events = [alert.sample.raw]
    users = frozenset(e["user"]["username"] for e in events)
    charts = [chart_of(e) for e in events]
    found = frozenset(c for c in charts if c is not None)
    return Attribution(alert, users, found, sum(c is None for c in charts))
