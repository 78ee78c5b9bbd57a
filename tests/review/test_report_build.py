"""The review report over a known week: every section's numbers."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.conftest import builtin_rules
from tests.review.report_data import (
    END,
    GAP_END,
    GAP_START,
    SILENT_FROM,
    START,
    alert_rules,
    build,
)

from k3watch.review.model import Report
from k3watch.review.report import ReviewOptions, build_report
from k3watch.store.base import EventQuery
from k3watch.store.sqlite import SqliteStore

DAY = 86400.0


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SqliteStore]:
    directory = tmp_path_factory.mktemp("report")
    written = build(directory, builtin_rules())
    yield written
    written.close()


@pytest.fixture(scope="module")
def report(store: SqliteStore) -> Report:
    return build_report(store, ReviewOptions(start=START, end=END), ruleset=builtin_rules())


def test_events_are_counted_per_node(store: SqliteStore, report: Report) -> None:
    """The overview counts every event of the period, as a search finds them."""
    counts: dict[str, int] = {}
    cursor = None
    while True:
        page = store.search(EventQuery(start=START, end=END, limit=1000, cursor=cursor))
        for event in page.events:
            counts[event.node] = counts.get(event.node, 0) + 1
        cursor = page.cursor
        if cursor is None:
            break
    assert report.events.total == sum(counts.values())
    assert {c.name: c.count for c in report.events.by_node} == counts
    assert sum(sum(d.counts.values()) for d in report.events.per_day) == report.events.total


def test_alerts_are_counted_by_severity_status_and_rule(report: Report) -> None:
    alerts = report.alerts
    assert alerts.total == 5  # the sixth was last seen before the period
    assert alerts.occurrences == 1 + 2 + 3 + 4 + 5
    assert alerts.by_severity == {"critical": 3, "high": 1, "medium": 1}
    assert alerts.by_status == {"open": 2, "acknowledged": 1, "resolved": 1, "false_positive": 1}
    assert alerts.by_severity_status["critical"] == {"open": 2, "false_positive": 1}
    rules = alert_rules(builtin_rules())
    top = alerts.rules[0]
    assert (top.rule_id, top.alerts, top.by_status) == (
        rules[0].id,
        3,
        {"open": 2, "false_positive": 1},
    )


def test_unresolved_critical_and_high_alerts_are_listed(report: Report) -> None:
    """Open and acknowledged critical/high alerts, newest first; resolved ones are not."""
    unresolved = report.alerts.unresolved
    assert report.alerts.unresolved_total == 3
    assert [(a.severity, a.status) for a in unresolved] == [
        ("high", "acknowledged"),
        ("critical", "open"),
        ("critical", "open"),
    ]


def test_values_first_seen_ever_in_the_period_are_new(report: Report) -> None:
    """bob and the scheduler were seen before the period: not new; system users first seen
    in the period are identities too."""
    new = report.new_values
    assert [v.value for v in new.identities] == [
        "carol",
        "system:kube-controller-manager",
        "eve",
        "system:anonymous",
        "dave@example.com",
    ]
    assert new.identities_total == 5
    assert [v.value for v in new.service_accounts] == ["system:serviceaccount:ci:deployer"]
    assert [v.value for v in new.source_ips] == ["192.168.5.5", "192.168.9.9", "192.168.6.6"]
    carol = new.identities[0]
    assert carol.first_seen == START + DAY
    assert carol.events == 5  # a list, a role binding, an attach, two secrets
    assert new.source_ips_total == 3


def test_rbac_changes_count_requests_not_stages(report: Report) -> None:
    """Three changes; the patch logged at two stages is one; a read is none."""
    rbac = report.rbac_changes
    assert rbac.total == 3
    assert [(e.user, e.verb, e.resource, e.name) for e in rbac.items] == [
        ("bob", "delete", "roles", "old-role"),
        ("system:serviceaccount:ci:deployer", "patch", "clusterroles", "edit"),
        ("carol", "create", "rolebindings", "carol-admin"),
    ]
    assert {c.name: c.count for c in rbac.by_user} == {
        "bob": 1,
        "carol": 1,
        "system:serviceaccount:ci:deployer": 1,
    }


def test_sessions_are_exec_attach_and_portforward_only(report: Report) -> None:
    """One exec (two stages), one attach, one port-forward; a pod named executor-1 is none."""
    sessions = report.exec_sessions
    assert sessions.total == 3
    assert [(e.user, e.subresource, e.name) for e in sessions.items] == [
        ("bob", "portforward", "web-2"),
        ("carol", "attach", "db-0"),
        ("dave@example.com", "exec", "web-1"),
    ]
    assert sessions.items[-1].detail == "sh -c id"
    assert {c.name: c.count for c in sessions.by_user} == {
        "bob": 1,
        "carol": 1,
        "dave@example.com": 1,
    }
    assert sessions.note == ""


def test_secrets_access_by_people_leaves_system_users_out(report: Report) -> None:
    secrets = report.secrets_access
    assert {c.name: c.count for c in secrets.by_user} == {
        "eve": 4,
        "carol": 2,
        "dave@example.com": 1,
    }
    assert secrets.total == 7
    assert {e.user for e in secrets.items} == {"eve", "carol", "dave@example.com"}
    assert len(secrets.items) == 7


def test_denied_requests_count_forbid_401_and_403_once(report: Report) -> None:
    denied = report.denied
    assert denied.total == 7
    days = {d.day: d.counts for d in denied.per_day}
    day = lambda t: t // DAY * DAY  # noqa: E731
    assert days[day(START + DAY + 3600)] == {"forbid": 4, "401": 0, "403": 0}
    assert days[day(START + 2 * DAY + 7200)] == {"forbid": 0, "401": 2, "403": 0}
    assert days[day(START + 6 * DAY)] == {"forbid": 0, "401": 0, "403": 1}
    assert [(c.name, c.count) for c in denied.top_users] == [
        ("eve", 4),
        ("system:anonymous", 2),
        ("bob", 1),
    ]


def test_gaps_are_found_per_node_and_source(report: Report) -> None:
    """server-1's hour of silence, server-2 silent since 3 hours before the end, and the
    sparse journald source of server-1 between its three lines."""
    gaps = {(g.node, g.source, g.start): g for g in report.pipeline.gaps}
    # the deployer's requests at the start of the hour (the last at +5 min) end the gap there
    hour = gaps[("server-1", "audit", GAP_START + 360)]
    assert (hour.end, hour.minutes, hour.ongoing) == (GAP_END, 54.0, False)
    tail = gaps[("server-2", "audit", SILENT_FROM - 540)]
    assert (tail.end, tail.ongoing) == (END, True)
    assert report.pipeline.gaps_total == 5
    assert sum(1 for g in report.pipeline.gaps if g.source == "journald") == 3
    by_origin = {(o.node, o.source): o.gaps for o in report.pipeline.gaps_by_origin}
    assert by_origin == {("server-1", "audit"): 1, ("server-2", "audit"): 1,
                         ("server-1", "journald"): 3}  # fmt: skip


def test_a_longer_minimum_gap_finds_fewer(store: SqliteStore) -> None:
    report = build_report(store, ReviewOptions(start=START, end=END, min_gap=2 * 3600))
    assert {(g.node, g.source) for g in report.pipeline.gaps} == {
        ("server-2", "audit"),
        ("server-1", "journald"),
    }


def test_backend_errors_sum_the_events_lost(report: Report) -> None:
    backend = report.pipeline.backend
    assert backend.messages == 3
    assert backend.by_plugin == {"webhook": 800, "log": 3}
    assert backend.affected_events == 803
    assert [(c.name, c.count) for c in backend.by_node] == [("server-1", 3)]
    assert backend.samples[0].startswith("Error in audit plugin 'webhook' affecting 400")


def test_ingest_errors_of_the_period_are_counted(report: Report) -> None:
    pipeline = report.pipeline
    assert pipeline.ingest_errors_total == 4
    assert [(e.node, e.reason, e.count) for e in pipeline.ingest_errors] == [
        ("server-1", "json", 3),
        ("server-2", "http_413", 1),
    ]


def test_rule_health_names_noisy_and_silent_rules(report: Report) -> None:
    rules = alert_rules(builtin_rules())
    noisy = report.rules.noisy
    assert (noisy[0].rule_id, noisy[0].alerts, noisy[0].false_positives) == (rules[0].id, 3, 1)
    assert noisy[0].false_positive_rate == pytest.approx(1 / 3, abs=1e-4)
    assert report.rules.never_fired is not None
    silent = {r.rule_id for r in report.rules.never_fired}
    assert rules[3].id in silent  # it fired before the period only
    assert not silent & {r.id for r in rules[:3]}
    assert len(silent) == report.rules.rules_loaded - 3
    assert report.rules.blinded is None
    assert any("blinded" in note for note in report.notes)


def test_rules_blinded_by_a_policy_profile_are_listed(store: SqliteStore) -> None:
    """The minimal profile logs no request bodies: rules that read them are blinded."""
    report = build_report(
        store,
        ReviewOptions(start=START, end=END, policy="minimal"),
        ruleset=builtin_rules(),
    )
    assert report.rules.blinded
    assert report.rules.policy == "minimal"
    assert all(r.detail for r in report.rules.blinded)


def test_without_rules_the_silent_rules_are_not_listed(store: SqliteStore) -> None:
    report = build_report(store, ReviewOptions(start=START, end=END))
    assert report.rules.never_fired is None
    assert any("never fired" in note for note in report.notes)


def test_lists_are_capped_and_counts_are_not(store: SqliteStore) -> None:
    report = build_report(store, ReviewOptions(start=START, end=END, list_limit=2))
    assert len(report.secrets_access.items) == 2
    assert report.secrets_access.total == 7
    assert len(report.new_values.identities) == 2
    assert report.new_values.identities_total == 5


def test_an_empty_period_reports_nothing(store: SqliteStore) -> None:
    report = build_report(store, ReviewOptions(start=END + 30 * DAY, end=END + 37 * DAY))
    assert report.events.total == 0
    assert report.alerts.total == 0
    assert report.new_values.identities_total == 0
    assert report.denied.total == 0


def test_options_refuse_an_empty_period() -> None:
    with pytest.raises(ValueError, match="after"):
        ReviewOptions(start=START, end=START)


def test_a_report_on_a_store_read_only(store: SqliteStore, report: Report) -> None:
    """Opened read-only (as the command does while the server runs), the same report."""
    readonly = SqliteStore.open_readonly(Path(store.path))
    try:
        again = build_report(
            readonly,
            ReviewOptions(start=START, end=END),
            ruleset=builtin_rules(),
            now=report.period.generated,
        )
    finally:
        readonly.close()
    assert again == report
