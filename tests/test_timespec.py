"""Times and periods as people type them (the API, the CLI and the web UI share these)."""

from __future__ import annotations

import pytest

from k3watch.errors import UsageError
from k3watch.timespec import parse_due, parse_end, parse_instant, parse_period

NOW = 1_780_000_000.0


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (None, None),
        ("  ", None),
        ("now", NOW),
        ("1700000000.5", 1_700_000_000.5),
        ("2026-11-27", 1_795_737_600.0),
        ("2026-11-27T10:00:00Z", 1_795_773_600.0),
        ("2026-11-27T11:00:00+01:00", 1_795_773_600.0),
        ("24h", NOW - 86400),
        ("-15m", NOW - 900),
    ],
)
def test_instants(text: str | None, expected: float | None) -> None:
    assert parse_instant(text, NOW) == expected


def test_a_time_that_is_none_of_those_names_what_it_was() -> None:
    with pytest.raises(UsageError, match="--since 'last tuesday': use RFC 3339"):
        parse_instant("last tuesday", NOW, "--since")


def test_an_end_defaults_to_now_and_a_due_date_lies_ahead() -> None:
    assert parse_end("", NOW) == NOW
    assert parse_due("14d", NOW) == NOW + 14 * 86400
    assert parse_due("2026-12-01", NOW) == 1_796_083_200.0
    assert parse_due(None, NOW) is None


def test_periods_are_positive_and_at_most_a_year() -> None:
    assert parse_period("7d") == 7 * 86400
    for bad in ("0s", "400d", "soon"):
        with pytest.raises(UsageError):
            parse_period(bad)
