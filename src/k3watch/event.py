"""The normalized Event: the raw audit object plus typed accessors (no I/O here).

Rules evaluate the raw object (``Event.raw``) so that every field of the source format stays
reachable; the accessors give the rest of the code typed access to the common fields of an
``audit.k8s.io`` event (``v1`` and ``v1beta1``).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any
from urllib.parse import parse_qsl, urlsplit

DECISION_ANNOTATION = "authorization.k8s.io/decision"
REASON_ANNOTATION = "authorization.k8s.io/reason"

# Timestamp fields in order of preference: when the request arrived, then when this stage was
# written, then the v1beta1 field (some events carry only that one).
_TIME_FIELDS = ("requestReceivedTimestamp", "stageTimestamp", "timestamp")


def parse_time(value: object) -> float | None:
    """Parse an RFC 3339 timestamp (or epoch seconds) into epoch seconds; ``None`` if invalid."""
    if isinstance(value, str):
        try:
            return datetime.fromisoformat(value).timestamp()
        except ValueError:
            return _parse_time_slow(value)
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    return None


def _parse_time_slow(value: str) -> float | None:
    # Nanosecond fractions ("…05.123456789Z") are valid RFC 3339 but too long for datetime.
    head, dot, rest = value.partition(".")
    if not dot:
        return None
    digits = len(rest) - len(rest.lstrip("0123456789"))
    if digits <= 6:
        return None
    try:
        return datetime.fromisoformat(f"{head}.{rest[:6]}{rest[digits:]}").timestamp()
    except ValueError:
        return None


def format_time(epoch: float | None) -> str:
    """Epoch seconds as an RFC 3339 UTC timestamp with microseconds."""
    if epoch is None:
        return ""
    return datetime.fromtimestamp(epoch, tz=UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@lru_cache(maxsize=4096)
def exec_argv(request_uri: str) -> tuple[str, ...]:
    """The command of an exec/attach request, decoded from its ``command=`` query parameters.

    ``/api/v1/namespaces/d/pods/p/exec?command=sh&command=-c&command=id`` → ``("sh", "-c", "id")``.
    """
    query = urlsplit(request_uri).query
    if "command=" not in query:
        return ()
    return tuple(value for key, value in parse_qsl(query, keep_blank_values=True) if key == "command")


@lru_cache(maxsize=4096)
def _query_values(request_uri: str, name: str) -> tuple[str, ...]:
    query = urlsplit(request_uri).query
    return tuple(value for key, value in parse_qsl(query, keep_blank_values=True) if key == name)


def _derived_exec_command(raw: dict[str, Any]) -> str | None:
    uri = raw.get("requestURI")
    if not isinstance(uri, str) or "command=" not in uri:
        return None
    return " ".join(exec_argv(uri))


def _derived_exec_argv(raw: dict[str, Any]) -> list[str] | None:
    uri = raw.get("requestURI")
    if not isinstance(uri, str) or "command=" not in uri:
        return None
    return list(exec_argv(uri))


def _derived_exec_container(raw: dict[str, Any]) -> str | None:
    uri = raw.get("requestURI")
    if not isinstance(uri, str) or "container=" not in uri:
        return None
    values = _query_values(uri, "container")
    return values[0] if values else None


# Fields computed from the event rather than read from it. Rules use them like any other field;
# they are documented in docs/rules.md.
DERIVED_FIELDS: dict[str, Callable[[dict[str, Any]], Any]] = {
    "k3watch.exec.command": _derived_exec_command,
    "k3watch.exec.argv": _derived_exec_argv,
    "k3watch.exec.container": _derived_exec_container,
}


def _sub(raw: dict[str, Any], outer: str, inner: str) -> Any:
    value = raw.get(outer)
    if isinstance(value, dict):
        return value.get(inner)
    return None


def _text(value: object) -> str | None:
    return value if isinstance(value, str) else None


class Event:
    """One audit event: the raw object, where it came from, and typed accessors.

    ``truncated`` is set when the event was larger than the configured maximum and its request
    and response bodies were dropped (the metadata is kept, so metadata rules still work).
    """

    __slots__ = ("_time", "item", "line", "raw", "source", "truncated")

    def __init__(
        self,
        raw: dict[str, Any],
        source: str = "",
        line: int = 0,
        item: int | None = None,
        truncated: bool = False,
    ) -> None:
        self.raw = raw
        self.source = source
        self.line = line
        self.item = item
        self.truncated = truncated
        self._time: float | None | bool = False  # False: not parsed yet

    def __repr__(self) -> str:
        return f"Event({self.location}, {self.verb} {self.resource} by {self.user})"

    @property
    def location(self) -> str:
        text = f"{self.source}:{self.line}"
        return f"{text}[{self.item}]" if self.item is not None else text

    @property
    def time(self) -> float | None:
        """Event time in epoch seconds (request received, else stage, else v1beta1 timestamp)."""
        cached = self._time
        if cached is False:
            cached = None
            raw = self.raw
            for name in _TIME_FIELDS:
                value = raw.get(name)
                if value is not None:
                    cached = parse_time(value)
                    if cached is not None:
                        break
            self._time = cached
        return cached  # type: ignore[return-value]

    @property
    def audit_id(self) -> str | None:
        return _text(self.raw.get("auditID"))

    @property
    def id(self) -> str:
        """A stable identifier: the ``auditID`` (or the location when there is none)."""
        return self.audit_id or self.location

    @property
    def stage(self) -> str | None:
        return _text(self.raw.get("stage"))

    @property
    def level(self) -> str | None:
        return _text(self.raw.get("level"))

    @property
    def verb(self) -> str | None:
        return _text(self.raw.get("verb"))

    @property
    def request_uri(self) -> str | None:
        return _text(self.raw.get("requestURI"))

    @property
    def user(self) -> str | None:
        return _text(_sub(self.raw, "user", "username"))

    @property
    def groups(self) -> list[str]:
        groups = _sub(self.raw, "user", "groups")
        return [g for g in groups if isinstance(g, str)] if isinstance(groups, list) else []

    @property
    def impersonated_user(self) -> str | None:
        return _text(_sub(self.raw, "impersonatedUser", "username"))

    @property
    def user_agent(self) -> str | None:
        return _text(self.raw.get("userAgent"))

    @property
    def source_ips(self) -> list[str]:
        ips = self.raw.get("sourceIPs")
        return [ip for ip in ips if isinstance(ip, str)] if isinstance(ips, list) else []

    @property
    def source_ip(self) -> str | None:
        """The client address (the first of ``sourceIPs``; later ones are proxies)."""
        ips = self.source_ips
        return ips[0] if ips else None

    @property
    def resource(self) -> str | None:
        return _text(_sub(self.raw, "objectRef", "resource"))

    @property
    def subresource(self) -> str | None:
        return _text(_sub(self.raw, "objectRef", "subresource"))

    @property
    def api_group(self) -> str | None:
        return _text(_sub(self.raw, "objectRef", "apiGroup"))

    @property
    def namespace(self) -> str | None:
        return _text(_sub(self.raw, "objectRef", "namespace"))

    @property
    def name(self) -> str | None:
        return _text(_sub(self.raw, "objectRef", "name"))

    @property
    def decision(self) -> str | None:
        """The authorization decision annotation (``allow`` / ``forbid``), when recorded."""
        return _text(_sub(self.raw, "annotations", DECISION_ANNOTATION))

    @property
    def status_code(self) -> int | None:
        code = _sub(self.raw, "responseStatus", "code")
        return code if isinstance(code, int) and not isinstance(code, bool) else None

    @property
    def exec_command(self) -> str | None:
        """The decoded command of an exec/attach request (``sh -c cat /etc/shadow``)."""
        return _derived_exec_command(self.raw)
