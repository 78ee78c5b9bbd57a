"""Review records in ``reviews.sqlite`` (mode 0600, WAL) in the server's data directory.

```python
reviews = ReviewStore(data_dir / "reviews.sqlite", config.reviews.resolved())
review = reviews.open("daily", "alice")                 # the last ended day by default
reviews.set_item(review.id, "critical-alerts", "done", "alice", note="2 FPs, 1 resolved")
reviews.add_finding(review.id, "alice", "kubectl exec by a contractor", "high",
                    alert_ids=(41,), owner="bob", due=time.time() + 7 * 86400)
reviews.sign(review.id, "alice", "Reviewed all critical and high alerts of the day.")
reviews.status()                                         # per schedule: signed, due, overdue
reviews.verify()                                         # the chain of signed reviews
```

Whoever acts is a plain name (``actor``): an API token's name, or a web UI user's. A reviewer
opens the review of one period of a schedule (at most one open review per schedule and
period), records each checklist item as done, not applicable or issue found (with a note),
records findings, and signs it off once the period has ended. Signed reviews are immutable and
chained by hash (``signoff_chain``); the changes made while a review was open are kept in its
history, which the chain covers too.
"""

from __future__ import annotations

import builtins
import logging
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import orjson

from k3watch.alert import Severity
from k3watch.durable import open_private_db
from k3watch.errors import UsageError
from k3watch.event import format_time
from k3watch.review import signoff_chain, signoff_schema
from k3watch.review.config import Schedule
from k3watch.review.signoff_model import (
    ITEM_STATES,
    ChainCheck,
    Review,
    ReviewError,
    ScheduleStatus,
)
from k3watch.review.signoff_periods import Period, parse_instant, parse_period, periods_between

log = logging.getLogger(__name__)

FILE_NAME = "reviews.sqlite"
NOTE_NEEDED = ("not_applicable", "issue")


def review_path(data_dir: Path) -> Path:
    return Path(data_dir) / FILE_NAME


class ReviewStore:
    """The review records of one server; safe to use from several threads."""

    def __init__(
        self,
        path: Path,
        schedules: Sequence[Schedule],
        *,
        clock: Callable[[], float] = time.time,
        readonly: bool = False,
        alert_exists: Callable[[int], bool] | None = None,
    ) -> None:
        self.path = Path(path)
        self.alert_exists = alert_exists
        """Whether an alert id is stored (the server's store); findings may only link those."""
        self.schedules = {s.name: s for s in schedules}
        self.clock = clock
        self.readonly = readonly
        self._lock = threading.Lock()
        self._db = _connect(self.path, readonly)
        if not readonly:
            now = clock()
            with self._change() as db:
                db.executemany(
                    "INSERT OR IGNORE INTO schedules (name, tracked_since) VALUES (?, ?)",
                    [(name, now) for name in self.schedules],
                )

    # --- transactions ---

    @contextmanager
    def _read(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._db.execute("BEGIN")
            try:
                yield self._db
            finally:
                self._db.execute("COMMIT")

    @contextmanager
    def _change(self) -> Iterator[sqlite3.Connection]:
        if self.readonly:
            raise ReviewError(f"{self.path} is open read-only")
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise

    # --- schedules ---

    def schedule(self, name: str) -> Schedule:
        """The schedule named ``name``; ReviewError (not found) listing the others."""
        found = self.schedules.get(name)
        if found is None:
            raise ReviewError(
                f"no review schedule {name!r}",
                "not_found",
                hint=f"one of {', '.join(self.schedules) or 'none configured'}",
            )
        return found

    def period(self, schedule: str, label: str | None = None, at: float | None = None) -> Period:
        """The period of ``schedule`` named by ``label`` (``2024-W20``, or a time in it such as
        ``2024-05-15`` or ``2024-05-15T10:00:00Z``), or the one containing ``at``; without
        either, the last period that has ended."""
        found = self.schedule(schedule)
        if label is not None:
            try:
                return parse_period(found.cadence, label)
            except ValueError as exc:
                when = parse_instant(label)
                if when is None:
                    raise ReviewError(f"{exc}, nor a time in one") from None
                return found.period_of(when)
        if at is not None:
            return found.period_of(at)
        return found.period_of(self.clock()).previous()

    # --- the review workflow ---

    def open(
        self,
        schedule: str,
        actor: str,
        *,
        period: str | None = None,
        at: float | None = None,
    ) -> Review:
        """Open the review of a period of ``schedule`` (see ``period``), its checklist copied
        from the schedule. ReviewError: unknown schedule, a period that has not started, or a
        review of it already open (conflict, naming it)."""
        found = self.schedule(schedule)
        chosen = self.period(schedule, period, at)
        now = self.clock()
        _need_actor(actor)
        if chosen.start > now:
            raise ReviewError(f"the {schedule} period {chosen.label} has not started yet")
        with self._change() as db:
            existing = db.execute(
                "SELECT id FROM reviews WHERE schedule = ? AND period_start = ? AND state = 'open'",
                (schedule, chosen.start),
            ).fetchone()
            if existing is not None:
                raise ReviewError(
                    f"review {existing[0]} of {schedule} {chosen.label} is already open",
                    "conflict",
                    hint="continue that one",
                )
            cursor = db.execute(
                "INSERT INTO reviews (schedule, period, period_start, period_end, description,"
                " opened_by, opened_at, state) VALUES (?, ?, ?, ?, ?, ?, ?, 'open')",
                (
                    schedule,
                    chosen.label,
                    chosen.start,
                    chosen.end,
                    found.description,
                    actor,
                    now,
                ),
            )
            review_id = int(cursor.lastrowid or 0)
            db.executemany(
                "INSERT INTO review_items (review_id, position, item, text, section)"
                " VALUES (?, ?, ?, ?, ?)",
                [
                    (review_id, position, item.id, item.text, item.section)
                    for position, item in enumerate(found.checklist)
                ],
            )
            _history(db, review_id, now, actor, "open", chosen.label, f"opened {schedule} review")
            review = signoff_schema.read_review(db, review_id)
        assert review is not None
        log.info("review %d of %s %s opened by %s", review_id, schedule, chosen.label, actor)
        return review

    def set_item(
        self, review_id: int, item_id: str, state: str, actor: str, *, note: str = ""
    ) -> Review:
        """Record a checklist item as ``done``, ``not_applicable`` or ``issue`` (found), or
        back to ``pending``; not applicable and issue need a note saying why or what."""
        _need_actor(actor)
        if state not in ITEM_STATES:
            raise ReviewError(
                f"unknown item state {state!r}", hint=f"one of {', '.join(ITEM_STATES)}"
            )
        note = note.strip()
        if state in NOTE_NEEDED and not note:
            raise ReviewError(f"an item marked {state} needs a note")
        now = self.clock()
        with self._change() as db:
            review = self._open_review(db, review_id)
            item = review.item(item_id)
            if item is None:
                raise ReviewError(
                    f"review {review_id} has no checklist item {item_id!r}",
                    "not_found",
                    hint=f"one of {', '.join(i.id for i in review.items)}",
                )
            db.execute(
                "UPDATE review_items SET state = ?, note = ?, actor = ?, at = ?"
                " WHERE review_id = ? AND item = ?",
                (state, note, actor, now, review_id, item_id),
            )
            detail = f"{item.state} -> {state}" + (f": {note}" if note else "")
            _history(db, review_id, now, actor, "item", item_id, detail)
            changed = signoff_schema.read_review(db, review_id)
        assert changed is not None
        return changed

    def add_finding(
        self,
        review_id: int,
        actor: str,
        text: str,
        severity: str,
        *,
        alert_ids: Sequence[int] = (),
        event_keys: Sequence[str] = (),
        owner: str | None = None,
        due: float | None = None,
        item: str | None = None,
    ) -> Review:
        """Record a finding: what was found, how severe, the alerts and events it is about,
        who follows it up (``owner``) by when (``due``, epoch seconds)."""
        _need_actor(actor)
        text = text.strip()
        if not text:
            raise ReviewError("a finding needs a text")
        try:
            level = Severity.parse(severity).label
        except ValueError as exc:
            raise ReviewError(str(exc)) from None
        if self.alert_exists is not None:
            for alert_id in alert_ids:
                if not self.alert_exists(int(alert_id)):
                    raise ReviewError(f"no alert {alert_id}")
        now = self.clock()
        with self._change() as db:
            review = self._open_review(db, review_id)
            if item is not None and review.item(item) is None:
                raise ReviewError(f"review {review_id} has no checklist item {item!r}")
            cursor = db.execute(
                "INSERT INTO review_findings (review_id, text, severity, alert_ids, event_keys,"
                " owner, due, item, actor, at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    review_id,
                    text,
                    level,
                    orjson.dumps([int(a) for a in alert_ids]).decode(),
                    orjson.dumps([str(k) for k in event_keys]).decode(),
                    owner or None,
                    due,
                    item,
                    actor,
                    now,
                ),
            )
            finding_id = int(cursor.lastrowid or 0)
            follow = f", owner {owner}" if owner else ""
            follow += f", due {format_time(due)}" if due is not None else ""
            _history(
                db, review_id, now, actor, "finding", str(finding_id), f"{level}: {text}{follow}"
            )
            changed = signoff_schema.read_review(db, review_id)
        assert changed is not None
        return changed

    def sign(self, review_id: int, actor: str, statement: str) -> Review:
        """Sign the review off with a closing statement: it becomes immutable and joins the
        hash chain. Refused before the period ends, with items still pending, or with an issue
        found and no finding recorded."""
        _need_actor(actor)
        statement = statement.strip()
        if not statement:
            raise ReviewError("a sign-off needs a closing statement")
        now = self.clock()
        with self._change() as db:
            review = self._open_review(db, review_id)
            if now < review.period_end:
                raise ReviewError(
                    f"the period {review.period} ends at {format_time(review.period_end)}: "
                    "sign the review off after that"
                )
            pending = [i.id for i in review.items if i.state == "pending"]
            if pending:
                raise ReviewError(f"checklist items still pending: {', '.join(pending)}")
            if any(i.state == "issue" for i in review.items) and not review.findings:
                raise ReviewError("an item has an issue found: record the finding first")
            _history(db, review_id, now, actor, "sign", review.period, "signed off")
            review = self._open_review(db, review_id)
            head_seq, prev = db.execute("SELECT seq, hash FROM chain_head WHERE id = 1").fetchone()
            digest = signoff_chain.review_hash(prev, review, actor, now, statement)
            seq = int(head_seq) + 1
            db.execute(
                "UPDATE reviews SET state = 'signed', signed_by = ?, signed_at = ?,"
                " statement = ?, seq = ?, prev = ?, hash = ? WHERE id = ?",
                (actor, now, statement, seq, prev, digest, review_id),
            )
            db.execute("UPDATE chain_head SET seq = ?, hash = ? WHERE id = 1", (seq, digest))
            signed = signoff_schema.read_review(db, review_id)
        assert signed is not None
        log.info(
            "review %d (%s %s) signed off by %s", review_id, review.schedule, review.period, actor
        )
        return signed

    def _open_review(self, db: sqlite3.Connection, review_id: int) -> Review:
        review = signoff_schema.read_review(db, review_id)
        if review is None:
            raise ReviewError(f"no review {review_id}", "not_found")
        if review.signoff is not None:
            raise ReviewError(f"review {review_id} is signed off and cannot be changed", "conflict")
        return review

    # --- reading ---

    def get(self, review_id: int) -> Review | None:
        """The review with its items, findings, history and sign-off."""
        with self._read() as db:
            return signoff_schema.read_review(db, review_id)

    def list(
        self,
        *,
        schedule: str | None = None,
        state: str | None = None,
        since: float | None = None,
        limit: int | None = None,
    ) -> builtins.list[Review]:
        """Reviews, newest period first: of one schedule, in one state (``open``,
        ``signed``), of periods ending after ``since``."""
        where: builtins.list[str] = []
        params: builtins.list[object] = []
        if schedule is not None:
            where.append("schedule = ?")
            params.append(schedule)
        if state is not None:
            where.append("state = ?")
            params.append(state)
        if since is not None:
            where.append("period_end > ?")
            params.append(since)
        sql = ("WHERE " + " AND ".join(where)) if where else ""
        sql += " ORDER BY period_start DESC, id DESC"
        if limit is not None:
            sql += " LIMIT ?"
            params.append(limit)
        with self._read() as db:
            return signoff_schema.read_reviews(db, sql, tuple(params))

    def status(self, now: float | None = None) -> builtins.list[ScheduleStatus]:
        """Per schedule: the last signed period, the current one, when the next review is
        due and which periods are overdue (ended, grace passed, not signed)."""
        now = self.clock() if now is None else now
        with self._read() as db:
            tracked = dict(db.execute("SELECT name, tracked_since FROM schedules").fetchall())
            signed: dict[str, dict[float, int]] = {}
            for name, start, review_id in db.execute(
                "SELECT schedule, period_start, max(id) FROM reviews WHERE state = 'signed'"
                " GROUP BY schedule, period_start"
            ):
                signed.setdefault(str(name), {})[float(start)] = int(review_id)
            opened: dict[str, builtins.list[int]] = {}
            for name, review_id in db.execute(
                "SELECT schedule, id FROM reviews WHERE state = 'open' ORDER BY id"
            ):
                opened.setdefault(str(name), []).append(int(review_id))
        return [
            _status(
                schedule,
                now,
                float(tracked.get(name, now)),
                signed.get(name, {}),
                tuple(opened.get(name, ())),
            )
            for name, schedule in self.schedules.items()
        ]

    def verify(self) -> ChainCheck:
        """Walk the chain of signed reviews (see ``signoff_chain``)."""
        with self._lock:
            return signoff_chain.verify(self._db)

    # --- overdue alerts (k3watch.review.overdue) ---

    def overdue_raised(self, schedule: str) -> set[float]:
        """Starts of the periods of ``schedule`` whose overdue alert was raised."""
        with self._read() as db:
            return {
                float(start)
                for (start,) in db.execute(
                    "SELECT period_start FROM overdue WHERE schedule = ?", (schedule,)
                )
            }

    def record_overdue(self, raised: Sequence[tuple[str, Period, str]], at: float) -> None:
        """Remember the overdue alerts raised: ``(schedule, period, fingerprint)``."""
        with self._change() as db:
            db.executemany(
                "INSERT OR IGNORE INTO overdue (schedule, period_start, period, fingerprint,"
                " raised) VALUES (?, ?, ?, ?, ?)",
                [(name, p.start, p.label, fp, at) for name, p, fp in raised],
            )

    def overdue_unresolved(self) -> builtins.list[tuple[str, float, str, str]]:
        """Raised overdue alerts whose resolution was not recorded: ``(schedule, period_start,
        period label, fingerprint)``."""
        with self._read() as db:
            return [
                (str(a), float(b), str(c), str(d))
                for a, b, c, d in db.execute(
                    "SELECT schedule, period_start, period, fingerprint FROM overdue"
                    " WHERE resolved IS NULL ORDER BY raised"
                )
            ]

    def signed_review_of(self, schedule: str, period_start: float) -> Review | None:
        """The latest signed review of a schedule's period."""
        found = self.list(schedule=schedule, state="signed", since=period_start)
        return next((r for r in found if r.period_start == period_start), None)

    def record_resolved(self, schedule: str, period_start: float, at: float) -> None:
        with self._change() as db:
            db.execute(
                "UPDATE overdue SET resolved = ? WHERE schedule = ? AND period_start = ?",
                (at, schedule, period_start),
            )

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def __enter__(self) -> ReviewStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _status(
    schedule: Schedule,
    now: float,
    since: float,
    signed: dict[float, int],
    opened: tuple[int, ...],
) -> ScheduleStatus:
    current = schedule.period_of(now)
    ended = periods_between(schedule.cadence, since, current.start)
    unsigned = [p for p in ended if p.start not in signed]
    overdue = tuple(p for p in unsigned if schedule.due(p) <= now)
    last_signed = max(
        (p for p in (schedule.period_of(start) for start in signed) if p.end <= current.end),
        default=None,
    )
    next_due = schedule.due(unsigned[0] if unsigned else current)
    return ScheduleStatus(
        schedule=schedule,
        now=now,
        tracked_since=since,
        current=current,
        last_signed=last_signed,
        last_signed_review=signed[last_signed.start] if last_signed is not None else None,
        open_reviews=opened,
        next_due=next_due,
        overdue=overdue,
    )


def _need_actor(actor: str) -> None:
    if not actor or not actor.strip():
        raise ReviewError("who acts must be named (an empty actor)")


def _history(
    db: sqlite3.Connection,
    review_id: int,
    at: float,
    actor: str,
    action: str,
    subject: str,
    detail: str,
) -> None:
    db.execute(
        "INSERT INTO review_history (review_id, at, actor, action, subject, detail)"
        " VALUES (?, ?, ?, ?, ?, ?)",
        (review_id, at, actor, action, subject, detail),
    )


def _connect(path: Path, readonly: bool) -> sqlite3.Connection:
    if readonly:
        if not path.exists():
            raise UsageError(f"no review records at {path}", hint="has the server run here?")
        db = sqlite3.connect(
            f"{path.resolve().as_uri()}?mode=ro",
            uri=True,
            check_same_thread=False,
            isolation_level=None,
        )
        db.execute("PRAGMA busy_timeout = 5000")
        return db
    return open_private_db(path, "review", signoff_schema.create, explicit=False)
