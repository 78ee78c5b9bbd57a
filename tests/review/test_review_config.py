"""The ``reviews:`` section: shipped daily, weekly and monthly schedules; a schedule's fields
may be replaced one by one; mistakes are errors with file and line."""

from __future__ import annotations

from pathlib import Path

import pytest

from k3watch.alert import Severity
from k3watch.config import Config, load_config
from k3watch.errors import UsageError
from k3watch.review.config import REPORT_SECTIONS, ReviewsConfig, shipped_schedules
from k3watch.review.signoff_periods import Cadence


def test_without_the_section_the_shipped_schedules_apply() -> None:
    schedules = Config().reviews.resolved()
    assert [(s.name, s.cadence, s.severity) for s in schedules] == [
        ("daily", Cadence.DAY, Severity.HIGH),
        ("weekly", Cadence.WEEK, Severity.MEDIUM),
        ("monthly", Cadence.MONTH, Severity.MEDIUM),
    ]
    weekly = schedules[1]
    assert {i.section for i in weekly.checklist} == set(REPORT_SECTIONS)
    assert {i.section for i in schedules[2].checklist} <= {
        "rbac_changes",
        "rule_health",
        "new_identities",
        "pipeline_health",
    }


def test_a_user_replaces_a_shipped_checklist_and_keeps_its_other_fields(tmp_path: Path) -> None:
    path = tmp_path / "k3watch.yml"
    path.write_text(
        "reviews:\n"
        "  check_interval: 1m\n"
        "  schedules:\n"
        "    - name: daily\n"
        "    - name: weekly\n"
        "      grace: 1d\n"
        "      checklist:\n"
        "        - {id: alerts, text: All alerts triaged., section: alerts}\n"
        "    - name: access\n"
        "      period: 90d\n"
        "      severity: low\n"
        "      description: Quarterly access review.\n"
        "      checklist:\n"
        "        - {id: admins, text: Admins are still needed.}\n"
    )
    config = load_config(path)
    daily, weekly, access = config.reviews.resolved()
    shipped = shipped_schedules()
    assert daily.checklist == shipped["daily"].checklist
    assert [i.id for i in weekly.checklist] == ["alerts"]
    assert weekly.grace == 86400
    assert weekly.description == shipped["weekly"].description
    assert (access.cadence, access.severity, access.grace) == (Cadence.QUARTER, Severity.LOW, 86400)
    assert config.reviews.interval == 60


@pytest.mark.parametrize(
    ("yaml_text", "message", "line"),
    [
        ("reviews:\n  schedules:\n    - name: daily\n      period: 14d\n", "ISO week", 3),
        (
            "reviews:\n  schedules:\n    - name: weekly\n      checklist:\n"
            "        - {id: a, text: x, section: kitchen}\n",
            "section 'kitchen' is not one of alerts, new_identities",
            5,
        ),
        ("reviews:\n  schedules:\n    - name: mine\n      period: 1d\n", "give it a period", 2),
        ("reviews:\n  check_interval: soon\n", "not a duration like", 2),
        (
            "reviews:\n  schedules:\n    - name: daily\n      checklist:\n"
            "        - {id: a, text: x}\n        - {id: a, text: y}\n",
            "unique",
            3,
        ),
    ],
)
def test_mistakes_in_the_section_name_the_line(
    tmp_path: Path, yaml_text: str, message: str, line: int
) -> None:
    path = tmp_path / "k3watch.yml"
    path.write_text(yaml_text)
    with pytest.raises(UsageError, match=message) as caught:
        load_config(path)
    assert caught.value.location is not None
    assert caught.value.location.line == line


def test_the_schedules_of_the_configuration_must_have_unique_names() -> None:
    import msgspec

    with pytest.raises(msgspec.ValidationError, match="unique"):
        msgspec.convert({"schedules": [{"name": "daily"}, {"name": "daily"}]}, ReviewsConfig)
