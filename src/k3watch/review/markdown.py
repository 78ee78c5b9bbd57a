"""The review report as Markdown: the same sections as the HTML page, as tables (no charts:
the numbers behind them are in the tables)."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from k3watch.review.model import EventList, Report, SeenItem
from k3watch.review.render import SUMMARY_HEADINGS, number, percent, summary_figures, when

STATUSES = ("open", "acknowledged", "resolved", "false_positive")
_Add = Callable[[str], None]


def cell(value: object) -> str:
    """Text safe in a table cell: pipes escaped, line breaks as spaces."""
    text = "" if value is None else str(value)
    return text.replace("\\", "\\\\").replace("|", "\\|").replace("\r", " ").replace("\n", " ")


def table(header: Sequence[str], rows: Sequence[Sequence[object]], numeric: int = 0) -> str:
    """A Markdown table; the last ``numeric`` columns right-aligned."""
    align = ["---"] * (len(header) - numeric) + ["---:"] * numeric
    lines = ["| " + " | ".join(cell(h) for h in header) + " |", "| " + " | ".join(align) + " |"]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def markdown(report: Report) -> str:
    out: list[str] = []
    add = out.append
    period = report.period
    add(f"# {report.title}\n")
    add(
        f"{when(period.start)} to {when(period.end)} ({number(period.days)} days);"
        f" generated {when(period.generated)}.\n"
    )
    add(table(SUMMARY_HEADINGS, [summary_figures(report)], numeric=6))
    if report.events.by_node:
        add(
            table(["Node", "Events"], [[c.name, number(c.count)] for c in report.events.by_node], 1)
        )
    _alerts(report, add)
    add("## 2. New identities, service accounts and source IPs\n")
    add("Seen for the first time ever during the period.\n")
    new = report.new_values
    _seen(add, "Identities", new.identities, new.identities_total)
    _seen(add, "Service accounts", new.service_accounts, new.service_accounts_total)
    _seen(add, "Source IPs", new.source_ips, new.source_ips_total)
    add(f"## 3. RBAC changes: {number(report.rbac_changes.total)}\n")
    _events(add, report.rbac_changes, "No RBAC changes in the period.")
    add(f"## 4. exec, attach and port-forward sessions: {number(report.exec_sessions.total)}\n")
    _events(add, report.exec_sessions, "No sessions in the period.")
    add(f"## 5. Secrets accessed by people: {number(report.secrets_access.total)}\n")
    _events(add, report.secrets_access, "No person accessed secrets in the period.")
    _denied(report, add)
    _pipeline(report, add)
    _rules(report, add)
    if report.notes:
        add("## Notes\n")
        add("".join(f"- {n}\n" for n in report.notes))
    return "\n".join(out)


def _alerts(report: Report, add: _Add) -> None:
    alerts = report.alerts
    add("## 1. Alerts and triage\n")
    add(
        f"{number(alerts.total)} alerts ({number(alerts.occurrences)} occurrences) in the period.\n"
    )
    if alerts.by_severity_status:
        rows = [
            [
                severity,
                *(number(row.get(s, 0)) for s in STATUSES),
                number(alerts.by_severity[severity]),
            ]
            for severity, row in alerts.by_severity_status.items()
        ]
        add(table(["Severity", *STATUSES, "total"], rows, numeric=5))
    if alerts.rules:
        add("### Per rule\n")
        rows = [
            [r.title, r.severity, number(r.alerts), number(r.occurrences),
             *(number(r.by_status.get(s, 0)) for s in STATUSES)]
            for r in alerts.rules
        ]  # fmt: skip
        add(table(["Rule", "Severity", "Alerts", "Occurrences", *STATUSES], rows, numeric=6))
    add(f"### Unresolved critical and high alerts: {number(alerts.unresolved_total)}\n")
    if alerts.unresolved:
        rows = [
            [str(a.id), a.severity, a.status, a.title, a.summary, when(a.last_seen),
             number(a.occurrences), a.assignee or ""]
            for a in alerts.unresolved
        ]  # fmt: skip
        add(table(["#", "Severity", "Status", "Rule", "Summary", "Last seen", "Occurrences",
                   "Assignee"], rows))  # fmt: skip
    else:
        add("None.\n")


def _seen(add: _Add, what: str, items: Sequence[SeenItem], total: int) -> None:
    add(f"### {what}: {number(total)}\n")
    if items:
        rows = [[v.value, when(v.first_seen), when(v.last_seen), number(v.events)] for v in items]
        add(table([what, "First seen", "Last seen", "Events"], rows, numeric=1))
        if total > len(items):
            add(f"The first {number(len(items))} of {number(total)}.\n")
    else:
        add("None.\n")


def _events(add: _Add, events: EventList, empty: str) -> None:
    if events.by_user:
        add(table(["User", "Count"], [[c.name, number(c.count)] for c in events.by_user], 1))
    if events.items:
        rows = [
            [when(e.time, "second"), e.user, e.verb,
             e.resource + (f"/{e.subresource}" if e.subresource else ""), e.namespace, e.name,
             e.source_ip, e.node, e.detail + (f" ({e.code})" if e.code else "")]
            for e in events.items
        ]  # fmt: skip
        add(table(["Time", "User", "Verb", "Resource", "Namespace", "Name", "Source IP",
                   "Node", "Detail"], rows))  # fmt: skip
        if events.total > len(events.items):
            add(f"The newest {number(len(events.items))} of {number(events.total)}.\n")
    else:
        add(f"{empty}\n")
    if events.note:
        add(f"{events.note}\n")


def _denied(report: Report, add: _Add) -> None:
    denied = report.denied
    add(f"## 6. Denied requests: {number(denied.total)}\n")
    if denied.per_day:
        rows = [
            [when(d.day, "day"), *(number(d.counts.get(k, 0)) for k in ("forbid", "401", "403"))]
            for d in denied.per_day
        ]
        add(table(["Day", "Forbidden (authorizer)", "401", "403"], rows, numeric=3))
    if denied.top_users:
        add(table(["Identity", "Denied"], [[c.name, number(c.count)] for c in denied.top_users], 1))


def _pipeline(report: Report, add: _Add) -> None:
    p = report.pipeline
    add("## 7. Audit pipeline health\n")
    add(f"### Gaps of {number(p.min_gap / 60)} minutes or more: {number(p.gaps_total)}\n")
    if p.gaps:
        rows = [
            [g.cluster, g.node, g.source, number(g.gaps), number(g.minutes), number(g.longest)]
            for g in p.gaps_by_origin
        ]
        add(table(["Cluster", "Node", "Source", "Gaps", "Minutes", "Longest"], rows, numeric=3))
        if p.gaps_total > len(p.gaps):
            add(f"The longest {number(len(p.gaps))} of {number(p.gaps_total)}:\n")
        rows = [
            [g.cluster, g.node, g.source, when(g.start),
             ("no event since " if g.ongoing else "") + when(g.end), number(g.minutes)]
            for g in p.gaps
        ]  # fmt: skip
        add(table(["Cluster", "Node", "Source", "From", "To", "Minutes"], rows, numeric=1))
    else:
        add("None.\n")
    backend = p.backend
    add(f"### Audit backend errors in the K3s logs: {number(backend.messages)}\n")
    if backend.messages:
        lost = ", ".join(f"{number(n)} by {plugin}" for plugin, n in backend.by_plugin.items())
        add(f"{number(backend.affected_events)} audit events lost ({lost}).\n")
        add(table(["Node", "Messages"], [[c.name, number(c.count)] for c in backend.by_node], 1))
        add("".join(f"- `{s}`\n" for s in backend.samples))
    add(f"### Rejected input: {number(p.ingest_errors_total)}\n")
    if p.ingest_errors:
        rows = [[e.cluster, e.node, e.source, e.reason, number(e.count)] for e in p.ingest_errors]
        add(table(["Cluster", "Node", "Source", "Reason", "Count"], rows, numeric=1))


def _rules(report: Report, add: _Add) -> None:
    rules = report.rules
    add("## 8. Rule health\n")
    add("### Noisiest rules\n")
    if rules.noisy:
        rows = [
            [r.title, number(r.alerts), number(r.occurrences), number(r.false_positives),
             percent(r.false_positive_rate)]
            for r in rules.noisy
        ]  # fmt: skip
        add(table(["Rule", "Alerts", "Occurrences", "False positives", "FP rate"], rows, 4))
    else:
        add("No rule fired in the period.\n")
    if rules.never_fired is not None:
        add(
            f"### Rules that never fired: {number(len(rules.never_fired))} of"
            f" {number(rules.rules_loaded)}\n"
        )
        if rules.never_fired:
            rows = [[r.title, r.severity, r.rule_id] for r in rules.never_fired]
            add(table(["Rule", "Severity", "Id"], rows))
    if rules.blinded is not None:
        add(f"### Rules blinded by the audit policy {rules.policy}: {number(len(rules.blinded))}\n")
        if rules.blinded:
            rows = [[r.title, r.severity, r.detail] for r in rules.blinded]
            add(table(["Rule", "Severity", "What it misses"], rows))
