"""A deterministic generator of realistic K3s API-server audit streams, with attacks.

A simulated K3s v1.31 cluster (one server with embedded etcd, agents, Traefik, ServiceLB,
local-path storage, metrics-server, CoreDNS, a small shop application, GitLab CI and a build
service) writes the ``audit.k8s.io/v1`` events a sane audit policy would record. On the last
day, seven attack scenarios (``SCENARIOS``) are injected among the benign look-alikes
(``BENIGN_LOOKALIKES``) that make K3s noisy for naive rules.

Entry points:

* ``generate_events(...)`` — event dicts in request-received order (``demo``, rule tests);
* ``generate_tagged_events(...)`` — the same, paired with the scenario that wrote each event;
* ``write_sample(path, ...)`` — JSON lines (``.gz`` for gzip) and a ``SampleInfo`` summary;
* ``iter_events_bulk(count, seed)`` — fast, newline-terminated JSON lines for benchmarks.

Layout: ``cluster`` (identities, addresses, versions), ``records`` (audit event shapes and
policy levels), ``objects``/``workloads``/``writes`` (request bodies), ``engine`` (the
discrete-event loop), ``system``/``boot``/``lifecycle``/``rollout``/``storage``/``people``/
``automation`` (benign traffic), ``scenarios``/``attacks`` (the attacks), ``stream`` and
``bulk`` (the entry points).
"""

from k3watch.sample.bulk import BULK_AVERAGE_LINE_BYTES, iter_events_bulk
from k3watch.sample.scenarios import BENIGN_LOOKALIKES, SCENARIOS, LookAlike, Scenario
from k3watch.sample.stream import (
    DEFAULT_START,
    SampleInfo,
    attack_day,
    generate_events,
    generate_tagged_events,
    write_sample,
)

__all__ = [
    "BENIGN_LOOKALIKES",
    "BULK_AVERAGE_LINE_BYTES",
    "DEFAULT_START",
    "SCENARIOS",
    "LookAlike",
    "SampleInfo",
    "Scenario",
    "attack_day",
    "generate_events",
    "generate_tagged_events",
    "iter_events_bulk",
    "write_sample",
]
