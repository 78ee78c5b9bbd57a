"""``k3watch demo``: the server, fed the sample cluster through its API, raises every attack."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner
from tests.cli.test_demo import EXPECTED

from k3watch.cli import main


def test_the_server_demo_shows_every_attack_as_it_is_replayed(tmp_path: Path) -> None:
    data = tmp_path / "data"
    result = CliRunner().invoke(
        main,
        ["demo", "--data-dir", str(data), "--speed", "1000000", "--no-serve"],
        catch_exceptions=False,
    )
    assert result.exit_code == 0, result.output
    assert "k3watch server: http://127.0.0.1:" in result.stderr
    assert "admin token:    k3w_" in result.stderr
    shown = result.stdout
    missing = [title for title in EXPECTED.values() if title not in shown]
    assert not missing, shown
    assert (data / "events.sqlite").exists()
    verified = CliRunner().invoke(main, ["verify", "--data-dir", str(data)])
    assert verified.exit_code == 0, verified.output
    assert "chain intact" in verified.stdout
