"""``k3watch review report`` (the ``report`` command object, called directly)."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner
from tests.conftest import builtin_rules
from tests.review.report_data import END, START, build

from k3watch.cli.review_report import report
from k3watch.review.model import from_json
from k3watch.store.sqlite import SqliteStore


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("cli")
    store: SqliteStore = build(directory, builtin_rules())
    store.close()
    return directory


def _run(*args: str) -> tuple[int, bytes, str]:
    result = CliRunner().invoke(report, list(args), catch_exceptions=False)
    return result.exit_code, result.stdout_bytes, result.stderr


def test_json_to_standard_output(data_dir: Path) -> None:
    code, out, _ = _run("--data-dir", str(data_dir), "--end", str(END), "--format", "json")
    assert code == 0
    built = from_json(out)
    assert (built.period.start, built.period.end) == (START, END)
    assert built.rbac_changes.total == 3
    assert built.rules.never_fired is not None  # the built-in rules were loaded


def test_every_format_to_a_file(data_dir: Path, tmp_path: Path) -> None:
    for fmt, start in (("html", b"<!doctype html>"), ("md", b"# Weekly"), ("pdf", b"%PDF-")):
        output = tmp_path / f"report.{fmt}"
        code, _, err = _run("--data-dir", str(data_dir), "--end", "2026-03-10T08:00:00Z",
                            "--period", "7d", "--format", fmt, "-o", str(output),
                            "--title", "Weekly")  # fmt: skip
        assert code == 0, err
        assert output.read_bytes().startswith(start)
        assert f"{fmt} report of 2026-03-03 08:00 to 2026-03-10 08:00 UTC" in err


def test_the_data_dir_comes_from_the_configuration(data_dir: Path, tmp_path: Path) -> None:
    config = tmp_path / "k3watch.yaml"
    config.write_text(f"server:\n  data_dir: {data_dir}\n")
    code, out, _ = _run("--config", str(config), "--end", str(END), "--format", "json",
                        "--min-gap", "2h", "--limit", "1")  # fmt: skip
    assert code == 0
    built = from_json(out)
    assert built.pipeline.min_gap == 7200
    assert len(built.secrets_access.items) == 1


def test_a_policy_lists_the_rules_it_blinds(data_dir: Path) -> None:
    code, out, _ = _run("--data-dir", str(data_dir), "--end", str(END), "--format", "json",
                        "--policy", "minimal")  # fmt: skip
    assert code == 0
    assert from_json(out).rules.blinded


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--period", "a while"], "--period 'a while' is not a duration"),
        (["--period", "0s"], "longer than 0"),
        (["--end", "last tuesday"], "--end 'last tuesday'"),
        (["--min-gap", "30s"], "60 seconds"),
        (["--policy", "/no/such/policy.yaml"], "cannot read the audit policy"),
    ],
)
def test_usage_errors_exit_2_with_one_line(data_dir: Path, args: list[str], message: str) -> None:
    code, _, err = _run("--data-dir", str(data_dir), "--format", "json", *args)
    assert code == 2
    assert message in err


def test_a_missing_store_is_a_usage_error(tmp_path: Path) -> None:
    code, _, err = _run("--data-dir", str(tmp_path / "nowhere"), "--format", "json")
    assert code == 2
    assert "no event store at" in err


def test_the_command_offers_every_format() -> None:
    from k3watch.cli.review_report import FORMATS as OFFERED
    from k3watch.review.render import FORMATS as RENDERED

    assert sorted(OFFERED) == sorted(RENDERED)
