"""Millions of realistic audit lines, fast: templates from the simulation, fresh IDs and times.

``iter_events_bulk`` first simulates one busy hour of the cluster at ``scale=40`` (heartbeats
other than leader election at their real rate, as in an unfiltered K3s log), serialises every
event once and cuts each line around its ``auditID`` and the hour part of its two timestamps.
It then replays that hour again and again, each replay one hour later, with new audit IDs
(shared by the two stages of a long-running request). Within a replay the minutes, seconds and
microseconds of each event are those of the simulation, so a line costs one join of seven byte
strings plus a UUID per request. Request bodies repeat from one replay to the next; only audit
IDs and timestamps change.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from datetime import datetime, timedelta
from functools import lru_cache

import orjson

from k3watch.sample.records import HOUR, format_us
from k3watch.sample.stream import DEFAULT_START, epoch_us, generate_events

BULK_AVERAGE_LINE_BYTES = 1209
"""Average line length (newline included) of ``iter_events_bulk`` for seed 7."""

# The simulated hour: Tuesday 09:00–10:00 UTC (working hours, well after boot, no attacks).
_SIM_START = DEFAULT_START + timedelta(days=1, hours=8)
_HOUR_START = epoch_us(_SIM_START) + HOUR

_AID = "@@AUDIT@@"
_RRT = "@@RECEIVED@@"
_STS = "@@STAGE@@"

# One event line: text before the auditID, text from the auditID to the received timestamp,
# which hour (from the replay's) that timestamp falls in, text from the timestamp's minutes to
# the stage timestamp, its hour, and the rest of the line.
_Cut = tuple[bytes, bytes, int, bytes, int, bytes]
# "4" in the UUID version position; the variant nibble is one of 8, 9, a, b.
_VARIANT = {c: b"89ab"[c & 3 : (c & 3) + 1] for c in b"0123456789abcdef"}


def _us(text: str) -> int:
    return epoch_us(datetime.fromisoformat(text))


def _cut(event: dict[str, object]) -> _Cut:
    received = _us(str(event["requestReceivedTimestamp"])) - _HOUR_START
    stage = _us(str(event["stageTimestamp"])) - _HOUR_START
    marked = dict(event)
    marked.update(auditID=_AID, requestReceivedTimestamp=_RRT, stageTimestamp=_STS)
    line = orjson.dumps(marked) + b"\n"
    head, rest = line.split(_AID.encode(), 1)
    middle, rest = rest.split(_RRT.encode(), 1)
    between, tail = rest.split(_STS.encode(), 1)
    # "2026-03-03T09:12:34.567890Z": the replay decides the first 13 characters, the cut the rest.
    received_rest = format_us(_HOUR_START + received)[13:].encode()
    stage_rest = format_us(_HOUR_START + stage)[13:].encode()
    return (
        head,
        middle,
        received // HOUR,
        received_rest + between,
        stage // HOUR,
        stage_rest + tail,
    )


@lru_cache(maxsize=4)
def _requests(seed: int) -> tuple[tuple[_Cut, ...], ...]:
    """The requests of the simulated hour, in order, each as the cuts of its events."""
    events = generate_events(seed=seed, start=_SIM_START, days=2 / 24, attacks=False, scale=40.0)
    stages: dict[str, list[dict[str, object]]] = {}
    for event in events:
        if _us(str(event["requestReceivedTimestamp"])) >= _HOUR_START:
            stages.setdefault(str(event["auditID"]), []).append(event)
    # dicts keep insertion order: the stream's order
    return tuple(tuple(_cut(event) for event in group) for group in stages.values())


def iter_events_bulk(count: int, seed: int = 7) -> Iterator[bytes]:
    """``count`` newline-terminated JSON audit lines, deterministic for ``seed``.

    Lines average ``BULK_AVERAGE_LINE_BYTES`` bytes (about 1.2 KiB, close to a Request-level
    K3s log) and come in non-decreasing ``requestReceivedTimestamp`` order, one simulated hour
    replayed after another from 2026-03-03 09:00 UTC. The first call for a seed spends about a
    second simulating the template hour.
    """
    if count < 0:
        raise ValueError("count must not be negative")
    requests = _requests(seed)
    bits = random.Random(f"k3watch-sample-bulk/{seed}").getrandbits
    variant = _VARIANT
    produced = 0
    replay = 0
    while produced < count:
        # Hour prefixes ("2026-03-03T09") of this replay and of the hours its stages reach into.
        hours = [format_us(_HOUR_START + (replay + k) * HOUR)[:13].encode() for k in range(3)]
        for cuts in requests:
            h = b"%032x" % bits(128)
            aid = b"%b-%b-4%b-%b%b-%b" % (
                h[:8],
                h[8:12],
                h[13:16],
                variant[h[16]],
                h[17:20],
                h[20:],
            )
            for head, middle, received, between, stage, tail in cuts:
                yield b"".join((head, aid, middle, hours[received], between, hours[stage], tail))
                produced += 1
                if produced >= count:
                    return
        replay += 1
