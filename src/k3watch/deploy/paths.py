"""Names and paths the rendered objects share: where each pod finds its configuration, its
secrets and the node's logs, and what the objects are called. One place, so the ConfigMaps
(what k3watch reads) and the pod specs (what is mounted there) cannot drift apart."""

from __future__ import annotations

from typing import TYPE_CHECKING

from k3watch.policy.k3s.layout import LOG_DIR, OPENRC_LOG

if TYPE_CHECKING:
    from k3watch.deploy.values import Values

# Object names.
SERVER = "k3watch-server"
AGENT = "k3watch-agent"  # the DaemonSet on agent (worker) nodes
AGENT_SERVERS = "k3watch-agent-servers"  # the DaemonSet on server (control-plane) nodes
SERVER_DATA = "k3watch-server-data"

# In the containers.
CONFIG_DIR = "/etc/k3watch/config"
CONFIG_FILE = f"{CONFIG_DIR}/k3watch.yaml"
TLS_DIR = "/etc/k3watch/tls"
TLS_CERT = f"{TLS_DIR}/tls.crt"
TLS_KEY = f"{TLS_DIR}/tls.key"
CA_DIR = "/etc/k3watch/ca"
CA_CERT = f"{CA_DIR}/ca.crt"
AGENT_TOKEN_DIR = "/etc/k3watch/agent-token"
AGENT_TOKEN = f"{AGENT_TOKEN_DIR}/token"
CLIENT_DIR = "/etc/k3watch/client"
CLIENT_CERT = f"{CLIENT_DIR}/tls.crt"
CLIENT_KEY = f"{CLIENT_DIR}/tls.key"
WEBHOOK_TOKEN_DIR = "/etc/k3watch/webhook-token"
WEBHOOK_TOKEN = f"{WEBHOOK_TOKEN_DIR}/token"
SERVER_VOLUME = "/var/lib/k3watch"
SERVER_DATA_DIR = f"{SERVER_VOLUME}/data"
ADMIN_TOKEN_FILE = f"{SERVER_VOLUME}/initial-admin-token"
SPOOL_DIR = "/var/lib/k3watch/agent"
NODE_ENV = "K3WATCH_NODE"
WEBHOOK_PATH = "/audit"

# On the nodes (mounted at the same paths in the agent, read-only).
AUDIT_LOG_DIR = LOG_DIR
CONTAINERD_DIR = "/var/lib/rancher/k3s/agent/containerd"
CONTAINERD_LOG = f"{CONTAINERD_DIR}/containerd.log"
OPENRC_K3S_LOG = OPENRC_LOG
VAR_LOG = "/var/log"
RUN_JOURNAL = "/run/log/journal"
MACHINE_ID = "/etc/machine-id"  # journalctl reads only the journals of this machine id

# K3s's auto-deploy directory: every .yaml there is applied, and re-applied when it changes.
K3S_MANIFESTS_DIR = "/var/lib/rancher/k3s/server/manifests"
MANIFEST_FILE = f"{K3S_MANIFESTS_DIR}/k3watch.yaml"
SECRETS_MANIFEST_FILE = f"{K3S_MANIFESTS_DIR}/k3watch-secrets.yaml"


def server_host(values: Values) -> str:
    """The server's Service name as agents resolve it (its certificate must name it)."""
    return f"{SERVER}.{values.namespace}.svc"
