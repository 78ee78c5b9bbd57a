"""Field indexes per sealed segment (postings), and the time bounds of blocks.

A sealed segment (``Layout.segment`` consecutive ids) has one ``postings`` row per field and
value that occurs in it: the number of events ``n`` and which of them, as increasing 16-bit
offsets from the segment's first id, zstd-compressed when there are 64 or more. A search
unites the postings of a field's accepted values and intersects the fields
(``query._Candidates``).

The writer gathers the field columns of the segment it fills (by reference) and groups them
when the segment is full, so ingest pays no per-row index maintenance; the unsealed tail is
filtered by scanning its rows.
"""

from __future__ import annotations

import sqlite3
import sys
from array import array
from collections import defaultdict
from collections.abc import Sequence

import zstandard

from k3watch.store.sqlite_schema import COLUMNS, Layout

_RAW = 0
_PACKED = 1
_PACK_FROM = 64
_FORMAT = zstandard.FORMAT_ZSTD1_MAGICLESS
_SELECT = f"SELECT id, {', '.join(COLUMNS)} FROM events WHERE id BETWEEN ? AND ? ORDER BY id"


def _cctx() -> zstandard.ZstdCompressor:
    params = zstandard.ZstdCompressionParameters.from_level(
        3, format=_FORMAT, write_content_size=True, write_checksum=False, write_dict_id=False
    )
    return zstandard.ZstdCompressor(compression_params=params)


def encode(offsets: Sequence[int], cctx: zstandard.ZstdCompressor) -> bytes:
    """A posting's bytes for increasing ``offsets`` within a segment: 16-bit offsets, zstd
    compressed when there are many."""
    packed = array("H", offsets)
    if sys.byteorder == "big":
        packed.byteswap()
    if len(packed) < _PACK_FROM:
        return bytes((_RAW,)) + packed.tobytes()
    return bytes((_PACKED,)) + cctx.compress(packed.tobytes())


def offsets(data: bytes, dctx: zstandard.ZstdDecompressor) -> array[int]:
    """The offsets of a posting."""
    out = array("H")
    out.frombytes(dctx.decompress(data[1:]) if data[0] == _PACKED else data[1:])
    if sys.byteorder == "big":
        out.byteswap()
    return out


def decompressor() -> zstandard.ZstdDecompressor:
    return zstandard.ZstdDecompressor(format=_FORMAT)


class SegmentBuilder:
    """The field columns of one segment's events, gathered as they are written (by reference:
    adding costs nothing per event), grouped into postings when the segment is full."""

    def __init__(self, seg: int, layout: Layout) -> None:
        self.seg = seg
        self.layout = layout
        self.first = layout.segment_range(seg)[0]
        self.parts: list[tuple[Sequence[int], Sequence[Sequence[int]]]] = []
        self.count = 0

    def add(self, first_id: int, columns: Sequence[Sequence[int]]) -> None:
        """Add events of consecutive ids from ``first_id``: one sequence per ``COLUMNS``."""
        start = first_id - self.first
        self.parts.append((range(start, start + len(columns[0])), columns))
        self.count += len(columns[0])

    def load(self, db: sqlite3.Connection) -> None:
        """Gather the rows already stored in the segment."""
        first, last = self.layout.segment_range(self.seg)
        rows = db.execute(_SELECT, (first, last)).fetchall()
        if rows:
            columns = list(zip(*rows, strict=True))
            self.parts.append(([i - first for i in columns[0]], columns[1:]))
            self.count += len(rows)

    def encode(self) -> list[tuple[int, int, int, int, bytes]]:
        """The segment's postings rows: field, value, segment, count, encoded offsets."""
        cctx = _cctx()
        out: list[tuple[int, int, int, int, bytes]] = []
        offsets: list[int] = []
        columns: list[list[int]] = [[] for _ in COLUMNS]
        for part_offsets, part in self.parts:
            offsets.extend(part_offsets)
            for column, values in zip(columns, part, strict=True):
                column.extend(values)
        for field, column in enumerate(columns):
            groups: defaultdict[int, list[int]] = defaultdict(list)
            for offset, value in zip(offsets, column, strict=True):
                groups[value].append(offset)
            groups.pop(0, None)
            for value, members in groups.items():
                out.append((field, value, self.seg, len(members), encode(members, cctx)))
        return out


def block_bounds(db: sqlite3.Connection, blocks: list[int], layout: Layout) -> None:
    """Recompute the time bounds of ``blocks`` from their rows (after deletions)."""
    for block in blocks:
        first, last = layout.block_range(block)
        row = db.execute(
            "SELECT min(t), max(t) FROM events WHERE id BETWEEN ? AND ?", (first, last)
        ).fetchone()
        if row[0] is None:
            db.execute("DELETE FROM blocks WHERE b = ?", (block,))
        else:
            db.execute("UPDATE blocks SET min_t = ?, max_t = ? WHERE b = ?", (*row, block))
