"""Alertmanager v2 against the real Alertmanager (Debian's prometheus-alertmanager) on loopback.

Each test posts alerts, then reads them back through Alertmanager's own ``GET /api/v2/alerts``.
"""

from __future__ import annotations

import base64
import ssl
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from tests.alerting.helpers import (
    HttpReceiver,
    Pki,
    free_port,
    make_alert,
    require_binary,
    wait_until,
)

from k3watch.alert import Severity
from k3watch.alerting.config import AlertmanagerConfig, TlsConfig
from k3watch.alerting.sinks.alertmanager import AlertmanagerDestination, rfc3339, slug
from k3watch.alerting.sinks.destination import DeliveryError, Notification

CONFIG = """\
route:
  receiver: blackhole
  group_wait: 1h
receivers:
  - name: blackhole
"""


@dataclass
class Alertmanager:
    """A running Alertmanager and how to reach it."""

    url: str
    client: httpx.Client

    def alerts(self, **labels: str) -> list[dict[str, Any]]:
        matchers = [f'{k}="{v}"' for k, v in labels.items()]
        response = self.client.get(f"{self.url}/api/v2/alerts", params={"filter": matchers})
        response.raise_for_status()
        return list(response.json())


def start_alertmanager(folder: Path, web_config: str | None = None) -> subprocess.Popen[bytes]:
    binary = require_binary("prometheus-alertmanager", "prometheus-alertmanager")
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "alertmanager.yml").write_text(CONFIG)
    port = free_port()
    command = [
        binary,
        f"--config.file={folder / 'alertmanager.yml'}",
        f"--storage.path={folder / 'data'}",
        f"--web.listen-address=127.0.0.1:{port}",
        "--cluster.listen-address=",  # no HA gossip: nothing listens beyond the API port
        "--log.level=warn",
    ]
    if web_config is not None:
        (folder / "web.yml").write_text(web_config)
        command.append(f"--web.config.file={folder / 'web.yml'}")
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    process.port = port  # type: ignore[attr-defined]
    return process


def stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(5)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def ready(client: httpx.Client, url: str, process: subprocess.Popen[bytes]) -> bool:
    if process.poll() is not None:
        stderr = process.stderr.read().decode() if process.stderr else ""
        raise AssertionError(f"alertmanager exited: {stderr}")
    try:
        return client.get(f"{url}/-/ready").status_code == 200
    except httpx.TransportError:
        return False


@pytest.fixture(scope="module")
def alertmanager(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Alertmanager]:
    process = start_alertmanager(tmp_path_factory.mktemp("alertmanager"))
    url = f"http://127.0.0.1:{process.port}"  # type: ignore[attr-defined]
    with httpx.Client(timeout=5) as client:
        try:
            wait_until(lambda: ready(client, url, process))
            yield Alertmanager(url, client)
        finally:
            stop(process)


def destination(url: str, **fields: object) -> AlertmanagerDestination:
    return AlertmanagerDestination(AlertmanagerConfig(name="am", url=url, **fields))  # type: ignore[arg-type]


def notification(rule: str, **kwargs: Any) -> Notification:
    context = {
        k: kwargs.pop(k) for k in ("cluster", "response", "description", "link") if k in kwargs
    }
    return Notification.of(make_alert(rule=rule, **kwargs), **context)


def test_an_alert_is_visible_in_alertmanager_with_labels_annotations_and_link(
    alertmanager: Alertmanager,
) -> None:
    rule = str(uuid.uuid4())
    sent = notification(
        rule,
        count=3,
        cluster="prod-eu-1",
        response="Find who listed the secrets and rotate them.",
        description="Secrets were listed in every namespace at once.",
        link="https://k3watch.example.com/alerts/abc",
    )
    am = destination(alertmanager.url, extra_labels={"team": "platform"})
    am.deliver([sent])
    (got,) = alertmanager.alerts(rule_id=rule)
    assert got["labels"] == {
        "alertname": "secrets_listed_across_all_namespaces",
        "rule_id": rule,
        "severity": "high",
        "cluster": "prod-eu-1",
        "namespace": "shop",
        "attack_technique": "T1552.007",
        "attack_tactic": "credential-access",
        "k3watch_fingerprint": sent.fingerprint,
        "team": "platform",
    }
    annotations = got["annotations"]
    assert annotations["summary"] == "alice listed secrets in every namespace"
    assert annotations["title"] == "Secrets listed across all namespaces"
    assert annotations["runbook"] == "Find who listed the secrets and rotate them."
    assert annotations["description"] == "Secrets were listed in every namespace at once."
    assert annotations["count"] == "3"
    assert annotations["idempotency_key"] == sent.idempotency_key
    assert orjson.loads(annotations["group"]) == {
        "objectRef.namespace": "shop",
        "user.username": "alice",
    }
    assert got["generatorURL"] == "https://k3watch.example.com/alerts/abc"
    assert got["startsAt"] == "2026-01-09T10:00:00.000Z"
    assert got["status"]["state"] == "active"


def test_delivering_the_same_alert_again_refreshes_it_instead_of_duplicating_it(
    alertmanager: Alertmanager,
) -> None:
    rule = str(uuid.uuid4())
    am = destination(alertmanager.url)
    am.deliver([notification(rule)])
    am.deliver([notification(rule), notification(rule, count=2)])
    (got,) = alertmanager.alerts(rule_id=rule)
    assert got["annotations"]["count"] == "2"


def test_a_batch_becomes_one_alertmanager_alert_per_k3watch_alert(
    alertmanager: Alertmanager,
) -> None:
    rule = str(uuid.uuid4())
    batch = [notification(rule, user=u, severity=Severity.CRITICAL) for u in ("a", "b", "c")]
    destination(alertmanager.url).deliver(batch)
    got = alertmanager.alerts(rule_id=rule)
    assert sorted(a["labels"]["k3watch_fingerprint"] for a in got) == sorted(
        n.fingerprint for n in batch
    )
    assert {a["labels"]["severity"] for a in got} == {"critical"}


def test_alertname_can_be_the_rule_id_and_ends_at_can_be_set(alertmanager: Alertmanager) -> None:
    rule = str(uuid.uuid4())
    now = float(int(time.time()))  # Alertmanager hides alerts whose endsAt has passed
    am = AlertmanagerDestination(
        AlertmanagerConfig(name="am", url=alertmanager.url, alertname="rule_id", ends_after="1h"),
        clock=lambda: now,
    )
    am.deliver([notification(rule, namespace=None)])
    (got,) = alertmanager.alerts(rule_id=rule)
    assert got["labels"]["alertname"] == rule
    assert "namespace" not in got["labels"]
    assert got["endsAt"] == rfc3339(now + 3600)


def test_credentials_are_sent_as_basic_auth_or_bearer_token() -> None:
    with HttpReceiver() as receiver:
        base = receiver.url.removesuffix("/hook")
        destination(base, username="k3watch", password="pw").deliver([notification("r")])
        destination(base, bearer_token="tok").deliver([notification("r")])
    basic, bearer = receiver.requests
    assert basic.path == "/api/v2/alerts"
    assert basic.headers["authorization"] == "Basic " + base64.b64encode(b"k3watch:pw").decode()
    assert bearer.headers["authorization"] == "Bearer tok"
    assert isinstance(orjson.loads(basic.body), list)


def test_mutual_tls_to_an_alertmanager_that_requires_client_certificates(
    pki: Pki, tmp_path: Path
) -> None:
    web = (
        "tls_server_config:\n"
        f"  cert_file: {pki.server_cert}\n"
        f"  key_file: {pki.server_key}\n"
        "  client_auth_type: RequireAndVerifyClientCert\n"
        f"  client_ca_file: {pki.ca}\n"
    )
    process = start_alertmanager(tmp_path / "am-tls", web)
    url = f"https://127.0.0.1:{process.port}"  # type: ignore[attr-defined]
    context = ssl.create_default_context(cafile=str(pki.ca))
    context.load_cert_chain(pki.client_cert, pki.client_key)
    try:
        with httpx.Client(verify=context, timeout=5) as client:
            wait_until(lambda: ready(client, url, process))
            tls = TlsConfig(
                ca_file=str(pki.ca), cert_file=str(pki.client_cert), key_file=str(pki.client_key)
            )
            rule = str(uuid.uuid4())
            destination(url, tls=tls).deliver([notification(rule)])
            assert len(Alertmanager(url, client).alerts(rule_id=rule)) == 1
            without_certificate = destination(url, tls=TlsConfig(ca_file=str(pki.ca)))
            with pytest.raises(DeliveryError) as caught:
                without_certificate.deliver([notification(rule)])
            assert caught.value.reason == "tls"
    finally:
        stop(process)


def test_a_title_slug_is_a_readable_identifier() -> None:
    assert slug("Pod exec into kube-system (K3s)") == "pod_exec_into_kube_system_k3s"
    assert slug("!!!") == "k3watch_alert"
