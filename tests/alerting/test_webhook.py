"""The JSON webhook against a real HTTP server on loopback: contract body, HMAC, TLS, errors."""

from __future__ import annotations

import hashlib
import hmac

import orjson
import pytest
from tests.alerting.helpers import (
    HttpReceiver,
    Pki,
    free_port,
    make_alert,
    make_notification,
    server_tls,
)

from k3watch.alerting.config import TlsConfig, WebhookConfig
from k3watch.alerting.sinks.destination import DeliveryError
from k3watch.alerting.sinks.webhook import WebhookDestination, verify_signature

SECRET = "s3cret-s3cret-s3cret"


def webhook(url: str, **fields: object) -> WebhookDestination:
    config = WebhookConfig(name="hook", url=url, secret=SECRET, **fields)  # type: ignore[arg-type]
    return WebhookDestination(config)


def test_the_body_is_the_alert_contract_signed_with_hmac_over_timestamp_and_body() -> None:
    notification = make_notification(cluster="prod", count=3)
    with HttpReceiver() as receiver:
        destination = webhook(receiver.url, headers={"X-Api-Key": "k"})
        destination.deliver([notification])
        destination.close()
    (request,) = receiver.requests
    assert request.path == "/hook"
    assert orjson.loads(request.body) == make_alert(count=3).to_dict()
    headers = request.headers
    timestamp = headers["x-k3watch-timestamp"]
    expected = hmac.new(SECRET.encode(), f"{timestamp}.".encode() + request.body, hashlib.sha256)
    assert headers["x-k3watch-signature"] == "sha256=" + expected.hexdigest()
    assert verify_signature(SECRET, request.body, timestamp, headers["x-k3watch-signature"])
    assert headers["idempotency-key"] == notification.idempotency_key
    assert headers["x-k3watch-cluster"] == "prod"
    assert headers["x-api-key"] == "k"
    assert headers["content-type"] == "application/json"


def test_a_tampered_body_a_stale_timestamp_or_a_wrong_secret_fail_verification() -> None:
    with HttpReceiver() as receiver:
        webhook(receiver.url).deliver([make_notification()])
    (request,) = receiver.requests
    timestamp = request.headers["x-k3watch-timestamp"]
    signature = request.headers["x-k3watch-signature"]
    assert not verify_signature(SECRET, request.body + b" ", timestamp, signature)
    assert not verify_signature("another-secret-value", request.body, timestamp, signature)
    stale = int(timestamp) + 301
    assert not verify_signature(SECRET, request.body, timestamp, signature, now=stale)
    assert not verify_signature(SECRET, request.body, None, signature)


def test_each_alert_is_its_own_request_with_its_own_idempotency_key() -> None:
    first, second = make_notification(user="alice"), make_notification(user="bob")
    with HttpReceiver() as receiver:
        webhook(receiver.url).deliver([first, second])
    keys = [r.headers["idempotency-key"] for r in receiver.requests]
    assert keys == [first.idempotency_key, second.idempotency_key]
    assert keys[0] != keys[1]


def test_a_failure_in_the_middle_of_a_batch_says_how_many_got_through() -> None:
    batch = [make_notification(user=u) for u in ("a", "b", "c")]
    with HttpReceiver(statuses=[200, 503]) as receiver, pytest.raises(DeliveryError) as caught:
        webhook(receiver.url).deliver(batch)
    assert caught.value.delivered == 1
    assert caught.value.reason == "http_503"
    assert not caught.value.permanent
    assert len(receiver.requests) == 2


@pytest.mark.parametrize(
    ("status", "permanent"), [(400, True), (422, True), (401, False), (429, False), (500, False)]
)
def test_invalid_content_is_a_permanent_failure_other_statuses_are_retried(
    status: int, permanent: bool
) -> None:
    with HttpReceiver(statuses=[status]) as receiver, pytest.raises(DeliveryError) as caught:
        webhook(receiver.url).deliver([make_notification()])
    assert caught.value.reason == f"http_{status}"
    assert caught.value.permanent is permanent
    assert "test receiver says no" in str(caught.value)


def test_a_receiver_that_is_down_is_a_connection_failure() -> None:
    with pytest.raises(DeliveryError) as caught:
        webhook(f"http://127.0.0.1:{free_port()}/hook").deliver([make_notification()])
    assert caught.value.reason == "connection"
    assert str(caught.value).startswith("destination hook: cannot connect")


def test_https_with_the_receivers_ca_and_a_client_certificate(pki: Pki) -> None:
    tls = TlsConfig(
        ca_file=str(pki.ca), cert_file=str(pki.client_cert), key_file=str(pki.client_key)
    )
    with HttpReceiver(tls=server_tls(pki, client_ca=pki.ca)) as receiver:
        webhook(receiver.url, tls=tls).deliver([make_notification()])
    assert len(receiver.requests) == 1


def test_https_refuses_a_server_certificate_from_another_ca(pki: Pki) -> None:
    with HttpReceiver(tls=server_tls(pki)) as receiver:
        destination = webhook(receiver.url, tls=TlsConfig(ca_file=str(pki.other_ca)))
        with pytest.raises(DeliveryError) as caught:
            destination.deliver([make_notification()])
    assert caught.value.reason == "tls"
    assert receiver.requests == []
