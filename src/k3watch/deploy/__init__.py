"""Deploying k3watch: Kubernetes manifests, K3s auto-deploy, host service units.

- ``values``: the typed values everything is rendered from (``--values FILE``).
- ``configs``: the k3watch configuration files the pods read, checked like the real ones.
- ``objects``, ``server``, ``agent``, ``secrets``, ``manifests``: the Kubernetes objects.
- ``yamlout``: deterministic YAML.
- ``install``: ``deploy install --k3s``, on top of ``k3watch k3s setup``'s planner and writer.
- ``host``: systemd units and openrc scripts for installs without Kubernetes.
- ``bootstrap``: the first admin token, written to a file rather than to a log.
"""
