"""Automation that runs on its own: image builds and the nightly backup.

* The build service: ``system:serviceaccount:default:build-bot``, used in-cluster by the
  ``build-runner`` pod (UA ``build-runner/v0.0.0``), reads its config map and the registry
  secret and creates a kaniko Job in ``default`` about once an hour on weekdays; the TTL
  controller and the garbage collector clean up. This is the token the attacker later steals.
* The ``shop/pg-backup`` CronJob at 02:00 UTC every day, whose generic ephemeral volume makes
  local-path-provisioner run helper pods in kube-system.

GitLab CI lives in ``ci``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from k3watch.sample import objects as o
from k3watch.sample.ci import ci_process
from k3watch.sample.cluster import Actor, Pod, rbac_reason, sa_subject_text, suffix
from k3watch.sample.engine import Process, World
from k3watch.sample.lifecycle import (
    DELETE_OPTIONS_KIND,
    patch_pod_status,
    record_event,
    request_token,
    start_pod,
)
from k3watch.sample.people import hourly, office_rate
from k3watch.sample.records import DAY, HOUR, MINUTE, SECOND
from k3watch.sample.rollout import pod_body
from k3watch.sample.storage import provision_volume, release_volume
from k3watch.sample.versions import IMAGES, UA_BUILD_RUNNER
from k3watch.sample.workloads import Workload


def build_bot_actor(w: World) -> Actor | None:
    """build-bot's token as its legitimate owner, the build-runner pod, uses it."""
    pods = w.cluster.pods_of("default", "build-runner")
    if not pods:
        return None
    return w.cluster.pod_actor(pods[0], UA_BUILD_RUNNER, build_bot_reason())


def build_bot_reason() -> str:
    """RBAC reason of build-bot's requests before the attacker binds it to cluster-admin."""
    return rbac_reason("build-bot", "build-bot", sa_subject_text("build-bot", "default"))


def build(w: World, start: int) -> Process:
    """build-bot's routine: read config and registry secret, run a kaniko Job, watch it."""
    t = start
    yield t
    c, rng, log = w.cluster, w.rng, w.log
    bot = build_bot_actor(w)
    if bot is None:
        return
    log.request(t, bot, "get", "configmaps", namespace="default", name="build-config")
    log.request(
        t + rng.randint(5_000, 40_000),
        bot,
        "get",
        "secrets",
        namespace="default",
        name="registry-credentials",
    )
    service = rng.choice(("shop-api", "shop-web", "billing"))
    job = f"build-{service}-{suffix(rng)}"
    labels = {"app": "build", "build.example.com/service": service}
    kaniko = o.container(
        "kaniko",
        IMAGES["kaniko"],
        args=[
            "--context=git://git.example.com/shop/" + service + ".git",
            f"--destination=ghcr.io/example/{service}:build-{rng.randint(1000, 9999)}",
            "--cache=true",
        ],
        mounts=[o.volume_mount("registry-credentials", "/kaniko/.docker", read_only=True)],
    )
    spec = o.pod_spec(
        [kaniko],
        restart_policy="Never",
        volumes=[
            {
                "name": "registry-credentials",
                "secret": {"secretName": "registry-credentials", "defaultMode": 420},
            }
        ],
    )
    body = o.workload(
        "Job",
        o.meta(job, "default", labels=labels),
        o.template(labels, spec),
        extra_spec={"backoffLimit": 0, "ttlSecondsAfterFinished": 600},
    )
    t += rng.randint(100_000, 500_000)
    c.next_rv()
    log.request(t, bot, "create", "jobs", namespace="default", name=job, group="batch", body=body)
    wl = Workload(
        job,
        "default",
        "Job",
        "build",
        "default",
        (("kaniko", IMAGES["kaniko"]),),
        1,
        False,
        lambda: spec,
    )
    node = c.pick_worker()
    pod = c.add_pod(f"{job}-{suffix(rng)}", "default", node, "default", "build", wl.containers)
    running = start_pod(
        w,
        t + rng.randint(10_000, 60_000),
        c.controller("job-controller"),
        pod,
        pod_body(w, wl, "Job", job, labels, spec),
        owner=job,
        track=False,
    )
    done = running + rng.randint(60, 240) * SECOND
    for poll in range(t + 30 * SECOND, done, 30 * SECOND):
        log.request(poll, bot, "get", "jobs", namespace="default", name=job, group="batch")
    yield done
    patch_pod_status(w, done, pod, "Succeeded")
    job_ctl = c.controller("job-controller")
    log.request(
        done + rng.randint(50_000, 500_000),
        job_ctl,
        "update",
        "jobs",
        namespace="default",
        name=job,
        subresource="status",
        group="batch",
    )
    record_event(w, done + rng.randint(500_000, 900_000), job_ctl, "default", job)
    t = done + 600 * SECOND + rng.randint(0, 5) * SECOND
    yield t
    log.request(
        t,
        c.controller("ttl-after-finished-controller"),
        "delete",
        "jobs",
        namespace="default",
        name=job,
        group="batch",
        body=dict(DELETE_OPTIONS_KIND, propagationPolicy="Foreground"),
    )
    c.remove_pod(pod)
    gc = c.controller("generic-garbage-collector")
    log.request(
        t + rng.randint(50_000, 400_000),
        gc,
        "delete",
        "pods",
        namespace="default",
        name=pod.name,
        body=dict(
            DELETE_OPTIONS_KIND, propagationPolicy="Foreground", preconditions={"uid": pod.uid}
        ),
    )


def build_process(w: World, first: int) -> Process:
    """Builds at about one an hour on weekdays, 08:00–19:00 UTC."""

    def act(w: World, t: int) -> None:
        w.spawn(build(w, t))

    return hourly(w, first, office_rate(1.0, 8, 19), act)


def backup_process(w: World, first: int) -> Process:
    """The ``shop/pg-backup`` CronJob fires at 02:00 UTC each day."""
    c, rng, log = w.cluster, w.rng, w.log
    previous: tuple[str, Pod, str] | None = None
    t = (first // DAY) * DAY + 2 * HOUR
    if t < first:
        t += DAY
    while True:
        yield t
        cron = c.controller("cronjob-controller")
        at = t + rng.randint(100_000, 900_000)
        if previous is not None:
            at = _delete_backup(w, at, *previous)
        job = f"pg-backup-{t // MINUTE}"
        labels = {
            "batch.kubernetes.io/controller-uid": c.uid(f"Job/shop/{job}"),
            "batch.kubernetes.io/job-name": job,
        }
        claim_name = "backup"
        spec = o.pod_spec(
            [
                o.container(
                    "pg-dump",
                    IMAGES["postgres"],
                    command=[
                        "sh",
                        "-c",
                        "pg_dump -h postgres -U shop shop | gzip > /backup/shop.sql.gz",
                    ],
                    mounts=[o.volume_mount(claim_name, "/backup")],
                )
            ],
            restart_policy="OnFailure",
            volumes=[
                {
                    "name": claim_name,
                    "ephemeral": {
                        "volumeClaimTemplate": {
                            "metadata": {"creationTimestamp": None},
                            "spec": {
                                "accessModes": ["ReadWriteOnce"],
                                "storageClassName": "local-path",
                                "resources": {"requests": {"storage": "2Gi"}},
                            },
                        }
                    },
                }
            ],
        )
        owner = o.owner_ref("batch/v1", "CronJob", "pg-backup", c.uid("CronJob/shop/pg-backup"))
        body = o.workload(
            "Job",
            o.meta(job, "shop", labels=labels, owner=owner),
            o.template(labels, spec),
            extra_spec={"backoffLimit": 6, "ttlSecondsAfterFinished": 86400},
        )
        c.next_rv()
        log.request(
            at, cron, "create", "jobs", namespace="shop", name=job, group="batch", body=body
        )
        record_event(w, at + 4_000, cron, "shop", "pg-backup")
        wl = Workload(
            job,
            "shop",
            "Job",
            "pg-backup",
            "default",
            (("pg-dump", IMAGES["postgres"]),),
            1,
            False,
            _fixed(spec),
        )
        node = c.pick_worker()
        pod = c.add_pod(f"{job}-{suffix(rng)}", "shop", node, "default", "pg-backup", wl.containers)
        at += rng.randint(20_000, 80_000)
        job_ctl = c.controller("job-controller")
        log.request(
            at,
            job_ctl,
            "create",
            "pods",
            namespace="shop",
            body=pod_body(w, wl, "Job", job, labels, spec),
            annotations={"pod-security.kubernetes.io/enforce-policy": "privileged:latest"},
        )
        claim = f"{pod.name}-{claim_name}"
        pvc = {
            "kind": "PersistentVolumeClaim",
            "apiVersion": "v1",
            "metadata": o.meta(claim, "shop", owner=o.owner_ref("v1", "Pod", pod.name, pod.uid)),
            "spec": {
                "accessModes": ["ReadWriteOnce"],
                "storageClassName": "local-path",
                "resources": {"requests": {"storage": "2Gi"}},
            },
        }
        c.next_rv()
        log.request(
            at + rng.randint(5_000, 30_000),
            c.controller("ephemeral-volume-controller"),
            "create",
            "persistentvolumeclaims",
            namespace="shop",
            name=claim,
            body=pvc,
        )
        at = provision_volume(w, at + rng.randint(100_000, 400_000), claim, "shop", node, 2 << 30)
        # The pod was created above; the scheduler binds it once its volume is placed.
        running = start_pod_after_create(w, at, pod)
        done = running + rng.randint(40, 200) * SECOND
        yield done
        patch_pod_status(w, done, pod, "Succeeded")
        log.request(
            done + rng.randint(50_000, 500_000),
            job_ctl,
            "update",
            "jobs",
            namespace="shop",
            name=job,
            subresource="status",
            group="batch",
        )
        log.request(
            done + rng.randint(600_000, 2_000_000),
            cron,
            "update",
            "cronjobs",
            namespace="shop",
            name="pg-backup",
            subresource="status",
            group="batch",
        )
        previous = (job, pod, claim)
        t += DAY


def start_pod_after_create(w: World, t: int, pod: Pod) -> int:
    """Binding and start-up of a pod whose creation is already logged."""
    c, rng = w.cluster, w.rng
    scheduler = c.scheduler()
    w.log.request(
        t,
        scheduler,
        "create",
        "pods",
        namespace=pod.namespace,
        name=pod.name,
        subresource="binding",
        body=o.binding(pod.name, pod.namespace, pod.uid, pod.node.name),
    )
    record_event(w, t + rng.randint(500, 3_000), scheduler, pod.namespace, pod.name, new_api=True)
    t += rng.randint(300_000, 1_500_000)
    request_token(w, t, pod)
    pod.started = t + rng.randint(100_000, 900_000)
    t = pod.started + rng.randint(100_000, 1_000_000)
    patch_pod_status(w, t, pod, "Running")
    return t


def _delete_backup(w: World, t: int, job: str, pod: Pod, claim: str) -> int:
    """Keep one successful Job: delete yesterday's, its pod and (through the pod) its volume."""
    c, rng, log = w.cluster, w.rng, w.log
    log.request(
        t,
        c.controller("cronjob-controller"),
        "delete",
        "jobs",
        namespace="shop",
        name=job,
        group="batch",
        body=dict(DELETE_OPTIONS_KIND, propagationPolicy="Background"),
    )
    gc = c.controller("generic-garbage-collector")
    c.remove_pod(pod)
    t += rng.randint(50_000, 300_000)
    log.request(
        t,
        gc,
        "delete",
        "pods",
        namespace="shop",
        name=pod.name,
        body=dict(
            DELETE_OPTIONS_KIND, propagationPolicy="Background", preconditions={"uid": pod.uid}
        ),
    )
    t += rng.randint(50_000, 300_000)
    log.request(
        t,
        gc,
        "delete",
        "persistentvolumeclaims",
        namespace="shop",
        name=claim,
        body=dict(DELETE_OPTIONS_KIND, propagationPolicy="Background"),
    )
    return (
        release_volume(w, t + rng.randint(100_000, 600_000), claim, "shop", pod.node, 2 << 30)
        + rng.randint(1, 5) * SECOND
    )


def automation_processes(w: World, first: int) -> list[Process]:
    """CI, builds and the nightly backup, starting at ``first``."""
    return [ci_process(w, first), build_process(w, first), backup_process(w, first)]


def _fixed(spec: dict[str, Any]) -> Callable[[], dict[str, Any]]:
    """A pod-template factory that always returns ``spec`` (a Job's template is fixed)."""

    def template() -> dict[str, Any]:
        return spec

    return template
