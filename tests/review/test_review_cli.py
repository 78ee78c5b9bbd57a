"""``k3watch review list|show|export|verify`` read the server's review records (read-only) and
give auditors the record with the chain's verification; a broken chain exits 1."""

from __future__ import annotations

import csv
import io
import json
import sqlite3
from datetime import UTC, datetime
from pathlib import Path

import pytest
from click.testing import CliRunner

from k3watch.cli import main
from k3watch.config import Config
from k3watch.review.signoff_schema import TRIGGERS
from k3watch.review.store import ReviewStore, review_path


def at(text: str) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp()


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    """Two signed daily reviews (9 and 10 May 2024), one open weekly review."""
    directory = tmp_path / "data"
    now = [at("2024-05-08T06:00:00")]
    with ReviewStore(
        review_path(directory), Config().reviews.resolved(), clock=lambda: now[0]
    ) as s:
        now[0] = at("2024-05-11T09:00:00")
        for day in ("2024-05-09", "2024-05-10"):
            review = s.open("daily", "alice", period=day)
            for item in review.items:
                s.set_item(review.id, item.id, "done", "alice", note=f"checked {day}")
            s.add_finding(review.id, "alice", f"finding of {day}", "low", owner="bob")
            s.sign(review.id, "alice", f"Reviewed {day}.")
        s.open("weekly", "carol", period="2024-W19")
    return directory


def run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, ["review", *args])
    return result.exit_code, result.stdout, result.stderr


def test_list_shows_each_schedule_and_the_reviews(data_dir: Path) -> None:
    code, out, _ = run("list", "--data-dir", str(data_dir))
    assert code == 0
    for text in ("daily", "weekly", "monthly", "2024-05-10", "2024-W19", "signed", "open"):
        assert text in out
    code, out, _ = run("list", "--data-dir", str(data_dir), "--format", "json")
    listed = json.loads(out)
    assert [s["name"] for s in listed["schedules"]] == ["daily", "weekly", "monthly"]
    assert [(r["schedule"], r["period"], r["state"]) for r in listed["reviews"]] == [
        ("daily", "2024-05-10", "signed"),
        ("daily", "2024-05-09", "signed"),
        ("weekly", "2024-W19", "open"),
    ]


def test_show_prints_the_whole_review_with_its_hash(data_dir: Path) -> None:
    code, out, _ = run("show", "1", "--data-dir", str(data_dir), "--format", "json")
    review = json.loads(out)
    assert code == 0
    assert review["signoff"]["reviewer"] == "alice"
    code, text, _ = run("show", "1", "--data-dir", str(data_dir))
    assert code == 0
    assert review["signoff"]["hash"] in text
    assert "finding of 2024-05-09" in text
    assert "Reviewed 2024-05-09." in text
    assert "checked 2024-05-09" in text


def test_a_missing_review_or_data_directory_is_a_one_line_error(
    data_dir: Path, tmp_path: Path
) -> None:
    code, _, err = run("show", "99", "--data-dir", str(data_dir))
    assert (code, err.strip().count("\n")) == (2, 0)
    assert "no review 99" in err
    code, _, err = run("list", "--data-dir", str(tmp_path / "nowhere"))
    assert code == 2
    assert "no review records at" in err


def test_export_writes_the_record_in_each_format(data_dir: Path, tmp_path: Path) -> None:
    code, out, _ = run("export", "--data-dir", str(data_dir))
    record = json.loads(out)
    assert code == 0
    assert record["verification"]["ok"] is True
    assert record["verification"]["signed"] == 2
    # oldest period first: week 19 began on Monday 6 May
    assert [r["period"] for r in record["reviews"]] == ["2024-W19", "2024-05-09", "2024-05-10"]
    target = tmp_path / "reviews.md"
    code, _, err = run("export", "--data-dir", str(data_dir), "--format", "md", "-o", str(target))
    assert code == 0
    assert "wrote 3 review(s)" in err
    markdown = target.read_text()
    assert markdown.startswith("# Security log reviews")
    assert record["verification"]["head"] in markdown
    code, out, _ = run("export", "--data-dir", str(data_dir), "--format", "csv")
    rows = list(csv.DictReader(io.StringIO(out)))
    assert [r["kind"] for r in rows].count("finding") == 2
    assert {r["review_id"] for r in rows if r["kind"] == "item"} == {"1", "2", "3"}


def test_export_since_keeps_the_later_periods(data_dir: Path) -> None:
    code, out, _ = run("export", "--data-dir", str(data_dir), "--since", "2024-05-10")
    assert code == 0
    assert [r["period"] for r in json.loads(out)["reviews"]] == ["2024-W19", "2024-05-10"]
    code, _, err = run("export", "--data-dir", str(data_dir), "--since", "lately")
    assert code == 2
    assert "--since" in err


def test_verify_and_export_exit_1_when_a_signed_review_was_edited(data_dir: Path) -> None:
    code, out, _ = run("verify", "--data-dir", str(data_dir))
    assert (code, out.startswith("ok: 2 signed review(s)")) == (0, True)
    db = sqlite3.connect(review_path(data_dir), isolation_level=None)
    for name in TRIGGERS:
        db.execute(f"DROP TRIGGER {name}")
    db.execute("UPDATE reviews SET signed_by = 'mallory' WHERE id = 1")
    db.close()
    code, out, _ = run("verify", "--data-dir", str(data_dir), "--format", "json")
    assert code == 1
    assert json.loads(out)["problem"]["problem"] == "altered"
    code, out, err = run("export", "--data-dir", str(data_dir), "--format", "md")
    assert code == 1
    assert "**BROKEN**" in out
    assert err.startswith("error: BROKEN at signed review #1: altered")


def test_the_configuration_names_the_data_directory_and_the_schedules(
    data_dir: Path, tmp_path: Path
) -> None:
    config = tmp_path / "k3watch.yml"
    config.write_text(
        f"server:\n  data_dir: {data_dir}\nreviews:\n  schedules:\n    - name: daily\n"
    )
    code, out, _ = run("list", "--config", str(config), "--format", "json")
    assert code == 0
    assert [s["name"] for s in json.loads(out)["schedules"]] == ["daily"]
