"""``responseStatus`` of failed requests, worded as kube-apiserver words them.

For example a denied list: ``pods is forbidden: User "bob@example.com" cannot list resource
"pods" in API group "" in the namespace "ci"`` with reason ``Forbidden`` and details
``{"kind": "pods"}``.
"""

from __future__ import annotations

from typing import Any


def kind_key(resource: str, group: str) -> str:
    """``resource.group`` as status messages name a kind (``deployments.apps``)."""
    return f"{resource}.{group}" if group else resource


def forbidden_message(
    username: str,
    verb: str,
    resource: str,
    namespace: str | None,
    name: str | None,
    subresource: str | None,
    group: str,
) -> str:
    """The RBAC denial text of a 403 ``responseStatus.message``."""
    what = f"{resource}/{subresource}" if subresource else resource
    subject = f'{kind_key(resource, group)} "{name}"' if name else kind_key(resource, group)
    scope = f'in the namespace "{namespace}"' if namespace else "at the cluster scope"
    return (
        f'{subject} is forbidden: User "{username}" cannot {verb} resource "{what}" '
        f'in API group "{group}" {scope}'
    )


def failure(code: int, reason: str, message: str, details: dict[str, Any]) -> dict[str, Any]:
    """A Failure ``Status`` as written in ``responseStatus``."""
    return {
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "details": details,
        "code": code,
    }


def details_of(resource: str, name: str | None, group: str) -> dict[str, Any]:
    """``details`` of a Failure status."""
    details: dict[str, Any] = {}
    if name:
        details["name"] = name
    if group:
        details["group"] = group
    details["kind"] = resource
    return details
