"""Audit event records: one API request in, one or two ``audit.k8s.io/v1`` events out.

The shapes follow what kube-apiserver writes (compare ../shared/corpus/openshift-clo-audit and
falco-k8s-audit-traces): key order, ``responseStatus`` with an empty ``metadata``, Failure
statuses with message/reason/details, the two authorization annotations, ``objectRef`` filled
from the request path (and from ``fieldSelector=metadata.name=`` on lists and watches).

The audit policy assumed is a sane K3s one: the ``RequestReceived`` stage is omitted; reads,
secrets, configmaps, events, token and review requests are logged at ``Metadata``; other
writes at ``Request``; RBAC and admission-webhook writes at ``RequestResponse``. Long-running
requests (watch, exec, attach, port-forward) get a ``ResponseStarted`` event and a
``ResponseComplete`` event with the same ``auditID``.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any
from urllib.parse import quote

from k3watch.sample.cluster import Actor, new_uuid
from k3watch.sample.statuses import details_of, failure, forbidden_message, kind_key

Sink = Callable[[int, dict[str, Any]], None]
"""Receives each event with its ``requestReceivedTimestamp`` in epoch microseconds."""

SECOND = 1_000_000
MINUTE = 60 * SECOND
HOUR = 60 * MINUTE
DAY = 24 * HOUR

_METADATA_RESOURCES = frozenset(
    {
        "secrets",
        "configmaps",
        "events",
        "tokenreviews",
        "subjectaccessreviews",
        "selfsubjectaccessreviews",
        "localsubjectaccessreviews",
    }
)
_RESPONSE_RESOURCES = frozenset(
    {
        "roles",
        "rolebindings",
        "clusterroles",
        "clusterrolebindings",
        "mutatingwebhookconfigurations",
        "validatingwebhookconfigurations",
    }
)
# The API server's long-running check: these stream, so they get ResponseStarted first.
_LONG_RUNNING_SUBRESOURCES = frozenset({"exec", "attach", "portforward", "log", "proxy"})
_UPGRADE_SUBRESOURCES = frozenset({"exec", "attach", "portforward"})
_READ_VERBS = frozenset({"get", "list", "watch"})


@lru_cache(maxsize=8192)
def _second_prefix(second: int) -> str:
    return datetime.fromtimestamp(second, tz=UTC).strftime("%Y-%m-%dT%H:%M:%S")


def format_us(us: int) -> str:
    """Epoch microseconds as the API server's MicroTime (``2026-03-02T00:00:05.123456Z``)."""
    second, micro = divmod(us, SECOND)
    return f"{_second_prefix(second)}.{micro:06d}Z"


def format_seconds(us: int) -> str:
    """Epoch microseconds as an object's second-precision Time (``creationTimestamp``)."""
    return f"{_second_prefix(us // SECOND)}Z"


def level_for(verb: str, resource: str, subresource: str | None, group: str) -> str:
    """Audit level the assumed K3s policy gives a request."""
    if resource in _METADATA_RESOURCES or verb in _READ_VERBS:
        return "Metadata"
    if subresource in ("token", "exec", "attach", "portforward", "proxy"):
        return "Metadata"
    if resource in _RESPONSE_RESOURCES:
        return "RequestResponse"
    return "Request"


def api_path(
    resource: str,
    namespace: str | None = None,
    name: str | None = None,
    subresource: str | None = None,
    group: str = "",
    version: str = "v1",
) -> str:
    """The REST path of a resource request, ``/api/v1/...`` or ``/apis/<group>/<version>/...``."""
    parts = [f"/apis/{group}/{version}" if group else f"/api/{version}"]
    if namespace and resource != "namespaces":
        parts.append(f"/namespaces/{namespace}")
    parts.append(f"/{resource}")
    if name:
        parts.append(f"/{name}")
    if subresource:
        parts.append(f"/{subresource}")
    return "".join(parts)


def watch_query(
    rv: str,
    timeout_s: int,
    *,
    field_selector: str | None = None,
    label_selector: str | None = None,
) -> str:
    """Query string of a client-go informer watch (keys sorted, as Go's url.Values encodes)."""
    parts = ["allowWatchBookmarks=true"]
    if field_selector:
        parts.append("fieldSelector=" + quote(field_selector, safe=""))
    if label_selector:
        parts.append("labelSelector=" + quote(label_selector, safe=""))
    minutes, seconds = divmod(timeout_s, 60)
    parts += [
        f"resourceVersion={rv}",
        f"timeout={minutes}m{seconds}s",
        f"timeoutSeconds={timeout_s}",
        "watch=true",
    ]
    return "&".join(parts)


def _latency_us(rng: random.Random, verb: str) -> int:
    if verb == "list":
        return rng.randint(2_000, 40_000)
    if verb in ("get", "watch"):
        return rng.randint(300, 3_000)
    return rng.randint(2_500, 18_000)


class AuditLog:
    """Turns requests into audit events and hands them to a sink.

    The background shares one ``AuditLog``; each attack scenario has its own, over its own
    random source, so that injecting attacks does not change what the background draws.
    """

    def __init__(self, rng: random.Random, sink: Sink) -> None:
        self.rng = rng
        self.sink = sink

    def request(
        self,
        t: int,
        actor: Actor,
        verb: str,
        resource: str,
        *,
        namespace: str | None = None,
        name: str | None = None,
        subresource: str | None = None,
        group: str = "",
        version: str = "v1",
        query: str = "",
        code: int | None = None,
        status: dict[str, Any] | None = None,
        body: dict[str, Any] | None = None,
        response: dict[str, Any] | None = None,
        reason: str | None = None,
        duration_us: int | None = None,
        annotations: dict[str, str] | None = None,
        path_name: bool | None = None,
    ) -> str:
        """Log one resource request received at ``t`` (epoch µs); returns its auditID.

        ``path_name`` says whether the name is part of the URL (default: not for create,
        list and watch, where the name comes from the body or a field selector).
        """
        if path_name is None:
            path_name = verb not in ("create", "list", "watch", "deletecollection") or bool(
                subresource
            )
        uri = api_path(
            resource, namespace, name if path_name else None, subresource, group, version
        )
        if query:
            uri = f"{uri}?{query}"
        if code is None:
            code = status["code"] if status else (201 if verb == "create" else 200)
        if subresource in _UPGRADE_SUBRESOURCES and code < 400:
            code = 101  # the connection is upgraded (WebSocket or SPDY)
        if status is None:
            status = self._status(actor, verb, resource, namespace, name, subresource, group, code)
        object_ref: dict[str, Any] = {"resource": resource}
        if namespace and resource != "namespaces":
            object_ref["namespace"] = namespace
        elif resource == "namespaces" and name and verb != "create":
            # The request path /api/v1/namespaces/<name> names the namespace itself.
            object_ref["namespace"] = name
        if name:
            object_ref["name"] = name
        if group:
            object_ref["apiGroup"] = group
        object_ref["apiVersion"] = version
        if subresource:
            object_ref["subresource"] = subresource
        level = level_for(verb, resource, subresource, group)
        event: dict[str, Any] = {
            "kind": "Event",
            "apiVersion": "audit.k8s.io/v1",
            "level": level,
            "auditID": new_uuid(self.rng),
            "stage": "ResponseComplete",
            "requestURI": uri,
            "verb": verb,
            "user": actor.user,
            "sourceIPs": [actor.ip],
            "userAgent": actor.ua,
            "objectRef": object_ref,
            "responseStatus": status,
        }
        if body is not None and level != "Metadata":
            event["requestObject"] = body
        if response is not None and level == "RequestResponse" and code < 400:
            event["responseObject"] = response
        denied = code == 403
        notes = {
            "authorization.k8s.io/decision": "forbid" if denied else "allow",
            "authorization.k8s.io/reason": ""
            if denied
            else (actor.reason if reason is None else reason),
        }
        if annotations:
            notes.update(annotations)
        self._emit(t, event, notes, verb, subresource, duration_us, query)
        return str(event["auditID"])

    def nonresource(self, t: int, actor: Actor, path: str, *, code: int = 200) -> str:
        """Log a non-resource request (``/api``, ``/apis``, ``/version``, ``/healthz``)."""
        event: dict[str, Any] = {
            "kind": "Event",
            "apiVersion": "audit.k8s.io/v1",
            "level": "Metadata",
            "auditID": new_uuid(self.rng),
            "stage": "ResponseComplete",
            "requestURI": path,
            "verb": "get",
            "user": actor.user,
            "sourceIPs": [actor.ip],
            "userAgent": actor.ua,
            "responseStatus": {"metadata": {}, "code": code},
        }
        notes = {
            "authorization.k8s.io/decision": "allow",
            "authorization.k8s.io/reason": actor.reason
            or 'RBAC: allowed by ClusterRoleBinding "system:discovery" of ClusterRole '
            '"system:discovery" to Group "system:authenticated"',
        }
        self._emit(t, event, notes, "get", None, None, "")
        return str(event["auditID"])

    def unauthenticated(
        self,
        t: int,
        ip: str,
        ua: str,
        verb: str,
        uri: str,
        object_ref: dict[str, Any] | None,
        *,
        attempted: str = "bearer",
    ) -> str:
        """Log a request whose credentials were rejected (HTTP 401).

        kube-apiserver's ``WithFailedAuthenticationAudit`` filter writes these: the policy is
        evaluated with no user, so ``user`` is empty; the stage is ``ResponseStarted`` and no
        ``ResponseComplete`` follows; the status message names the credential types tried
        (``Authentication failed, attempted: bearer``); the authorizer never ran, so there are
        no annotations. ``objectRef`` is still filled from the request path.
        """
        received = format_us(t)
        event: dict[str, Any] = {
            "kind": "Event",
            "apiVersion": "audit.k8s.io/v1",
            "level": "Metadata",
            "auditID": new_uuid(self.rng),
            "stage": "ResponseStarted",
            "requestURI": uri,
            "verb": verb,
            "user": {},
            "sourceIPs": [ip],
            "userAgent": ua,
        }
        if object_ref is not None:
            event["objectRef"] = object_ref
        event["responseStatus"] = {
            "metadata": {},
            "message": f"Authentication failed, attempted: {attempted}",
            "code": 401,
        }
        event["requestReceivedTimestamp"] = received
        event["stageTimestamp"] = format_us(t + self.rng.randint(80, 600))
        self.sink(t, event)
        return str(event["auditID"])

    # --- internals --------------------------------------------------------------------------

    def _status(
        self,
        actor: Actor,
        verb: str,
        resource: str,
        namespace: str | None,
        name: str | None,
        subresource: str | None,
        group: str,
        code: int,
    ) -> dict[str, Any]:
        if code < 400:
            return {"metadata": {}, "code": code}
        details = details_of(resource, name, group)
        if code == 403:
            message = forbidden_message(
                actor.username, verb, resource, namespace, name, subresource, group
            )
            return failure(403, "Forbidden", message, details)
        if code == 404:
            return failure(
                404, "NotFound", f'{kind_key(resource, group)} "{name}" not found', details
            )
        if code == 409 and verb == "create":
            message = f'{kind_key(resource, group)} "{name}" already exists'
            return failure(409, "AlreadyExists", message, details)
        if code == 409:
            message = (
                f'Operation cannot be fulfilled on {kind_key(resource, group)} "{name}": the '
                "object has been modified; please apply your changes to the latest version and "
                "try again"
            )
            return failure(409, "Conflict", message, details)
        return failure(
            code, "InternalError", "an error on the server has prevented the request", details
        )

    def _emit(
        self,
        t: int,
        event: dict[str, Any],
        annotations: dict[str, str],
        verb: str,
        subresource: str | None,
        duration_us: int | None,
        query: str,
    ) -> None:
        received = format_us(t)
        rng = self.rng
        long_running = verb == "watch" or subresource in _LONG_RUNNING_SUBRESOURCES
        if long_running:
            if event["responseStatus"]["code"] >= 400:
                duration_us = _latency_us(rng, verb)  # refused: nothing to stream
            elif duration_us is None:
                duration_us = _timeout_us(query) or rng.randint(2, 30) * SECOND
            started = dict(event)
            started["stage"] = "ResponseStarted"
            started["requestReceivedTimestamp"] = received
            started["stageTimestamp"] = format_us(t + rng.randint(200, 4_000))
            started["annotations"] = annotations
            self.sink(t, started)
            end = t + duration_us
        else:
            end = t + (duration_us if duration_us is not None else _latency_us(rng, verb))
        event["requestReceivedTimestamp"] = received
        event["stageTimestamp"] = format_us(end)
        event["annotations"] = annotations
        self.sink(t, event)


def _timeout_us(query: str) -> int | None:
    marker = "timeoutSeconds="
    at = query.find(marker)
    if at < 0:
        return None
    digits = query[at + len(marker) :].split("&", 1)[0]
    return int(digits) * SECOND if digits.isdigit() else None
