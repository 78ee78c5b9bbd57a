"""The demo: a generated K3s audit log scanned with the built-in rules shows every attack."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest
from tests.cli.helpers import Invoke

# What each injected attack scenario must raise (one rule per scenario is enough to see it).
EXPECTED = {
    "brute-force": "Authentication failures from one address (brute force)",
    "stolen-token": "Many different secrets read by one identity",
    "alice-exec-new-ip": "Credentials read through kubectl exec",
    "privileged-pod": "Privileged container requested",
    "rbac-then-workload": "RBAC change followed by a workload change by the same identity",
    "webhook": "Admission webhook configuration created or changed",
    "delete-events": "Kubernetes events deleted",
}


@pytest.fixture(scope="module")
def demo_alerts(tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, object]]:
    from click.testing import CliRunner

    from k3watch.cli import main

    log = tmp_path_factory.mktemp("demo") / "audit.log"
    runner = CliRunner()
    generated = runner.invoke(main, ["sample", "generate", "--out", str(log)])
    assert generated.exit_code == 0, generated.output
    scanned = runner.invoke(main, ["scan", str(log), "--format", "json"])
    assert scanned.exit_code == 0
    return [orjson.loads(line) for line in scanned.stdout.splitlines()]


@pytest.mark.parametrize("scenario", sorted(EXPECTED))
def test_every_attack_scenario_raises_its_alert(
    scenario: str, demo_alerts: list[dict[str, object]]
) -> None:
    assert EXPECTED[scenario] in {a["title"] for a in demo_alerts}


def test_a_person_using_a_new_address_is_noticed_after_the_learning_week(
    demo_alerts: list[dict[str, object]],
) -> None:
    new_ip = [a for a in demo_alerts if a["title"] == "Person connects from a new source address"]
    assert [a["group"] for a in new_ip] == [
        {"user.username": "alice@example.com", "sourceIPs": ["198.51.100.77"]}
    ]


def test_sample_generate_reports_what_it_wrote(tmp_path: Path, invoke: Invoke) -> None:
    result = invoke("sample", "generate", "--out", str(tmp_path / "a.log.gz"), "--days", "1")
    assert result.exit_code == 0
    assert "events" in result.stderr and "a.log.gz" in result.stderr
    assert (tmp_path / "a.log.gz").read_bytes()[:2] == b"\x1f\x8b"
