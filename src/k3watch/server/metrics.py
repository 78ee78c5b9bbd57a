"""Prometheus metrics at ``/metrics``: read from the components' counters when scraped, so the
hot path only increments plain integers."""

from __future__ import annotations

import re
from collections.abc import Iterator

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from k3watch.server.runtime import Runtime
from k3watch.telemetry import Counters

_NAME = re.compile(r"[^a-zA-Z0-9_]")


class RuntimeCollector(Collector):
    """Every counter of the running server, with ``reason`` as a label."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime

    def collect(self) -> Iterator[CounterMetricFamily | GaugeMetricFamily]:
        runtime = self.runtime
        pipeline = runtime.pipeline
        sets: list[Counters] = [
            pipeline.counters,
            pipeline.engine.counters,
            pipeline.suppressor.counters,
            runtime.auth.counters,
            runtime.counters,
            *runtime.more_counters,
        ]
        if runtime.dispatcher is not None:
            sets.append(runtime.dispatcher.counters)
            sets.append(runtime.dispatcher.outbox.counters)
            sets.extend(t.destination.counters for t in runtime.dispatcher.targets)
        families: dict[str, CounterMetricFamily] = {}
        for counters in sets:
            for name, reason, value in counters.items():
                metric = _NAME.sub("_", f"k3watch_{counters.component}_{name}")
                family = families.get(metric)
                if family is None:
                    family = families[metric] = CounterMetricFamily(
                        metric, f"{counters.component}: {name.replace('_', ' ')}", labels=["reason"]
                    )
                family.add_metric([reason], value)
        yield from families.values()
        yield GaugeMetricFamily(
            "k3watch_ingest_queue_events", "Events waiting for detection", pipeline.queued_events
        )
        yield CounterMetricFamily(
            "k3watch_rule_evaluation_seconds",
            "Time spent evaluating rules on ingested events",
            pipeline.detect_seconds,
        )
        alerts = CounterMetricFamily(
            "k3watch_alerts", "Alerts raised, by rule and severity", labels=["rule_id", "severity"]
        )
        for (rule_id, severity), count in sorted(pipeline.alerts_by_rule.items()):
            alerts.add_metric([rule_id, severity], count)
        yield alerts
        if runtime.dispatcher is not None:
            pending = GaugeMetricFamily(
                "k3watch_outbox_pending", "Notifications waiting", labels=["destination"]
            )
            for target in runtime.dispatcher.targets:
                name = target.destination.name
                pending.add_metric([name], runtime.dispatcher.outbox.pending(name))
            yield pending


def render(runtime: Runtime) -> bytes:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(RuntimeCollector(runtime))
    return generate_latest(registry)
