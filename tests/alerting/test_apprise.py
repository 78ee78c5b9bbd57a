"""Apprise against a real SMTP server (aiosmtpd) on loopback: a ``mailto://`` notification."""

from __future__ import annotations

import email
import email.policy
from collections.abc import Iterator
from dataclasses import dataclass, field
from email.message import EmailMessage
from typing import Any

import orjson
import pytest
from aiosmtpd.controller import Controller
from tests.alerting.helpers import HttpReceiver, free_port, make_alert, make_notification

from k3watch.alert import Severity
from k3watch.alerting.config import AppriseConfig
from k3watch.alerting.sinks.apprise import AppriseDestination, message_body, message_title
from k3watch.alerting.sinks.destination import DeliveryError, Notification
from k3watch.errors import UsageError

RESPONSE = "Rotate every secret the user could read: `kubectl get secrets -A`."


@dataclass
class Mailbox:
    """What the SMTP server accepted: envelope recipients and parsed messages."""

    messages: list[tuple[list[str], EmailMessage]] = field(default_factory=list)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        parsed = email.message_from_bytes(envelope.content, policy=email.policy.default)
        assert isinstance(parsed, EmailMessage)
        self.messages.append((list(envelope.rcpt_tos), parsed))
        return "250 OK"


@dataclass
class SmtpServer:
    port: int
    mailbox: Mailbox

    def mailto(self) -> str:
        return (
            f"mailto://127.0.0.1:{self.port}?mode=insecure"
            "&from=k3watch@example.com&to=soc@example.com"
        )


@pytest.fixture(scope="module")
def smtp() -> Iterator[SmtpServer]:
    mailbox = Mailbox()
    port = free_port()
    controller = Controller(mailbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield SmtpServer(port, mailbox)
    finally:
        controller.stop()


def text_of(message: EmailMessage) -> str:
    part = message.get_body(preferencelist=("plain",))
    assert part is not None
    return str(part.get_content())


def test_an_alert_arrives_as_an_email_written_for_people(smtp: SmtpServer) -> None:
    smtp.mailbox.messages.clear()
    notification = make_notification(
        cluster="prod-eu-1",
        count=3,
        response=RESPONSE,
        link="https://k3watch.example.com/alerts/abc",
    )
    destination = AppriseDestination(AppriseConfig(name="mail", url=smtp.mailto()))
    destination.deliver([notification])
    ((recipients, message),) = smtp.mailbox.messages
    assert recipients == ["soc@example.com"]
    assert message["Subject"] == "[HIGH] Secrets listed across all namespaces (prod-eu-1)"
    assert message["From"] == "k3watch@example.com"
    body = text_of(message)
    assert "alice listed secrets in every namespace" in body
    assert "Cluster: prod-eu-1" in body
    assert "Namespace: shop" in body
    assert "Count: 3 between 2026-01-09T10:00:00.000000Z and 2026-01-09T10:00:02.000000Z" in body
    assert "T1552.007" in body
    assert "What to do" in body and "kubectl get secrets -A" in body
    html = message.get_body(preferencelist=("html",))
    assert html is not None
    assert 'href="https://k3watch.example.com/alerts/abc"' in str(html.get_content())
    destination.close()


def test_each_alert_of_a_batch_is_its_own_notification() -> None:
    """Through Apprise's JSON plugin to a real HTTP server (mail servers are paced by Apprise,
    one message every few seconds, which is right for mail but slow for a test)."""
    with HttpReceiver() as receiver:
        url = f"json://127.0.0.1:{receiver.port}/hook"
        destination = AppriseDestination(AppriseConfig(name="json", url=url, format="text"))
        destination.deliver(
            [make_notification(user="alice"), make_notification(user="bob", severity=Severity.LOW)]
        )
    payloads = [orjson.loads(r.body) for r in receiver.requests]
    assert ["alice" in p["message"] for p in payloads] == [True, False]
    assert ["bob" in p["message"] for p in payloads] == [False, True]
    assert [p["type"] for p in payloads] == ["failure", "info"]
    assert payloads[0]["title"] == "[HIGH] Secrets listed across all namespaces"


def test_a_mail_server_that_is_down_is_a_delivery_error() -> None:
    url = f"mailto://127.0.0.1:{free_port()}?mode=insecure&from=k3watch@example.com&to=a@b.c"
    destination = AppriseDestination(AppriseConfig(name="mail", url=url, timeout="5s"))
    with pytest.raises(DeliveryError) as caught:
        destination.deliver([make_notification()])
    assert caught.value.reason == "apprise_failure"
    assert caught.value.delivered == 0


def test_an_invalid_apprise_url_is_a_configuration_error_that_hides_the_url() -> None:
    with pytest.raises(UsageError) as caught:
        AppriseDestination(AppriseConfig(name="chat", url="nosuchservice://token-123"))
    assert "token-123" not in str(caught.value)
    assert "destination chat" in str(caught.value)


def test_values_from_the_audit_log_cannot_inject_markdown_links() -> None:
    notification = make_notification(user="[click](https://evil.example)")
    body = message_body(notification, markdown=True)
    assert "[click](https://evil" not in body
    assert r"\[click\]\(https://evil.example\)" in body


def test_the_title_names_severity_cluster_and_whether_it_is_an_update() -> None:
    update = Notification.of(make_alert(severity=Severity.CRITICAL), update=True)
    assert message_title(update) == "[CRITICAL] Secrets listed across all namespaces — update"
