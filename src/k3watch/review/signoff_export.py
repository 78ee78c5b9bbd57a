"""The review record for auditors: every schedule, every review (checklist, findings, history,
sign-off and hash) and the result of verifying the chain, as JSON, Markdown or CSV.

``build_export`` gathers the record (a JSON-able dict, the ``--format json`` output);
``render_export`` writes it in one of ``EXPORT_FORMATS``. The API's ``/api/v1/reviews/export``
and ``k3watch review export`` give the same bytes for the same record.
"""

from __future__ import annotations

import csv
import io
import time
from typing import Any

import orjson

from k3watch import __version__
from k3watch.event import format_time
from k3watch.review.store import ReviewStore

EXPORT_FORMATS = ("json", "md", "csv")
MEDIA_TYPES = {
    "json": "application/json",
    "md": "text/markdown; charset=utf-8",
    "csv": "text/csv; charset=utf-8",
}
CSV_COLUMNS = (
    "kind",
    "review_id",
    "schedule",
    "period",
    "period_start",
    "period_end",
    "review_state",
    "signed_by",
    "signed_at",
    "seq",
    "hash",
    "subject",
    "text",
    "state_or_severity",
    "note",
    "actor",
    "at",
    "owner",
    "due",
    "alert_ids",
    "event_keys",
)


def build_export(
    store: ReviewStore, *, since: float | None = None, now: float | None = None
) -> dict[str, Any]:
    """The record: reviews of periods ending after ``since`` (all without), oldest first."""
    now = time.time() if now is None else now
    check = store.verify()
    reviews = sorted(store.list(since=since), key=lambda r: (r.period_start, r.id))
    return {
        "generated": format_time(now),
        "generator": f"k3watch {__version__}",
        "since": format_time(since) if since is not None else None,
        "verification": check.to_dict() | {"summary": check.summary()},
        "schedules": [s.to_dict() for s in store.status(now)],
        "reviews": [r.to_dict() for r in reviews],
    }


def render_export(record: dict[str, Any], fmt: str) -> bytes:
    """The record as ``json``, ``md`` (Markdown) or ``csv``."""
    if fmt == "json":
        return orjson.dumps(record, option=orjson.OPT_INDENT_2) + b"\n"
    if fmt == "md":
        return markdown(record).encode()
    if fmt == "csv":
        return rows_csv(record).encode()
    raise ValueError(f"unknown export format {fmt!r} (one of {', '.join(EXPORT_FORMATS)})")


def _cell(value: object) -> str:
    if value is None or value == "":
        return ""
    return str(value).replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ")


def _table(header: list[str], rows: list[list[object]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines.extend("| " + " | ".join(_cell(v) for v in row) + " |" for row in rows)
    return [*lines, ""]


def markdown(record: dict[str, Any]) -> str:
    """A document an auditor reads: verification first, then schedules, then each review."""
    check = record["verification"]
    scope = f"periods ending after {record['since']}" if record["since"] else "all periods"
    out = [
        "# Security log reviews",
        "",
        f"Generated {record['generated']} by {record['generator']}; {scope}. Times are UTC.",
        "",
        "## Verification of the sign-off chain",
        "",
    ]
    if check["ok"]:
        out += [
            f"**OK**: {check['signed']} signed review(s) chained by hash; none was altered, "
            "removed or reordered.",
            "",
            f"Chain head: `{check['head']}` (keep it: a later export must still contain the "
            "review with this hash).",
            "",
        ]
    else:
        out += [f"**BROKEN**: {check['summary']}", ""]
    out += ["## Schedules", ""]
    out += _table(
        ["Schedule", "Period", "Last signed", "Current", "Next due", "Overdue", "Description"],
        [
            [
                s["name"],
                s["period"],
                s["last_signed_period"] or "none",
                s["current_period"],
                s["next_due"],
                ", ".join(s["overdue_periods"]) or "no",
                s["description"],
            ]
            for s in record["schedules"]
        ],
    )
    if not record["reviews"]:
        out += ["No reviews.", ""]
    for review in record["reviews"]:
        out += _review_markdown(review)
    return "\n".join(out)


def markdown_review(review: dict[str, Any]) -> str:
    """One review (``Review.to_dict``) as Markdown."""
    return "\n".join(_review_markdown(review))


def _review_markdown(review: dict[str, Any]) -> list[str]:
    signoff = review["signoff"]
    out = [
        f"## Review {review['id']}: {review['schedule']} {review['period']}",
        "",
        f"- Period: {review['period_start']} to {review['period_end']}",
        f"- Opened by {review['opened_by']} at {review['opened_at']}",
    ]
    if signoff is None:
        out.append("- State: **open** (not signed off)")
    else:
        out += [
            f"- Signed off by **{signoff['reviewer']}** at {signoff['at']}",
            f"- Chain position {signoff['seq']}, hash `{signoff['hash']}`, "
            f"previous `{signoff['prev']}`",
        ]
    out += ["", "### Checklist", ""]
    out += _table(
        ["Item", "Check", "State", "Note", "By", "At"],
        [[i["id"], i["text"], i["state"], i["note"], i["actor"], i["at"]] for i in review["items"]],
    )
    out += ["### Findings", ""]
    if review["findings"]:
        out += _table(
            ["#", "Severity", "Finding", "Item", "Alerts", "Events", "Owner", "Due", "By"],
            [
                [
                    f["id"],
                    f["severity"],
                    f["text"],
                    f["item"],
                    ", ".join(map(str, f["alert_ids"])),
                    ", ".join(f["event_keys"]),
                    f["owner"],
                    f["due"],
                    f["actor"],
                ]
                for f in review["findings"]
            ],
        )
    else:
        out += ["None.", ""]
    if signoff is not None:
        out += ["### Sign-off statement", "", f"> {_cell(signoff['statement'])}", ""]
    out += ["### History", ""]
    out += _table(
        ["At", "Who", "Action", "Subject", "Detail"],
        [[c["at"], c["actor"], c["action"], c["subject"], c["detail"]] for c in review["history"]],
    )
    return out


def rows_csv(record: dict[str, Any]) -> str:
    """One row for the verification, then per review one row per checklist item and one per
    finding (``kind`` says which), the review's columns repeated on each."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, CSV_COLUMNS, lineterminator="\n")
    writer.writeheader()
    check = record["verification"]
    writer.writerow(
        {
            "kind": "verification",
            "hash": check["head"],
            "text": check["summary"],
            "state_or_severity": "ok" if check["ok"] else "broken",
            "at": record["generated"],
        }
    )
    for review in record["reviews"]:
        signoff = review["signoff"] or {}
        common = {
            "review_id": review["id"],
            "schedule": review["schedule"],
            "period": review["period"],
            "period_start": review["period_start"],
            "period_end": review["period_end"],
            "review_state": review["state"],
            "signed_by": signoff.get("reviewer", ""),
            "signed_at": signoff.get("at", ""),
            "seq": signoff.get("seq", ""),
            "hash": signoff.get("hash", ""),
        }
        for item in review["items"]:
            writer.writerow(
                common
                | {
                    "kind": "item",
                    "subject": item["id"],
                    "text": item["text"],
                    "state_or_severity": item["state"],
                    "note": item["note"],
                    "actor": item["actor"] or "",
                    "at": item["at"] or "",
                }
            )
        for finding in review["findings"]:
            writer.writerow(
                common
                | {
                    "kind": "finding",
                    "subject": finding["id"],
                    "text": finding["text"],
                    "state_or_severity": finding["severity"],
                    "note": finding["item"] or "",
                    "actor": finding["actor"],
                    "at": finding["at"],
                    "owner": finding["owner"] or "",
                    "due": finding["due"] or "",
                    "alert_ids": " ".join(map(str, finding["alert_ids"])),
                    "event_keys": " ".join(finding["event_keys"]),
                }
            )
        if signoff:
            writer.writerow(
                common
                | {
                    "kind": "signoff",
                    "text": signoff["statement"],
                    "actor": signoff["reviewer"],
                    "at": signoff["at"],
                }
            )
    return buffer.getvalue()
