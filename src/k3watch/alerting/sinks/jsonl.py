"""JSON lines: one alert object per line, the contract other tools consume."""

from __future__ import annotations

from typing import BinaryIO

import orjson

from k3watch.alert import Alert
from k3watch.telemetry import Counters


class JsonLinesSink:
    """Writes each alert as soon as it is final, flushing so pipes see it immediately."""

    def __init__(self, stream: BinaryIO, counters: Counters | None = None) -> None:
        self.stream = stream
        self.counters = counters or Counters("sink_jsonl")

    def emit(self, alert: Alert) -> None:
        self.stream.write(orjson.dumps(alert.to_dict()) + b"\n")
        self.stream.flush()
        self.counters.inc("sent")

    def close(self) -> None:
        self.stream.flush()
