"""Every Kubernetes object of a k3watch deployment, in the order they are applied.

``render(values)`` returns two YAML streams: the objects (no secret in them), and the Secrets
rendered from files named in the values (empty when there are none). Both are deterministic:
the same values give the same bytes.

Access to the Kubernetes API: none. Neither the server nor the agents call it (the agents take
their node's name from the downward API), so both service accounts have no Role and no
token mounted: the least privilege there is.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from k3watch import __version__
from k3watch.deploy import paths
from k3watch.deploy.agent import COMPONENT as AGENT_COMPONENT
from k3watch.deploy.agent import agent_objects
from k3watch.deploy.configs import agent_config, server_config
from k3watch.deploy.objects import metadata, selector
from k3watch.deploy.secrets import ca_config_map, secret_objects
from k3watch.deploy.server import COMPONENT as SERVER_COMPONENT
from k3watch.deploy.server import server_objects
from k3watch.deploy.values import Values
from k3watch.deploy.yamlout import dump_all

HEADER = (
    f"k3watch {__version__}: rendered by `k3watch deploy render`; do not edit by hand,\n"
    "change the values and render again (docs/deploy.md)."
)


@dataclass(frozen=True, slots=True)
class Rendered:
    """The two YAML streams of a deployment."""

    objects: list[dict[str, Any]]
    secrets: list[dict[str, Any]]

    @property
    def manifest(self) -> str:
        return dump_all(self.objects, HEADER)

    @property
    def combined(self) -> str:
        """Objects and Secrets in one stream (for ``kubectl apply -f -``)."""
        return dump_all(self.objects + self.secrets, HEADER)

    @property
    def secrets_manifest(self) -> str:
        """The Secrets; empty when the values name no secret file."""
        if not self.secrets:
            return ""
        return dump_all(self.secrets, HEADER + "\nHolds secrets: keep this file mode 0600.")


def render(values: Values) -> Rendered:
    """The objects for ``values``; UsageError (with the values' file and line) if a rendered
    configuration would be refused by the pods, or a named file cannot be read."""
    server = server_config(values)
    servers = agent_config(values, server_nodes=True)
    agents = agent_config(values, server_nodes=False)
    objects: list[dict[str, Any]] = [_namespace(values)]
    objects.append(_service_account(values, paths.SERVER, SERVER_COMPONENT))
    objects.append(_service_account(values, paths.AGENT, AGENT_COMPONENT))
    ca = ca_config_map(values)
    if ca is not None:
        objects.append(ca)
    objects.extend(server_objects(values, server))
    objects.extend(agent_objects(values, servers, agents))
    if values.network_policy.enabled:
        objects.extend(_network_policies(values))
    return Rendered(objects, secret_objects(values))


def _namespace(values: Values) -> dict[str, Any]:
    meta = metadata(values, values.namespace, None, namespaced=False)
    # The agents mount host paths, which the baseline and restricted Pod Security levels
    # forbid; the server pod itself meets "restricted".
    meta["labels"]["pod-security.kubernetes.io/enforce"] = "privileged"
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": meta}


def _service_account(values: Values, name: str, component: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ServiceAccount",
        "metadata": metadata(values, name, component),
        "automountServiceAccountToken": False,
    }


def _network_policies(values: Values) -> list[dict[str, Any]]:
    server_ports = [values.server.port]
    if values.tls.mutual:
        server_ports.append(values.server.ingest_port)
    ingest_port = values.server.ingest_port if values.tls.mutual else values.server.port
    server_rule: dict[str, Any] = {}
    if values.network_policy.server_from:
        server_rule["from"] = [dict(p) for p in values.network_policy.server_from]
    server_rule["ports"] = [{"protocol": "TCP", "port": p} for p in server_ports]
    agent_ingress: list[dict[str, Any]] = []
    if values.network_policy.metrics_from:
        agent_ingress.append(
            {
                "from": [dict(p) for p in values.network_policy.metrics_from],
                "ports": [{"protocol": "TCP", "port": values.agent.metrics_port}],
            }
        )
    dns = {
        "to": [
            {
                "namespaceSelector": {
                    "matchLabels": {"kubernetes.io/metadata.name": "kube-system"}
                },
                "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}},
            }
        ],
        "ports": [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}],
    }
    to_server = {
        "to": [{"podSelector": {"matchLabels": selector(SERVER_COMPONENT)}}],
        "ports": [{"protocol": "TCP", "port": ingest_port}],
    }

    def policy(name: str, spec: dict[str, Any]) -> dict[str, Any]:
        return {
            "apiVersion": "networking.k8s.io/v1",
            "kind": "NetworkPolicy",
            "metadata": metadata(values, name, None),
            "spec": spec,
        }

    return [
        # Nothing in the namespace takes connections unless a policy below allows it.
        policy("k3watch-default-deny", {"podSelector": {}, "policyTypes": ["Ingress"]}),
        policy(
            paths.SERVER,
            {
                "podSelector": {"matchLabels": selector(SERVER_COMPONENT)},
                "policyTypes": ["Ingress"],
                "ingress": [server_rule],
            },
        ),
        # Agents in the pod network talk to DNS and the server's ingest port, nothing else.
        # (Agents on the host network, for the webhook, are outside any NetworkPolicy.)
        policy(
            paths.AGENT,
            {
                "podSelector": {"matchLabels": selector(AGENT_COMPONENT)},
                "policyTypes": ["Ingress", "Egress"],
                "ingress": agent_ingress,
                "egress": [dns, to_server],
            },
        ),
    ]
