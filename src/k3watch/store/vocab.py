"""Ids of the strings, origins and kinds events refer to.

The writer gives ids; readers only look them up. Strings (user names, resources, request URIs,
log messages…) are cached in memory by value (up to ``STRING_CACHE``; beyond, the cache starts
over and missing strings are looked up in ``strings`` again). New strings, origins and kinds
found while a batch is prepared are collected in an ``Added`` and inserted with the batch, in
its transaction; their ids are covered by the batch's ``vocab`` digest.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass, field
from itertools import chain, repeat

from k3watch.store.codec import Fields
from k3watch.store.sqlite_schema import MAX_STRING

STRING_CACHE = 500_000
_CHUNK = 1000


@dataclass(slots=True)
class Added:
    """Vocabulary a batch introduces: rows to insert with it."""

    strings: list[tuple[int, str]] = field(default_factory=list)
    origins: list[tuple[int, str, str, str]] = field(default_factory=list)
    kinds: list[tuple[int, ...]] = field(default_factory=list)


class Vocabulary:
    """The writer's ids, with caches (used from the writer's thread only)."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self.db = db
        self.strings: dict[str | int | None, int] = {}
        self.origins: dict[tuple[str, str, str], int] = {}
        self.kinds: dict[tuple[int, ...], int] = {}
        self.load()

    def load(self) -> None:
        db = self.db
        self.strings_hi = db.execute("SELECT max(id) FROM strings").fetchone()[0] or 0
        self.strings = {None: 0}  # absent values are 0
        self.origins = {(c, n, s): int(i) for i, c, n, s in db.execute("SELECT * FROM origins")}
        self.origins_hi = max(self.origins.values(), default=0)
        self.kinds = {tuple(row[1:]): int(row[0]) for row in db.execute("SELECT * FROM kinds")}
        self.kinds_hi = max(self.kinds.values(), default=0)

    def high(self) -> tuple[int, int, int]:
        """The highest string, origin and kind ids given so far."""
        return self.strings_hi, self.origins_hi, self.kinds_hi

    def columns(self, values: Sequence[Fields], added: Added) -> list[list[int]]:
        """The ten columns of ``values`` as ids (status codes stay themselves)."""
        try:
            return self._columns(values)
        except KeyError:  # a string seen for the first time (or pushed out of the cache)
            self._intern(values, added)
            return self._columns(values)

    def _columns(self, values: Sequence[Fields]) -> list[list[int]]:
        # codes map to themselves in the same cache, so one pass does all ten columns
        flat = list(map(self.strings.__getitem__, chain.from_iterable(values)))
        return [flat[k::10] for k in range(10)]

    def kinds_of(
        self,
        org: int,
        verbs: list[int],
        decisions: list[int],
        codes: list[int],
        stages: list[int],
        added: Added,
    ) -> list[int]:
        """The kind of each event: its origin, verb, decision, code and stage, as an id."""
        keys = list(zip(repeat(org), verbs, decisions, codes, stages, strict=False))
        kinds = self.kinds
        for key in sorted(set(keys).difference(kinds)):
            self.kinds_hi += 1
            kinds[key] = self.kinds_hi
            added.kinds.append((self.kinds_hi, *key))
        return list(map(kinds.__getitem__, keys))

    def origin(self, cluster: str, node: str, source: str, added: Added) -> int:
        key = (cluster, node, source)
        origin = self.origins.get(key)
        if origin is None:
            self.origins_hi += 1
            origin = self.origins[key] = self.origins_hi
            added.origins.append((origin, *key))
        return origin

    def _intern(self, values: Sequence[Fields], added: Added) -> None:
        """Give every string of ``values`` an id (new strings go into ``added``)."""
        cache = self.strings
        seen: set[str | int | None] = set(chain.from_iterable(values))
        unknown = seen.difference(cache)
        for value in unknown:
            if type(value) is int:
                cache[value] = value  # status codes are themselves
        wanted = {v for v in unknown if type(v) is str}
        if not wanted:
            return
        if len(cache) + len(wanted) > STRING_CACHE:
            self.strings = cache = {None: 0}
            cache.update((v, v) for v in seen if type(v) is int)
            wanted = {v for v in seen if type(v) is str}
        cut = {v: _indexable(v) for v in wanted}
        missing = set(cut.values())
        keys = list(missing)
        for start in range(0, len(keys), _CHUNK):
            chunk = keys[start : start + _CHUNK]
            marks = ",".join("?" * len(chunk))
            for string_id, value in self.db.execute(
                f"SELECT id, value FROM strings WHERE value IN ({marks})", chunk
            ):
                missing.discard(value)
                cache[value] = int(string_id)
        for value in sorted(missing):
            self.strings_hi += 1
            cache[value] = self.strings_hi
            added.strings.append((self.strings_hi, value))
        for value, short in cut.items():
            if value != short:
                cache[value] = cache[short]


def _indexable(value: str) -> str:
    """The value as kept in ``strings``: cut to ``MAX_STRING``, valid UTF-8."""
    short = value[:MAX_STRING]
    if not short.isascii():
        try:
            short.encode()
        except UnicodeEncodeError:
            short = short.encode("utf-8", "replace").decode()
    return short
