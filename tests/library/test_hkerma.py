"""Real Helm churn (hkerma's dataset): only the admin's chart installs may alert, grouped per chart.

16,563 real events of four minutes on a kubeadm cluster: an admin installs nine Helm charts
while kube-prometheus-stack, cert-manager and gatekeeper operators run. Helm release secrets,
operators rewriting their secrets, certificates and webhooks, controllers and nodes must raise
nothing at medium or above; the admin's installs may, as a few grouped alerts per chart.
"""

from __future__ import annotations

from collections import Counter

from tests.library.churn import attribute, helm_releases, hkerma_run, the_admin
from tests.library.evaluate import NOISE_SEVERITY, describe_alert

MAX_ALERTS_PER_CHART = 4
"""Medium+ alerts touching one chart's install: one per kind of risky change (a mutating and a
validating webhook, RBAC then workloads, a burst of discovery), never one per object."""


def _listing(attributions: list) -> str:  # type: ignore[type-arg]
    return "\n".join(f"  - {describe_alert(a.alert)}\n    → {a.reason()}" for a in attributions)


def test_the_data_names_one_admin_and_nine_chart_installs() -> None:
    assert the_admin() == "kubernetes-admin"
    assert sorted(helm_releases().namespaces.values()) == [
        "argo-cd", "cert-manager", "grafana", "ingress-nginx", "kube-prometheus-stack",
        "kubernetes-dashboard", "postgresql", "prometheus", "redis",
    ]  # fmt: skip


def test_routine_churn_raises_nothing_at_medium_or_above() -> None:
    """Every medium+ alert comes from the admin's own requests: no operator, controller or node."""
    noisy = [attribute(a) for a in hkerma_run().at_least(NOISE_SEVERITY)]
    churn = [a for a in noisy if not a.by_admin]
    assert not churn, (
        f"{len(churn)} of {len(noisy)} alerts at {NOISE_SEVERITY.label} or above on hkerma's "
        f"Helm churn come from identities other than the admin ({the_admin()}):\n"
        f"{_listing(churn)}"
    )


def test_the_admin_chart_installs_come_out_as_a_few_grouped_alerts_per_chart() -> None:
    admin = [a for a in map(attribute, hkerma_run().at_least(NOISE_SEVERITY)) if a.by_admin]
    unplaced = [a for a in admin if not a.charts]
    assert not unplaced, f"admin alerts that touch no chart's objects:\n{_listing(unplaced)}"
    per_chart = Counter(chart for a in admin for chart in a.charts)
    crowded = {chart: n for chart, n in per_chart.items() if n > MAX_ALERTS_PER_CHART}
    assert not crowded, (
        f"charts with more than {MAX_ALERTS_PER_CHART} medium+ alerts: {crowded} (one per "
        f"object instead of one per kind of change?)\n"
        f"{_listing(admin)}"
    )
    charts = len(helm_releases().namespaces)
    assert len(admin) <= charts, (
        f"{len(admin)} medium+ alerts for {charts} chart installs:\n{_listing(admin)}"
    )
