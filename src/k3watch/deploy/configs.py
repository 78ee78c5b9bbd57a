"""The k3watch configuration files the pods read (from ConfigMaps), built from the values and
checked with the same model and checks as ``k3watch server`` and ``k3watch agent`` use, so a
rendered deployment never ships a configuration its pods would refuse."""

from __future__ import annotations

import copy
from typing import Any

import msgspec

from k3watch.config import Config
from k3watch.deploy import paths
from k3watch.deploy.values import Values, line_of
from k3watch.errors import UsageError
from k3watch.policy.k3s.layout import AUDIT_LOG


def server_config(values: Values) -> dict[str, Any]:
    """The server's ``k3watch.yaml``: listeners, TLS from the mounted Secret, the data volume,
    then ``server.config`` merged over it."""
    tls: dict[str, Any] = {"cert_file": paths.TLS_CERT, "key_file": paths.TLS_KEY}
    server: dict[str, Any] = {
        "data_dir": paths.SERVER_DATA_DIR,
        "listen": f"0.0.0.0:{values.server.port}",
    }
    if values.tls.mutual:
        tls["client_ca_file"] = paths.CA_CERT
        server["ingest_listen"] = f"0.0.0.0:{values.server.ingest_port}"
    server["tls"] = tls
    server["cluster"] = values.cluster
    server["workers"] = values.server.workers
    config = _merge({"server": server}, values.server.config)
    _validate(values, config, "$.server.config", agent=False)
    return config


def agent_config(values: Values, *, server_nodes: bool) -> dict[str, Any]:
    """An agent's ``k3watch.yaml``: on server nodes with the audit source, on the others
    without; ``agent.config`` merged over it."""
    port = values.server.ingest_port if values.tls.mutual else values.server.port
    agent: dict[str, Any] = {
        "server": f"https://{paths.server_host(values)}:{port}",
        "token": f"$file:{paths.AGENT_TOKEN}",
        "ca_file": paths.CA_CERT,
    }
    if values.tls.mutual:
        agent["cert_file"] = paths.CLIENT_CERT
        agent["key_file"] = paths.CLIENT_KEY
    host_network = server_nodes and values.audit.source == "webhook"
    # On the host network the metrics stay on the node's loopback (probes use 127.0.0.1);
    # in the pod network the kubelet reaches them on the pod address.
    metrics_host = "127.0.0.1" if host_network else "0.0.0.0"
    agent.update(
        {
            "node": f"$env:{paths.NODE_ENV}",
            "cluster": values.cluster,
            "spool_dir": paths.SPOOL_DIR,
            "spool_max_size": values.agent.spool_max_size,
            "metrics_listen": f"{metrics_host}:{values.agent.metrics_port}",
            "sources": _sources(values, server_nodes=server_nodes),
        }
    )
    config = _merge({"agent": agent}, values.agent.config)
    _validate(values, config, "$.agent.config", agent=True)
    return config


def _sources(values: Values, *, server_nodes: bool) -> list[dict[str, Any]]:
    sources: list[dict[str, Any]] = []
    if server_nodes and values.audit.source == "file":
        sources.append({"type": "audit_file", "path": AUDIT_LOG})
    if server_nodes and values.audit.source == "webhook":
        sources.append(
            {
                "type": "webhook",
                "host": "127.0.0.1",
                "port": values.audit.webhook_port,
                "path": paths.WEBHOOK_PATH,
                "token": f"$file:{paths.WEBHOOK_TOKEN}",
            }
        )
    if values.agent.journal:
        sources.append({"type": "journald"})
    if values.agent.containerd_log:
        sources.append({"type": "file", "path": paths.CONTAINERD_LOG, "format": "containerd"})
    if values.agent.k3s_log_file:
        sources.append({"type": "file", "path": paths.OPENRC_K3S_LOG, "format": "k3s"})
    sources.extend(copy.deepcopy(dict(s)) for s in values.agent.extra_sources)
    return sources


def webhook_url(values: Values) -> str:
    """Where the API server on a server node posts audit batches: the agent on the node's
    loopback (the API server cannot reach a ClusterIP, and needs no cluster network here)."""
    return f"http://127.0.0.1:{values.audit.webhook_port}{paths.WEBHOOK_PATH}"


def _merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    """``extra`` over ``base``, mappings merged key by key (the values' keys win)."""
    out = copy.deepcopy(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def _validate(values: Values, config: dict[str, Any], where: str, *, agent: bool) -> None:
    """Check a rendered configuration as ``load_config`` would (references stay unresolved:
    the files they name exist only in the pod)."""
    try:
        model = msgspec.convert(_stand_ins(config), Config)
        if agent:
            model.agent.check()
            model.agent.require()
        else:
            model.server.check()
    except (msgspec.ValidationError, ValueError) as exc:
        message = str(exc).replace("`", "'").replace("Object contains unknown field", "unknown key")
        raise UsageError(
            f"the rendered {'agent' if agent else 'server'} configuration is not valid: {message}",
            line_of(values, where),
            hint=f"fix {where.removeprefix('$.')} (see docs/config.md)",
        ) from exc


def _stand_ins(value: Any) -> Any:
    """``$env:``/``$file:`` references replaced by a value any check accepts: they are
    resolved in the pod, from its environment and its mounted Secrets."""
    if isinstance(value, dict):
        return {k: _stand_ins(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_stand_ins(v) for v in value]
    if isinstance(value, str) and value.startswith(("$env:", "$file:")):
        return "resolved-in-the-pod"
    return value
