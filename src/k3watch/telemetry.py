"""Counters every component keeps: what it received, emitted, dropped (with a reason), failed.

The server exposes them at ``/metrics``; ``k3watch scan`` prints a summary.
"""

from __future__ import annotations


class Counters:
    """A named set of monotonic counters, each optionally split by a reason label."""

    __slots__ = ("_values", "component")

    def __init__(self, component: str) -> None:
        self.component = component
        # (name, reason or "") → count; tuples are cheaper than formatted names on hot paths.
        # A plain dict: readers parse several counts a line, and ``get`` on a dict is about
        # twice as fast as ``+=`` on a ``Counter`` (a dict subclass, which slows subscripts).
        self._values: dict[tuple[str, str], int] = {}

    def inc(self, name: str, amount: int = 1, reason: str | None = None) -> None:
        key = (name, reason or "")
        values = self._values
        values[key] = values.get(key, 0) + amount

    def get(self, name: str, reason: str | None = None) -> int:
        return self._values.get((name, reason or ""), 0)

    def total(self, name: str) -> int:
        """The counter summed over all reasons."""
        return sum(v for (n, _), v in self._values.items() if n == name)

    def by_reason(self, name: str) -> dict[str, int]:
        return {r: v for (n, r), v in sorted(self._values.items()) if n == name and r}

    def items(self) -> list[tuple[str, str, int]]:
        """Every counter as (name, reason or "", value), sorted (for exporters)."""
        return [(name, reason, value) for (name, reason), value in sorted(self._values.items())]

    def drain(self) -> list[tuple[str, str, int]]:
        """Every counter as in ``items``, then zero them all (to hand increments elsewhere)."""
        out = self.items()
        self._values.clear()
        return out

    def add(self, items: list[tuple[str, str, int]]) -> None:
        """Add increments taken from another ``Counters`` (``drain``)."""
        values = self._values
        for name, reason, value in items:
            values[name, reason] = values.get((name, reason), 0) + value

    def snapshot(self) -> dict[str, int]:
        """Every counter as ``component_name`` or ``component_name{reason}``."""
        return {
            f"{self.component}_{name}" + (f"{{{reason}}}" if reason else ""): value
            for (name, reason), value in sorted(self._values.items())
        }
