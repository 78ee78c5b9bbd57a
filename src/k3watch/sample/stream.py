"""The public entry points: generate a K3s audit stream, or write one to a file."""

from __future__ import annotations

import gzip
import random
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from io import BufferedIOBase
from pathlib import Path
from typing import Any

import orjson

from k3watch.sample.attacks import attack_processes
from k3watch.sample.automation import automation_processes
from k3watch.sample.boot import boot
from k3watch.sample.cluster import Cluster
from k3watch.sample.engine import Simulation, Tagged, World
from k3watch.sample.people import admin_process, alice_process, bob_process
from k3watch.sample.records import DAY, HOUR, MINUTE, SECOND, AuditLog
from k3watch.sample.scenarios import SCENARIOS
from k3watch.sample.system import system_processes

DEFAULT_START = datetime(2026, 3, 2, tzinfo=UTC)
"""A Monday, so that an 8-day stream ends on a working day."""

_ATTACK_FIRST = min(s.offset_us for s in SCENARIOS)
_ATTACK_SPAN = HOUR  # every scenario starts within the hour after the first one


def epoch_us(moment: datetime) -> int:
    """A timezone-aware datetime as epoch microseconds (exact, no float rounding)."""
    if moment.tzinfo is None:
        raise ValueError("start must be timezone-aware (for example datetime(..., tzinfo=UTC))")
    delta = moment - datetime(1970, 1, 1, tzinfo=UTC)
    return (delta.days * 86_400 + delta.seconds) * SECOND + delta.microseconds


def attack_day(start_us: int, end_us: int) -> int:
    """Midnight (epoch µs) that scenario offsets count from.

    Normally midnight UTC of the stream's last day, so attacks run 14:02–14:55 there. When the
    stream ends before 15:00 on its last day, the attack hour is moved to the stream's last
    hour. Raises ``ValueError`` when the stream cannot hold the attacks after the cluster has
    booted and been provisioned (about 15 minutes).
    """
    day = (end_us - 1) // DAY * DAY
    if day + _ATTACK_FIRST + _ATTACK_SPAN > end_us:
        day = end_us - _ATTACK_SPAN - _ATTACK_FIRST
    if day + _ATTACK_FIRST < start_us + 15 * MINUTE:
        raise ValueError(
            "the stream is too short for the attack scenarios: give it at least "
            "1 h 15 min (days >= 0.053), or pass attacks=False"
        )
    return day


def generate_tagged_events(
    *,
    seed: int = 7,
    start: datetime | None = None,
    days: float = 1.0,
    nodes: int = 3,
    attacks: bool = True,
    scale: float = 1.0,
) -> Iterator[Tagged]:
    """Like ``generate_events`` but yields ``(event, scenario)`` pairs.

    ``scenario`` is the name of the attack scenario (see ``SCENARIOS``) that wrote the event,
    side effects included, or ``None`` for background traffic.
    """
    if days <= 0:
        raise ValueError("days must be positive")
    if scale <= 0:
        raise ValueError("scale must be positive")
    start_us = epoch_us(start or DEFAULT_START)
    end_us = start_us + int(days * DAY)
    day = attack_day(start_us, end_us) if attacks else 0
    rng = random.Random(seed)
    cluster = Cluster.build(rng, nodes)
    sim = Simulation(start_us, end_us)
    world = World(sim, cluster, AuditLog(rng, sim.sink(None)), rng, scale)
    sim.spawn(boot(world))
    for process in system_processes(world, start_us + 90 * SECOND):
        sim.spawn(process)
    people_start = start_us + 15 * MINUTE
    for process in (
        alice_process(world, people_start),
        bob_process(world, people_start),
        admin_process(world, people_start),
        *automation_processes(world, people_start),
    ):
        sim.spawn(process)
    if attacks:
        for process in attack_processes(world, day, seed):
            sim.spawn(process)
    return sim.run()


def generate_events(
    *,
    seed: int = 7,
    start: datetime | None = None,
    days: float = 1.0,
    nodes: int = 3,
    attacks: bool = True,
    scale: float = 1.0,
) -> Iterator[dict[str, Any]]:
    """Audit events of a simulated K3s cluster, in non-decreasing requestReceivedTimestamp order.

    The cluster has one server (``server-1``, 10.0.0.11) and ``nodes - 1`` agents
    (``agent-N``, 10.0.0.1N), boots at ``start`` (default ``DEFAULT_START``, 2026-03-02 00:00
    UTC) and runs for ``days``. ``scale`` multiplies background volume: about 7,000 events a
    day at 1 (heartbeats sampled down, see ``k3watch.sample.system``). With ``attacks`` the
    scenarios of ``SCENARIOS`` run on the last day; without, the background is identical.

    The same arguments always give the same events. Events may share nested objects (a
    user's ``user`` dict, for one): treat them as read-only or deep-copy before changing them.
    """
    for event, _ in generate_tagged_events(
        seed=seed, start=start, days=days, nodes=nodes, attacks=attacks, scale=scale
    ):
        yield event


@dataclass(frozen=True, slots=True)
class SampleInfo:
    """What ``write_sample`` wrote."""

    path: Path
    events: int
    bytes: int
    """Size of the JSON lines before any compression."""
    first: str
    """``requestReceivedTimestamp`` of the first event."""
    last: str
    attack_events: Mapping[str, int] = field(default_factory=dict)
    """Events written by each attack scenario, side effects included."""

    @property
    def attack_total(self) -> int:
        return sum(self.attack_events.values())


def write_sample(path: Path, **kwargs: Any) -> SampleInfo:
    """Write ``generate_events(**kwargs)`` as JSON lines (gzip when ``path`` ends in ``.gz``).

    Gzip output has no timestamp in its header, so the file bytes are deterministic too.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    counts = dict.fromkeys((s.name for s in SCENARIOS), 0) if kwargs.get("attacks", True) else {}
    events = size = 0
    first = last = ""
    dumps = orjson.dumps
    with _open(path) as out:
        batch: list[bytes] = []
        for event, tag in generate_tagged_events(**kwargs):
            line = dumps(event) + b"\n"
            batch.append(line)
            size += len(line)
            events += 1
            if tag is not None:
                counts[tag] += 1
            if not first:
                first = event["requestReceivedTimestamp"]
            last = event["requestReceivedTimestamp"]
            if len(batch) >= 4096:
                out.write(b"".join(batch))
                batch.clear()
        out.write(b"".join(batch))
    return SampleInfo(path, events, size, first, last, counts)


@contextmanager
def _open(path: Path) -> Iterator[BufferedIOBase]:
    with path.open("wb") as raw:
        if path.suffix != ".gz":
            yield raw
            return
        # No file name and a zero mtime in the header: same input, same bytes.
        with gzip.GzipFile(filename="", mode="wb", fileobj=raw, compresslevel=6, mtime=0) as gz:
            yield gz
