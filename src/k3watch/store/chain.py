"""The hash chain over stored batches, and its verification.

Every batch that stores something gets a row in ``batches`` with:

* ``digest`` = sha256 of a header (first and last id, number of events, sha256 of the zstd
  dictionary the batch used) and of the stored rows in id order, column by column: ids, key
  hashes, times, each field column, ``z``, then the compressed bodies (lengths, bytes);
* ``vocab`` = sha256 of the strings, origins and kinds the batch introduced (ids above the
  previous batch's ``strings_hi`` / ``origins_hi`` / ``kinds_hi``), so that renaming a user
  in ``strings`` shows;
* ``hash`` = sha256(prev ‖ seq ‖ batch_id ‖ digest ‖ vocab), ``prev`` being the hash of the
  batch before (32 zero bytes for the first).

Retention deletes a batch's events but keeps its row (``pruned = 1``): its digest can no longer
be recomputed, its links and vocabulary still are.
"""

from __future__ import annotations

import hashlib
import sqlite3
import struct
import sys
from array import array
from collections.abc import Iterable, Sequence
from typing import Any

from k3watch.store.base import ChainProblem, ChainReport

GENESIS = bytes(32)
_SWAP = sys.byteorder == "big"
_HEADER = struct.Struct("<qqq")
_STRING = struct.Struct("<qI")
ROW_COLUMNS = "id, h, t, kind, usr, res, ns, nm, ip, txt, z, CAST(body AS BLOB)"


def batch_digest(
    first: int | None,
    last: int | None,
    events: int,
    dict_sha: bytes,
    columns: Sequence[Sequence[Any]],
    bodies: Sequence[bytes],
) -> bytes:
    """sha256 of a batch's header and rows: every column in id order (``ROW_COLUMNS`` minus
    ``body``, 64-bit integers in the machine's order made little-endian; ``t`` as a double),
    then the bodies' lengths and bytes."""
    digest = hashlib.sha256(b"k3watch-batch-1")
    digest.update(_HEADER.pack(first or 0, last or 0, events))
    digest.update(dict_sha)
    for number, column in enumerate(columns):
        packed = array("d" if number == 2 else "q", column)
        if _SWAP:
            packed.byteswap()
        digest.update(packed)
    lengths = array("q", map(len, bodies))
    if _SWAP:
        lengths.byteswap()
    digest.update(lengths)
    digest.update(b"".join(bodies))
    return digest.digest()


def vocab_digest(
    strings: Iterable[Sequence[Any]],
    origins: Iterable[Sequence[Any]],
    kinds: Iterable[Sequence[Any]],
) -> bytes:
    """sha256 of the strings ``(id, value)``, origins ``(id, cluster, node, source)`` and kinds
    ``(id, org, vb, dec, code, stg)`` a batch introduced, each in id order."""
    digest = hashlib.sha256(b"k3watch-vocab-1")
    for string_id, value in strings:
        digest.update(b"S" + _text(string_id, value))
    for origin_id, *names in origins:
        digest.update(b"O" + b"".join(_text(origin_id, name) for name in names))
    for row in kinds:
        digest.update(b"K" + struct.pack("<6q", *row))
    return digest.digest()


def _text(number: int, value: str) -> bytes:
    encoded = value.encode("utf-8", "surrogatepass")
    return _STRING.pack(number, len(encoded)) + encoded


def chain_hash(prev: bytes, seq: int, batch_id: str, digest: bytes, vocab: bytes) -> bytes:
    data = prev + seq.to_bytes(8, "big", signed=True)
    data += batch_id.encode("utf-8", "surrogatepass") + digest + vocab
    return hashlib.sha256(data).digest()


class _Problem(Exception):
    def __init__(self, problem: ChainProblem) -> None:
        super().__init__(problem.detail)
        self.problem = problem


def verify(db: sqlite3.Connection) -> ChainReport:
    """Walk the chain in one read transaction; report the first problem found."""
    db.execute("BEGIN")
    try:
        return _walk(db)
    finally:
        db.execute("COMMIT")


def _walk(db: sqlite3.Connection) -> ChainReport:
    dict_sha = {0: bytes(32)}
    for dict_id, data in db.execute("SELECT id, CAST(data AS BLOB) FROM dicts"):
        dict_sha[int(dict_id)] = hashlib.sha256(bytes(data)).digest()
    batches = events = pruned = 0
    prev = GENESIS
    covered = 0  # highest id covered by a batch so far
    vocab_hi = (0, 0, 0)
    last: tuple[int, str] = (0, "")
    expected = 1
    try:
        for row in db.execute(
            "SELECT seq, batch_id, first_rowid, last_rowid, events, strings_hi, origins_hi,"
            " kinds_hi, digest, vocab, prev, hash, pruned FROM batches ORDER BY seq"
        ).fetchall():
            (
                seq,
                batch_id,
                first,
                last_id,
                _,
                s_hi,
                o_hi,
                k_hi,
                digest,
                vocab,
                link,
                stored,
                gone,
            ) = row
            batches += 1
            last = (seq, batch_id)
            if seq != expected:
                missing = f"{expected}" if seq == expected + 1 else f"{expected}..{seq - 1}"
                raise _Problem(
                    ChainProblem(expected, "", "removed", f"batch {missing} missing before {seq}")
                )
            expected = seq + 1
            if bytes(link) != prev:
                raise _Problem(
                    ChainProblem(seq, batch_id, "reordered", "prev does not match the batch before")
                )
            if first is not None:
                _check_gap(db, seq, batch_id, covered, int(first))
                covered = max(covered, int(last_id))
            if gone:
                pruned += 1
                if first is not None:
                    _check_pruned(db, seq, batch_id, int(first), int(last_id))
            else:
                events += _check_rows(db, row, dict_sha)
            try:
                actual = _vocab(db, vocab_hi, (s_hi, o_hi, k_hi))
            except (struct.error, AttributeError, TypeError):
                actual = b"?"
            if actual != bytes(vocab):
                raise _Problem(
                    ChainProblem(
                        seq, batch_id, "altered", "strings or origins it introduced were changed"
                    )
                )
            vocab_hi = (max(vocab_hi[0], s_hi), max(vocab_hi[1], o_hi), max(vocab_hi[2], k_hi))
            expected_hash = chain_hash(prev, seq, batch_id, bytes(digest), bytes(vocab))
            if expected_hash != bytes(stored):
                raise _Problem(
                    ChainProblem(
                        seq, batch_id, "reordered", "hash does not match the batch's position"
                    )
                )
            prev = bytes(stored)
        extra = db.execute(
            "SELECT min(id), count(*) FROM events WHERE id > ?", (covered,)
        ).fetchone()
        if extra[1]:
            raise _Problem(
                ChainProblem(
                    last[0],
                    last[1],
                    "inserted",
                    f"{extra[1]} event(s) from id {extra[0]} after the last batch",
                )
            )
    except _Problem as found:
        return ChainReport(batches, events, prev.hex(), found.problem, pruned)
    return ChainReport(batches, events, prev.hex(), None, pruned)


def _vocab(db: sqlite3.Connection, low: tuple[int, int, int], high: tuple[int, int, int]) -> bytes:
    return vocab_digest(
        db.execute(
            "SELECT id, value FROM strings WHERE id > ? AND id <= ? ORDER BY id",
            (low[0], high[0]),
        ),
        db.execute(
            "SELECT id, cluster, node, source FROM origins WHERE id > ? AND id <= ? ORDER BY id",
            (low[1], high[1]),
        ),
        db.execute(
            "SELECT id, org, vb, dec, code, stg FROM kinds WHERE id > ? AND id <= ? ORDER BY id",
            (low[2], high[2]),
        ),
    )


def _check_gap(db: sqlite3.Connection, seq: int, batch_id: str, covered: int, first: int) -> None:
    row = db.execute(
        "SELECT min(id), count(*) FROM events WHERE id > ? AND id < ?", (covered, first)
    ).fetchone()
    if row[1]:
        raise _Problem(
            ChainProblem(
                seq, batch_id, "inserted", f"{row[1]} event(s) from id {row[0]} before this batch"
            )
        )


def _check_pruned(db: sqlite3.Connection, seq: int, batch_id: str, first: int, last: int) -> None:
    row = db.execute(
        "SELECT min(id), count(*) FROM events WHERE id BETWEEN ? AND ?", (first, last)
    ).fetchone()
    if row[1]:
        raise _Problem(
            ChainProblem(
                seq,
                batch_id,
                "inserted",
                f"{row[1]} event(s) from id {row[0]} in a batch removed by retention",
            )
        )


def _check_rows(db: sqlite3.Connection, batch: Sequence[Any], dict_sha: dict[int, bytes]) -> int:
    seq, batch_id, first, last, count = batch[:5]
    rows = (
        db.execute(
            f"SELECT {ROW_COLUMNS} FROM events WHERE id BETWEEN ? AND ? ORDER BY id", (first, last)
        ).fetchall()
        if first is not None
        else []
    )
    sha = bytes(32)
    if rows:
        z = rows[0][10]
        sha = dict_sha.get(z >> 1, b"?") if isinstance(z, int) else b"?"
    columns = list(zip(*rows, strict=True)) if rows else [()] * 12
    try:
        actual = batch_digest(first, last, count, sha, columns[:11], columns[11])
    except (TypeError, OverflowError):
        actual = b"?"
    if actual != bytes(batch[8]):
        detail = "an event was changed"
        if len(rows) < count:
            detail = f"{count - len(rows)} of its {count} event(s) are missing"
        elif len(rows) > count:
            detail = f"{len(rows) - count} event(s) were added to it"
        raise _Problem(ChainProblem(seq, batch_id, "altered", detail))
    return len(rows)
