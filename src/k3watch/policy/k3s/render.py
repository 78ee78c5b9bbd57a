"""The files ``k3watch k3s setup`` writes: the ``config.yaml.d`` drop-in and the webhook kubeconfig.

Both are rendered as text (they carry comments saying why) and then parsed back by the tests
and by set-up itself, so what is written is always valid YAML.
"""

from __future__ import annotations

import ipaddress
import json
from urllib.parse import urlsplit

from k3watch.policy.k3s.layout import AUDIT_LOG, POLICY_FILE, WEBHOOK_KUBECONFIG

# Rotation the CIS checks 1.2.17–1.2.19 ask for: 30 days, 10 files, 100 MB each.
MAXAGE = 30
MAXBACKUP = 10
MAXSIZE = 100
# Webhook batching. The API server's defaults (400 events or 30 s) delay an alert by up to
# 30 s; 5 s keeps detection close to real time. 100 events per POST bounds a request to a
# few MB even at RequestResponse level, within what a receiver accepts in one request; a
# busy server simply sends batches more often (a full batch goes at once, without waiting).
BATCH_MAX_SIZE = 100
BATCH_MAX_WAIT = "5s"
# K3s's default service CIDR: addresses there are ClusterIPs.
DEFAULT_SERVICE_CIDR = "10.43.0.0/16"


def audit_flags(webhook: bool) -> dict[str, str]:
    """The API-server flags set-up configures, in the order the drop-in lists them."""
    flags = {
        "audit-log-path": AUDIT_LOG,
        "audit-policy-file": POLICY_FILE,
        "audit-log-maxage": str(MAXAGE),
        "audit-log-maxbackup": str(MAXBACKUP),
        "audit-log-maxsize": str(MAXSIZE),
    }
    if webhook:
        flags["audit-webhook-config-file"] = WEBHOOK_KUBECONFIG
        flags["audit-webhook-batch-max-size"] = str(BATCH_MAX_SIZE)
        flags["audit-webhook-batch-max-wait"] = BATCH_MAX_WAIT
    return flags


def dropin_text(webhook: bool) -> str:
    """The drop-in: ``kube-apiserver-arg+`` so the flags add to, never replace, the others."""
    lines = [
        "# Written by `k3watch k3s setup`: API-server audit logging.",
        "# 'kube-apiserver-arg+' appends these flags to those of config.yaml and of earlier",
        "# drop-ins; without the '+' this file would replace them. A later drop-in that sets",
        "# 'kube-apiserver-arg' without '+' would in turn drop these: `k3watch k3s check` says so.",
        "# Takes effect when K3s restarts; `k3watch k3s check` shows whether it has.",
        "kube-apiserver-arg+:",
    ]
    lines.extend(f"  - {json.dumps(f'{k}={v}')}" for k, v in audit_flags(webhook).items())
    return "\n".join(lines) + "\n"


def webhook_kubeconfig_text(url: str, token: str | None = None) -> str:
    """The kubeconfig the API server's audit webhook backend reads to find its receiver;
    ``token``: the bearer token it sends (the receiver's ``token``)."""
    user = "{}" if token is None else "{token: " + json.dumps(token) + "}"
    return (
        "# Written by `k3watch k3s setup`: where the API server POSTs audit EventList batches.\n"
        "# The API server runs in the k3s process on the host network: the URL must be an\n"
        "# address of the host (the k3watch agent on this node), not a ClusterIP or a\n"
        "# Service name, which the API server cannot reach (and never during start-up).\n"
        "apiVersion: v1\n"
        "kind: Config\n"
        "clusters:\n"
        "  - name: k3watch\n"
        "    cluster:\n"
        f"      server: {json.dumps(url)}\n"
        "contexts:\n"
        "  - name: k3watch\n"
        "    context:\n"
        "      cluster: k3watch\n"
        "      user: kube-apiserver\n"
        "current-context: k3watch\n"
        "users:\n"
        "  - name: kube-apiserver\n"
        f"    user: {user}\n"
    )


def webhook_problems(url: str, service_cidr: str | None) -> tuple[list[str], list[str]]:
    """(errors, warnings) about a webhook URL: errors make set-up refuse, warnings explain."""
    errors: list[str] = []
    warnings: list[str] = []
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        errors.append(f"--webhook {url!r}: expected an http:// or https:// URL with a host")
        return errors, warnings
    host = parts.hostname
    if host.endswith((".svc", ".cluster.local")) or ".svc." in host:
        warnings.append(
            f"--webhook host {host!r} is a Service name: the API server resolves names with "
            "the host's resolver and cannot reach a ClusterIP through K3s's tunnel; use an "
            "address of this host (the k3watch agent on this node, e.g. 127.0.0.1)"
        )
        return errors, warnings
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return errors, warnings
    for cidr in (service_cidr or DEFAULT_SERVICE_CIDR).split(","):
        try:
            network = ipaddress.ip_network(cidr.strip(), strict=False)
        except ValueError:
            continue
        if address.version == network.version and address in network:
            warnings.append(
                f"--webhook address {host} is in the service CIDR {network}: a ClusterIP, "
                "which the API server cannot reach through K3s's tunnel (and not at all while "
                "it starts); use an address of this host (the k3watch agent on this node)"
            )
    if parts.scheme == "http" and not address.is_loopback:
        warnings.append(
            f"--webhook {url} sends audit events unencrypted over the network; use https or "
            "a loopback address (the agent on this node)"
        )
    return errors, warnings
