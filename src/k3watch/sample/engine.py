"""A small discrete-event simulation that turns many traffic processes into one ordered stream.

A *process* is a generator that yields the next time (epoch µs) it wants to run; when resumed it
writes the requests it makes at that time (possibly a few with later arrival times, such as the
follow-up calls of a controller) and yields again. The simulation resumes processes in time
order and releases events in ``requestReceivedTimestamp`` order: an event is released once no
process can still write an earlier one, which is guaranteed because a process resumed at ``t``
never writes an event received before ``t``.

Memory stays bounded by what processes schedule ahead (seconds to minutes of traffic), so days
of traffic stream out without being held in memory.
"""

from __future__ import annotations

import heapq
import random
from collections.abc import Generator, Iterator
from dataclasses import dataclass
from typing import Any

from k3watch.sample.cluster import Cluster
from k3watch.sample.records import AuditLog, Sink

Process = Generator[int, None, None]
"""A traffic process: yields wake-up times in epoch microseconds, never going back in time."""

Tagged = tuple[dict[str, Any], str | None]


class Simulation:
    """Runs processes between ``start`` and ``end`` (epoch µs) and orders their events."""

    def __init__(self, start: int, end: int) -> None:
        self.start = start
        self.end = end
        self.now = start
        self._seq = 0
        self._processes: list[tuple[int, int, Process]] = []
        self._events: list[tuple[int, int, dict[str, Any], str | None]] = []

    def spawn(self, process: Process) -> None:
        """Add a process; it first runs at the time it yields."""
        try:
            wake = next(process)
        except StopIteration:
            return
        self._push(wake, process)

    def sink(self, tag: str | None) -> Sink:
        """A sink that records events under ``tag`` (an attack scenario name, or ``None``)."""

        def emit(t: int, event: dict[str, Any]) -> None:
            if t < self.now:
                raise RuntimeError(f"event at {t} written by a process resumed at {self.now}")
            self._seq += 1
            heapq.heappush(self._events, (t, self._seq, event, tag))

        return emit

    def run(self) -> Iterator[Tagged]:
        """Yield ``(event, tag)`` pairs in non-decreasing request-received order."""
        processes, events, end = self._processes, self._events, self.end
        while processes:
            wake, _, process = heapq.heappop(processes)
            if wake >= end:
                continue
            while events and events[0][0] < wake:
                _, _, event, tag = heapq.heappop(events)
                yield event, tag
            self.now = wake
            try:
                following = next(process)
            except StopIteration:
                continue
            if following < wake:
                raise RuntimeError(f"process went back in time: {following} < {wake}")
            self._push(following, process)
        while events:
            t, _, event, tag = heapq.heappop(events)
            if t < end:
                yield event, tag

    def _push(self, wake: int, process: Process) -> None:
        self._seq += 1
        heapq.heappush(self._processes, (wake, self._seq, process))


@dataclass(slots=True)
class World:
    """What a traffic process needs: the clock, the cluster, where to log and its dice.

    Background processes share one ``World``; each attack scenario gets a fork with its own
    random source and tag, and promises not to change the cluster, so the background of a
    stream does not depend on whether attacks are injected.
    """

    sim: Simulation
    cluster: Cluster
    log: AuditLog
    rng: random.Random
    scale: float

    @property
    def start(self) -> int:
        return self.sim.start

    @property
    def end(self) -> int:
        return self.sim.end

    def spawn(self, process: Process) -> None:
        self.sim.spawn(process)

    def fork(self, tag: str, seed: str) -> World:
        rng = random.Random(seed)
        return World(self.sim, self.cluster, AuditLog(rng, self.sim.sink(tag)), rng, self.scale)
