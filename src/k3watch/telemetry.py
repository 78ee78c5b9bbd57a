"""Counters every component keeps: what it received, emitted, dropped (with a reason), failed.

The server exposes them at ``/metrics``; ``k3watch scan`` prints a summary.
"""

from __future__ import annotations

from collections import Counter


class Counters:
    """A named set of monotonic counters, keyed by ``name`` or ``name{reason}``."""

    __slots__ = ("_values", "component")

    def __init__(self, component: str) -> None:
        self.component = component
        self._values: Counter[str] = Counter()

    def inc(self, name: str, amount: int = 1, reason: str | None = None) -> None:
        key = f"{name}{{{reason}}}" if reason else name
        self._values[key] += amount

    def get(self, name: str, reason: str | None = None) -> int:
        key = f"{name}{{{reason}}}" if reason else name
        return self._values.get(key, 0)

    def total(self, name: str) -> int:
        """The counter summed over all reasons."""
        prefix = name + "{"
        return sum(v for k, v in self._values.items() if k == name or k.startswith(prefix))

    def by_reason(self, name: str) -> dict[str, int]:
        prefix = name + "{"
        return {
            k[len(prefix) : -1]: v for k, v in sorted(self._values.items()) if k.startswith(prefix)
        }

    def snapshot(self) -> dict[str, int]:
        return {f"{self.component}_{k}": v for k, v in sorted(self._values.items())}
