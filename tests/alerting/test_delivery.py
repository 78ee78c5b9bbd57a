"""The dispatcher and its worker: routing into the outbox, retries until the receiver is back,
re-delivery after a restart, background threads that start and stop cleanly."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Sequence
from pathlib import Path

import orjson
import pytest
from tests.alerting.helpers import HttpReceiver, free_port, make_alert, wait_until

from k3watch.alert import Severity
from k3watch.alerting.config import AlertingConfig, RouteConfig, WebhookConfig
from k3watch.alerting.delivery import AlertContext, Dispatcher, Target
from k3watch.alerting.outbox import Entry, Outbox, RetryPolicy
from k3watch.alerting.routing import Route
from k3watch.alerting.sinks.destination import DeliveryError, Notification
from k3watch.alerting.sinks.webhook import WebhookDestination
from k3watch.telemetry import Counters

SECRET = "0123456789abcdef-secret"
POLICY = RetryPolicy(retry_delay=1.0, max_delay=60.0, max_age=3600.0, jitter=0.0)


class Clock:
    def __init__(self, now: float = 1_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class Recorder:
    """A destination that keeps what it gets and fails as scripted (for the worker's logic;
    the real receivers are exercised in the other test modules and below)."""

    def __init__(self, name: str = "recorder", failures: Sequence[DeliveryError] = ()) -> None:
        self.name = name
        self.max_batch = 10
        self.counters = Counters(f"destination_{name}")
        self.failures = list(failures)
        self.batches: list[list[str]] = []

    def deliver(self, notifications: Sequence[Notification]) -> None:
        self.batches.append([n.group["user.username"] for n in notifications])
        if self.failures:
            raise self.failures.pop(0)

    def close(self) -> None:
        pass


def webhook(url: str, name: str = "hook") -> WebhookDestination:
    return WebhookDestination(WebhookConfig(name=name, url=url, secret=SECRET))


def dispatcher(
    tmp_path: Path, targets: Sequence[Target], clock: Clock | None = None, **kwargs: str
) -> Dispatcher:
    outbox = Outbox(tmp_path / "outbox.sqlite", POLICY, clock=clock or Clock())
    return Dispatcher(outbox, targets, idle_poll=0.05, **kwargs)


def test_each_destination_gets_what_its_route_takes_and_counts_what_it_skipped(
    tmp_path: Path,
) -> None:
    everything, critical, credentials = Recorder("all"), Recorder("critical"), Recorder("creds")
    targets = [
        Target(everything),
        Target(critical, Route(min_severity=Severity.CRITICAL)),
        Target(credentials, Route.from_config(RouteConfig(tags=("attack.credential-access",)))),
    ]
    with dispatcher(tmp_path, targets) as d:
        assert d.submit(make_alert(user="a")) == ["all", "creds"]
        other = make_alert(user="b", severity=Severity.CRITICAL, tags=("attack.execution",))
        assert d.submit(other) == ["all", "critical"]
        d.flush()
        assert everything.batches == [["a", "b"]]
        assert critical.batches == [["b"]]
        assert credentials.batches == [["a"]]
        assert critical.counters.get("skipped", "severity") == 1
        assert credentials.counters.get("skipped", "not_selected") == 1
        assert d.snapshot()["destination_all_sent"] == 2


def test_an_alert_no_route_takes_is_counted_and_not_queued(tmp_path: Path) -> None:
    with dispatcher(tmp_path, [Target(Recorder(), Route(min_severity=Severity.CRITICAL))]) as d:
        assert d.submit(make_alert(severity=Severity.LOW)) == []
        assert d.counters.get("unrouted") == 1
        assert len(d.outbox) == 0


def test_the_queued_notification_carries_cluster_response_and_link(tmp_path: Path) -> None:
    recorder = Recorder()
    with dispatcher(
        tmp_path, [Target(recorder)], external_url="https://k3watch.example.com/", cluster="dev"
    ) as d:
        alert = make_alert()
        d.submit(alert, AlertContext(response="Rotate the secrets.", description="Why."))
        (item,) = d.outbox.items()
        queued = Notification.from_json(item.payload)
        assert queued.cluster == "dev"  # the default cluster
        assert queued.response == "Rotate the secrets."
        assert queued.description == "Why."
        assert queued.link == f"https://k3watch.example.com/alerts/{alert.fingerprint}"
        assert queued.alert == alert.to_dict()
        assert item.key == queued.idempotency_key
        d.submit(alert, AlertContext(cluster="prod"))  # same state: already queued
        assert len(d.outbox) == 1


def test_updates_are_queued_only_for_destinations_that_want_them(tmp_path: Path) -> None:
    wants, chat = Recorder("am"), Recorder("chat")
    targets = [Target(wants), Target(chat, Route(updates=False))]
    with dispatcher(tmp_path, targets) as d:
        alert = make_alert()
        assert d.submit(alert) == ["am", "chat"]
        alert.merge(make_alert(t=alert.first_seen + 5), max_event_ids=10)  # type: ignore[operator]
        assert d.submit(alert, AlertContext(update=True)) == ["am"]
        assert chat.counters.get("skipped", "update") == 1


def test_alerts_wait_while_the_receiver_is_down_and_are_delivered_when_it_is_back(
    tmp_path: Path,
) -> None:
    clock = Clock()
    port = free_port()
    hook = webhook(f"http://127.0.0.1:{port}/hook")
    with dispatcher(tmp_path, [Target(hook)], clock) as d:
        d.submit(make_alert(user="alice"))
        d.submit(make_alert(user="bob"))
        assert d.flush() == 0
        assert d.outbox.pending("hook") == 2
        assert hook.counters.get("failed", "connection") == 2  # both alerts of the attempt
        first, _ = d.outbox.items()
        assert (first.attempts, first.next_attempt) == (1, clock.now + 1.0)
        assert "cannot connect" in first.last_error
        with HttpReceiver(port=port) as receiver:
            assert d.flush() == 0  # not due yet: nothing is sent before the backoff
            assert receiver.requests == []
            clock.now += 1.0
            assert d.flush() == 2
        assert d.outbox.pending() == 0
        users = [orjson.loads(r.body)["group"]["user.username"] for r in receiver.requests]
        assert users == ["alice", "bob"]
        assert hook.counters.get("sent") == 2


def test_a_restarted_dispatcher_delivers_what_the_previous_one_left_queued(
    tmp_path: Path,
) -> None:
    port = free_port()
    first = dispatcher(tmp_path, [Target(webhook(f"http://127.0.0.1:{port}/hook"))])
    first.submit(make_alert(user="alice"))
    first.flush()  # fails: nobody listens
    first.close()
    with HttpReceiver(port=port) as receiver:
        outbox = Outbox(tmp_path / "outbox.sqlite", RetryPolicy(retry_delay=0.01))
        second = Dispatcher(outbox, [Target(webhook(receiver.url))], idle_poll=0.05)
        second.start()
        try:
            wait_until(lambda: len(receiver.requests) == 1)
            wait_until(lambda: len(outbox) == 0)
        finally:
            second.close()
    (request,) = receiver.requests
    body = request.body
    timestamp = request.headers["x-k3watch-timestamp"]
    mac = hmac.new(SECRET.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    assert request.headers["x-k3watch-signature"] == "sha256=" + mac.hexdigest()
    assert orjson.loads(body)["group"]["user.username"] == "alice"


def test_the_background_threads_deliver_new_alerts_and_stop_cleanly(tmp_path: Path) -> None:
    with HttpReceiver() as receiver:
        outbox = Outbox(tmp_path / "outbox.sqlite", POLICY)  # real time: the threads wait for real
        d = Dispatcher(outbox, [Target(webhook(receiver.url))], idle_poll=0.05)
        d.start()
        assert d.worker.running
        for user in ("a", "b", "c"):
            d.submit(make_alert(user=user))
        wait_until(lambda: len(receiver.requests) == 3)
        wait_until(lambda: len(outbox) == 0)
        assert d.worker.stop(timeout=5) is True
        assert not d.worker.running
        d.close()
    assert d.snapshot()["destination_hook_sent"] == 3


def test_flush_beside_the_running_threads_sends_each_alert_once(tmp_path: Path) -> None:
    with HttpReceiver() as receiver:
        outbox = Outbox(tmp_path / "outbox.sqlite", POLICY)
        d = Dispatcher(outbox, [Target(webhook(receiver.url))], idle_poll=0.05)
        d.start()
        for n in range(30):
            d.submit(make_alert(user=f"user-{n}"))
            if n % 3 == 0:
                d.flush()
        wait_until(lambda: len(outbox) == 0)
        d.close()
    keys = [r.headers["idempotency-key"] for r in receiver.requests]
    assert len(keys) == len(set(keys)) == 30


def test_a_rejected_batch_is_split_to_drop_only_the_refused_alert(tmp_path: Path) -> None:
    rejected = DeliveryError("recorder", "HTTP 400: bad label", reason="http_400", permanent=True)
    recorder = Recorder(failures=[rejected, rejected])  # the batch, then the first alone
    with dispatcher(tmp_path, [Target(recorder)]) as d:
        for user in ("bad", "good1", "good2"):
            d.submit(make_alert(user=user))
        assert d.flush() == 2
        assert recorder.batches == [["bad", "good1", "good2"], ["bad"], ["good1"], ["good2"]]
        assert recorder.counters.get("dropped", "rejected") == 1
        assert recorder.counters.get("sent") == 2
        assert len(d.outbox) == 0


def test_only_the_alerts_after_a_partial_failure_are_retried(tmp_path: Path) -> None:
    clock = Clock()
    failure = DeliveryError("recorder", "HTTP 503", reason="http_503")
    failure.delivered = 1
    recorder = Recorder(failures=[failure])
    with dispatcher(tmp_path, [Target(recorder)], clock) as d:
        for user in ("a", "b", "c"):
            d.submit(make_alert(user=user))
        assert d.flush() == 1
        clock.now += 1
        assert d.flush() == 2
        assert recorder.batches == [["a", "b", "c"], ["b", "c"]]


def test_an_unexpected_exception_in_a_destination_is_retried_like_a_failure(
    tmp_path: Path,
) -> None:
    class Broken(Recorder):
        def deliver(self, notifications: Sequence[Notification]) -> None:
            raise RuntimeError("bug")

    broken = Broken("broken")
    with dispatcher(tmp_path, [Target(broken)]) as d:
        d.submit(make_alert())
        assert d.flush() == 0
        assert broken.counters.get("failed", "error") == 1
        assert d.outbox.pending("broken") == 1


def test_a_corrupt_queued_item_is_dropped_and_counted(tmp_path: Path) -> None:
    recorder = Recorder()
    with dispatcher(tmp_path, [Target(recorder)]) as d:
        d.outbox.enqueue([Entry("recorder", "k", b"not json")])
        d.submit(make_alert())
        assert d.flush() == 1
        assert recorder.counters.get("dropped", "corrupt") == 1


def test_a_dispatcher_from_configuration_uses_the_data_directory(tmp_path: Path) -> None:
    with HttpReceiver() as receiver:
        config = AlertingConfig(
            cluster="prod",
            destinations=(WebhookConfig(name="hook", url=receiver.url, secret=SECRET),),
        )
        d = Dispatcher.from_config(config, data_dir=tmp_path)
        assert d.outbox.path == tmp_path / "outbox.sqlite"
        d.submit(make_alert())
        assert d.flush() == 1
        d.close()
    assert receiver.requests[0].headers["x-k3watch-cluster"] == "prod"
    assert d.snapshot()["destination_hook_sent"] == 1


def test_the_dispatcher_is_a_sink(tmp_path: Path) -> None:
    from k3watch.alerting.sinks import Sink

    recorder = Recorder()
    with dispatcher(tmp_path, [Target(recorder)]) as d:
        sink: Sink = d
        sink.emit(make_alert())
        d.flush()
    assert recorder.batches == [["alice"]]


def test_destination_names_must_be_unique(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unique"):
        dispatcher(tmp_path, [Target(Recorder()), Target(Recorder())])
