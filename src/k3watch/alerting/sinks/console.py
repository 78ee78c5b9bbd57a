"""A table of alerts for a terminal (rich), printed when the scan ends."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table
from rich.text import Text

from k3watch.alert import Alert, Severity
from k3watch.event import format_time
from k3watch.telemetry import Counters

SEVERITY_STYLES = {
    Severity.INFORMATIONAL: "dim",
    Severity.LOW: "cyan",
    Severity.MEDIUM: "yellow",
    Severity.HIGH: "bold red",
    Severity.CRITICAL: "bold white on red",
}


class TableSink:
    """Collects alerts and prints them as one table, oldest first."""

    def __init__(self, console: Console, counters: Counters | None = None) -> None:
        self.console = console
        self.counters = counters or Counters("sink_table")
        self.alerts: list[Alert] = []

    def emit(self, alert: Alert) -> None:
        self.alerts.append(alert)
        self.counters.inc("sent")

    def close(self) -> None:
        if not self.alerts:
            self.console.print("No alerts.")
            return
        table = Table(title=f"{len(self.alerts)} alerts", expand=True, show_lines=True)
        table.add_column("First seen (UTC)", no_wrap=True, max_width=16)
        table.add_column("Severity", no_wrap=True)
        table.add_column("Alert", ratio=1)
        table.add_column("Count", justify="right", no_wrap=True)
        for alert in sorted(self.alerts, key=lambda a: (a.first_seen or 0.0, -a.severity)):
            text = Text(alert.title, style="bold")
            text.append("\n" + alert.summary, style="default")
            table.add_row(
                format_time(alert.first_seen)[:16].replace("T", " "),
                Text(alert.severity.label, style=SEVERITY_STYLES[alert.severity]),
                text,
                str(alert.count),
            )
        self.console.print(table)
