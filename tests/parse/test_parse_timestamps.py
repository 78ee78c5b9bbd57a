"""Times without a year or a zone (klog, BSD syslog) resolved to UTC, and RFC 3339 parsing."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest

from k3watch.parse.timestamps import LocalClock, format_us, parse_rfc3339, wall_us


def us(text: str) -> int:
    """UTC µs of an ISO time (naive means UTC)."""
    moment = datetime.fromisoformat(text)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    delta = moment - datetime(1970, 1, 1, tzinfo=UTC)
    return (delta.days * 86400 + delta.seconds) * 1_000_000 + delta.microseconds


def fixed(now: str) -> LocalClock:
    seconds = us(now) / 1e6
    return LocalClock(now=lambda: seconds)


def test_format_keeps_every_microsecond() -> None:
    """Integer microseconds print exactly, with no float rounding."""
    assert format_us(us("2024-05-23T20:29:53.123457")) == "2024-05-23T20:29:53.123457Z"
    assert format_us(0) == "1970-01-01T00:00:00.000000Z"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2024-05-23T20:29:53Z", (us("2024-05-23T20:29:53"), 0)),
        ("2024-05-23T22:29:53.123456789+02:00", (us("2024-05-23T22:29:53.123456"), 7200 * 10**6)),
        ("2024-05-23 20:29:53-0530", (us("2024-05-23T20:29:53"), -19800 * 10**6)),
        ("2024-05-23T20:29:53", (us("2024-05-23T20:29:53"), None)),
        ("2024-02-30T00:00:00Z", None),
        ("2024-05-23T20:29:53+25:00", None),
        ("yesterday", None),
    ],
)
def test_rfc3339_gives_wall_clock_and_offset(
    text: str, expected: tuple[int, int | None] | None
) -> None:
    """An RFC 3339 time reads as (wall clock, UTC offset), None offset without a zone."""
    assert parse_rfc3339(text) == expected


def test_leap_second_is_the_last_microsecond_of_its_minute() -> None:
    assert wall_us(2016, 12, 31, 23, 59, 60) == us("2016-12-31T23:59:59.999999")


def test_new_year_against_a_reference_after_midnight_picks_the_old_year() -> None:
    """klog's ``I1231 23:59:59`` logged just before a journal time in January is December."""
    clock = LocalClock()
    got = clock.resolve(12, 31, 23, 59, 59, 900_000, reference=us("2024-01-01T00:00:00.100"))
    assert got == us("2023-12-31T23:59:59.900")


def test_new_year_local_midnight_in_a_zone_ahead_of_utc() -> None:
    """At UTC+01:00, local ``0101 00:00:00`` is 23:00 UTC on December 31st: year 2024 local."""
    clock = LocalClock()
    got = clock.resolve(1, 1, 0, 0, 0, 125_000, reference=us("2023-12-31T23:00:00.200"))
    assert got == us("2023-12-31T23:00:00.125")
    assert clock.offset == 3600 * 10**6


def test_new_year_local_evening_in_a_zone_behind_utc() -> None:
    """At UTC-05:00, local ``1231 20:00`` is already January 1st in UTC."""
    clock = LocalClock()
    got = clock.resolve(12, 31, 20, 0, 0, 0, reference=us("2025-01-01T01:00:00.300"))
    assert got == us("2025-01-01T01:00:00")


@pytest.mark.parametrize("offset_minutes", [330, 345, -570, 0, 840, -720])
def test_reference_resolution_learns_quarter_hour_offsets(offset_minutes: int) -> None:
    """Offsets such as +05:30 and +05:45 are learned exactly, despite the logging delay."""
    clock = LocalClock()
    utc = us("2024-03-10T12:00:00.500")
    local = datetime(2024, 3, 10, 12, 0, 0, 500_000) + timedelta(minutes=offset_minutes)
    got = clock.resolve(
        local.month,
        local.day,
        local.hour,
        local.minute,
        local.second,
        local.microsecond,
        reference=utc + 40_000,  # the journal saw it 40 ms later
    )
    assert got == utc
    assert clock.offset == offset_minutes * 60 * 10**6


def test_a_reference_days_away_is_not_taken_for_a_zone() -> None:
    """A line replayed long after it was logged keeps the known offset."""
    clock = LocalClock()
    clock.learn(us("2024-05-01T00:00:00"), 0)
    got = clock.resolve(5, 1, 10, 0, 0, reference=us("2024-05-03T10:00:00"))
    assert got == us("2024-05-01T10:00:00")
    assert clock.offset == 0


def test_without_reference_the_first_time_is_the_latest_not_after_now() -> None:
    """With now in March 2024, ``Dec 31`` is 2023 and ``Mar 1`` is 2024."""
    assert fixed("2024-03-02T00:00:00").resolve(12, 31, 23, 0, 0) == us("2023-12-31T23:00:00")
    assert fixed("2024-03-02T00:00:00").resolve(3, 1, 8, 0, 0) == us("2024-03-01T08:00:00")


def test_without_reference_a_stream_crosses_new_year() -> None:
    """Each time takes the year nearest the previous one, so a file rolls into January."""
    clock = fixed("2024-06-01T00:00:00")
    assert clock.resolve(12, 31, 23, 59, 59) == us("2023-12-31T23:59:59")
    assert clock.resolve(1, 1, 0, 0, 1) == us("2024-01-01T00:00:01")
    assert clock.resolve(1, 1, 0, 0, 2) == us("2024-01-01T00:00:02")


def test_a_learned_offset_applies_to_later_local_times() -> None:
    """A logrus time with +02:00 makes the following klog times resolve at +02:00."""
    clock = fixed("2024-06-01T00:00:00")
    clock.learn(us("2024-05-23T20:29:53"), 7200 * 10**6)
    assert clock.resolve(5, 23, 22, 29, 54) == us("2024-05-23T20:29:54")


def test_the_configured_zone_follows_daylight_saving() -> None:
    """Without learned offsets, the zone's own offset for that date is used."""
    clock = LocalClock(ZoneInfo("Europe/Berlin"), now=lambda: us("2024-12-01T00:00:00") / 1e6)
    assert clock.resolve(1, 15, 12, 0, 0) == us("2024-01-15T11:00:00")
    assert clock.resolve(7, 15, 12, 0, 0) == us("2024-07-15T10:00:00")
    assert clock.localize(us("2024-07-15T12:00:00")) == us("2024-07-15T10:00:00")


def test_fixed_zone_is_used_for_full_local_times() -> None:
    clock = LocalClock(timezone(timedelta(hours=-3)))
    assert clock.localize(us("2024-07-15T12:00:00")) == us("2024-07-15T15:00:00")


def test_a_date_no_year_has_is_none() -> None:
    """``1340`` (month 13) or ``0230`` cannot be resolved."""
    clock = fixed("2024-06-01T00:00:00")
    assert clock.resolve(13, 40, 25, 61, 0) is None
    assert clock.resolve(2, 30, 0, 0, 0) is None


def test_february_29_takes_the_leap_year_nearest() -> None:
    """Only leap years have February 29th; the nearest one before now is chosen."""
    assert fixed("2025-06-01T00:00:00").resolve(2, 29, 12, 0, 0) == us("2024-02-29T12:00:00")


def test_february_29_is_found_years_back() -> None:
    """Three years after the last leap day, ``0229`` still means the last one, not the next."""
    assert fixed("2027-06-01T00:00:00").resolve(2, 29, 12, 0, 0) == us("2024-02-29T12:00:00")
    clock = LocalClock()
    got = clock.resolve(2, 29, 12, 0, 0, reference=us("2024-02-29T12:00:01"))
    assert got == us("2024-02-29T12:00:00")
