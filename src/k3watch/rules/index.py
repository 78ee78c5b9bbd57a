"""The rule index: what the key fields of an event decide about each rule.

Every event has a key: its resource, subresource, verb, status code, user name, user agent,
impersonated user and kind (audit event or component-log record). For each distinct key the
engine evaluates, once, every test of every rule that reads only those fields (on a probe event
holding just the key's values) and keeps what is left: most rules become "cannot match" and
drop out, the others shrink to their tests on other fields, compiled into one function per
distinct residual. A node's lease renewal reaches no rule at all; a rule excluding K3s's own
identities costs those identities nothing, and audit events never reach the component-log rules.
"""

from __future__ import annotations

from typing import Any

from k3watch.rules.compile import Predicate, always, build_predicate
from k3watch.rules.fields import MISSING
from k3watch.rules.ir import Exists, FieldRef, Leaf, Node, is_key_only, partial
from k3watch.rules.model import EventRule

NO_KEY = object()  # the key cannot stand for this event: every rule runs its full detection


def residual_predicate(rule: EventRule, probe: dict[str, Any]) -> Predicate | None:
    """What ``rule`` must still check on an event with ``probe``'s key (None: it cannot match)."""

    def decide(node: Node) -> bool | None:
        if not isinstance(node, Leaf | Exists | FieldRef):
            return None
        tests = rule.key_tests
        if id(node) not in tests:
            tests[id(node)] = build_predicate(node) if is_key_only(node) else None
        test = tests[id(node)]
        return None if test is None else test(probe)

    residual = partial(rule.ir, decide)
    if residual is False:
        return None
    if residual is True:
        return always
    text = repr(residual)  # equal residuals share one compiled function
    predicate = rule.residuals.get(text)
    if predicate is None:
        predicate = rule.residuals[text] = build_predicate(residual)
    return predicate


def index_key(raw: dict[str, Any]) -> object:
    """The event's values of ``INDEX_FIELDS``, exactly as the rules' field getters read them.

    ``NO_KEY`` when a probe event could not reproduce those reads: a list on the path (any
    element may match) or a literal dotted key (which wins over nesting). Unhashable values
    (lists, objects) make the caller fall back to ``NO_KEY`` too. Written out flat: every
    event pays for it.
    """
    ref = raw.get("objectRef", MISSING)
    status = raw.get("responseStatus", MISSING)
    user = raw.get("user", MISSING)
    impersonated = raw.get("impersonatedUser", MISSING)
    if (
        ref.__class__ is list
        or status.__class__ is list
        or user.__class__ is list
        or impersonated.__class__ is list
        or "objectRef.resource" in raw
        or "objectRef.subresource" in raw
        or "responseStatus.code" in raw
        or "user.username" in raw
        or "impersonatedUser.username" in raw
    ):
        return NO_KEY
    is_ref = ref.__class__ is dict
    return (
        ref.get("resource", MISSING) if is_ref else MISSING,
        ref.get("subresource", MISSING) if is_ref else MISSING,
        raw.get("verb", MISSING),
        status.get("code", MISSING) if status.__class__ is dict else MISSING,
        user.get("username", MISSING) if user.__class__ is dict else MISSING,
        raw.get("userAgent", MISSING),
        impersonated.get("username", MISSING) if impersonated.__class__ is dict else MISSING,
        raw.get("kind", MISSING),
    )


def probe_event(key: tuple[Any, ...]) -> dict[str, Any]:
    """A minimal event whose index fields read exactly like the key (MISSING left out)."""
    resource, subresource, verb, code, username, user_agent, impersonated, kind = key
    probe: dict[str, Any] = {}
    ref = {
        name: value
        for name, value in (("resource", resource), ("subresource", subresource))
        if value is not MISSING
    }
    if ref:
        probe["objectRef"] = ref
    for name, value in (("verb", verb), ("userAgent", user_agent), ("kind", kind)):
        if value is not MISSING:
            probe[name] = value
    for outer, inner, value in (
        ("responseStatus", "code", code),
        ("user", "username", username),
        ("impersonatedUser", "username", impersonated),
    ):
        if value is not MISSING:
            probe[outer] = {inner: value}
    return probe
