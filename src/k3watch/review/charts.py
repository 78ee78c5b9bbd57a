"""The review report's charts, drawn with ``k3watch.web.charts`` from the report's data (the
HTML page inlines them, the PDF embeds them): name → SVG text."""

from __future__ import annotations

from collections.abc import Sequence

from k3watch.review.model import Count, DayCount, PipelineHealth, Report
from k3watch.web.charts import SEVERITY_COLOURS, bar_chart, time_chart

DAY = 86400.0
STATUS_COLOURS = {
    "open": "#D55E00",
    "acknowledged": "#E69F00",
    "resolved": "#009E73",
    "false_positive": "#999999",
}


def report_charts(report: Report) -> dict[str, str]:
    start, end = report.period.start, report.period.end
    alerts = report.alerts
    return {
        "events": _days(report.events.per_day, "Events per day, by node", start, end),
        "alerts_by_severity": bar_chart(
            [(s, float(n)) for s, n in alerts.by_severity.items()],
            title="Alerts by severity",
            colours=SEVERITY_COLOURS,
        ),
        "alerts_by_status": bar_chart(
            [(s, float(n)) for s, n in alerts.by_status.items()],
            title="Alerts by triage status",
            colours=STATUS_COLOURS,
        ),
        "alerts_by_rule": _bars(
            [Count(name=r.title, count=r.alerts) for r in alerts.rules[:10]], "Alerts by rule"
        ),
        "rbac_by_user": _bars(report.rbac_changes.by_user, "RBAC changes by user"),
        "exec_by_user": _bars(report.exec_sessions.by_user, "exec/attach/port-forward by user"),
        "secrets_by_user": _bars(report.secrets_access.by_user[:10], "Secret requests by person"),
        "denied": _days(
            report.denied.per_day, "Denied requests per day", start, end, ("forbid", "401", "403")
        ),
        "denied_by_user": _bars(report.denied.top_users, "Most denied identities"),
        "backend_errors": backend_errors_chart(report.pipeline, start, end),
        "noisy_rules": _bars(
            [Count(name=r.title, count=r.alerts) for r in report.rules.noisy], "Noisiest rules"
        ),
    }


def backend_errors_chart(pipeline: PipelineHealth, start: float, end: float) -> str:
    return _days(pipeline.backend.per_day, "Audit backend errors per day, by node", start, end)


def _bars(counts: Sequence[Count], title: str) -> str:
    return bar_chart([(c.name, float(c.count)) for c in counts], title=title)


def _days(
    days: Sequence[DayCount],
    title: str,
    start: float,
    end: float,
    order: Sequence[str] = (),
) -> str:
    names = list(order)
    for day in days:
        names.extend(name for name in day.counts if name not in names)
    series: dict[str, dict[float, float]] = {name: {} for name in names}
    for day in days:
        for name, n in day.counts.items():
            series[name][day.day] = float(n)
    return time_chart(series, title=title, start=start, end=end, bucket=DAY)
