"""Where alerts go. Every sink implements ``Sink`` and counts what it sent and failed."""

from __future__ import annotations

from typing import Protocol

from k3watch.alert import Alert


class Sink(Protocol):
    """A destination for closed (de-duplicated) alerts."""

    def emit(self, alert: Alert) -> None: ...

    def close(self) -> None: ...
