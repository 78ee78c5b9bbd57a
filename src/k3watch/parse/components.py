"""Which Kubernetes component wrote a line, and which pod or container it is about.

Everything K3s embeds (API server, controller manager, scheduler, kubelet, kube-proxy,
flannel, the network policy controller, etcd) logs into the one ``k3s`` / ``k3s-agent``
stream from one process, so the process and unit do not tell the component. The line does:

- logrus lines come from K3s's own code (the supervisor): ``k3s``;
- JSON lines come from the embedded etcd (its server and its client): ``etcd``;
- klog lines name their source file (``kubelet.go:2160``); :data:`KLOG_FILES` maps the file
  names that belong to one component only (files shared between components, such as
  ``reflector.go``, ``leaderelection.go`` or ``server.go``, tell nothing);
- outside the K3s stream, the syslog tag or unit names the program (``kubelet[267]:``).
"""

from __future__ import annotations

import re
from typing import Any

K3S_IDENTS = frozenset({"k3s", "k3s-agent", "k3s-server"})
K3S_UNITS = frozenset({"k3s.service", "k3s-agent.service"})

# Programs (syslog tag, journal SYSLOG_IDENTIFIER or unit name) → component.
PROGRAMS = {
    "kubelet": "kubelet",
    "kube-apiserver": "kube-apiserver",
    "kube-controller-manager": "kube-controller-manager",
    "kube-scheduler": "kube-scheduler",
    "kube-proxy": "kube-proxy",
    "containerd": "containerd",
    "etcd": "etcd",
    "flanneld": "flannel",
    "dockerd": "docker",
    "kernel": "kernel",
    "kern": "kernel",
    "audit": "kernel",
}

_KUBELET = (
    "kubelet.go kubelet_pods.go kubelet_node_status.go kubelet_volumes.go kubelet_getters.go "
    "kubelet_network_linux.go kubelet_resources.go kuberuntime_manager.go "
    "kuberuntime_container.go kuberuntime_sandbox.go kuberuntime_gc.go kuberuntime_image.go "
    "kuberuntime_logs.go pod_workers.go pod_container_deletor.go "
    "pod_startup_latency_tracker.go prober.go prober_manager.go status_manager.go "
    "eviction_manager.go container_manager_linux.go node_container_manager_linux.go "
    "qos_container_manager_linux.go cgroup_manager_linux.go cpu_manager.go memory_manager.go "
    "topology_manager.go scope.go volume_manager.go desired_state_of_world_populator.go "
    "reconciler_common.go cri_stats_provider.go image_gc_manager.go container_gc.go "
    "oom_watcher_linux.go remote_runtime.go remote_image.go plugin_watcher.go csi_plugin.go "
    "kubelet_server_journal.go certificate_manager.go setters.go atomic_writer.go "
    "pod_container_manager_linux.go state_mem.go"
)
_APISERVER = (
    "cacher.go watch_cache.go alloc.go apf_controller.go storage_flowcontrol.go "
    "storage_scheduling.go storage_rbac.go genericapiserver.go available_controller.go "
    "apiservice_controller.go crdregistration_controller.go "
    "customresource_discovery_controller.go naming_controller.go establishing_controller.go "
    "nonstructuralschema_controller.go apiapproval_controller.go crd_finalizer.go "
    "autoregister_controller.go cluster_authentication_trust_controller.go "
    "legacy_token_tracking_controller.go repairip.go instance.go aggregator.go handler_proxy.go"
)
_CONTROLLER_MANAGER = (
    "controllermanager.go replica_set.go deployment_controller.go garbagecollector.go "
    "graph_builder.go node_lifecycle_controller.go range_allocator.go cidr_allocator.go "
    "node_ipam_controller.go serviceaccounts_controller.go tokens_controller.go horizontal.go "
    "endpointslice_controller.go endpoints_controller.go job_controller.go "
    "cronjob_controllerv2.go namespace_controller.go namespaced_resources_deleter.go "
    "resource_quota_controller.go resource_quota_monitor.go stateful_set.go "
    "daemon_controller.go disruption.go pv_controller.go pv_controller_base.go "
    "attach_detach_controller.go certificate_controller.go sarapprove.go gc_controller.go "
    "taint_manager.go tainteviction.go ttlafterfinished_controller.go expand_controller.go "
    "pvc_protection_controller.go pv_protection_controller.go "
    "clusterroleaggregation_controller.go publisher.go"
)
_SCHEDULER = (
    "schedule_one.go scheduling_queue.go default_preemption.go eventhandlers.go node_tree.go"
)
_PROXY = "proxier.go server_others.go server_linux.go endpointslicecache.go"
_FLANNEL = "kube.go vxlan.go vxlan_network.go route_network.go ipmasq.go"
_NETWORK_POLICY = "network_policy_controller.go"

KLOG_FILES: dict[str, str] = {
    name: component
    for names, component in (
        (_KUBELET, "kubelet"),
        (_APISERVER, "kube-apiserver"),
        (_CONTROLLER_MANAGER, "kube-controller-manager"),
        (_SCHEDULER, "kube-scheduler"),
        (_PROXY, "kube-proxy"),
        (_FLANNEL, "flannel"),
        (_NETWORK_POLICY, "network-policy"),
    )
    for name in names.split()
}

_CONTAINER_ID = re.compile(r"(?:containerd://|ID:)?([0-9a-f]{64})\b")
_SANDBOX = re.compile(r"&PodSandboxMetadata\{Name:([^,}]*),Uid:([^,}]*),Namespace:([^,}]*),")
_CONTAINER_META = re.compile(r"&ContainerMetadata\{Name:([^,}]*),")
# The id after one of these words. The pattern starts with the space after them (each
# checked by a lookbehind): a search skips fast to a leading literal, whereas the words start
# with common letters. No word is part of another, so the leftmost match stays the same.
_ID_AFTER = (
    "returns container id",
    "StartContainer for",
    "StopContainer for",
    "RemoveContainer for",
    "ExecSync for",
    "Exec for",
)
_RETURNED_ID = re.compile(
    " (?:" + "|".join(f"(?<={words} )" for words in _ID_AFTER) + ')"?([0-9a-f]{64})'
)


def program_component(ident: str | None, unit: str | None) -> str | None:
    """The component a program name or unit stands for (``kubelet.service`` → kubelet)."""
    if ident is not None and ident in PROGRAMS:
        return PROGRAMS[ident]
    if unit is not None:
        return PROGRAMS.get(unit.removesuffix(".service"))
    return None


def in_k3s_stream(ident: str | None, unit: str | None) -> bool:
    return ident in K3S_IDENTS or unit in K3S_UNITS


def klog_component(caller: str) -> str | None:
    """The component of a klog caller (``kubelet.go:2160``), when its file tells."""
    return KLOG_FILES.get(caller.rpartition(":")[0].rpartition("/")[2])


def container_from_fields(fields: dict[str, Any]) -> dict[str, str]:
    """Pod and container named in structured fields (klog's ``pod="ns/name"`` and others)."""
    out: dict[str, str] = {}
    pod = fields.get("pod")
    if isinstance(pod, str) and pod:
        namespace, slash, name = pod.partition("/")
        if slash:
            out["namespace"], out["pod"] = namespace, name
        else:
            out["pod"] = pod
    uid = fields.get("podUID")
    if isinstance(uid, str) and uid:
        out["pod_uid"] = uid
    container_id = fields.get("containerID")
    if isinstance(container_id, str) and (found := _CONTAINER_ID.search(container_id)):
        out["id"] = found[1]
    container_name = fields.get("containerName")
    if isinstance(container_name, str) and container_name:
        out["name"] = container_name
    return out


def container_from_message(message: str) -> dict[str, str]:
    """Pod and container named in containerd's CRI messages (``RunPodSandbox for &…``)."""
    out: dict[str, str] = {}
    if "Metadata{" in message:
        sandbox = _SANDBOX.search(message)
        if sandbox is not None:
            out["pod"], out["pod_uid"], out["namespace"] = sandbox[1], sandbox[2], sandbox[3]
        meta = _CONTAINER_META.search(message)
        if meta is not None:
            out["name"] = meta[1]
    if "ontainer" in message and (returned := _RETURNED_ID.search(message)) is not None:
        out["id"] = returned[1]
    return out
