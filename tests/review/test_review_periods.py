"""Review periods are aligned in UTC: a day, an ISO week from Monday, a calendar month or
quarter; labels name them and parse back."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from k3watch.review.signoff_periods import (
    Cadence,
    parse_instant,
    parse_period,
    period_of,
    periods_between,
)


def at(text: str) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp()


def iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, tz=UTC).strftime("%Y-%m-%dT%H:%M")


@pytest.mark.parametrize(
    ("cadence", "when", "label", "start", "end"),
    [
        (Cadence.DAY, "2024-05-13T23:59:59", "2024-05-13", "2024-05-13T00:00", "2024-05-14T00:00"),
        (Cadence.DAY, "2024-05-14T00:00:00", "2024-05-14", "2024-05-14T00:00", "2024-05-15T00:00"),
        # a Sunday belongs to the week that started the Monday before
        (Cadence.WEEK, "2024-05-19T22:00:00", "2024-W20", "2024-05-13T00:00", "2024-05-20T00:00"),
        (Cadence.WEEK, "2024-05-20T00:00:00", "2024-W21", "2024-05-20T00:00", "2024-05-27T00:00"),
        # ISO weeks cross calendar years: 3 January 2021 is in the 53rd week of 2020
        (Cadence.WEEK, "2021-01-03T12:00:00", "2020-W53", "2020-12-28T00:00", "2021-01-04T00:00"),
        (Cadence.WEEK, "2024-12-31T12:00:00", "2025-W01", "2024-12-30T00:00", "2025-01-06T00:00"),
        (Cadence.MONTH, "2024-02-29T08:00:00", "2024-02", "2024-02-01T00:00", "2024-03-01T00:00"),
        (Cadence.MONTH, "2024-12-31T23:00:00", "2024-12", "2024-12-01T00:00", "2025-01-01T00:00"),
        (Cadence.QUARTER, "2024-05-13T00:00:00", "2024-Q2", "2024-04-01T00:00", "2024-07-01T00:00"),
        (Cadence.QUARTER, "2024-12-01T00:00:00", "2024-Q4", "2024-10-01T00:00", "2025-01-01T00:00"),
    ],
)
def test_a_time_falls_in_the_utc_aligned_period_its_label_names(
    cadence: Cadence, when: str, label: str, start: str, end: str
) -> None:
    period = period_of(cadence, at(when))
    assert (period.label, iso(period.start), iso(period.end)) == (label, start, end)
    assert period.contains(at(when))
    assert parse_period(cadence, label) == period


def test_next_and_previous_periods_are_adjacent() -> None:
    week = period_of(Cadence.WEEK, at("2024-05-15T10:00:00"))
    assert week.next().start == week.end
    assert week.previous().end == week.start
    assert week.previous().label == "2024-W19"
    month = period_of(Cadence.MONTH, at("2024-01-15T00:00:00"))
    assert month.previous().label == "2023-12"


def test_periods_between_lists_those_that_ended_from_the_one_containing_the_start() -> None:
    days = periods_between(Cadence.DAY, at("2024-05-10T15:00:00"), at("2024-05-13T00:00:00"))
    assert [p.label for p in days] == ["2024-05-10", "2024-05-11", "2024-05-12"]


@pytest.mark.parametrize(
    ("cadence", "label"),
    [
        (Cadence.DAY, "2024-02-30"),
        (Cadence.WEEK, "2024-W54"),
        (Cadence.MONTH, "2024-13"),
        (Cadence.QUARTER, "2024-Q5"),
        (Cadence.WEEK, "2024-05-13"),
    ],
)
def test_a_label_that_names_no_period_is_refused(cadence: Cadence, label: str) -> None:
    with pytest.raises(ValueError, match="is not a"):
        parse_period(cadence, label)


def test_periods_are_named_by_their_length_and_others_are_refused() -> None:
    assert Cadence.parse("1w") is Cadence.WEEK
    assert Cadence.parse("30d") is Cadence.MONTH
    with pytest.raises(ValueError, match="ISO week"):
        Cadence.parse("14d")


def test_a_date_alone_is_midnight_utc() -> None:
    assert parse_instant("2024-05-13") == at("2024-05-13T00:00:00")
    assert parse_instant("2024-05-13T10:00:00Z") == at("2024-05-13T10:00:00")
    assert parse_instant("last tuesday") is None
