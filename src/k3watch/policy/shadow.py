"""Rules an earlier rule always wins over (first match wins, so they are never reached).

For a rule R, the requests it matches are enumerated by equivalence class: every value R lists
(each user, group, verb, resource entry, namespace, resource name, URL), and for each field R
leaves open a *fresh* value that no policy names. A fresh value is matched by an earlier rule
only when that rule leaves the field open too, so if every such request of R is decided by an
earlier rule, every request R could match is: R is dead. The check never calls a reachable
rule shadowed; it can miss a shadow that needs real-world knowledge (the finite set of verbs
aside, it does not assume which resources exist).
"""

from __future__ import annotations

from collections.abc import Iterator

from k3watch.policy.evaluate import RequestAttributes, rule_matches
from k3watch.policy.model import PolicyRule
from k3watch.policy.resources import NON_RESOURCE_VERBS, RESOURCE_VERBS, is_cluster_scoped

FRESH = "\x00k3watch-probe"  # a value no policy names (YAML text cannot hold a NUL)


def shadowing_rules(rule: PolicyRule, earlier: tuple[PolicyRule, ...]) -> list[int] | None:
    """The earlier rules that catch every request ``rule`` matches, or ``None`` when some
    request reaches ``rule``."""
    catchers: set[int] = set()
    seen_any = False
    for request in rule_requests(rule):
        if not rule_matches(rule, request):
            continue  # a combination the rule itself excludes (kept simple to generate)
        seen_any = True
        for other in earlier:
            if rule_matches(other, request):
                catchers.add(other.index)
                break
        else:
            return None
    return sorted(catchers) if seen_any else None


def rule_requests(rule: PolicyRule) -> Iterator[RequestAttributes]:
    """One request per equivalence class of what ``rule`` matches (see the module doc)."""
    users: list[str] = list(rule.users) or [FRESH]
    group_sets: list[tuple[str, ...]] = [(g,) for g in rule.user_groups] or [()]
    for user in users:
        for groups in group_sets:
            if rule.resources or rule.namespaces or not rule.non_resource_urls:
                yield from _resource_requests(rule, user, groups)
            if not rule.resources and not rule.namespaces:
                yield from _path_requests(rule, user, groups)


def _resource_requests(
    rule: PolicyRule, user: str, groups: tuple[str, ...]
) -> Iterator[RequestAttributes]:
    verbs = rule.verbs or RESOURCE_VERBS
    for group, resource, sub, names in _resource_alternatives(rule):
        for namespace in _namespaces(rule, resource):
            for name in names:
                ns = name if resource == "namespaces" and name else namespace
                for verb in verbs:
                    yield RequestAttributes(
                        verb=verb,
                        user=user,
                        groups=groups,
                        api_group=group,
                        resource=resource,
                        subresource=sub,
                        namespace=ns,
                        name=name,
                    )


def _resource_alternatives(rule: PolicyRule) -> Iterator[tuple[str, str, str, tuple[str, ...]]]:
    """(group, resource, subresource, names) for each resource entry of the rule."""
    if not rule.resources:
        yield FRESH, FRESH, "", (FRESH,)
        yield FRESH, FRESH, FRESH, (FRESH,)
        return
    for gr in rule.resources:
        names = gr.resource_names or (FRESH,)
        if not gr.resources:
            yield gr.group, FRESH, "", names
            yield gr.group, FRESH, FRESH, names
            continue
        for spec in gr.resources:
            if spec == "*":
                yield gr.group, FRESH, "", names
                yield gr.group, FRESH, FRESH, names
            elif spec.endswith("/*"):
                yield gr.group, spec[:-2], "", names
                yield gr.group, spec[:-2], FRESH, names
            elif spec.startswith("*/"):
                yield gr.group, FRESH, spec[2:], names
            else:
                resource, _, sub = spec.partition("/")
                yield gr.group, resource, sub, names


def _namespaces(rule: PolicyRule, resource: str) -> tuple[str, ...]:
    # A cluster-scoped request always has the empty namespace, whatever the rule lists.
    if is_cluster_scoped(resource):
        return ("",)
    return rule.namespaces or (FRESH,)


def _path_requests(
    rule: PolicyRule, user: str, groups: tuple[str, ...]
) -> Iterator[RequestAttributes]:
    verbs = rule.verbs or NON_RESOURCE_VERBS
    for spec in rule.non_resource_urls or ("*",):
        if spec == "*":
            path = "/" + FRESH
        elif spec.endswith("*"):
            path = spec.rstrip("*") + FRESH
        else:
            path = spec
        for verb in verbs:
            yield RequestAttributes(verb=verb, user=user, groups=groups, path=path)
