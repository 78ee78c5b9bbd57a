"""Review records: open a period, walk the checklist, record findings, sign off; signed reviews
are immutable (triggers refuse changes) and chained by hash, so that ``verify`` names a review
altered, removed or reordered by editing the SQLite file directly."""

from __future__ import annotations

import sqlite3
import stat
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from k3watch.review.config import ChecklistItem, ReviewsConfig, ScheduleConfig
from k3watch.review.signoff_model import Review, ReviewError
from k3watch.review.signoff_schema import TRIGGERS
from k3watch.review.store import ReviewStore


def at(text: str) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp()


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


SCHEDULES = ReviewsConfig(
    schedules=(
        ScheduleConfig(name="daily"),
        ScheduleConfig(
            name="weekly",
            grace="2d",
            checklist=(
                ChecklistItem("alerts", "Alerts triaged.", "alerts"),
                ChecklistItem("rbac", "RBAC changes approved.", "rbac_changes"),
            ),
        ),
    )
).resolved()


@pytest.fixture
def clock() -> Clock:
    return Clock(at("2024-05-10T09:00:00"))  # a Friday


@pytest.fixture
def store(tmp_path: Path, clock: Clock) -> Iterator[ReviewStore]:
    with ReviewStore(tmp_path / "reviews.sqlite", SCHEDULES, clock=clock) as reviews:
        yield reviews


def walk(store: ReviewStore, review: Review, actor: str = "alice") -> Review:
    for item in review.items:
        review = store.set_item(review.id, item.id, "done", actor)
    return review


def signed(store: ReviewStore, clock: Clock, schedule: str, period: str) -> Review:
    review = walk(store, store.open(schedule, "alice", period=period))
    return store.sign(review.id, "alice", f"Reviewed {period}.")


def raw(path: Path) -> sqlite3.Connection:
    """The file as anyone with write access to it could edit it: triggers dropped first."""
    db = sqlite3.connect(path, isolation_level=None)
    for name in TRIGGERS:
        db.execute(f"DROP TRIGGER IF EXISTS {name}")
    return db


def test_a_review_is_opened_walked_and_signed_off_with_its_whole_history(
    store: ReviewStore, clock: Clock
) -> None:
    clock.now = at("2024-05-14T08:00:00")
    review = store.open("weekly", "alice")  # the last ended week
    assert (review.period, review.state) == ("2024-W19", "open")
    assert [(i.id, i.state) for i in review.items] == [("alerts", "pending"), ("rbac", "pending")]
    clock.now += 60
    store.set_item(review.id, "alerts", "done", "alice", note="3 alerts, all resolved")
    clock.now += 60
    store.set_item(review.id, "rbac", "issue", "bob", note="binding nobody asked for")
    clock.now += 60
    review = store.add_finding(
        review.id,
        "bob",
        "ClusterRoleBinding ci-admin created without a change request",
        "high",
        alert_ids=(12, 13),
        event_keys=("a1b2/ResponseComplete",),
        owner="carol",
        due=at("2024-05-21T00:00:00"),
        item="rbac",
    )
    (finding,) = review.findings
    assert (finding.severity, finding.alert_ids, finding.owner, finding.item) == (
        "high",
        (12, 13),
        "carol",
        "rbac",
    )
    clock.now += 60
    review = store.sign(review.id, "alice", "Week 19 reviewed; one finding followed up by carol.")
    assert review.state == "signed"
    assert review.signoff is not None
    assert (review.signoff.reviewer, review.signoff.seq, review.signoff.at) == (
        "alice",
        1,
        clock.now,
    )
    assert [(c.actor, c.action, c.subject) for c in review.history] == [
        ("alice", "open", "2024-W19"),
        ("alice", "item", "alerts"),
        ("bob", "item", "rbac"),
        ("bob", "finding", str(finding.id)),
        ("alice", "sign", "2024-W19"),
    ]
    assert review.item("rbac") is not None
    assert review.item("rbac").actor == "bob"  # type: ignore[union-attr]
    assert store.get(review.id) == review
    assert store.verify().ok


def test_the_file_is_private(tmp_path: Path, store: ReviewStore) -> None:
    assert stat.S_IMODE((tmp_path / "reviews.sqlite").stat().st_mode) == 0o600


def test_only_one_review_of_a_schedule_and_period_is_open_at_a_time(
    store: ReviewStore, clock: Clock
) -> None:
    first = store.open("daily", "alice", period="2024-05-09")
    with pytest.raises(ReviewError, match=f"review {first.id} of daily 2024-05-09") as caught:
        store.open("daily", "bob", period="2024-05-09")
    assert caught.value.kind == "conflict"
    assert store.open("daily", "bob", period="2024-05-08").id != first.id
    assert store.open("weekly", "bob", period="2024-05-09").period == "2024-W19"


@pytest.mark.parametrize(
    ("action", "message"),
    [
        (lambda s, r: s.sign(r.id, "alice", "done"), "ends at 2024-05-11"),
        (lambda s, r: s.set_item(r.id, "pipeline", "not_applicable", "alice"), "needs a note"),
        (lambda s, r: s.set_item(r.id, "nope", "done", "alice"), "no checklist item"),
        (lambda s, r: s.add_finding(r.id, "alice", "x", "dire"), "unknown severity"),
        (lambda s, r: s.set_item(r.id, "pipeline", "done", ""), "must be named"),
    ],
)
def test_mistakes_are_refused_with_what_to_do(
    store: ReviewStore, action: Callable[[ReviewStore, Review], object], message: str
) -> None:  # type: ignore[no-untyped-def]
    review = store.open("daily", "alice", period="2024-05-10")  # today: not ended
    with pytest.raises(ReviewError, match=message):
        action(store, review)


def test_a_future_period_cannot_be_opened(store: ReviewStore) -> None:
    with pytest.raises(ReviewError, match="has not started"):
        store.open("daily", "alice", period="2024-05-12")


def test_sign_off_needs_every_item_settled_and_a_finding_for_an_issue(
    store: ReviewStore, clock: Clock
) -> None:
    review = store.open("weekly", "alice", period="2024-W18")
    store.set_item(review.id, "alerts", "done", "alice")
    with pytest.raises(ReviewError, match="still pending: rbac"):
        store.sign(review.id, "alice", "done")
    store.set_item(review.id, "rbac", "issue", "alice", note="odd binding")
    with pytest.raises(ReviewError, match="record the finding first"):
        store.sign(review.id, "alice", "done")
    store.add_finding(review.id, "alice", "odd binding", "medium", item="rbac")
    with pytest.raises(ReviewError, match="closing statement"):
        store.sign(review.id, "alice", "  ")
    assert store.sign(review.id, "alice", "done").state == "signed"


def test_a_signed_review_cannot_be_changed_through_the_store(
    store: ReviewStore, clock: Clock
) -> None:
    review = signed(store, clock, "daily", "2024-05-09")
    for attempt in (
        lambda: store.set_item(review.id, "pipeline", "pending", "mallory"),
        lambda: store.add_finding(review.id, "mallory", "late", "low"),
        lambda: store.sign(review.id, "mallory", "again"),
    ):
        with pytest.raises(ReviewError, match="signed off and cannot be changed"):
            attempt()


@pytest.mark.parametrize(
    "sql",
    [
        "UPDATE reviews SET statement = 'nothing to see' WHERE state = 'signed'",
        "DELETE FROM reviews WHERE state = 'signed'",
        "UPDATE review_items SET note = 'edited'",
        "DELETE FROM review_findings",
        "INSERT INTO review_findings (review_id, text, severity, alert_ids, event_keys, actor, at)"
        " VALUES (1, 'late', 'low', '[]', '[]', 'mallory', 0)",
        "UPDATE review_history SET actor = 'mallory'",
        "UPDATE chain_head SET seq = 0",
    ],
)
def test_sqlite_refuses_to_change_a_signed_review(
    tmp_path: Path, store: ReviewStore, clock: Clock, sql: str
) -> None:
    review = store.open("daily", "alice", period="2024-05-09")
    store.add_finding(review.id, "alice", "noted", "low")
    walk(store, store.get(review.id))  # type: ignore[arg-type]
    store.sign(review.id, "alice", "Reviewed.")
    db = sqlite3.connect(tmp_path / "reviews.sqlite", isolation_level=None)
    with pytest.raises(sqlite3.IntegrityError, match="signed reviews are immutable"):
        db.execute(sql)
    db.close()
    assert store.verify().ok


def three_signed(store: ReviewStore, clock: Clock) -> list[Review]:
    return [
        signed(store, clock, "daily", day) for day in ("2024-05-07", "2024-05-08", "2024-05-09")
    ]


def test_verify_names_a_review_altered_in_the_file(
    tmp_path: Path, store: ReviewStore, clock: Clock
) -> None:
    reviews = three_signed(store, clock)
    db = raw(tmp_path / "reviews.sqlite")
    db.execute(
        "UPDATE review_items SET state = 'not_applicable', note = 'skipped'"
        " WHERE review_id = ? AND item = 'pipeline'",
        (reviews[1].id,),
    )
    check = store.verify()
    assert check.problem is not None
    assert (check.problem.problem, check.problem.seq, check.problem.review_id) == (
        "altered",
        2,
        reviews[1].id,
    )
    assert check.signed == 1


def test_verify_names_a_review_removed_from_the_file(
    tmp_path: Path, store: ReviewStore, clock: Clock
) -> None:
    reviews = three_signed(store, clock)
    db = raw(tmp_path / "reviews.sqlite")
    for table in ("review_items", "review_history", "review_findings"):
        db.execute(f"DELETE FROM {table} WHERE review_id = ?", (reviews[1].id,))
    db.execute("DELETE FROM reviews WHERE id = ?", (reviews[1].id,))
    check = store.verify()
    assert check.problem is not None
    assert (check.problem.problem, check.problem.seq) == ("removed", 2)
    assert "#2 missing before #3" in check.problem.detail


def test_verify_notices_the_last_review_removed(
    tmp_path: Path, store: ReviewStore, clock: Clock
) -> None:
    reviews = three_signed(store, clock)
    db = raw(tmp_path / "reviews.sqlite")
    db.execute("DELETE FROM reviews WHERE id = ?", (reviews[2].id,))
    check = store.verify()
    assert check.problem is not None
    assert (check.problem.problem, check.problem.seq) == ("removed", 3)


def test_verify_names_reviews_reordered_in_the_file(
    tmp_path: Path, store: ReviewStore, clock: Clock
) -> None:
    reviews = three_signed(store, clock)
    db = raw(tmp_path / "reviews.sqlite")
    db.execute("UPDATE reviews SET seq = -1 WHERE id = ?", (reviews[0].id,))
    db.execute("UPDATE reviews SET seq = 1 WHERE id = ?", (reviews[1].id,))
    db.execute("UPDATE reviews SET seq = 2 WHERE id = ?", (reviews[0].id,))
    check = store.verify()
    assert check.problem is not None
    assert (check.problem.problem, check.problem.seq, check.problem.review_id) == (
        "reordered",
        1,
        reviews[1].id,
    )


def test_verify_reports_dropped_triggers_even_when_nothing_was_changed(
    tmp_path: Path, store: ReviewStore, clock: Clock
) -> None:
    three_signed(store, clock)
    raw(tmp_path / "reviews.sqlite").close()
    check = store.verify()
    assert check.problem is not None
    assert check.problem.problem == "unprotected"


def test_reopening_the_file_restores_nothing_and_keeps_the_chain(
    tmp_path: Path, store: ReviewStore, clock: Clock
) -> None:
    reviews = three_signed(store, clock)
    head = store.verify().head
    store.close()
    with ReviewStore(tmp_path / "reviews.sqlite", SCHEDULES, clock=clock) as again:
        assert again.verify().head == head == reviews[-1].signoff.hash  # type: ignore[union-attr]
        assert [r.id for r in again.list(state="signed")] == [r.id for r in reversed(reviews)]


def test_status_tells_what_is_signed_due_and_overdue(store: ReviewStore, clock: Clock) -> None:
    # tracked since Friday 2024-05-10 09:00; now Tuesday 2024-05-14 15:00
    clock.now = at("2024-05-14T15:00:00")
    signed(store, clock, "daily", "2024-05-11")
    open_review = store.open("daily", "bob", period="2024-05-12")
    daily, weekly = store.status()
    assert daily.last_signed is not None
    assert daily.last_signed.label == "2024-05-11"
    assert daily.current.label == "2024-05-14"
    # the 13th ended at midnight, its 12 hours of grace passed at noon
    assert [p.label for p in daily.overdue] == ["2024-05-10", "2024-05-12", "2024-05-13"]
    assert daily.next_due == at("2024-05-11T12:00:00")
    assert daily.open_reviews == (open_review.id,)
    assert weekly.last_signed is None
    assert weekly.overdue == ()  # week 19 ended Monday; due Wednesday
    assert weekly.next_due == at("2024-05-15T00:00:00")
    assert store.status(at("2024-05-15T00:00:00"))[1].is_overdue


def test_a_read_only_store_reads_while_another_writes(
    tmp_path: Path, store: ReviewStore, clock: Clock
) -> None:
    signed(store, clock, "daily", "2024-05-09")
    reader = ReviewStore(tmp_path / "reviews.sqlite", SCHEDULES, readonly=True)
    try:
        assert len(reader.list()) == 1
        assert reader.verify().ok
        with pytest.raises(ReviewError, match="read-only"):
            reader.open("daily", "alice", period="2024-05-08")
    finally:
        reader.close()


def test_a_finding_may_link_only_alerts_the_server_stores(tmp_path: Path, clock: Clock) -> None:
    stored = {3, 7}
    with ReviewStore(
        tmp_path / "linked.sqlite", SCHEDULES, clock=clock, alert_exists=stored.__contains__
    ) as reviews:
        review = reviews.open("weekly", "alice", period="2024-W18")
        with pytest.raises(ReviewError, match="no alert 9"):
            reviews.add_finding(review.id, "alice", "odd", "low", alert_ids=[3, 9])
        changed = reviews.add_finding(review.id, "alice", "seen", "low", alert_ids=[3, 7])
    assert changed.findings[-1].alert_ids == (3, 7)
