"""GitLab CI deploying the shop with the Kubernetes executor.

``system:serviceaccount:ci:gitlab-runner`` creates a job pod and a credentials secret in ``ci``,
attaches to the job's containers (``create pods/attach``) and deletes both when done. In the
job, ``system:serviceaccount:ci:deployer`` runs ``kubectl set image`` (shop/api) or ``kubectl
rollout restart`` (shop/web) and ``kubectl rollout status``, so the deployment and replicaset
controllers roll the pods. About eight pipelines per weekday, 09:00–18:00 UTC.
"""

from __future__ import annotations

from typing import Any

from k3watch.sample import objects as o
from k3watch.sample import patches
from k3watch.sample.apps import APP_WORKLOADS, api_spec
from k3watch.sample.cluster import Actor, rbac_reason, sa_subject_text, suffix
from k3watch.sample.engine import Process, World
from k3watch.sample.lifecycle import DELETE_OPTIONS_KIND, start_pod, stop_pod
from k3watch.sample.people import hourly, office_rate
from k3watch.sample.records import SECOND, format_us, watch_query
from k3watch.sample.rollout import rolling_update
from k3watch.sample.versions import UA_GITLAB_RUNNER, UA_KUBECTL_CI
from k3watch.sample.workloads import Workload

RUNNER_TOKEN = "t3x9vq2k"
HELPER_IMAGE = "registry.gitlab.com/gitlab-org/gitlab-runner/gitlab-runner-helper:x86_64-v17.6.0"
KUBECTL_IMAGE = "docker.io/bitnami/kubectl:1.31.4"
# What the Kubernetes executor runs as the build container's command: the job script is then
# streamed through the attach session.
SHELL_DETECT = (
    "if [ -x /usr/local/bin/bash ]; then\n\texec /usr/local/bin/bash \n"
    "elif [ -x /usr/bin/bash ]; then\n\texec /usr/bin/bash \nelse\n\texec sh \nfi\n"
)


def _workload(name: str) -> Workload:
    return next(wl for wl in APP_WORKLOADS if wl.name == name)


def runner_actor(w: World) -> Actor | None:
    """The GitLab runner's identity (its pod's token), ``None`` before it runs."""
    pods = w.cluster.pods_of("ci", "gitlab-runner")
    if not pods:
        return None
    reason = rbac_reason(
        "gitlab-runner", "gitlab-runner", sa_subject_text("gitlab-runner", "ci"), "ci", "Role"
    )
    return w.cluster.pod_actor(pods[0], UA_GITLAB_RUNNER, reason)


def pipeline(w: World, start: int, number: int, api_version: list[int]) -> Process:
    """One GitLab CI deploy job run by the Kubernetes executor."""
    t = start
    yield t
    c, rng, log = w.cluster, w.rng, w.log
    runner = runner_actor(w)
    if runner is None:
        return
    name = f"runner-{RUNNER_TOKEN}-project-42-concurrent-0-{suffix(rng, 8)}"
    create_secret = o.meta(
        generate_name=f"runner-{RUNNER_TOKEN}-project-42-concurrent-0-", namespace="ci"
    )
    log.request(
        t,
        runner,
        "create",
        "secrets",
        namespace="ci",
        body={"kind": "Secret", "apiVersion": "v1", "metadata": create_secret},
    )
    secret = f"{name}-{suffix(rng)}"
    t += rng.randint(50_000, 300_000)
    containers = (("build", KUBECTL_IMAGE), ("helper", HELPER_IMAGE))
    node = c.pick_worker()
    pod = c.add_pod(name, "ci", node, "deployer", "ci-job", containers)
    spec = o.pod_spec(
        [
            o.container(
                "build",
                KUBECTL_IMAGE,
                defaulted=False,
                command=["sh", "-c", SHELL_DETECT],
                env=[
                    {"name": "CI_JOB_ID", "value": str(7_700_000 + number)},
                    {"name": "CI_PROJECT_PATH", "value": "shop/shop-api"},
                ],
            ),
            o.container(
                "helper",
                HELPER_IMAGE,
                defaulted=False,
                command=["sh", "-c", "gitlab-runner-helper"],
            ),
        ],
        defaulted=False,
        service_account="deployer",
        restart_policy="Never",
        volumes=[{"name": "repo", "emptyDir": {}}],
    )
    labels = {"pod": name, "project.runner.gitlab.com/id": "42"}
    body = o.pod(o.meta(name, "ci", labels=labels), spec)
    running = start_pod(w, t, runner, pod, body, owner=name, track=False, controller=False)
    for poll in range(t + 2 * SECOND, running, 3 * SECOND):
        log.request(poll, runner, "get", "pods", namespace="ci", name=name)
    t = running + rng.randint(200_000, 900_000)
    # Long enough for the deploy step below (20 s of setup, then a rollout of under 30 s).
    job_length = rng.randint(55, 150) * SECOND
    job_end = t + job_length
    for container in ("helper", "build"):
        query = f"container={container}&stderr=true&stdin=true&stdout=true"
        log.request(
            t,
            runner,
            "create",
            "pods",
            namespace="ci",
            name=name,
            subresource="attach",
            query=query,
            duration_us=job_length,
        )
        t += rng.randint(20_000, 200_000)
    yield t + 20 * SECOND
    t += 20 * SECOND
    # Inside the job: kubectl with the deployer service account, from the job pod.
    deployer = c.pod_actor(
        pod,
        UA_KUBECTL_CI,
        rbac_reason("ci-deployer", "deployer", sa_subject_text("deployer", "ci"), "shop", "Role"),
    )
    restart = rng.random() < 0.3
    wl = _workload("web" if restart else "api")
    log.request(t, deployer, "get", "deployments", namespace="shop", name=wl.name, group="apps")
    t += rng.randint(100_000, 400_000)
    if restart:
        patch = patches.restart_patch(format_us(t)[:19] + "Z")
        spec_after: dict[str, Any] = wl.spec()
    else:
        api_version[0] += 1
        image = f"ghcr.io/example/shop-api:1.8.{api_version[0]}"
        patch = patches.image_patch("api", image)
        spec_after = api_spec(image)
    new_containers: tuple[tuple[str, str], ...] = tuple(
        (str(cn["name"]), str(cn["image"])) for cn in spec_after["containers"]
    )
    log.request(
        t,
        deployer,
        "patch",
        "deployments",
        namespace="shop",
        name=wl.name,
        group="apps",
        body=patch,
    )
    rolled = rolling_update(w, t, wl, spec_after, new_containers)
    t += rng.randint(200_000, 600_000)
    log.request(t, deployer, "get", "deployments", namespace="shop", name=wl.name, group="apps")
    query = watch_query(str(c.rv), 600, field_selector=f"metadata.name={wl.name}")
    log.request(
        t + 50_000,
        deployer,
        "watch",
        "deployments",
        namespace="shop",
        name=wl.name,
        group="apps",
        query=query,
        duration_us=max(SECOND, rolled - t),
    )
    t = max(t, rolled, job_end) + rng.randint(1 * SECOND, 4 * SECOND)
    yield t
    stop_pod(w, t, runner, pod)
    log.request(
        t + rng.randint(5_000, 50_000),
        runner,
        "delete",
        "secrets",
        namespace="ci",
        name=secret,
        body=dict(DELETE_OPTIONS_KIND),
    )


def ci_process(w: World, first: int) -> Process:
    """Pipelines at about 0.9 an hour on weekdays, 09:00–18:00 UTC."""
    counter = [0]
    api_version = [3]

    def act(w: World, t: int) -> None:
        counter[0] += 1
        w.spawn(pipeline(w, t, counter[0], api_version))

    return hourly(w, first, office_rate(0.9, 9, 18), act)
