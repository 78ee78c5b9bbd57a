"""The hash chain over signed reviews, and its verification.

When a review is signed off it gets the next ``seq`` and

    hash = sha256(prev ‖ canonical JSON of the whole review)

where ``prev`` is the hash of the review signed before it (64 zeros for the first) and the
canonical JSON (sorted keys, no spaces, times as epoch seconds) is ``Review.document``: the
period, who opened it, every checklist item, finding and change of its history, the reviewer,
the time and the closing statement. ``chain_head`` holds the last ``seq`` and hash.

``verify`` walks the chain in ``seq`` order and names the first review that was

* **altered**: its rows no longer give its hash (an item, a finding, the statement… changed);
* **removed**: a ``seq`` is missing, or the head says more reviews were signed;
* **reordered**: its ``prev`` is not the hash of the review before it;
* **unprotected**: the triggers that refuse changes to signed reviews were dropped.
"""

from __future__ import annotations

import hashlib
import sqlite3

import orjson

from k3watch.review.signoff_model import ChainCheck, ChainProblem, Review
from k3watch.review.signoff_schema import GENESIS, REVIEW_COLUMNS, missing_triggers, review_of


def canonical(document: object) -> bytes:
    """Sorted keys, no whitespace, UTF-8: the same review always gives the same bytes."""
    return orjson.dumps(document, option=orjson.OPT_SORT_KEYS)


def review_hash(prev: str, review: Review, signed_by: str, signed_at: float, statement: str) -> str:
    digest = hashlib.sha256(bytes.fromhex(prev))
    digest.update(canonical(review.document(signed_by, signed_at, statement)))
    return digest.hexdigest()


class _Found(Exception):
    def __init__(self, problem: ChainProblem) -> None:
        super().__init__(problem.detail)
        self.problem = problem


def verify(db: sqlite3.Connection) -> ChainCheck:
    """Walk the chain of signed reviews in one read transaction; report the first problem."""
    db.execute("BEGIN")
    try:
        return _walk(db)
    finally:
        db.execute("COMMIT")


def _walk(db: sqlite3.Connection) -> ChainCheck:
    prev = GENESIS
    signed = 0
    expected = 1
    try:
        rows = db.execute(
            f"SELECT {REVIEW_COLUMNS} FROM reviews WHERE seq IS NOT NULL OR state = 'signed'"
            " ORDER BY seq IS NULL, seq"
        ).fetchall()
        for row in rows:
            review = review_of(db, row)
            signoff = review.signoff
            assert signoff is not None  # rows with a seq or signed
            seq = row[12]
            if seq is None or row[8] != "signed":
                raise _Found(
                    ChainProblem(
                        int(seq or 0),
                        review.id,
                        "altered",
                        f"review {review.id} is marked signed but is out of the chain"
                        if seq is None
                        else f"review {review.id} is in the chain but no longer signed",
                    )
                )
            if seq != expected:
                missing = f"#{expected}" if seq == expected + 1 else f"#{expected}..#{seq - 1}"
                raise _Found(
                    ChainProblem(
                        expected, None, "removed", f"signed review {missing} missing before #{seq}"
                    )
                )
            try:
                actual = review_hash(
                    signoff.prev, review, signoff.reviewer, signoff.at, signoff.statement
                )
            except ValueError:
                actual = "?"
            if actual != signoff.hash:
                raise _Found(
                    ChainProblem(
                        seq,
                        review.id,
                        "altered",
                        f"review {review.id} ({review.schedule} {review.period}) was changed "
                        "after it was signed off",
                    )
                )
            if signoff.prev != prev:
                raise _Found(
                    ChainProblem(
                        seq,
                        review.id,
                        "reordered",
                        f"review {review.id} does not follow the review signed before it",
                    )
                )
            prev = signoff.hash
            signed += 1
            expected += 1
        head_seq, head_hash = db.execute("SELECT seq, hash FROM chain_head WHERE id = 1").fetchone()
        if head_seq > signed:
            raise _Found(
                ChainProblem(
                    signed + 1,
                    None,
                    "removed",
                    f"{head_seq - signed} signed review(s) after #{signed} are missing",
                )
            )
        if head_seq != signed or head_hash != prev:
            raise _Found(
                ChainProblem(
                    signed, None, "altered", "the chain head does not match the last signed review"
                )
            )
        dropped = missing_triggers(db)
        if dropped:
            raise _Found(
                ChainProblem(
                    signed,
                    None,
                    "unprotected",
                    f"triggers protecting signed reviews were dropped: {', '.join(dropped)}",
                )
            )
    except _Found as found:
        return ChainCheck(signed, prev, found.problem)
    except (sqlite3.DatabaseError, TypeError, ValueError) as exc:
        problem = ChainProblem(expected, None, "altered", f"unreadable review rows: {exc}")
        return ChainCheck(signed, prev, problem)
    return ChainCheck(signed, prev, None)
