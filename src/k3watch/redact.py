"""Secret redaction: credentials are removed from audit events before they are stored or sent.

The server (and the node agent) pass every event through ``Redactor.redact`` first, so a
Secret's value, a service-account token or a bearer credential that the audit policy let into
a request or response body is never written anywhere. Redaction replaces values with
``REDACTED`` and keeps the keys: an analyst still sees *which* keys of a Secret changed.

Built in (the configuration only adds to it):

* Secrets, and the resources listed in ``RedactionConfig.resources``: every value under
  ``data``, ``stringData``, ``binaryData`` and ``spec`` of the request and response bodies,
  of each item of a list, of each object of a table, of the values of a JSON patch, of the
  ``kubectl.kubernetes.io/last-applied-configuration`` annotation (the whole object as JSON)
  and of the patches admission webhooks recorded in the event's annotations;
* tokens: ``status.token`` of a TokenRequest, ``spec.token`` of a TokenReview;
* credentials in any string of the bodies, the event's annotations and ``requestURI``:
  ``Bearer …`` and ``Basic …`` credentials, JWTs, K3s join tokens;
* the value of an ``Authorization`` or ``Proxy-Authorization`` header, as a map key or as a
  ``{name, value}`` pair (how Kubernetes objects list headers and environment variables).

``docs/redaction.md`` explains what is not redacted, and why.
"""

from __future__ import annotations

import base64
import binascii
import re
from typing import Any
from urllib.parse import unquote

import msgspec
import orjson

from k3watch.telemetry import Counters

REDACTED = "<redacted>"
"""What a redacted value becomes. It matches none of the built-in patterns, so redacting twice
changes nothing more."""

LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"
WEBHOOK_PATCH_PREFIX = "patch.webhook.admission.k8s.io/"

# The fields of a secret-like object whose values are redacted. (Secrets have no ``spec``; a
# SealedSecret keeps its ciphertext there, and a ConfigMap its binary values in binaryData.)
SECRET_FIELDS = ("data", "stringData", "binaryData", "spec")
SECRET_KINDS = frozenset({"Secret", "SecretList"})
AUTHORIZATION_HEADERS = frozenset({"authorization", "proxy-authorization"})
_UNKNOWN = object()

# Strategic merge patch directives name keys, they hold no values: kept so a patch stays legible.
_DIRECTIVES = ("$patch", "$retainKeys", "$setElementOrder/", "$deleteFromPrimitiveList/")

# One pass finds every built-in credential; each alternative captures only the part to hide,
# in a group named after the counter reason. Case variants are spelled out (rather than
# re.IGNORECASE) so that the plain substring pre-check `_has_needle` is exact.
_CREDENTIALS = re.compile(
    # K3s join token: K10<CA hash>::<user>:<password>, or K10<CA hash>::<id>.<secret>
    r"K10[0-9a-fA-F]{32,128}::(?:[^:\s\"']+:)?(?P<join_token>[^\s\"',]+)"
    # an Authorization header's value, or a credential written after its scheme in any text
    r"|(?<![A-Za-z0-9])(?:[Bb]earer|BEARER)(?:\s+|%20|\+)(?P<bearer>[A-Za-z0-9\-._~+/%]+=*)"
    r"|(?<![A-Za-z0-9])(?:[Bb]asic|BASIC)(?:\s+|%20|\+)(?P<basic>[A-Za-z0-9+/%]+={0,2})"
    # header.payload.signature, base64url; an unsigned JWT has an empty signature
    r"|(?<![A-Za-z0-9_\-])(?P<jwt>eyJ[A-Za-z0-9_\-]+\.[A-Za-z0-9_\-]+\.[A-Za-z0-9_\-]*)"
)
# What `_has_needle` looks for, in a lowercased JSON dump of a whole body; and header names.
# ('authorization"' ends both header names, as a key or as a quoted value.)
_BODY_NEEDLES = (b"k10", b"bearer", b"basic", b"eyj", b'authorization"')


class RedactionConfig(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """What to redact beyond the built-in set (the ``redaction:`` section of the configuration)."""

    enabled: bool = True
    """``false`` stores events exactly as the API server wrote them (test clusters only)."""
    keys: tuple[str, ...] = ()
    """Key names (case-insensitive) whose values are redacted anywhere in the request and
    response bodies and the event's annotations; also the ``value`` of a ``{name, value}``
    pair with that name (environment variables, HTTP headers)."""
    paths: tuple[str, ...] = ()
    """Dotted paths into the event whose values are redacted; ``*`` matches any key or list
    item, a number one list item: ``requestObject.spec.containers.*.env.*.value``. A key that
    contains dots (an annotation name) is written as it is."""
    patterns: tuple[str, ...] = ()
    """Regular expressions; the matching parts of strings in the bodies, the annotations and
    ``requestURI`` are redacted (only the group named ``secret`` when the pattern has one)."""
    resources: tuple[str, ...] = ()
    """Resources redacted like Secrets: ``configmaps``, or ``plural.group`` for one API group
    (``sealedsecrets.bitnami.com``)."""


class Redactor:
    """Removes secret values from audit events, in place; built once from the configuration."""

    __slots__ = (
        "_counters",
        "_enabled",
        "_key_cache",
        "_keys",
        "_needles",
        "_paths",
        "_patterns",
        "_qualified",
        "_resources",
        "_walk_always",
    )

    def __init__(
        self, config: RedactionConfig | None = None, counters: Counters | None = None
    ) -> None:
        """Check and compile ``config``; raise ValueError naming an invalid pattern, path or
        resource."""
        config = config or RedactionConfig()
        self._enabled = config.enabled
        self._counters = counters
        self._patterns = tuple(_compile(pattern) for pattern in config.patterns)
        self._paths = tuple(_split_path(path) for path in config.paths)
        # key name (lowercase) → counter reason
        self._keys = dict.fromkeys(AUTHORIZATION_HEADERS, "authorization_header")
        for key in config.keys:
            if not key:
                raise ValueError("an empty name in redaction.keys")
            self._keys.setdefault(key.lower(), "config_key")
        self._key_cache: dict[str, str | None] = {}
        self._resources: set[str] = {"secrets"}
        self._qualified: set[tuple[str, str]] = set()
        for name in config.resources:
            resource, dot, group = name.strip().lower().partition(".")
            if not resource or (dot and not group):
                raise ValueError(f"invalid redaction resource {name!r}: use plural or plural.group")
            if dot:
                self._qualified.add((resource, group))
            else:
                self._resources.add(resource)
        self._needles = _BODY_NEEDLES + tuple(
            orjson.dumps(key).lower()
            for key in self._keys
            if key.isascii() and key not in AUTHORIZATION_HEADERS
        )
        # A body is walked only when its JSON text contains a needle; a pattern can match
        # anything, and bytes.lower() lowercases only ASCII, so the pre-check cannot rule out
        # a match of those.
        self._walk_always = bool(self._patterns) or not all(key.isascii() for key in self._keys)

    def redact(self, raw: dict[str, Any]) -> bool:
        """Redact one raw audit event in place; True when anything was changed.

        Never raises: any shape of input is accepted, and what is not understood is left alone
        unless it sits where a secret would be (then it is redacted whole).
        """
        if not self._enabled or not isinstance(raw, dict):
            return False
        counts: dict[str, int] = {}
        try:
            self._redact(raw, counts)
        except Exception:
            # A bug here must not let a secret through: drop whatever could hold one.
            _fail_closed(raw)
            counts["failed"] = 1
        if counts and self._counters is not None:
            for reason, amount in counts.items():
                self._counters.inc("redacted", amount, reason=reason)
        return bool(counts)

    def _redact(self, raw: dict[str, Any], counts: dict[str, int]) -> None:
        ref = raw.get("objectRef")
        if not isinstance(ref, dict):
            ref = {}
        resource = ref.get("resource")
        secret_like = isinstance(resource, str) and self._secret_like(resource, ref)
        for name in ("requestObject", "responseObject"):
            body = raw.get(name)
            if body is not None:
                raw[name] = self._redact_body(body, ref, secret_like, counts)
        annotations = raw.get("annotations")
        if secret_like and isinstance(annotations, dict):
            for key in list(annotations):
                if isinstance(key, str) and key.startswith(WEBHOOK_PATCH_PREFIX):
                    self._redact_webhook_patch(annotations, key, counts)
        self._scrub_metadata(raw, annotations, counts)
        for path in self._paths:
            _hide_path(raw, path, counts)

    def _secret_like(self, resource: str, ref: dict[str, Any]) -> bool:
        if resource in self._resources:
            return True
        if not self._qualified:
            return False
        group = ref.get("apiGroup")
        return (resource, group if isinstance(group, str) else "") in self._qualified

    def _redact_body(
        self, body: Any, ref: dict[str, Any], secret_like: bool, counts: dict[str, int]
    ) -> Any:
        """One request or response body, redacted; the body itself or what replaces it."""
        kind = body.get("kind") if isinstance(body, dict) else None
        if not isinstance(kind, str):
            kind = None
        if secret_like or kind in SECRET_KINDS:
            body = self._redact_secret_body(body, counts)
        if isinstance(body, dict):
            resource = ref.get("resource")
            if resource == "tokenreviews" or kind == "TokenReview":
                _hide_in(body, "spec", "token", counts, "token")
            if kind == "TokenRequest" or (
                resource == "serviceaccounts" and ref.get("subresource") == "token"
            ):
                _hide_in(body, "status", "token", counts, "token")
        if isinstance(body, dict | list):
            if self._walk_always or self._may_match(body):
                self._scrub_tree(body, counts)
        elif isinstance(body, str) and body:
            body = self._scrub_text(body, counts)
        return body

    # --- Secrets and the resources configured like them ---

    def _redact_secret_body(self, body: Any, counts: dict[str, int]) -> Any:
        """A body of a secret-like request or response: an object, a list, a table, a patch."""
        if isinstance(body, dict):
            self._redact_objects(body, counts)
            return body
        if isinstance(body, list):
            self._redact_json_patch(body, counts)
            return body
        # A body the API server kept as text (a YAML apply patch): its structure is unknown.
        return _mask(body, counts, "secret_data")

    def _redact_objects(self, root: dict[str, Any], counts: dict[str, int]) -> None:
        """Redact an object and every object it lists (``items``, a table's ``rows``)."""
        stack = [root]
        while stack:
            obj = stack.pop()
            for field in SECRET_FIELDS:
                if field in obj:
                    obj[field] = _mask(obj[field], counts, "secret_data")
            metadata = obj.get("metadata")
            if isinstance(metadata, dict):
                annotations = metadata.get("annotations")
                if isinstance(annotations, dict) and LAST_APPLIED in annotations:
                    self._redact_last_applied(annotations, counts)
            items = obj.get("items")
            if isinstance(items, list):
                for item in items:
                    if isinstance(item, dict):
                        stack.append(item)
            rows = obj.get("rows")
            if isinstance(rows, list):
                for row in rows:
                    inner = row.get("object") if isinstance(row, dict) else None
                    if isinstance(inner, dict):
                        stack.append(inner)

    def _redact_last_applied(self, annotations: dict[str, Any], counts: dict[str, int]) -> None:
        """kubectl keeps the whole applied object as JSON: redact it as an object, keep JSON."""
        text = annotations[LAST_APPLIED]
        if not isinstance(text, str) or not text or text == REDACTED:
            annotations[LAST_APPLIED] = _mask(text, counts, "secret_data")
            return
        try:
            document = orjson.loads(text)
        except orjson.JSONDecodeError:
            annotations[LAST_APPLIED] = _mask(text, counts, "secret_data")
            return
        if not isinstance(document, dict):
            annotations[LAST_APPLIED] = _mask(text, counts, "secret_data")
            return
        inner: dict[str, int] = {}
        self._redact_objects(document, inner)
        if inner:
            annotations[LAST_APPLIED] = _dumps_or_marker(document, text)
            _merge(counts, inner)

    def _redact_json_patch(self, operations: list[Any], counts: dict[str, int]) -> None:
        """A JSON patch (RFC 6902): each value is redacted as if it stood in an object at its
        path, so ``/data/password`` loses its value and ``/metadata/labels`` keeps it."""
        for index, operation in enumerate(operations):
            if not isinstance(operation, dict):
                operations[index] = _mask(operation, counts, "secret_data")
                continue
            if "value" not in operation:
                continue  # remove, move, copy: nothing but paths
            value = operation["value"]
            path = operation.get("path")
            keys = _pointer(path) if isinstance(path, str) else None
            if keys is None:  # not a JSON pointer: where it points is unknown
                operation["value"] = _mask(value, counts, "secret_data")
            elif not keys:  # the whole object
                operation["value"] = self._redact_secret_body(value, counts)
            else:
                shell: dict[str, Any] = {}
                parent = shell
                for key in keys[:-1]:
                    parent[key] = {}
                    parent = parent[key]
                parent[keys[-1]] = value
                self._redact_objects(shell, counts)
                operation["value"] = parent[keys[-1]]

    def _redact_webhook_patch(
        self, annotations: dict[str, Any], key: str, counts: dict[str, int]
    ) -> None:
        """The JSON patch a mutating webhook applied, recorded as a JSON annotation."""
        text = annotations[key]
        if not isinstance(text, str) or not text or text == REDACTED:
            annotations[key] = _mask(text, counts, "secret_data")
            return
        try:
            document = orjson.loads(text)
        except orjson.JSONDecodeError:
            annotations[key] = _mask(text, counts, "secret_data")
            return
        patch = document.get("patch") if isinstance(document, dict) else None
        if not isinstance(patch, list):
            return  # no patch recorded (the Metadata level records only the webhook's name)
        inner: dict[str, int] = {}
        self._redact_json_patch(patch, inner)
        if inner:
            annotations[key] = _dumps_or_marker(document, text)
            _merge(counts, inner)

    # --- credentials in text, header values, configured keys ---

    def _may_match(self, body: dict[str, Any] | list[Any]) -> bool:
        """False when no string or key below ``body`` can match: one C-speed JSON dump and a
        few substring searches spare the walk for most bodies."""
        try:
            text = orjson.dumps(body).lower()
        except TypeError:  # not JSON-shaped (or nested too deep for orjson): walk it
            return True
        for needle in self._needles:
            if needle in text:
                return True
        return False

    def _scrub_metadata(
        self, raw: dict[str, Any], annotations: Any, counts: dict[str, int]
    ) -> None:
        """The event's annotations and ``requestURI``: a few short strings in every event,
        checked together first (no needle spans the newline that joins them)."""
        uri = raw.get("requestURI")
        if isinstance(annotations, dict):
            texts = list(annotations.values())
            if isinstance(uri, str):
                texts.append(uri)
            try:
                clean = not self._patterns and not _has_needle("\n".join(texts))
            except TypeError:  # an annotation that is not a string
                clean = False
            if clean:
                for key, value in annotations.items():
                    reason = self._key_reason(key)
                    if reason is not None:
                        annotations[key] = _mask_whole(value, counts, reason)
                return
            self._scrub_tree(annotations, counts)
        elif isinstance(annotations, list):
            self._scrub_tree(annotations, counts)
        elif isinstance(annotations, str) and annotations:
            raw["annotations"] = self._scrub_text(annotations, counts)
        if isinstance(uri, str) and uri:
            raw["requestURI"] = self._scrub_text(uri, counts)

    def _key_reason(self, key: object) -> str | None:
        """Why the value of a key is redacted (a configured key, a header), or None."""
        if not isinstance(key, str):
            return None
        # The same few hundred key names come back in every event (and orjson hands out the
        # same str objects for them): remember each one's answer.
        cache = self._key_cache
        reason = cache.get(key, _UNKNOWN)
        if reason is _UNKNOWN:
            reason = self._keys.get(key.lower())
            if len(cache) >= 65536:
                cache.clear()
            cache[key] = reason
        return reason  # type: ignore[return-value]

    def _scrub_tree(self, root: dict[str, Any] | list[Any], counts: dict[str, int]) -> None:
        """Redact configured and header keys and credentials in every string below ``root``."""
        key_reason = self._key_reason
        stack: list[dict[str, Any] | list[Any]] = [root]
        while stack:
            node = stack.pop()
            if isinstance(node, dict):
                name = node.get("name")
                if "value" in node and isinstance(name, str):
                    reason = key_reason(name)
                    if reason is not None:
                        node["value"] = _mask_whole(node["value"], counts, reason)
                for key, value in node.items():
                    reason = key_reason(key)
                    if reason is not None:
                        node[key] = _mask_whole(value, counts, reason)
                        continue
                    if isinstance(value, str):
                        if value:
                            node[key] = self._scrub_text(value, counts)
                    elif isinstance(value, dict | list):
                        stack.append(value)
            else:
                for index, value in enumerate(node):
                    if isinstance(value, str):
                        if value:
                            node[index] = self._scrub_text(value, counts)
                    elif isinstance(value, dict | list):
                        stack.append(value)

    def _scrub_text(self, text: str, counts: dict[str, int]) -> str:
        if _has_needle(text):
            text = _scrub_credentials(text, counts)
        for pattern in self._patterns:
            text = _scrub_pattern(pattern, text, counts)
        return text


def _has_needle(text: str) -> bool:
    """Whether `_CREDENTIALS` could match: a few substring searches, far cheaper than the regex."""
    return (
        "eyJ" in text
        or "K10" in text
        or "earer" in text
        or "asic" in text
        or "EARER" in text
        or "ASIC" in text
    )


def _scrub_credentials(text: str, counts: dict[str, int]) -> str:
    parts: list[str] = []
    last = 0
    for match in _CREDENTIALS.finditer(text):
        reason = match.lastgroup
        if reason is None:
            continue
        secret = match.group(reason)
        if not _is_credential(reason, secret):
            continue
        start, end = match.span(reason)
        parts += (text[last:start], REDACTED)
        last = end
        _add(counts, reason)
    if not parts:
        return text
    parts.append(text[last:])
    return "".join(parts)


def _is_credential(reason: str, secret: str) -> bool:
    """Whether a match is a credential and not prose ("bearer authentication", "Basic auth")."""
    if reason == "bearer":
        # Tokens are random: a digit, or longer than English words.
        return len(secret) >= 8 and (len(secret) >= 24 or any(c.isdigit() for c in secret))
    if reason == "basic":
        # base64 of user:password (URL-encoded in a query string)
        secret = unquote(secret)
        try:
            decoded = base64.b64decode(secret + "=" * (-len(secret) % 4), validate=True)
        except (binascii.Error, ValueError):
            return False
        return b":" in decoded
    return secret != REDACTED


def _scrub_pattern(pattern: re.Pattern[str], text: str, counts: dict[str, int]) -> str:
    group = "secret" if "secret" in pattern.groupindex else 0
    # A pattern may also match (part of) a marker: those spans are left alone, or every pass
    # would wrap the marker again.
    kept = _marker_spans(text) if REDACTED in text else ()
    parts: list[str] = []
    last = 0
    for match in pattern.finditer(text):
        start, end = match.span(group)
        if start < last or start == end:  # an empty match, or a group that did not take part
            continue
        if any(start < stop and begin < end for begin, stop in kept):
            continue
        parts += (text[last:start], REDACTED)
        last = end
        _add(counts, "config_pattern")
    if not parts:
        return text
    parts.append(text[last:])
    return "".join(parts)


def _marker_spans(text: str) -> list[tuple[int, int]]:
    spans = []
    start = text.find(REDACTED)
    while start >= 0:
        spans.append((start, start + len(REDACTED)))
        start = text.find(REDACTED, start + len(REDACTED))
    return spans


def _fail_closed(raw: dict[str, Any]) -> None:
    """Redact every place a secret could be, whole; keep what rules need most (the
    authorizer's annotations, the request path)."""
    for name in ("requestObject", "responseObject"):
        if name in raw:
            raw[name] = REDACTED
    annotations = raw.get("annotations")
    if isinstance(annotations, dict):
        for key in annotations:
            if not (isinstance(key, str) and key.startswith("authorization.k8s.io/")):
                annotations[key] = REDACTED
    elif annotations is not None:
        raw["annotations"] = REDACTED
    uri = raw.get("requestURI")
    if isinstance(uri, str) and "?" in uri:
        raw["requestURI"] = uri.partition("?")[0] + "?" + REDACTED


# --- values ---


def _hideable(value: object) -> bool:
    """Whether a value could hold something: null, "", {}, [] and the marker cannot."""
    if value is None or (isinstance(value, str | dict | list) and not value):
        return False
    return value != REDACTED


def _mask_whole(value: Any, counts: dict[str, int], reason: str) -> Any:
    """The marker in place of the value, whatever its shape."""
    if not _hideable(value):
        return value
    _add(counts, reason)
    return REDACTED


def _mask(value: Any, counts: dict[str, int], reason: str) -> Any:
    """Every value at any depth becomes the marker; maps keep their keys, lists their length."""
    if not isinstance(value, dict | list):
        return _mask_whole(value, counts, reason)
    stack: list[dict[str, Any] | list[Any]] = [value]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            for key, item in node.items():
                if isinstance(key, str) and key.startswith(_DIRECTIVES):
                    continue
                if isinstance(item, dict | list):
                    stack.append(item)
                elif _hideable(item):
                    node[key] = REDACTED
                    _add(counts, reason)
        else:
            for index, item in enumerate(node):
                if isinstance(item, dict | list):
                    stack.append(item)
                elif _hideable(item):
                    node[index] = REDACTED
                    _add(counts, reason)
    return value


def _hide_in(
    body: dict[str, Any], outer: str, inner: str, counts: dict[str, int], reason: str
) -> None:
    section = body.get(outer)
    if isinstance(section, dict) and inner in section:
        section[inner] = _mask_whole(section[inner], counts, reason)


def _dumps_or_marker(document: Any, original: str) -> str:
    """``document`` back as JSON text (kubectl's trailing newline kept), or the marker when it
    cannot be written (nested deeper than orjson writes)."""
    try:
        text = orjson.dumps(document).decode()
    except TypeError:
        return REDACTED
    return text + "\n" if original.endswith("\n") else text


def _add(counts: dict[str, int], reason: str) -> None:
    counts[reason] = counts.get(reason, 0) + 1


def _merge(counts: dict[str, int], more: dict[str, int]) -> None:
    for reason, amount in more.items():
        counts[reason] = counts.get(reason, 0) + amount


# --- configured paths ---


def _split_path(path: str) -> tuple[str, ...]:
    keys = tuple(path.split("."))
    if not path or any(not key for key in keys):
        raise ValueError(
            f"invalid redaction path {path!r}: empty key (two dots, or a dot at an end)"
        )
    return keys


def _hide_path(raw: dict[str, Any], path: tuple[str, ...], counts: dict[str, int]) -> None:
    """Redact every value ``path`` reaches. A key of a map may span several parts of the path,
    so ``metadata.annotations.example.com/token`` reaches the annotation ``example.com/token``."""
    stack: list[tuple[Any, int]] = [(raw, 0)]
    end = len(path)
    while stack:
        node, at = stack.pop()
        found: list[tuple[Any, Any, int]] = []  # (container, key or index, parts used)
        part = path[at]
        if isinstance(node, dict):
            if part == "*":
                found.extend((node, key, at + 1) for key in node)
            else:
                for stop in range(at + 1, end + 1):
                    if stop > at + 1 and path[stop - 1] == "*":
                        break
                    key = ".".join(path[at:stop])
                    if key in node:
                        found.append((node, key, stop))
        elif isinstance(node, list):
            if part == "*":
                found.extend((node, index, at + 1) for index in range(len(node)))
            elif part.isdecimal() and int(part) < len(node):
                found.append((node, int(part), at + 1))
        for container, key, used in found:
            if used == end:
                container[key] = _mask_whole(container[key], counts, "config_path")
            else:
                stack.append((container[key], used))


def _pointer(path: str) -> list[str] | None:
    """The keys of a JSON pointer (RFC 6901); None when it is not one."""
    if not path:
        return []
    if not path.startswith("/"):
        return None
    return [key.replace("~1", "/").replace("~0", "~") for key in path[1:].split("/")]


def _compile(pattern: str) -> re.Pattern[str]:
    try:
        return re.compile(pattern)
    except re.error as exc:
        raise ValueError(f"invalid redaction pattern {pattern!r}: {exc}") from exc
