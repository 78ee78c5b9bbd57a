"""The alert raised when a scheduled review is overdue, stored and delivered like any other.

A review is overdue when its period has ended, the schedule's grace has passed and no review
of the period is signed off. ``OverdueCheck.run`` raises one alert per overdue period (rule
``k3watch-review-overdue``, the schedule's severity, grouped by schedule and period, so its
fingerprint stays the same while the review stays overdue), merges it into the store's alerts,
and hands it to the dispatcher unless a silence matches. It remembers the periods it raised in
``reviews.sqlite``, so a restart does not raise them again. When the review is then signed off,
the stored alert is resolved, with the reviewer as the actor.

``OverdueWatch`` runs the check in a thread (``Runtime.start``), every
``reviews.check_interval``.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass

from k3watch.alert import Alert, fingerprint
from k3watch.alerting.delivery import AlertContext, Dispatcher
from k3watch.alerting.silence import ActiveSilences, alert_labels
from k3watch.event import format_time
from k3watch.review.config import Schedule
from k3watch.review.signoff_periods import Period
from k3watch.review.store import ReviewStore
from k3watch.store.base import AlertChange, AlertQuery, AlertRecord, Store
from k3watch.telemetry import Counters

log = logging.getLogger(__name__)

RULE_ID = "k3watch-review-overdue"
TAGS = ("k3watch.review", "k3watch.review.overdue")
RESPONSE = (
    "Open the review of this period and walk its checklist, then sign it off: "
    'POST /api/v1/reviews {{"schedule": "{schedule}", "period": "{period}"}} '
    "(or the web UI). 'k3watch review list' shows what is due."
)


def overdue_group(schedule: str, period: str) -> dict[str, str]:
    return {"review.schedule": schedule, "review.period": period}


def overdue_fingerprint(schedule: str, period: str) -> str:
    """The same for a schedule's period however many times it is checked."""
    return fingerprint(RULE_ID, overdue_group(schedule, period))


def overdue_alert(schedule: Schedule, period: Period) -> Alert:
    """The alert of an overdue review of ``period``."""
    due = schedule.due(period)
    return Alert(
        rule_id=RULE_ID,
        title=f"Overdue review: {schedule.name} ({period.label})",
        severity=schedule.severity,
        tags=TAGS,
        group=overdue_group(schedule.name, period.label),
        first_seen=due,
        last_seen=due,
        count=1,
        event_ids=[],
        summary=(
            f"The {schedule.name} review of {period.label} (from {format_time(period.start)} "
            f"to {format_time(period.end)}) was due by {format_time(due)} and is not signed off."
        ),
        rule_type="review",
    )


@dataclass(frozen=True, slots=True)
class CheckResult:
    raised: list[Alert]
    delivered: int
    resolved: int


class OverdueCheck:
    """One pass: raise the alerts of newly overdue reviews, resolve those signed since."""

    def __init__(
        self,
        reviews: ReviewStore,
        store: Store,
        dispatcher: Dispatcher | None,
        *,
        cluster: str,
        silences: ActiveSilences | None = None,
        counters: Counters | None = None,
    ) -> None:
        self.reviews = reviews
        self.store = store
        self.dispatcher = dispatcher
        self.cluster = cluster
        self.silences = silences
        self.counters = counters or Counters("review")

    def run(self, now: float | None = None) -> CheckResult:
        now = time.time() if now is None else now
        raised: list[tuple[Alert, Schedule, Period]] = []
        for status in self.reviews.status(now):
            if not status.overdue:
                continue
            done = self.reviews.overdue_raised(status.schedule.name)
            raised.extend(
                (overdue_alert(status.schedule, p), status.schedule, p)
                for p in status.overdue
                if p.start not in done
            )
        deliveries: list[tuple[Alert, AlertContext]] = []
        records = []
        for alert, schedule, period in raised:
            silence = None
            if self.silences is not None:
                labels = alert_labels(
                    alert.rule_id,
                    alert.title,
                    alert.severity.label,
                    self.cluster,
                    None,
                    None,
                    alert.tags,
                    alert.group,
                )
                silence = self.silences.match(labels)
            records.append(_record(alert, self.cluster, silence.id if silence else None))
            if silence is None:
                context = AlertContext(
                    cluster=self.cluster,
                    response=RESPONSE.format(schedule=schedule.name, period=period.label),
                    description=schedule.description,
                )
                deliveries.append((alert, context))
            else:
                self.counters.inc("overdue_silenced")
        if records:
            # Stored and queued before they are remembered: a crash in between raises them
            # again (merged into the same stored alert), never loses them.
            self.store.add_alerts(records)
            if self.dispatcher is not None and deliveries:
                self.dispatcher.submit_all(deliveries)
            self.reviews.record_overdue([(s.name, p, a.fingerprint) for a, s, p in raised], now)
            self.counters.inc("overdue_raised", len(records))
            for alert, _, _ in raised:
                log.warning("%s", alert.summary)
        return CheckResult([a for a, _, _ in raised], len(deliveries), self._resolve(now))

    def _resolve(self, now: float) -> int:
        """Resolve the stored alerts of overdue reviews that have been signed off since."""
        resolved = 0
        pending = self.reviews.overdue_unresolved()
        if not pending:
            return 0
        stored: dict[str, tuple[int, str]] | None = None
        for schedule, start, label, print_ in pending:
            review = self.reviews.signed_review_of(schedule, start)
            if review is None or review.signoff is None:
                continue
            if stored is None:
                stored = self._stored_alerts()
            found = stored.get(print_)
            if found is not None and found[1] in ("open", "acknowledged"):
                note = f"review {review.id} of {label} signed off"
                self.store.change_alert(
                    found[0],
                    AlertChange(review.signoff.reviewer, "resolve", note, time=review.signoff.at),
                )
                resolved += 1
            self.reviews.record_resolved(schedule, start, now)
        if resolved:
            self.counters.inc("overdue_resolved", resolved)
        return resolved

    def _stored_alerts(self) -> dict[str, tuple[int, str]]:
        """Fingerprint → (id, status) of the stored overdue alerts."""
        out: dict[str, tuple[int, str]] = {}
        cursor: str | None = None
        while True:
            page = self.store.alerts(
                AlertQuery(filters={"rule_id": (RULE_ID,)}, limit=500, cursor=cursor)
            )
            for alert in page.alerts:
                out.setdefault(alert.fingerprint, (alert.id, alert.status))
            cursor = page.cursor
            if cursor is None:
                return out


def _record(alert: Alert, cluster: str, silenced_by: str | None) -> AlertRecord:
    first = alert.first_seen or time.time()
    return AlertRecord(
        fingerprint=alert.fingerprint,
        rule_id=alert.rule_id,
        title=alert.title,
        severity=alert.severity.label,
        tags=alert.tags,
        cluster=cluster,
        group=alert.group,
        summary=alert.summary,
        first_seen=first,
        last_seen=alert.last_seen or first,
        count=alert.count,
        event_keys=(),
        silenced_by=silenced_by,
    )


class OverdueWatch:
    """Runs ``OverdueCheck`` at start and then every ``interval`` seconds, in a thread."""

    def __init__(self, check: OverdueCheck, interval: float) -> None:
        self.check = check
        self.interval = max(1.0, interval)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name="k3watch-review-overdue")
        self._thread.daemon = True
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def _loop(self) -> None:
        while True:
            try:
                self.check.run()
            except Exception:
                log.exception("checking for overdue reviews failed; will try again")
                self.check.counters.inc("overdue_check_failed")
            if self._stop.wait(self.interval):
                return
