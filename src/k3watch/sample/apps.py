"""The workloads of the cluster's users: a shop (web, api, postgres), GitLab CI, a build service.

Each is a ``Workload`` with its stored pod template, like the K3s components in ``workloads``.
"""

from __future__ import annotations

from typing import Any

from k3watch.sample import objects as o
from k3watch.sample.versions import IMAGES
from k3watch.sample.workloads import Workload, config_map_volume, probe, tcp_port


def web_spec() -> dict[str, Any]:
    c = o.container(
        "web",
        IMAGES["web"],
        ports=[tcp_port("http", 80)],
        resources={"limits": {"memory": "128Mi"}, "requests": {"cpu": "50m", "memory": "64Mi"}},
        probes={"readinessProbe": probe("/", "http")},
    )
    return o.pod_spec([c])


def api_spec(image: str = IMAGES["api"]) -> dict[str, Any]:
    env = [
        {
            "name": "DATABASE_URL",
            "valueFrom": {"secretKeyRef": {"name": "api-secrets", "key": "database-url"}},
        },
        {
            "name": "STRIPE_API_KEY",
            "valueFrom": {"secretKeyRef": {"name": "stripe-api-key", "key": "key"}},
        },
    ]
    c = o.container(
        "api",
        image,
        ports=[tcp_port("http", 8080)],
        env=env,
        resources={"limits": {"memory": "256Mi"}, "requests": {"cpu": "100m", "memory": "128Mi"}},
        probes={"readinessProbe": probe("/healthz", "http")},
        security={"runAsNonRoot": True, "allowPrivilegeEscalation": False},
    )
    return o.pod_spec([c])


def postgres_spec() -> dict[str, Any]:
    env = [
        {
            "name": "POSTGRES_PASSWORD",
            "valueFrom": {"secretKeyRef": {"name": "postgres-credentials", "key": "password"}},
        }
    ]
    c = o.container(
        "postgres",
        IMAGES["postgres"],
        ports=[tcp_port("postgres", 5432)],
        env=env,
        mounts=[o.volume_mount("data", "/var/lib/postgresql/data")],
    )
    return o.pod_spec([c])


def runner_spec() -> dict[str, Any]:
    c = o.container(
        "gitlab-runner",
        IMAGES["runner"],
        args=["run", "--user=gitlab-runner", "--working-directory=/home/gitlab-runner"],
        mounts=[o.volume_mount("runner-config", "/etc/gitlab-runner")],
    )
    return o.pod_spec(
        [c],
        volumes=[config_map_volume("runner-config", "gitlab-runner")],
        service_account="gitlab-runner",
    )


def build_runner_spec() -> dict[str, Any]:
    c = o.container("build-runner", IMAGES["build-runner"], ports=[tcp_port("http", 8080)])
    return o.pod_spec([c], service_account="build-bot")


APP_WORKLOADS = (
    Workload(
        "web", "shop", "Deployment", "web", "default", (("web", IMAGES["web"]),), 2, False, web_spec
    ),
    Workload(
        "api", "shop", "Deployment", "api", "default", (("api", IMAGES["api"]),), 2, False, api_spec
    ),
    Workload(
        "postgres",
        "shop",
        "StatefulSet",
        "postgres",
        "default",
        (("postgres", IMAGES["postgres"]),),
        1,
        False,
        postgres_spec,
    ),
    Workload(
        "gitlab-runner",
        "ci",
        "Deployment",
        "gitlab-runner",
        "gitlab-runner",
        (("gitlab-runner", IMAGES["runner"]),),
        1,
        False,
        runner_spec,
    ),
    Workload(
        "build-runner",
        "default",
        "Deployment",
        "build-runner",
        "build-bot",
        (("build-runner", IMAGES["build-runner"]),),
        1,
        False,
        build_runner_spec,
    ),
)
