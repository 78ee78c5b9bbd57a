"""Everything a running server holds: the store, tokens, rules and engine, the ingest pipeline,
the alert dispatcher and the retention thread; built from the configuration, started and
stopped together.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from k3watch.alerting.delivery import Dispatcher
from k3watch.alerting.silence import ActiveSilences
from k3watch.config import Config, parse_size
from k3watch.process import tune_gc
from k3watch.review.overdue import OverdueCheck, OverdueWatch
from k3watch.review.store import ReviewStore, review_path
from k3watch.rules.engine import Engine
from k3watch.rules.extension import parse_duration
from k3watch.rules.firstseen import BaselineStore
from k3watch.rules.model import RuleSet
from k3watch.server.auth import Auth, RateLimiter
from k3watch.server.pipeline import Pipeline
from k3watch.server.prepare import Preparation
from k3watch.server.tokens import Role, TokenStore
from k3watch.server.users import UserStore
from k3watch.store.base import RetentionPolicy, Store
from k3watch.store.sqlite import SqliteStore
from k3watch.telemetry import Counters

log = logging.getLogger(__name__)


def data_dir(path: str | Path) -> Path:
    """The server's data directory, created 0700 when missing."""
    directory = Path(path)
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    return directory


def store_path(directory: Path) -> Path:
    return directory / "events.sqlite"


@dataclass
class Runtime:
    """The parts of a server; ``start`` and ``stop`` manage their threads."""

    config: Config
    ruleset: RuleSet
    store: Store
    tokens: TokenStore
    users: UserStore
    auth: Auth
    limiter: RateLimiter
    pipeline: Pipeline
    dispatcher: Dispatcher | None
    silences: ActiveSilences
    counters: Counters
    more_counters: list[Counters] = field(default_factory=list)
    """Counters of parts that do not expose their own (redaction, store)."""
    started: float = field(default_factory=time.time)
    _stop: threading.Event = field(default_factory=threading.Event)
    _retention: threading.Thread | None = None
    reviews: ReviewStore | None = None
    """Review records and their sign-off (``reviews.sqlite``)."""
    overdue: OverdueWatch | None = None
    """The thread that raises the alerts of overdue reviews."""

    @classmethod
    def build(cls, config: Config, ruleset: RuleSet) -> Runtime:
        server = config.server
        directory = data_dir(server.data_dir)
        counters = Counters("server")
        store_counters = Counters("store")
        redaction_counters = Counters("redaction")
        store = SqliteStore(store_path(directory), counters=store_counters)
        tokens = TokenStore(directory / "tokens.sqlite")
        users = UserStore(directory / "users.sqlite")
        silences = ActiveSilences(lambda now: store.silences(active_at=now))
        baseline = BaselineStore(directory / "first-seen.sqlite")
        engine = Engine(ruleset, counters=Counters("engine"), baseline=baseline)
        dispatcher = (
            Dispatcher.from_config(config.alerting, data_dir=directory)
            if config.alerting.destinations
            else None
        )
        preparation = Preparation(
            ruleset,
            config.redaction,
            max_event_bytes=parse_size(server.limits.max_event_size),
            max_body=parse_size(server.limits.max_body),
            workers=server.worker_count(),
        )
        reviews = ReviewStore(
            review_path(directory),
            config.reviews.resolved(),
            alert_exists=lambda alert_id: store.get_alert(alert_id) is not None,
        )
        review_counters = Counters("review")
        overdue = (
            OverdueWatch(
                OverdueCheck(
                    reviews,
                    store,
                    dispatcher,
                    cluster=server.cluster,
                    silences=silences,
                    counters=review_counters,
                ),
                config.reviews.interval,
            )
            if config.reviews.overdue_alerts
            else None
        )
        pipeline = Pipeline(
            store,
            ruleset,
            engine,
            dispatcher,
            preparation=preparation,
            silences=silences,
            suppress_window=parse_duration(server.suppress),
            queue_events=server.limits.queue_events,
            counters=Counters("ingest"),
            redaction_counters=redaction_counters,
        )
        return cls(
            config=config,
            ruleset=ruleset,
            store=store,
            tokens=tokens,
            users=users,
            auth=Auth(tokens, Counters("auth")),
            limiter=RateLimiter(server.limits.requests_per_second),
            pipeline=pipeline,
            dispatcher=dispatcher,
            silences=silences,
            counters=counters,
            more_counters=[store_counters, redaction_counters, review_counters],
            reviews=reviews,
            overdue=overdue,
        )

    def start(self) -> None:
        tune_gc()
        if self.dispatcher is not None:
            self.dispatcher.start()
        self.pipeline.start()
        self._retention = threading.Thread(
            target=self._retain, name="k3watch-retention", daemon=True
        )
        self._retention.start()
        if self.overdue is not None:
            self.overdue.start()

    def stop(self) -> None:
        self._stop.set()
        if self.overdue is not None:
            self.overdue.stop()
        self.pipeline.stop()
        if self._retention is not None:
            self._retention.join(10)
        if self.dispatcher is not None:
            self.dispatcher.close()
        self.tokens.close()
        if self.reviews is not None:
            self.reviews.close()
        self.users.close()
        self.store.close()

    def retention_policy(self) -> RetentionPolicy:
        retention = self.config.server.retention
        return RetentionPolicy(
            max_age={k: parse_duration(v) for k, v in retention.max_age.items()},
            max_bytes=parse_size(retention.max_size) if retention.max_size else None,
        )

    def _retain(self) -> None:
        interval = parse_duration(self.config.server.retention.interval)
        policy = self.retention_policy()
        while not self._stop.wait(interval):
            try:
                result = self.store.apply_retention(policy, time.time())
            except Exception:
                log.exception("retention failed; will try again")
                self.counters.inc("retention_failed")
                continue
            if result.events_deleted:
                log.info(
                    "retention removed %d events in %d batches",
                    result.events_deleted,
                    result.batches_deleted,
                )
                self.counters.inc("retention_deleted", result.events_deleted)


def first_admin_token(tokens: TokenStore) -> str | None:
    """A new admin token when the server has none yet (shown once), else None."""
    if any(t.role is Role.ADMIN and not t.revoked for t in tokens.list()):
        return None
    _, secret = tokens.create(f"admin-{os.getpid()}", Role.ADMIN)
    return secret
