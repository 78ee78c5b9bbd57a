"""What the agent tells about itself: ``/metrics`` (Prometheus text) and ``/healthz`` on a local
port, and its log lines (text, or one JSON object a line).

The metrics are read from the components' :class:`~k3watch.telemetry.Counters` when scraped:
each source's and parser's counters (label ``source``), the spool's, the forwarder's and the
agent's own, every one with its ``reason`` label; plus a summary of the path of events
(``k3watch_agent_events_total{stage="read|spooled|sent|acked"}``,
``k3watch_agent_events_dropped_total{reason}``) and gauges of the spool's backlog.
"""

from __future__ import annotations

import logging
import re
import socket
import sys
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import orjson
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from k3watch.agent.forward import Forwarder
from k3watch.agent.spool import Spool
from k3watch.event import format_time
from k3watch.server.config import listen_url, parse_listen
from k3watch.telemetry import Counters

_NAME = re.compile(r"[^a-zA-Z0-9_]")
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


@dataclass(frozen=True, slots=True)
class SourceTelemetry:
    """A source's name and counters (and its parser's, when it has one)."""

    name: str
    counters: Counters
    parser_counters: Counters | None = None


@dataclass(slots=True)
class Telemetry:
    """Everything the agent counts, for ``/metrics`` and ``/healthz``."""

    spool: Spool
    forwarder: Forwarder
    reader: Counters
    sources: list[SourceTelemetry] = field(default_factory=list)

    def dropped(self) -> dict[str, int]:
        """Events known to be lost, by reason, over every component."""
        out: dict[str, int] = {}
        sets = [self.reader, self.spool.counters, self.forwarder.counters]
        sets += [s.counters for s in self.sources]
        for counters in sets:
            for reason, value in counters.by_reason("dropped").items():
                out[reason] = out.get(reason, 0) + value
        return out

    def health(self) -> dict[str, Any]:
        forwarder = self.forwarder
        return {
            "status": "ok" if forwarder.alive else "stopped",
            "backlog_events": self.spool.backlog_events,
            "backlog_bytes": self.spool.backlog_bytes,
            "spool_bytes": self.spool.size,
            "last_success": format_time(forwarder.last_success) or None,
            "last_error": forwarder.last_error or None,
        }


class AgentCollector(Collector):
    """Every counter of the running agent, read when scraped."""

    def __init__(self, telemetry: Telemetry) -> None:
        self.telemetry = telemetry

    def collect(self) -> Iterator[CounterMetricFamily | GaugeMetricFamily]:
        t = self.telemetry
        families: dict[str, CounterMetricFamily] = {}
        for source in t.sources:
            for counters in (source.counters, source.parser_counters):
                if counters is not None:
                    _add(families, counters, (source.name,))
        for counters in (t.spool.counters, t.forwarder.counters, t.reader):
            _add(families, counters, ())
        yield from families.values()
        stages = CounterMetricFamily(
            "k3watch_agent_events", "Events by how far they got", labels=["stage"]
        )
        stages.add_metric(["read"], sum(s.counters.get("items") for s in t.sources))
        stages.add_metric(["spooled"], t.spool.counters.get("events"))
        stages.add_metric(["sent"], t.forwarder.counters.get("sent_events"))
        stages.add_metric(["acked"], t.spool.counters.get("acked_events"))
        yield stages
        dropped = CounterMetricFamily(
            "k3watch_agent_events_dropped", "Events known to be lost, by reason", labels=["reason"]
        )
        for reason, value in sorted(t.dropped().items()):
            dropped.add_metric([reason], value)
        yield dropped
        spool = t.spool
        yield GaugeMetricFamily("k3watch_agent_spool_size_bytes", "Bytes in the spool", spool.size)
        yield GaugeMetricFamily(
            "k3watch_agent_spool_backlog_bytes", "Bytes not acknowledged", spool.backlog_bytes
        )
        yield GaugeMetricFamily(
            "k3watch_agent_spool_backlog_events",
            "Events in the spool not acknowledged by the server",
            spool.backlog_events,
        )
        yield GaugeMetricFamily(
            "k3watch_agent_spool_backlog_batches",
            "Batches in the spool not acknowledged by the server",
            spool.backlog_frames,
        )
        yield GaugeMetricFamily(
            "k3watch_agent_last_success_timestamp_seconds",
            "When the server last stored a batch (0: not yet)",
            t.forwarder.last_success or 0.0,
        )


def _add(
    families: dict[str, CounterMetricFamily], counters: Counters, source: Sequence[str]
) -> None:
    labels = ["source", "reason"] if source else ["reason"]
    for (name, reason), value in sorted(counters._values.items()):
        metric = _NAME.sub("_", f"k3watch_agent_{counters.component}_{name}")
        family = families.get(metric)
        if family is None:
            family = families[metric] = CounterMetricFamily(
                metric, f"{counters.component}: {name.replace('_', ' ')}", labels=labels
            )
        family.add_metric([*source, reason], value)


def render(telemetry: Telemetry) -> bytes:
    """The Prometheus text exposition of everything the agent counts."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(AgentCollector(telemetry))
    return generate_latest(registry)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False

    def __init__(self, address: tuple[str, int], telemetry: Telemetry) -> None:
        self.telemetry = telemetry
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        super().__init__(address, _Handler)


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0]
        telemetry = self.server.telemetry
        if path == "/metrics":
            self._send(200, render(telemetry), CONTENT_TYPE)
        elif path == "/healthz":
            health = telemetry.health()
            status = 200 if health["status"] == "ok" else 503
            self._send(status, orjson.dumps(health), "application/json")
        else:
            self._send(404, b'{"detail":"GET /metrics or /healthz"}', "application/json")

    def _send(self, status: int, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass  # scrapes are not worth a log line each


class MetricsServer:
    """``/metrics`` and ``/healthz`` on ``listen`` (``host:port``; port 0 picks one)."""

    def __init__(self, listen: str, telemetry: Telemetry) -> None:
        host, port = parse_listen(listen)
        self._server = _Server((host, port), telemetry)
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(0.2,), name="k3watch-metrics", daemon=True
        )

    @property
    def address(self) -> tuple[str, int]:
        host, port = self._server.server_address[:2]
        return str(host), int(port)

    @property
    def url(self) -> str:
        host, port = self.address
        return listen_url("http", host, port)

    def start(self) -> MetricsServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)


# -- logs ----------------------------------------------------------------------------------------


class JsonFormatter(logging.Formatter):
    """One JSON object a line: ``time``, ``level``, ``logger``, ``message``, and the record's
    ``fields`` (passed as ``extra={"fields": {...}}``)."""

    def format(self, record: logging.LogRecord) -> str:
        obj: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, tz=UTC).isoformat(
                timespec="milliseconds"
            ),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            for key, value in fields.items():
                obj.setdefault(str(key), value)
        if record.exc_info:
            obj["exception"] = self.formatException(record.exc_info)
        return orjson.dumps(obj, default=str).decode()


TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def setup_logging(
    log_format: str = "text", level: int = logging.INFO, stream: Any = None
) -> logging.Handler:
    """Send the ``k3watch`` loggers' records to ``stream`` (stderr) as text or JSON lines."""
    handler = logging.StreamHandler(stream or sys.stderr)
    formatter: logging.Formatter = (
        JsonFormatter() if log_format == "json" else logging.Formatter(TEXT_FORMAT)
    )
    handler.setFormatter(formatter)
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    for noisy in ("httpx", "httpcore"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    return handler
