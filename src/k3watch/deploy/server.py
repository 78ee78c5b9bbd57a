"""The server's objects: its ConfigMap, volume claim, workload, Service and disruption budget.

One replica, always: the embedded SQLite store has one writer, so a Deployment uses the
``Recreate`` strategy (the old pod is gone before the new one opens the store) and a
StatefulSet gets one claim from its template. The pod runs as an unprivileged user with a
read-only root file system; it does not talk to the Kubernetes API, so its service account
token is not mounted. Before the server starts, an init container makes sure an admin token
exists and writes a new one's secret to a file on the volume, never to the log.
"""

from __future__ import annotations

from typing import Any

from k3watch.deploy import paths
from k3watch.deploy.objects import (
    CHECKSUM_ANNOTATION,
    checksum,
    config_map_volume,
    container_security,
    image_fields,
    metadata,
    mount,
    secret_volume,
    selector,
)
from k3watch.deploy.values import Values
from k3watch.deploy.yamlout import dump

COMPONENT = "server"
USER_ID = 65532  # the image's k3watch user; any non-root id works


def server_objects(values: Values, config: dict[str, Any]) -> list[dict[str, Any]]:
    """ConfigMap, PVC (Deployment only), Service, workload, PodDisruptionBudget."""
    text = dump(config)
    config_map = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": metadata(values, paths.SERVER, COMPONENT),
        "data": {"k3watch.yaml": text},
    }
    out = [config_map]
    if values.server.kind == "Deployment":
        out.append(
            {
                "apiVersion": "v1",
                "kind": "PersistentVolumeClaim",
                "metadata": metadata(values, paths.SERVER_DATA, COMPONENT),
                "spec": _claim_spec(values),
            }
        )
    out.append(_service(values))
    out.append(_workload(values, checksum(text)))
    out.append(_disruption_budget(values))
    return out


def _claim_spec(values: Values) -> dict[str, Any]:
    spec: dict[str, Any] = {"accessModes": ["ReadWriteOnce"]}
    if values.server.storage.storage_class is not None:
        spec["storageClassName"] = values.server.storage.storage_class
    spec["resources"] = {"requests": {"storage": values.server.storage.size}}
    return spec


def _ports(values: Values) -> list[tuple[str, int]]:
    ports = [("https", values.server.port)]
    if values.tls.mutual:
        ports.append(("ingest", values.server.ingest_port))
    return ports


def _service(values: Values) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": metadata(values, paths.SERVER, COMPONENT),
        "spec": {
            "type": values.server.service_type,
            "selector": selector(COMPONENT),
            "ports": [
                {"name": name, "port": port, "targetPort": name, "protocol": "TCP"}
                for name, port in _ports(values)
            ],
        },
    }


def _volumes(values: Values) -> list[dict[str, Any]]:
    volumes = [
        config_map_volume("config", paths.SERVER),
        secret_volume("tls", values.tls.secret, 0o440),
    ]
    if values.tls.mutual:
        volumes.append(config_map_volume("ca", values.tls.ca_config_map))
    if values.server.kind == "Deployment":
        volumes.append({"name": "data", "persistentVolumeClaim": {"claimName": paths.SERVER_DATA}})
    volumes.append({"name": "tmp", "emptyDir": {"sizeLimit": "256Mi"}})
    return volumes


def _mounts(values: Values) -> list[dict[str, Any]]:
    mounts = [mount("config", paths.CONFIG_DIR), mount("tls", paths.TLS_DIR)]
    if values.tls.mutual:
        mounts.append(mount("ca", paths.CA_DIR))
    mounts.append(mount("data", paths.SERVER_VOLUME, read_only=False))
    mounts.append(mount("tmp", "/tmp", read_only=False))
    return mounts


def _probe(path: str, period: int, failures: int) -> dict[str, Any]:
    return {
        "httpGet": {"path": path, "port": "https", "scheme": "HTTPS"},
        "periodSeconds": period,
        "timeoutSeconds": 5,
        "failureThreshold": failures,
    }


def _pod_spec(values: Values) -> dict[str, Any]:
    command = list(values.image.command)
    bootstrap = {
        "name": "bootstrap",
        **image_fields(values),
        "command": command,
        "args": [
            "deploy",
            "bootstrap",
            "--data-dir",
            paths.SERVER_DATA_DIR,
            "--admin-token-file",
            paths.ADMIN_TOKEN_FILE,
        ],
        "securityContext": container_security(run_as_root=False),
        "resources": {
            "requests": {"cpu": "10m", "memory": "64Mi"},
            "limits": {"memory": "256Mi"},
        },
        "volumeMounts": [mount("data", paths.SERVER_VOLUME, read_only=False)],
    }
    server = {
        "name": "server",
        **image_fields(values),
        "command": command,
        "args": ["server", "--config", paths.CONFIG_FILE],
        "ports": [
            {"name": name, "containerPort": port, "protocol": "TCP"}
            for name, port in _ports(values)
        ],
        "startupProbe": _probe("/healthz", 5, 60),  # first start: store, rules, workers
        "livenessProbe": _probe("/healthz", 20, 3),
        "readinessProbe": _probe("/readyz", 10, 3),
        "resources": values.server.resources.to_kubernetes(),
        "securityContext": container_security(run_as_root=False),
        "volumeMounts": _mounts(values),
    }
    spec: dict[str, Any] = {
        "serviceAccountName": paths.SERVER,
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": USER_ID,
            "runAsGroup": USER_ID,
            "fsGroup": USER_ID,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "terminationGracePeriodSeconds": 30,
        "initContainers": [bootstrap],
        "containers": [server],
        "volumes": _volumes(values),
    }
    if values.server.node_selector:
        spec["nodeSelector"] = dict(values.server.node_selector)
    if values.server.tolerations:
        spec["tolerations"] = [dict(t) for t in values.server.tolerations]
    return spec


def _workload(values: Values, config_hash: str) -> dict[str, Any]:
    template = {
        "metadata": {
            "labels": metadata(values, paths.SERVER, COMPONENT)["labels"],
            "annotations": {CHECKSUM_ANNOTATION: config_hash},
        },
        "spec": _pod_spec(values),
    }
    if values.server.kind == "Deployment":
        spec: dict[str, Any] = {
            "replicas": 1,
            "strategy": {"type": "Recreate"},
            "selector": {"matchLabels": selector(COMPONENT)},
            "template": template,
        }
    else:
        spec = {
            "replicas": 1,
            "serviceName": paths.SERVER,
            "selector": {"matchLabels": selector(COMPONENT)},
            "template": template,
            "volumeClaimTemplates": [
                {"metadata": {"name": "data"}, "spec": _claim_spec(values)},
            ],
        }
    return {
        "apiVersion": "apps/v1",
        "kind": values.server.kind,
        "metadata": metadata(values, paths.SERVER, COMPONENT),
        "spec": spec,
    }


def _disruption_budget(values: Values) -> dict[str, Any]:
    # One replica: "allow" lets a node drain proceed (the agents spool meanwhile; nothing is
    # lost), "block" holds every voluntary eviction until someone deletes the pod by hand.
    budget: dict[str, Any] = (
        {"maxUnavailable": 1} if values.server.disruption == "allow" else {"minAvailable": 1}
    )
    return {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": metadata(values, paths.SERVER, COMPONENT),
        "spec": {**budget, "selector": {"matchLabels": selector(COMPONENT)}},
    }
