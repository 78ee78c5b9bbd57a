"""The review record: checklist items, findings, the history of changes and the sign-off.

These are values (no I/O); ``ReviewStore`` makes and keeps them. ``Review.to_dict`` is the JSON
contract of the API and of ``k3watch review export --format json``; ``Review.document`` is what
the hash chain covers.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from k3watch.errors import K3watchError
from k3watch.event import format_time
from k3watch.review.config import Schedule
from k3watch.review.signoff_periods import Period

ItemState = Literal["pending", "done", "not_applicable", "issue"]
ITEM_STATES: tuple[ItemState, ...] = ("pending", "done", "not_applicable", "issue")
ReviewState = Literal["open", "signed"]
ChainProblemKind = Literal["altered", "removed", "reordered", "unprotected"]


class ReviewError(K3watchError):
    """A review action that cannot be done; ``kind`` says why (the API's status code)."""

    def __init__(
        self,
        message: str,
        kind: Literal["not_found", "conflict", "invalid"] = "invalid",
        hint: str = "",
    ) -> None:
        super().__init__(message, hint=hint)
        self.kind = kind


@dataclass(frozen=True, slots=True)
class ItemRecord:
    """A checklist item of a review and what the reviewer recorded for it."""

    id: str
    text: str
    section: str | None
    state: ItemState = "pending"
    note: str = ""
    actor: str | None = None
    at: float | None = None

    def document(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "text": self.text,
            "section": self.section,
            "state": self.state,
            "note": self.note,
            "actor": self.actor,
            "at": self.at,
        }

    def to_dict(self) -> dict[str, Any]:
        return self.document() | {"at": format_time(self.at) if self.at is not None else None}


@dataclass(frozen=True, slots=True)
class Finding:
    """Something the review found, and who follows it up by when."""

    id: int
    text: str
    severity: str
    alert_ids: tuple[int, ...] = ()
    event_keys: tuple[str, ...] = ()
    owner: str | None = None
    due: float | None = None
    item: str | None = None
    """The checklist item it was found under."""
    actor: str = ""
    at: float = 0.0

    def document(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "text": self.text,
            "severity": self.severity,
            "alert_ids": list(self.alert_ids),
            "event_keys": list(self.event_keys),
            "owner": self.owner,
            "due": self.due,
            "item": self.item,
            "actor": self.actor,
            "at": self.at,
        }

    def to_dict(self) -> dict[str, Any]:
        return self.document() | {
            "due": format_time(self.due) if self.due is not None else None,
            "at": format_time(self.at),
        }


@dataclass(frozen=True, slots=True)
class Change:
    """One change made while the review was open: who did what to which item, when."""

    at: float
    actor: str
    action: Literal["open", "item", "finding", "sign"]
    subject: str
    """The item id, the finding id, or the period."""
    detail: str

    def document(self) -> dict[str, Any]:
        return {
            "at": self.at,
            "actor": self.actor,
            "action": self.action,
            "subject": self.subject,
            "detail": self.detail,
        }

    def to_dict(self) -> dict[str, Any]:
        return self.document() | {"at": format_time(self.at)}


@dataclass(frozen=True, slots=True)
class SignOff:
    """Who signed the review off, when, what they stated, and its place in the chain."""

    reviewer: str
    at: float
    statement: str
    seq: int
    prev: str
    hash: str


@dataclass(frozen=True, slots=True)
class Review:
    """A review of one schedule's period; immutable once signed off."""

    id: int
    schedule: str
    period: str
    period_start: float
    period_end: float
    description: str
    opened_by: str
    opened_at: float
    items: tuple[ItemRecord, ...]
    findings: tuple[Finding, ...] = ()
    history: tuple[Change, ...] = ()
    signoff: SignOff | None = None

    @property
    def state(self) -> ReviewState:
        return "signed" if self.signoff is not None else "open"

    def item(self, item_id: str) -> ItemRecord | None:
        return next((i for i in self.items if i.id == item_id), None)

    def document(self, signed_by: str, signed_at: float, statement: str) -> dict[str, Any]:
        """What the hash chain covers: the whole review (times as epoch seconds), without its
        position in the chain (``seq``, ``prev``), which the chain links cover."""
        return {
            "id": self.id,
            "schedule": self.schedule,
            "period": self.period,
            "period_start": self.period_start,
            "period_end": self.period_end,
            "description": self.description,
            "opened_by": self.opened_by,
            "opened_at": self.opened_at,
            "items": [i.document() for i in self.items],
            "findings": [f.document() for f in self.findings],
            "history": [c.document() for c in self.history],
            "signed_by": signed_by,
            "signed_at": signed_at,
            "statement": statement,
        }

    def to_dict(self) -> dict[str, Any]:
        """The JSON contract (RFC 3339 times)."""
        signoff = self.signoff
        return {
            "id": self.id,
            "schedule": self.schedule,
            "period": self.period,
            "period_start": format_time(self.period_start),
            "period_end": format_time(self.period_end),
            "description": self.description,
            "state": self.state,
            "opened_by": self.opened_by,
            "opened_at": format_time(self.opened_at),
            "items": [i.to_dict() for i in self.items],
            "findings": [f.to_dict() for f in self.findings],
            "history": [c.to_dict() for c in self.history],
            "signoff": None
            if signoff is None
            else {
                "reviewer": signoff.reviewer,
                "at": format_time(signoff.at),
                "statement": signoff.statement,
                "seq": signoff.seq,
                "prev": signoff.prev,
                "hash": signoff.hash,
            },
        }


@dataclass(frozen=True, slots=True)
class ScheduleStatus:
    """Where a schedule stands at a time: what is signed, what is due, what is overdue."""

    schedule: Schedule
    now: float
    tracked_since: float
    """When this server started keeping the schedule: earlier periods are not due."""
    current: Period
    """The period ``now`` is in (its review is due after it ends)."""
    last_signed: Period | None
    last_signed_review: int | None
    open_reviews: tuple[int, ...]
    next_due: float
    """When the oldest unsigned period's review is (or was) due."""
    overdue: tuple[Period, ...]
    """Ended periods, grace passed, with no signed review; oldest first."""

    @property
    def is_overdue(self) -> bool:
        return bool(self.overdue)

    def to_dict(self) -> dict[str, Any]:
        schedule = self.schedule
        return {
            "name": schedule.name,
            "period": schedule.cadence.value,
            "grace_seconds": schedule.grace,
            "severity": schedule.severity.label,
            "description": schedule.description,
            "checklist": [
                {"id": i.id, "text": i.text, "section": i.section} for i in schedule.checklist
            ],
            "tracked_since": format_time(self.tracked_since),
            "current_period": self.current.label,
            "last_signed_period": self.last_signed.label if self.last_signed else None,
            "last_signed_review": self.last_signed_review,
            "open_reviews": list(self.open_reviews),
            "next_due": format_time(self.next_due),
            "overdue": self.is_overdue,
            "overdue_periods": [p.label for p in self.overdue],
        }


@dataclass(frozen=True, slots=True)
class ChainProblem:
    seq: int
    review_id: int | None
    problem: ChainProblemKind
    detail: str


@dataclass(frozen=True, slots=True)
class ChainCheck:
    """The result of walking the chain of signed reviews."""

    signed: int
    head: str
    """Hash of the last signed review: keep it elsewhere (the export prints it) to detect a
    rewrite of the whole file."""
    problem: ChainProblem | None

    @property
    def ok(self) -> bool:
        return self.problem is None

    def to_dict(self) -> dict[str, Any]:
        problem = self.problem
        return {
            "ok": self.ok,
            "signed": self.signed,
            "head": self.head,
            "problem": None
            if problem is None
            else {
                "seq": problem.seq,
                "review_id": problem.review_id,
                "problem": problem.problem,
                "detail": problem.detail,
            },
        }

    def summary(self) -> str:
        if self.problem is None:
            return f"ok: {self.signed} signed review(s), head {self.head}"
        p = self.problem
        return f"BROKEN at signed review #{p.seq}: {p.problem}: {p.detail}"
