"""The values ``k3watch deploy`` renders from: one YAML file, read into typed settings.

Every key has a default that works on a stock K3s (local-path storage, the audit log file,
Traefik untouched), so ``k3watch deploy render`` with no file gives a complete deployment.
A values file only names what differs:

```yaml
cluster: prod
tls:
  from_dir: ./pki                 # `k3watch certs init --dir ./pki …`: renders the TLS Secret
agent:
  token_file: ./agent.token       # `k3watch token create agents --role agent …` (optional)
server:
  storage: {size: 50Gi}
  config:                         # more of the server's configuration file (docs/config.md)
    alerting:
      destinations:
        - {name: alertmanager, type: alertmanager, url: http://alertmanager.monitoring:9093}
```

Unknown keys and wrong types are errors naming the file and line, as in the configuration
file. Relative paths are relative to the values file. Secrets are never written in values:
they are read from the files named here (``*_file``, ``from_dir``), or created with
``kubectl create secret`` under the names given here.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal

import msgspec
import yaml

from k3watch import __version__
from k3watch.config import read_yaml_mapping, validation_error, yaml_line
from k3watch.errors import Location, UsageError

# What Kubernetes accepts as an object name (RFC 1123 label; DNS subdomain for most kinds,
# but a label fits everywhere these names are used).
_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
_QUANTITY = re.compile(r"^[0-9]+(\.[0-9]+)?(m|k|M|G|T|Ki|Mi|Gi|Ti)?$")


class Image(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """The container image every k3watch pod runs (the ``Containerfile`` at the repository's
    root builds it; any image with ``k3watch`` on its ``PATH`` works)."""

    repository: str = "ghcr.io/k3watch/k3watch"
    tag: str = __version__
    digest: str | None = None
    """``sha256:…``: pins the image (the tag is then informative only)."""
    pull_policy: Literal["IfNotPresent", "Always", "Never"] = "IfNotPresent"
    command: tuple[str, ...] = ("k3watch",)
    """How the image starts k3watch (``[python, -m, k3watch]`` for an image without the
    console script)."""

    @property
    def reference(self) -> str:
        """``repository:tag`` or ``repository:tag@digest``."""
        ref = f"{self.repository}:{self.tag}"
        return f"{ref}@{self.digest}" if self.digest else ref


class Resources(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """Requests and limits of one container (Kubernetes quantities)."""

    cpu_request: str
    memory_request: str
    cpu_limit: str | None
    memory_limit: str

    def to_kubernetes(self) -> dict[str, Any]:
        limits: dict[str, str] = {"memory": self.memory_limit}
        if self.cpu_limit is not None:
            limits = {"cpu": self.cpu_limit, **limits}
        return {
            "requests": {"cpu": self.cpu_request, "memory": self.memory_request},
            "limits": limits,
        }


class Tls(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """The server's certificate, the CA agents trust, and mutual TLS."""

    secret: str = "k3watch-server-tls"
    """Secret (type kubernetes.io/tls) with the server's ``tls.crt`` and ``tls.key``."""
    ca_config_map: str = "k3watch-ca"
    """ConfigMap with ``ca.crt``, the CA agents verify the server with (public)."""
    from_dir: str | None = None
    """A directory written by ``k3watch certs init``: the Secret and the ConfigMap are
    rendered from its ``server.crt``, ``server.key`` and ``ca.crt`` (and, with ``mutual``, the
    agents' client certificate). Unset: create them with kubectl (docs/deploy.md)."""
    mutual: bool = False
    """Agents present a client certificate; the server takes ingest only on a second port
    that requires one (``server.ingest_listen``)."""
    client_secret: str = "k3watch-agent-client"
    """With ``mutual``: Secret (kubernetes.io/tls) with the agents' client certificate."""
    client_name: str = "k3watch-agent"
    """With ``mutual`` and ``from_dir``: the client certificate used (``clients/NAME.crt``,
    from ``k3watch certs init --client NAME``)."""


class Storage(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """The server's PersistentVolumeClaim (events, alerts, tokens, outbox)."""

    storage_class: str | None = "local-path"
    """K3s's bundled provisioner by default; ``null`` for the cluster's default class."""
    size: str = "20Gi"
    """Keep it above ``server.retention.max_size`` in ``server.config``, with headroom."""


class Server(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """The k3watch server: one replica (its SQLite store has one writer)."""

    kind: Literal["Deployment", "StatefulSet"] = "Deployment"
    """A Deployment with a PersistentVolumeClaim (strategy Recreate: never two servers on one
    store), or a StatefulSet with a volume claim template."""
    port: int = 8443
    """API, web UI and (without mutual TLS) ingest."""
    ingest_port: int = 8444
    """With ``tls.mutual``: the ingest listener that requires client certificates."""
    service_type: Literal["ClusterIP", "NodePort", "LoadBalancer"] = "ClusterIP"
    workers: int = 1
    """Parser processes (``server.workers``). Set explicitly: in a pod, "one per CPU" would
    count the node's CPUs, not the pod's limit."""
    storage: Storage = Storage()
    resources: Resources = Resources("250m", "512Mi", "2", "1536Mi")
    node_selector: dict[str, str] = msgspec.field(default_factory=dict)
    tolerations: tuple[dict[str, Any], ...] = ()
    disruption: Literal["allow", "block"] = "allow"
    """PodDisruptionBudget: ``allow`` lets a drain evict the server (agents keep what they
    read in their spools meanwhile); ``block`` makes a drain wait until you delete the pod."""
    config: dict[str, Any] = msgspec.field(default_factory=dict)
    """More of the server's configuration file (``rules``, ``alerting``, ``redaction``,
    ``reviews``, ``server.retention``…), merged over what is rendered; checked as
    ``k3watch server`` checks it."""


class Agent(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """The node agent: a DaemonSet on server nodes and one on agent nodes."""

    token_secret: str = "k3watch-agent-token"
    """Secret with the agent token under the key ``token``."""
    token_file: str | None = None
    """A file with the agent token (``k3watch token create … --role agent``): the Secret is
    rendered from it. Unset: create it with kubectl (docs/deploy.md)."""
    journal: bool = True
    """Read the K3s units and the kernel from the journal (journald hosts)."""
    containerd_log: bool = True
    """Follow K3s's containerd log."""
    k3s_log_file: bool = False
    """Follow ``/var/log/k3s.log`` (openrc installs, which have no journal)."""
    journal_group: int | None = None
    """The host's ``systemd-journal`` group id, added to the pod's supplemental groups (for
    images or policies that run the agent as another user)."""
    spool_host_dir: str = "/var/lib/k3watch/agent"
    """The spool on each node (hostPath): what the server has not acknowledged survives a
    restart of the pod."""
    spool_max_size: str = "1GiB"
    metrics_port: int = 9142
    priority_class: str | None = "system-node-critical"
    """Keeps the agent from being evicted before other pods under node pressure."""
    resources: Resources = Resources("50m", "128Mi", "1", "384Mi")
    tolerations: tuple[dict[str, Any], ...] = ()
    """Added to the control-plane and CriticalAddonsOnly tolerations."""
    extra_sources: tuple[dict[str, Any], ...] = ()
    """More ``agent.sources`` entries for every node (docs/sources.md); their files must be
    under a mounted directory (``/var/log``)."""
    config: dict[str, Any] = msgspec.field(default_factory=dict)
    """More of the agents' configuration file (``rules``, ``alerting``, ``redaction``, or
    ``agent`` keys such as ``batch_max_events``), merged over what is rendered."""


class Audit(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """How the API server's audit events reach the agent on each server node."""

    source: Literal["file", "webhook"] = "file"
    """``file``: the agent follows the audit log (at-least-once, nothing depends on the
    agent being up). ``webhook``: the API server posts batches to the agent on the same node
    (events arrive within seconds; lost if the agent dies before spooling them)."""
    profile: Literal["minimal", "recommended", "forensic"] = "recommended"
    """The audit policy ``deploy install --k3s`` writes (``k3watch k3s setup --profile``)."""
    webhook_port: int = 9443
    """``webhook``: the host port the agent listens on, on the node's loopback address."""
    webhook_token_secret: str = "k3watch-webhook-token"
    """``webhook``: Secret with the token the API server sends (key ``token``)."""
    webhook_token_file: str | None = None
    """``webhook``: a file with that token (any random string, ``openssl rand -hex 32``).
    Required by ``deploy install --k3s``, which also writes it into the webhook kubeconfig."""


class NetworkPolicy(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """NetworkPolicies (K3s enforces them with its embedded kube-router controller)."""

    enabled: bool = True
    server_from: tuple[dict[str, Any], ...] = ()
    """Peers (NetworkPolicyPeer) allowed to reach the server's ports; empty: anyone (people,
    the ingress controller, agents on the host network). Tokens and TLS still apply."""
    metrics_from: tuple[dict[str, Any], ...] = ()
    """Peers allowed to scrape the agents' ``/metrics``; empty: nobody (kubelet probes from the
    node are always allowed)."""


class Host(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """Host installs without Kubernetes objects (``deploy systemd``, ``deploy openrc``)."""

    k3watch_bin: str = "/opt/k3watch/bin/k3watch"
    """The ``k3watch`` program (``python3 -m venv /opt/k3watch && /opt/k3watch/bin/pip
    install k3watch``)."""
    user: str = "k3watch"
    group: str = "k3watch"
    config_dir: str = "/etc/k3watch"
    state_dir: str = "/var/lib/k3watch"
    journal_group: str = "systemd-journal"


class Values(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """Everything ``k3watch deploy`` renders from."""

    namespace: str = "k3watch"
    cluster: str = "k3s"
    """The cluster name events are filed under."""
    image: Image = Image()
    tls: Tls = Tls()
    server: Server = Server()
    agent: Agent = Agent()
    audit: Audit = Audit()
    network_policy: NetworkPolicy = NetworkPolicy()
    host: Host = Host()
    labels: dict[str, str] = msgspec.field(default_factory=dict)
    """Added to every object's labels."""
    source: str = ""  # the file read (set by load_values)

    def check(self) -> list[tuple[str, str]]:
        """Problems as (path of the key, message); empty when the values can be rendered."""
        out: list[tuple[str, str]] = []
        names = {
            "$.namespace": self.namespace,
            "$.tls.secret": self.tls.secret,
            "$.tls.ca_config_map": self.tls.ca_config_map,
            "$.tls.client_secret": self.tls.client_secret,
            "$.agent.token_secret": self.agent.token_secret,
            "$.audit.webhook_token_secret": self.audit.webhook_token_secret,
        }
        for path, name in names.items():
            if not _NAME.match(name):
                out.append((path, f"{name!r} is not a Kubernetes name (lowercase, digits, '-')"))
        ports = {
            "$.server.port": self.server.port,
            "$.server.ingest_port": self.server.ingest_port,
            "$.agent.metrics_port": self.agent.metrics_port,
            "$.audit.webhook_port": self.audit.webhook_port,
        }
        for path, port in ports.items():
            if not 1 <= port <= 65535:
                out.append((path, f"{port} is not a port number"))
        if self.tls.mutual and self.server.port == self.server.ingest_port:
            out.append(("$.server.ingest_port", "must differ from server.port"))
        if not 0 <= self.server.workers <= 64:
            out.append(("$.server.workers", "must be between 0 and 64"))
        for path, resources in (
            ("$.server.resources", self.server.resources),
            ("$.agent.resources", self.agent.resources),
        ):
            for field in msgspec.structs.fields(resources):
                value = getattr(resources, field.name)
                if value is not None and not _QUANTITY.match(value):
                    out.append((f"{path}.{field.name}", f"{value!r} is not a quantity"))
        if not _QUANTITY.match(self.server.storage.size):
            out.append(("$.server.storage.size", f"{self.server.storage.size!r} is not a size"))
        if self.image.digest is not None and not re.fullmatch(
            r"sha256:[0-9a-f]{64}", self.image.digest
        ):
            out.append(("$.image.digest", "must be sha256: and 64 hex digits"))
        if not self.image.command:
            out.append(("$.image.command", "must name the program (k3watch)"))
        if not Path(self.agent.spool_host_dir).is_absolute():
            out.append(("$.agent.spool_host_dir", "must be an absolute path on the nodes"))
        return out


def load_values(path: Path | None) -> Values:
    """The values of ``path`` (defaults when None); UsageError with file:line when wrong."""
    if path is None:
        return _checked(Values(), None, "<defaults>")
    name = str(path)
    data, node = read_yaml_mapping(path, "values")
    if "source" in data:
        raise UsageError(
            "unknown key 'source'", Location(name, yaml_line(node, "$.source", at_key=True))
        )
    data["source"] = name
    try:
        values = msgspec.convert(data, Values)
    except msgspec.ValidationError as exc:
        raise validation_error(exc, node, name) from exc
    return _checked(_relative_to(values, path.parent), node, name)


def _checked(values: Values, node: yaml.Node | None, name: str) -> Values:
    problems = values.check()
    if problems:
        key, message = problems[0]
        where = key.removeprefix("$.")
        raise UsageError(f"{where}: {message}", Location(name, yaml_line(node, key, at_key=True)))
    return values


def line_of(values: Values, key_path: str) -> Location:
    """Where ``$.a.b`` was written in the values file (for errors found while rendering)."""
    if not values.source:
        return Location("<defaults>")
    try:
        node = yaml.compose(Path(values.source).read_text(encoding="utf-8"), yaml.SafeLoader)
    except (OSError, yaml.YAMLError):
        return Location(values.source)
    return Location(values.source, yaml_line(node, key_path, at_key=True))


def _relative_to(values: Values, base: Path) -> Values:
    def resolve(value: str | None) -> str | None:
        if value is None or Path(value).is_absolute():
            return value
        return str(base / value)

    return msgspec.structs.replace(
        values,
        tls=msgspec.structs.replace(values.tls, from_dir=resolve(values.tls.from_dir)),
        agent=msgspec.structs.replace(values.agent, token_file=resolve(values.agent.token_file)),
        audit=msgspec.structs.replace(
            values.audit, webhook_token_file=resolve(values.audit.webhook_token_file)
        ),
    )
