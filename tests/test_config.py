"""The configuration file: typed settings, located errors, secrets by reference, allowlists."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from k3watch.config import Config, load_config, parse_size
from k3watch.errors import UsageError
from k3watch.event import Event
from k3watch.rules.engine import Engine
from k3watch.rules.loader import load_rules
from k3watch.telemetry import Counters


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "k3watch.yaml"
    path.write_text(textwrap.dedent(text))
    return path


def test_an_empty_file_gives_the_defaults(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, ""))
    assert config.rules.builtin is True
    assert config.scan.suppress == "10m"


def test_settings_are_read_and_paths_are_relative_to_the_file(tmp_path: Path) -> None:
    config = load_config(
        write(
            tmp_path,
            """
            rules:
              paths: [my-rules, /etc/k3watch/rules]
              builtin: false
              placeholders: {admins: [alice, bob]}
            scan:
              suppress: 30m
              baseline: state/first-seen.sqlite
            """,
        )
    )
    assert config.rules.paths == (str(tmp_path / "my-rules"), "/etc/k3watch/rules")
    assert config.rules.builtin is False
    assert config.rules.placeholders == {"admins": ("alice", "bob")}
    assert config.scan.baseline == str(tmp_path / "state/first-seen.sqlite")


def test_an_unknown_key_is_an_error_with_its_line(tmp_path: Path) -> None:
    path = write(tmp_path, "rules:\n  builtin: true\n  rule_paths: [x]\n")
    with pytest.raises(UsageError) as error:
        load_config(path)
    assert str(error.value) == f"{path}:3: unknown key 'rule_paths'"


def test_a_wrong_type_is_an_error_with_its_line(tmp_path: Path) -> None:
    path = write(tmp_path, "scan:\n  suppress: 10m\nrules:\n  builtin: maybe\n")
    with pytest.raises(UsageError) as error:
        load_config(path)
    assert str(error.value).startswith(f"{path}:4: rules.builtin: Expected 'bool'")


def test_a_bad_duration_is_an_error_with_its_line(tmp_path: Path) -> None:
    path = write(tmp_path, "scan:\n  suppress: soon\n")
    with pytest.raises(UsageError, match=r":2: scan.suppress 'soon' is not a duration"):
        load_config(path)


def test_values_can_come_from_the_environment_or_a_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "secret.txt").write_text("/var/lib/k3watch/baseline.db\n")
    monkeypatch.setenv("K3WATCH_SUPPRESS", "5m")
    config = load_config(
        write(
            tmp_path,
            f"scan:\n  suppress: $env:K3WATCH_SUPPRESS\n  baseline: $file:{tmp_path}/secret.txt\n",
        )
    )
    assert config.scan.suppress == "5m"
    assert config.scan.baseline == "/var/lib/k3watch/baseline.db"


def test_a_missing_environment_variable_is_named(tmp_path: Path) -> None:
    path = write(tmp_path, "scan:\n  suppress: $env:K3WATCH_NOT_SET_ANYWHERE\n")
    with pytest.raises(UsageError, match=r":2: environment variable K3WATCH_NOT_SET_ANYWHERE"):
        load_config(path)


def test_sizes_accept_binary_units() -> None:
    assert parse_size("4MiB") == 4 * 1024 * 1024
    assert parse_size("512k") == 512 * 1024
    assert parse_size(100) == 100
    with pytest.raises(ValueError, match="not a size"):
        parse_size("lots")


def privileged_pod(namespace: str) -> Event:
    return Event(
        {
            "kind": "Event",
            "auditID": f"pod-{namespace}",
            "stage": "ResponseComplete",
            "verb": "create",
            "user": {"username": "alice@example.com"},
            "objectRef": {"resource": "pods", "namespace": namespace, "name": "node-exporter-1"},
            "responseStatus": {"code": 201},
            "requestReceivedTimestamp": "2026-01-05T10:00:00Z",
            "requestObject": {
                "spec": {"containers": [{"name": "c", "securityContext": {"privileged": True}}]}
            },
        }
    )


def matches(config: Config, event: Event, title: str) -> bool:
    ruleset = load_rules(documents=config.filter_documents())
    assert ruleset.errors == []
    rule = next(r for r in ruleset.event_rules if r.info.title == title)
    counters = Counters("t")
    Engine(ruleset, counters=counters).process(event)
    return counters.get("rule_matches", rule.id) > 0


def test_an_allowlist_entry_silences_the_named_rule_for_matching_events_only(
    tmp_path: Path,
) -> None:
    config = load_config(
        write(
            tmp_path,
            """
            rules:
              allowlist:
                - title: Node exporter runs privileged by design
                  rules: [Privileged container requested]
                  match:
                    objectRef.namespace: monitoring
                    k3watch.object.name|startswith: node-exporter-
            """,
        )
    )
    assert not matches(config, privileged_pod("monitoring"), "Privileged container requested")
    assert matches(config, privileged_pod("default"), "Privileged container requested")


def test_alert_destinations_are_part_of_the_configuration(tmp_path: Path) -> None:
    config = load_config(
        write(
            tmp_path,
            """
            alerting:
              external_url: https://k3watch.example.com
              outbox: {path: state/outbox.sqlite}
              destinations:
                - name: team-slack
                  type: apprise
                  url: json://localhost:9/
                  route: {min_severity: high}
            """,
        )
    )
    (destination,) = config.alerting.destinations
    assert destination.name == "team-slack"
    assert config.alerting.outbox.path == str(tmp_path / "state/outbox.sqlite")


def test_an_unknown_destination_key_is_located(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "alerting:\n  destinations:\n    - name: a\n      type: webhook\n      url: https://x\n"
        "      secret: 0123456789abcdef0123\n      retries: 3\n",
    )
    with pytest.raises(UsageError, match=r"k3watch.yaml:\d+: unknown key 'retries'"):
        load_config(path)
