"""Errors that carry a location, so every message points at the file and line to fix."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Location:
    """Where something came from: a file (or ``<stdin>``), optionally a line and an item index.

    ``item`` is the position inside a batch (an ``EventList`` or JSON array) that started on
    ``line``.
    """

    source: str
    line: int | None = None
    item: int | None = None

    def __str__(self) -> str:
        text = self.source
        if self.line is not None:
            text += f":{self.line}"
        if self.item is not None:
            text += f"[{self.item}]"
        return text


class K3watchError(Exception):
    """Base error. ``str()`` is one line: ``location: message (hint)``."""

    def __init__(self, message: str, location: Location | None = None, hint: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.location = location
        self.hint = hint

    def __str__(self) -> str:
        text = f"{self.location}: {self.message}" if self.location else self.message
        if self.hint:
            text += f" ({self.hint})"
        return text


class InputError(K3watchError):
    """Input that cannot be read or parsed (the rest of the input is still processed).

    ``reason`` is a short machine name (``invalid_json``, ``not_an_event``…) used as the
    counter label in metrics and summaries.
    """

    def __init__(
        self,
        message: str,
        location: Location | None = None,
        hint: str = "",
        reason: str = "invalid",
    ) -> None:
        super().__init__(message, location, hint)
        self.reason = reason


class RuleError(K3watchError):
    """A rule that cannot be loaded or compiled (the other rules still load)."""


class UsageError(K3watchError):
    """Bad command-line usage or configuration."""
