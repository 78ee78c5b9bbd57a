"""The normalized Event: the raw audit object plus typed accessors (no I/O here).

Rules evaluate the raw object (``Event.raw``) so that every field of the source format stays
reachable; the accessors give the rest of the code typed access to the common fields of an
``audit.k8s.io`` event (``v1`` and ``v1beta1``).
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from datetime import UTC, datetime
from functools import lru_cache, wraps
from typing import Any, cast
from urllib.parse import parse_qsl, urlsplit

import msgspec
import orjson

DECISION_ANNOTATION = "authorization.k8s.io/decision"
REASON_ANNOTATION = "authorization.k8s.io/reason"

# Timestamp fields in order of preference: when the request arrived, then when this stage was
# written, then the v1beta1 field (some events carry only that one).
# Audit events (v1, then v1beta1), then normalized component-log records (``k3watch.log/v1``).
TIME_FIELDS = ("requestReceivedTimestamp", "stageTimestamp", "timestamp", "time")


# Midnight (UTC, epoch seconds) of the dates seen, so most timestamps parse without datetime.
_MIDNIGHTS: dict[str, float] = {}


def parse_time(value: object) -> float | None:
    """Parse an RFC 3339 timestamp (or epoch seconds) into epoch seconds; ``None`` if invalid."""
    if isinstance(value, str):
        fast = _parse_utc(value)
        if fast is not None:
            return fast
        try:
            return datetime.fromisoformat(value).timestamp()
        except ValueError:
            return _parse_time_slow(value)
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    return None


def _parse_utc(value: str) -> float | None:
    """The API server's own form, ``2026-03-02T10:04:05.123456Z``, parsed without datetime."""
    if len(value) < 20 or value[-1] != "Z" or value[10] != "T" or value[13] != ":":
        return None
    clock, fraction = value[11:19], value[19:-1]
    if value[16] != ":" or not clock.replace(":", "").isdigit():
        return None
    if fraction and (fraction[0] != "." or not fraction[1:].isdigit()):
        return None
    midnight = _MIDNIGHTS.get(value[:10])
    if midnight is None:
        try:
            midnight = datetime.fromisoformat(value[:10]).replace(tzinfo=UTC).timestamp()
        except ValueError:
            return None
        if len(_MIDNIGHTS) > 4096:
            _MIDNIGHTS.clear()
        _MIDNIGHTS[value[:10]] = midnight
    hours, minutes, seconds = int(clock[0:2]), int(clock[3:5]), int(clock[6:8])
    if hours > 23 or minutes > 59 or seconds > 60:
        return None
    return midnight + hours * 3600 + minutes * 60 + seconds + (float(fraction) if fraction else 0.0)


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
    return tuple(
        value for key, value in parse_qsl(query, keep_blank_values=True) if key == "command"
    )


@lru_cache(maxsize=4096)
def _query_values(request_uri: str, name: str) -> tuple[str, ...]:
    query = urlsplit(request_uri).query
    return tuple(value for key, value in parse_qsl(query, keep_blank_values=True) if key == name)


def _derived_exec_command(raw: dict[str, Any]) -> str | None:
    uri = raw.get("requestURI")
    if not isinstance(uri, str) or "command=" not in uri:
        return None
    argv = exec_argv(uri)  # empty when "command=" was part of another name (subcommand=)
    return " ".join(argv) if argv else None


def _derived_exec_argv(raw: dict[str, Any]) -> list[str] | None:
    uri = raw.get("requestURI")
    if not isinstance(uri, str) or "command=" not in uri:
        return None
    argv = exec_argv(uri)
    return list(argv) if argv else None


def _derived_exec_container(raw: dict[str, Any]) -> str | None:
    uri = raw.get("requestURI")
    if not isinstance(uri, str) or "container=" not in uri:
        return None
    values = _query_values(uri, "container")
    return values[0] if values else None


# Where the pod spec sits in a request body, by resource: a Pod, a workload's pod template, a
# CronJob's job template. `k3watch.pod.spec` finds it, so one rule covers every way to run a pod.
WORKLOAD_RESOURCES = frozenset(
    {"deployments", "daemonsets", "statefulsets", "replicasets", "jobs", "replicationcontrollers"}
)


def _per_event(compute: Callable[[dict[str, Any]], Any]) -> Callable[[dict[str, Any]], Any]:
    """Remember the value for the last event: several tests of several rules read the same
    derived field of one event in a row. (One tuple, so a reader never sees half an update.)"""
    last: list[tuple[object, Any]] = [(None, None)]

    @wraps(compute)
    def cached(raw: dict[str, Any]) -> Any:
        event, value = last[0]
        if event is raw:
            return value
        value = compute(raw)
        last[0] = (raw, value)
        return value

    return cached


@_per_event
def _derived_pod_spec(raw: dict[str, Any]) -> dict[str, Any] | None:
    body = raw.get("requestObject")
    if not isinstance(body, dict):
        return None
    spec = body.get("spec")
    if not isinstance(spec, dict):
        return None
    resource = _sub(raw, "objectRef", "resource")
    if resource == "pods":
        return spec
    if resource == "cronjobs":
        spec = _sub(spec, "jobTemplate", "spec")
        if not isinstance(spec, dict):
            return None
    elif resource not in WORKLOAD_RESOURCES:
        return None
    template = _sub(spec, "template", "spec")
    return template if isinstance(template, dict) else None


@_per_event
def _derived_pod_containers(raw: dict[str, Any]) -> list[Any] | None:
    spec = _derived_pod_spec(raw)
    if spec is None:
        return None
    out: list[Any] = []
    for name in ("containers", "initContainers", "ephemeralContainers"):
        items = spec.get(name)
        if isinstance(items, list):
            out.extend(items)
    return out or None


def _derived_object_name(raw: dict[str, Any]) -> str | None:
    """The object's name; for a create, from the request body, as ``objectRef`` has none when
    the server generates the name (``generateName``, e.g. every pod of a controller)."""
    name = _sub(raw, "objectRef", "name")
    if isinstance(name, str) and name:
        return name
    metadata = _sub(raw, "requestObject", "metadata")
    if isinstance(metadata, dict):
        found = metadata.get("name") or metadata.get("generateName")
        if isinstance(found, str):
            return found
    return None


@lru_cache(maxsize=256)
def _csr_subject(request: str) -> dict[str, Any] | None:
    """Subject and requested names of a PEM certificate signing request (base64 in the API)."""
    from cryptography import x509
    from cryptography.x509.oid import NameOID

    try:
        pem = base64.b64decode(request, validate=False)
        csr = x509.load_pem_x509_csr(pem)
    except (ValueError, TypeError):
        return None
    subject = csr.subject
    out: dict[str, Any] = {
        "commonName": ",".join(
            str(a.value) for a in subject.get_attributes_for_oid(NameOID.COMMON_NAME)
        ),
        "organizations": [
            str(a.value) for a in subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)
        ],
    }
    try:
        names = csr.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        out["dnsNames"] = names.get_values_for_type(x509.DNSName)
        out["ipAddresses"] = [str(ip) for ip in names.get_values_for_type(x509.IPAddress)]
    except (x509.ExtensionNotFound, ValueError):
        out["dnsNames"] = []
        out["ipAddresses"] = []
    return out


def _derived_csr(raw: dict[str, Any]) -> dict[str, Any] | None:
    spec = _sub(raw, "requestObject", "spec")
    request = spec.get("request") if isinstance(spec, dict) else None
    if (
        not isinstance(request, str)
        or _sub(raw, "objectRef", "resource") != "certificatesigningrequests"
    ):
        return None
    return _csr_subject(request)


# Fields computed from the event rather than read from it. Rules use them like any other field
# (a path may continue below a derived field: `k3watch.pod.spec.hostPID`); docs/rules.md lists
# them.
DERIVED_FIELDS: dict[str, Callable[[dict[str, Any]], Any]] = {
    "k3watch.exec.command": _derived_exec_command,
    "k3watch.exec.argv": _derived_exec_argv,
    "k3watch.exec.container": _derived_exec_container,
    "k3watch.object.name": _derived_object_name,
    "k3watch.csr": _derived_csr,
    "k3watch.pod.spec": _derived_pod_spec,
    "k3watch.pod.containers": _derived_pod_containers,
}


def _sub(raw: dict[str, Any], outer: str, inner: str) -> Any:
    value = raw.get(outer)
    if isinstance(value, dict):
        return value.get(inner)
    return None


def _text(value: object) -> str | None:
    return value if isinstance(value, str) else None


_DECODE_WIDE = msgspec.json.Decoder(float_hook=float).decode


def _decode(data: bytes) -> dict[str, Any]:
    try:
        return cast(dict[str, Any], orjson.loads(data))
    except orjson.JSONDecodeError:
        # A number beyond a double's range: orjson refuses it, the check that let the line
        # through (msgspec) reads it as infinity. Read it the same way here.
        return cast(dict[str, Any], _DECODE_WIDE(data))


class Event:
    """One audit event: the raw object, where it came from, and typed accessors.

    ``truncated`` is set when the event was larger than the configured maximum and its request
    and response bodies were dropped (the metadata is kept, so metadata rules still work).
    """

    __slots__ = (
        "_raw",
        "_time",
        "_timed",
        "data",
        "item",
        "line",
        "offset",
        "source",
        "truncated",
    )

    def __init__(
        self,
        raw: dict[str, Any] | None,
        source: str = "",
        line: int = 0,
        item: int | None = None,
        truncated: bool = False,
        data: bytes | None = None,
        offset: int | None = None,
    ) -> None:
        self._raw = raw
        self.source = source
        self.line = line
        self.offset = offset
        """Where the record starts in its input, in bytes (component logs; the line says which
        line)."""
        self.item = item
        self.truncated = truncated
        self.data = data
        """The JSON text ``raw`` was read from, when it was one line of its own (the server
        stores it as it came instead of encoding the event again, unless redaction changed
        the event)."""
        self._time: float | None = None
        self._timed = False  # the time is parsed on first use, then kept

    @classmethod
    def unparsed(cls, data: bytes, source: str, line: int, time: float | None) -> Event:
        """An event read from the JSON line ``data`` (already checked to be one object), whose
        ``raw`` is decoded only when first used: a node agent that forwards the line as it
        is never builds the objects."""
        event = cls(None, source, line, data=data)
        event._time, event._timed = time, True
        return event

    @property
    def raw(self) -> dict[str, Any]:
        raw = self._raw
        if raw is None:
            raw = self._raw = _decode(self.data or b"{}")
        return raw

    @raw.setter
    def raw(self, value: dict[str, Any]) -> None:
        self._raw = value

    def __repr__(self) -> str:
        return f"Event({self.location}, {self.verb} {self.resource} by {self.user})"

    @property
    def location(self) -> str:
        text = f"{self.source}:{self.line}"
        return f"{text}[{self.item}]" if self.item is not None else text

    @property
    def time(self) -> float | None:
        """Event time in epoch seconds (request received, else stage, else v1beta1 timestamp)."""
        if self._timed:
            return self._time
        found = None
        raw = self.raw
        for name in TIME_FIELDS:
            value = raw.get(name)
            if value is not None:
                found = parse_time(value)
                if found is not None:
                    break
        self._time = found
        self._timed = True
        return found

    @property
    def audit_id(self) -> str | None:
        return _text(self.raw.get("auditID"))

    @property
    def id(self) -> str:
        """A stable identifier: the ``auditID``, a log record's ``_key``, else the location."""
        if self.audit_id:
            return self.audit_id
        key = self.raw.get("_key")
        return key if isinstance(key, str) and key else self.location

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

    def describe(self) -> str:
        """One human sentence: who did what to which object from where, and the outcome."""
        who = self.user or ("an unauthenticated client" if self.status_code == 401 else "someone")
        if self.impersonated_user:
            who += f" (as {self.impersonated_user})"
        return f"{who} {self._action()}{self._origin()}{self._outcome()}"

    def _action(self) -> str:
        resource, sub = self.resource, self.subresource
        target = "/".join(p for p in (self.namespace, _derived_object_name(self.raw)) if p)
        if resource == "pods" and sub in ("exec", "attach"):
            command = self.exec_command
            if command:
                return f"ran `{_shorten(command, 100)}` in pod {target}"
            return f"attached to pod {target}"
        verb = self.verb or "requested"
        if resource is None:
            return f"{_PAST.get(verb, verb)} {_shorten(self.request_uri or '?', 100)}"
        kind = f"{resource}/{sub}" if sub else resource
        return f"{_PAST.get(verb, verb)} {kind} {target}".rstrip()

    def _origin(self) -> str:
        ip = self.source_ip
        return f" from {ip}" if ip else ""

    def _outcome(self) -> str:
        code = self.status_code
        if code is not None and code >= 400:
            return f" (denied, {code})" if code in (401, 403) else f" (failed, {code})"
        if self.decision == "forbid":
            return " (forbidden)"
        return ""


_PAST = {
    "create": "created",
    "get": "read",
    "list": "listed",
    "watch": "watched",
    "update": "updated",
    "patch": "patched",
    "delete": "deleted",
    "deletecollection": "deleted all",
    "impersonate": "impersonated",
    "approve": "approved",
    "bind": "bound",
    "escalate": "escalated",
}


def _shorten(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
