"""A finding about an audit policy: what the API server rejects, and what lint warns about.

The parser (``policy.model``) and the linter (``policy.lint``) report the same type, so a tool
that checks a policy (``k3watch policy lint``, ``k3watch k3s check``) prints one list.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

SEVERITIES = ("error", "warning", "info")
_ORDER = {name: i for i, name in enumerate(SEVERITIES)}


@dataclass(frozen=True, slots=True)
class PolicyFinding:
    """One problem in a policy file.

    ``severity``: ``error`` (the API server refuses the policy, or it leaks secrets or leaves
    requests unlogged), ``warning`` (a known mistake) or ``info``. ``code`` is a stable machine
    name (``group-version``, ``leaks-secrets``…). ``rule`` is the 0-based index of the policy
    rule concerned (``rules[2]``, as the API server counts), ``None`` for the whole policy;
    ``line`` is 1-based. ``fix`` says what to change.
    """

    severity: str
    code: str
    message: str
    source: str
    line: int | None = None
    rule: int | None = None
    fix: str = ""

    def __str__(self) -> str:
        where = f"{self.source}:{self.line}" if self.line is not None else self.source
        what = f"rules[{self.rule}]: " if self.rule is not None else ""
        text = f"{where}: {self.severity}: {what}{self.message} [{self.code}]"
        if self.fix:
            text += f" (fix: {self.fix})"
        return text

    @property
    def sort_key(self) -> tuple[int, int, int]:
        return (
            self.line or 0,
            _ORDER.get(self.severity, 3),
            -1 if self.rule is None else self.rule,
        )

    def to_dict(self) -> dict[str, Any]:
        """The finding as JSON-able data (``policy lint --format json``)."""
        return {
            "severity": self.severity,
            "code": self.code,
            "message": self.message,
            "source": self.source,
            "line": self.line,
            "rule": self.rule,
            "fix": self.fix,
        }


def has_errors(findings: list[PolicyFinding]) -> bool:
    return any(f.severity == "error" for f in findings)
