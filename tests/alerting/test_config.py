"""The ``alerting:`` configuration models: typed, strict, checked when read."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import msgspec
import pytest
import yaml

from k3watch.alerting.config import (
    AlertingConfig,
    AlertmanagerConfig,
    AppriseConfig,
    FileConfig,
    SyslogConfig,
    WebhookConfig,
)

EXAMPLE = """
external_url: https://k3watch.example.com
cluster: prod-eu-1
outbox:
  path: state/outbox.sqlite
  max_age: 12h
  max_delay: 2m
destinations:
  - name: am
    type: alertmanager
    url: http://alertmanager:9093
    extra_labels: {team: platform}
    tls: {ca_file: certs/ca.pem}
  - name: hook
    type: webhook
    url: https://siem.example.com/k3watch
    secret: 0123456789abcdef0123
  - name: chat
    type: apprise
    url: slack://T000/B000/XXXX
    route: {min_severity: high, tags: [attack.credential-access], updates: false}
  - name: syslog
    type: syslog
    host: 127.0.0.1
    protocol: tls
  - name: file
    type: file
    path: alerts.jsonl
    max_size: 10MiB
"""


def load(text: str) -> AlertingConfig:
    return msgspec.convert(yaml.safe_load(text), AlertingConfig)


def error(data: dict[str, Any]) -> str:
    with pytest.raises(msgspec.ValidationError) as caught:
        msgspec.convert(data, AlertingConfig)
    return str(caught.value)


def test_the_documented_example_reads_into_one_model_per_destination_type() -> None:
    config = load(EXAMPLE)
    kinds = [type(d) for d in config.destinations]
    assert kinds == [AlertmanagerConfig, WebhookConfig, AppriseConfig, SyslogConfig, FileConfig]
    syslog = config.destinations[3]
    assert isinstance(syslog, SyslogConfig)
    assert syslog.effective_port == 6514
    assert config.destinations[2].route.updates is False


def test_the_docs_example_is_valid() -> None:
    """docs/alerting.md's full example is a valid ``alerting:`` section."""
    docs = Path(__file__).parents[2] / "docs" / "alerting.md"
    text = docs.read_text(encoding="utf-8")
    block = text.split("```yaml\n", 1)[1].split("```", 1)[0]
    section = _without_references(yaml.safe_load(block)["alerting"])
    config = msgspec.convert(section, AlertingConfig)
    assert len(config.destinations) >= 5


def _without_references(value: Any) -> Any:
    """``$env:``/``$file:`` values as the configuration loader would resolve them."""
    if isinstance(value, dict):
        return {k: _without_references(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_without_references(v) for v in value]
    if isinstance(value, str) and value.startswith(("$env:", "$file:")):
        return "resolved://a-secret-value-from-the-environment"
    return value


def test_an_unknown_key_is_an_error_with_its_path() -> None:
    data = yaml.safe_load(EXAMPLE)
    data["destinations"][0]["lables"] = {}
    message = error(data)
    assert "unknown field `lables`" in message
    assert "$.destinations[0]" in message


def test_an_unknown_destination_type_is_an_error() -> None:
    assert "$.destinations[0].type" in error(
        {"destinations": [{"name": "x", "type": "pigeon", "url": "http://x"}]}
    )


@pytest.mark.parametrize(
    ("destination", "fragment"),
    [
        ({"type": "alertmanager", "url": "alertmanager:9093"}, "must start with http"),
        ({"type": "alertmanager", "url": "http://a", "timeout": "10 sec"}, "timeout"),
        ({"type": "alertmanager", "url": "http://a", "extra_labels": {"a-b": "x"}}, "label"),
        ({"type": "alertmanager", "url": "http://a", "username": "u"}, "both username"),
        ({"type": "webhook", "url": "http://a", "secret": "short"}, "at least 16"),
        ({"type": "syslog", "host": "h", "facility": "local9"}, "facility"),
        ({"type": "syslog", "host": "h", "sd_id": "bad id"}, "SD-ID"),
        ({"type": "file", "path": "x", "max_size": "lots"}, "max_size"),
        ({"type": "apprise", "url": "not a url"}, "Apprise URL"),
        (
            {"type": "apprise", "url": "json://h", "route": {"min_severity": "urgent"}},
            "unknown severity",
        ),
    ],
)
def test_values_that_cannot_be_used_are_errors_when_read(
    destination: dict[str, Any], fragment: str
) -> None:
    message = error({"destinations": [{"name": "d", **destination}]})
    assert fragment in message
    assert "$.destinations[0]" in message


def test_destination_names_are_unique() -> None:
    twice = {"name": "same", "type": "file", "path": "a"}
    assert "two destinations are named 'same'" in error({"destinations": [twice, twice]})


def test_outbox_durations_must_be_positive() -> None:
    assert "max_age" in error({"outbox": {"max_age": "0s"}})
    assert "retry_delay" in error({"outbox": {"retry_delay": "soon"}})


def test_relative_paths_are_resolved_against_the_configuration_folder(tmp_path: Path) -> None:
    config = load(EXAMPLE).relative_to(tmp_path)
    assert config.outbox.path == str(tmp_path / "state/outbox.sqlite")
    am, _, _, syslog, file = config.destinations
    assert isinstance(am, AlertmanagerConfig) and am.tls.ca_file == str(tmp_path / "certs/ca.pem")
    assert isinstance(file, FileConfig) and file.path == str(tmp_path / "alerts.jsonl")
    assert isinstance(syslog, SyslogConfig) and syslog.tls.ca_file is None
