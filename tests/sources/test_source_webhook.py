"""webhook: the audit webhook listener (auth, back-pressure, loopback rule, TLS)."""

from __future__ import annotations

import gzip
import ssl
from collections.abc import Iterator
from pathlib import Path

import httpx
import orjson
import pytest

from k3watch.certs import Pki, client_ssl_context, init_pki
from k3watch.errors import UsageError
from k3watch.sources.base import Source
from k3watch.sources.webhook import WebhookSource, is_loopback

TOKEN = "s3cret-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def event(i: int) -> dict[str, object]:
    return {
        "kind": "Event",
        "apiVersion": "audit.k8s.io/v1",
        "auditID": f"id-{i:04d}",
        "stage": "ResponseComplete",
        "verb": "create",
        "requestURI": "/api/v1/namespaces/default/pods",
        "user": {"username": "system:admin"},
    }


def batch(*numbers: int) -> bytes:
    return orjson.dumps(
        {"kind": "EventList", "apiVersion": "audit.k8s.io/v1", "items": [event(i) for i in numbers]}
    )


@pytest.fixture
def webhook() -> Iterator[WebhookSource]:
    source = WebhookSource(port=0, token=TOKEN, capacity=5)
    yield source
    source.close()


def post(
    source: WebhookSource, body: bytes, headers: dict[str, str] | None = None
) -> httpx.Response:
    return httpx.post(source.url, content=body, headers=AUTH if headers is None else headers)


def test_webhook_source_satisfies_the_source_protocol(webhook: WebhookSource) -> None:
    """The listener is a Source; it is done only once closed and drained."""
    assert isinstance(webhook, Source)
    assert not webhook.done


def test_a_batch_is_acknowledged_once_its_events_are_queued(webhook: WebhookSource) -> None:
    """200 means every event of the batch is waiting for poll; items have no position."""
    response = post(webhook, batch(1, 2))
    assert response.status_code == 200
    items = webhook.poll(timeout=1)
    assert [i.event.audit_id for i in items] == ["id-0001", "id-0002"]
    assert all(i.position is None for i in items)
    assert webhook.counters.get("items") == 2
    webhook.commit(None)  # nothing to persist, and no error


def test_poll_waits_for_a_batch_up_to_its_timeout(webhook: WebhookSource) -> None:
    """An empty queue: poll returns nothing after its timeout."""
    assert webhook.poll(timeout=0.05) == []


def test_requests_without_the_right_token_are_refused(webhook: WebhookSource) -> None:
    """No token or a wrong one: 401 with WWW-Authenticate, nothing queued."""
    assert post(webhook, batch(1), headers={}).status_code == 401
    response = post(webhook, batch(1), headers={"Authorization": "Bearer wrong"})
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == "Bearer"
    assert webhook.poll() == []
    assert webhook.counters.get("rejected", "unauthorized") == 2


def test_a_full_queue_answers_503_and_takes_nothing_of_the_batch(webhook: WebhookSource) -> None:
    """The queue holds 5 events: a batch that does not fit is refused whole (503, Retry-After);
    once the agent has polled, the same batch is accepted."""
    assert post(webhook, batch(1, 2, 3)).status_code == 200
    refused = post(webhook, batch(4, 5, 6))
    assert refused.status_code == 503
    assert refused.headers["Retry-After"] == "1"
    assert webhook.counters.get("refused_events", "queue_full") == 3
    assert [i.event.audit_id for i in webhook.poll()] == ["id-0001", "id-0002", "id-0003"]
    assert post(webhook, batch(4, 5, 6)).status_code == 200
    assert len(webhook.poll()) == 3


def test_other_paths_and_methods_are_refused(webhook: WebhookSource) -> None:
    """Only POST to the configured path is accepted."""
    other = webhook.url.replace("/audit", "/other")
    assert httpx.post(other, content=batch(1), headers=AUTH).status_code == 404
    assert httpx.get(webhook.url, headers=AUTH).status_code == 405


def test_a_body_that_is_not_audit_events_is_a_bad_request(webhook: WebhookSource) -> None:
    """400 with the parser's message; the error is counted by reason."""
    response = post(webhook, b'{"kind": "Pod"}')
    assert response.status_code == 400
    assert "kind must be" in response.json()["message"]
    assert webhook.parser_counters.get("parse_errors", "unknown_kind") == 1


def test_an_oversized_body_is_refused(webhook: WebhookSource) -> None:
    """A body over max_body_bytes: 413 without reading it."""
    small = WebhookSource(port=0, token=TOKEN, max_body_bytes=100)
    try:
        assert post(small, batch(1, 2, 3)).status_code == 413
        assert small.counters.get("rejected", "too_large") == 1
    finally:
        small.close()


def test_a_gzip_compressed_batch_is_accepted(webhook: WebhookSource) -> None:
    """A gzip body (found by its magic bytes) is read like a plain one."""
    assert post(webhook, gzip.compress(batch(7))).status_code == 200
    assert [i.event.audit_id for i in webhook.poll()] == ["id-0007"]


def test_plain_http_is_refused_on_non_loopback_addresses() -> None:
    """Without TLS only loopback addresses may be bound."""
    with pytest.raises(UsageError, match="without TLS"):
        WebhookSource(host="0.0.0.0", port=0, token=TOKEN)
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("10.0.0.1") and not is_loopback("0.0.0.0") and not is_loopback("")


def test_a_token_or_a_client_ca_is_required() -> None:
    """A listener nobody has to authenticate to is refused."""
    with pytest.raises(UsageError, match="bearer token"):
        WebhookSource(port=0)


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return init_pki(
        tmp_path_factory.mktemp("pki"),
        server_names=["localhost"],
        server_ips=["127.0.0.1"],
        clients=["apiserver"],
    )


def test_https_with_a_token_may_listen_on_any_address(pki: Pki) -> None:
    """With TLS a non-loopback address is allowed; the API server's request works over HTTPS."""
    source = WebhookSource(
        host="0.0.0.0", port=0, token=TOKEN, certfile=pki.server.cert, keyfile=pki.server.key
    )
    try:
        url = f"https://127.0.0.1:{source.address[1]}/audit"
        context = client_ssl_context(pki.ca.cert, None, None)
        response = httpx.post(url, content=batch(1), headers=AUTH, verify=context)
        assert response.status_code == 200
        assert [i.event.audit_id for i in source.poll(timeout=1)] == ["id-0001"]
    finally:
        source.close()


def test_a_client_certificate_replaces_the_token(pki: Pki) -> None:
    """With client_ca and no token a verified client certificate is required and enough."""
    source = WebhookSource(
        port=0, certfile=pki.server.cert, keyfile=pki.server.key, client_ca=pki.ca.cert
    )
    try:
        client = pki.clients[0]
        with_cert = client_ssl_context(pki.ca.cert, client.cert, client.key)
        assert httpx.post(source.url, content=batch(2), verify=with_cert).status_code == 200
        without = client_ssl_context(pki.ca.cert, None, None)
        with pytest.raises((httpx.HTTPError, ssl.SSLError)):
            httpx.post(source.url, content=batch(3), verify=without)
        assert [i.event.audit_id for i in source.poll(timeout=1)] == ["id-0002"]
    finally:
        source.close()


def test_close_ends_a_waiting_poll_and_the_source(webhook: WebhookSource, tmp_path: Path) -> None:
    """After close the source is done and poll returns at once."""
    webhook.close()
    assert webhook.poll(timeout=5) == []
    assert webhook.done
