"""``k3watch scan``: the whole chain offline in one process (read → parse → rules → alerts)."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from k3watch.alert import Alert, Severity
from k3watch.alerting.suppress import Suppressor
from k3watch.errors import InputError, Location
from k3watch.parse.audit import AuditParser
from k3watch.rules.engine import Engine, EngineOptions
from k3watch.rules.firstseen import BaselineStore
from k3watch.rules.model import RuleSet
from k3watch.sources.files import InputFile, open_input, resolve_inputs
from k3watch.telemetry import Counters


@dataclass(frozen=True, slots=True)
class ScanOptions:
    """What ``k3watch scan`` can be told; the defaults are those of the CLI."""

    suppress_window: float = 600.0
    min_severity: Severity = Severity.INFORMATIONAL
    max_event_bytes: int = 4 * 1024 * 1024
    max_line_bytes: int = 256 * 1024 * 1024
    baseline: Path | None = None  # first-seen state file; in memory when None
    engine: EngineOptions = field(default_factory=EngineOptions)


@dataclass(slots=True)
class ScanResult:
    """What happened, for the summary line and the exit code."""

    inputs: int = 0
    inputs_read: int = 0
    events: int = 0
    bytes: int = 0
    parse_errors: dict[str, int] = field(default_factory=dict)
    alerts: dict[Severity, int] = field(default_factory=dict)
    alerts_below_threshold: int = 0
    seconds: float = 0.0
    highest: Severity | None = None

    @property
    def events_per_second(self) -> float:
        return self.events / self.seconds if self.seconds > 0 else 0.0


def scan(
    paths: Sequence[str],
    ruleset: RuleSet,
    options: ScanOptions,
    *,
    on_alert: Callable[[Alert], None],
    on_error: Callable[[InputError], None],
    on_inputs: Callable[[list[InputFile]], None] | None = None,
    on_progress: Callable[[int], None] | None = None,
    counters: Counters | None = None,
) -> ScanResult:
    """Scan ``paths`` with ``ruleset``; alerts at or above the threshold go to ``on_alert``."""
    counters = counters or Counters("scan")
    result = ScanResult()
    started = time.perf_counter()
    inputs = resolve_inputs(paths, on_error, counters)
    result.inputs = len(inputs)
    if on_inputs is not None:
        on_inputs(inputs)
    parser = AuditParser(
        counters,
        on_error,
        max_event_bytes=options.max_event_bytes,
        max_line_bytes=options.max_line_bytes,
    )
    baseline = BaselineStore(options.baseline)
    engine = Engine(ruleset, options.engine, counters=counters, baseline=baseline)
    suppressor = Suppressor(
        options.suppress_window, max_event_ids=options.engine.max_event_ids, counters=counters
    )

    def emit(alerts: Sequence[Alert]) -> None:
        for alert in alerts:
            result.alerts[alert.severity] = result.alerts.get(alert.severity, 0) + 1
            if alert.severity < options.min_severity:
                result.alerts_below_threshold += 1
                continue
            if result.highest is None or alert.severity > result.highest:
                result.highest = alert.severity
            on_alert(alert)

    def account(alerts: Sequence[Alert]) -> None:
        for alert in alerts:
            _, closed = suppressor.add(alert)
            if closed:
                emit(closed)

    events = 0
    try:
        for inp in inputs:
            try:
                stream = open_input(inp, on_progress)
            except InputError as exc:
                counters.inc("files_failed", reason=exc.reason)
                on_error(exc)
                continue
            result.inputs_read += 1
            try:
                with stream:
                    for event in parser.parse_stream(stream, inp.name):
                        events += 1
                        alerts = engine.process(event)
                        if alerts:
                            account(alerts)
                            emit(suppressor.expire(engine.clock))
                        elif not events & 4095:
                            emit(suppressor.expire(engine.clock))
            except (OSError, EOFError) as exc:  # a file that breaks while being read
                error = InputError(
                    f"read error, rest of file skipped: {exc}",
                    Location(inp.name),
                    reason="read_error",
                )
                counters.inc("files_failed", reason="read_error")
                on_error(error)
        account(engine.flush())
        emit(suppressor.drain())
    finally:
        baseline.close()
    result.events = events
    result.parse_errors = counters.by_reason("parse_errors")
    result.seconds = time.perf_counter() - started
    return result
