"""What the overview page shows, gathered from the store's roll-ups so that it stays fast over
millions of events: alerts by severity and status, events per hour by source, the identities
with the most denied requests."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from k3watch.store.base import ALERT_STATUSES, AggregateQuery, Store
from k3watch.web import charts

HOUR = 3600.0
PERIODS = {"24h": 86400.0, "7d": 7 * 86400.0, "30d": 30 * 86400.0}
DENIED = {"decision": ("forbid",)}


@dataclass(frozen=True, slots=True)
class Overview:
    start: float
    end: float
    bucket: float
    alerts_by_severity: dict[str, int]
    alerts_by_status: dict[str, int]
    events_by_source: dict[str, dict[float, float]]
    """Source → {bucket start → events}."""
    events: int
    denied_by_user: list[tuple[str, float]]
    denied: int


def gather(store: Store, now: float, period: float) -> Overview:
    """The overview of the ``period`` seconds before ``now`` (whole hours)."""
    end = (now // HOUR + 1) * HOUR
    start = end - max(HOUR, (period // HOUR) * HOUR)
    bucket = HOUR if period <= 2 * 86400 else 6 * HOUR if period <= 8 * 86400 else 86400.0
    series: dict[str, dict[float, float]] = defaultdict(dict)
    total = 0
    for b in store.aggregate(
        AggregateQuery(start=start, end=end, bucket=bucket, by="source", limit=12)
    ):
        if b.start is not None and b.value is not None:
            series[b.value][b.start] = b.count
            total += b.count
    denied = store.aggregate(
        AggregateQuery(start=start, end=end, by="user", filters=DENIED, limit=10)
    )
    denied_total = sum(
        b.count for b in store.aggregate(AggregateQuery(start=start, end=end, filters=DENIED))
    )
    return Overview(
        start=start,
        end=end,
        bucket=bucket,
        alerts_by_severity=store.alert_counts("severity", start),
        alerts_by_status=store.alert_counts("status", start),
        events_by_source=dict(sorted(series.items(), key=lambda kv: -sum(kv[1].values()))),
        events=total,
        denied_by_user=[(b.value or "?", float(b.count)) for b in denied],
        denied=denied_total,
    )


def context(data: Overview, period: str) -> dict[str, Any]:
    """What overview.html shows of ``data`` (charts drawn), besides the session and reviews."""
    per = "hour" if data.bucket == HOUR else f"{data.bucket / HOUR:.0f} h"
    return {
        "data": data,
        "period": period,
        "periods": list(PERIODS),
        "statuses": ALERT_STATUSES,
        "events_chart": charts.time_chart(
            data.events_by_source,
            title=f"Events per {per} by source",
            start=data.start,
            end=data.end,
            bucket=data.bucket,
        ),
        "denied_chart": charts.bar_chart(
            data.denied_by_user, title="Top identities by denied requests"
        ),
    }
