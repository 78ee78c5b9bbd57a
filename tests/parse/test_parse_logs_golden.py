"""Golden files for the log parsers: tests/golden/<format>/<case>.input → <case>.expected.jsonl.

<format> is a name in :data:`k3watch.parse.registry.PARSERS`. Each expected line is an event
(``{"event": raw, "location": …}``) or a diagnostic (``{"error": str(InputError), "reason": …}``)
in the order the parser produced them. An optional ``<case>.options.json`` holds parser
options; ``"tz"`` is a zone name or a fixed offset (``"+02:00"``) and ``"now"`` an RFC 3339
time (default 2024-06-10T00:00:00Z), so that times without a year resolve the same every run.
``pytest --regen-golden`` rewrites the expected files; review them as a diff.
"""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta, timezone, tzinfo
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import orjson
import pytest

from k3watch.errors import InputError
from k3watch.parse.registry import PARSERS, create_parser
from k3watch.telemetry import Counters

GOLDEN = Path(__file__).parents[1] / "golden"
FORMATS = ("journald", "k3s", "containerd", "kernel", "syslog")
CASES = [
    (fmt, path.name.removesuffix(".input"))
    for fmt in FORMATS
    for path in sorted((GOLDEN / fmt).glob("*.input"))
]
DEFAULT_NOW = "2024-06-10T00:00:00Z"


def zone(text: str) -> tzinfo:
    if text[:1] in "+-":
        hours, minutes = int(text[1:3]), int(text[4:6])
        delta = timedelta(hours=hours, minutes=minutes)
        return timezone(delta if text[0] == "+" else -delta)
    return UTC if text == "UTC" else ZoneInfo(text)


def options_for(fmt: str, case: str) -> dict[str, Any]:
    path = GOLDEN / fmt / f"{case}.options.json"
    options: dict[str, Any] = orjson.loads(path.read_bytes()) if path.exists() else {}
    now = datetime.fromisoformat(options.pop("now", DEFAULT_NOW)).timestamp()
    options["now"] = lambda: now
    if "tz" in options:
        options["tz"] = zone(options["tz"])
    return options


def run(fmt: str, case: str) -> list[str]:
    """Events and diagnostics of a case as golden lines, in the order they were produced."""
    records: list[dict[str, Any]] = []

    def on_error(error: InputError) -> None:
        records.append({"error": str(error), "reason": error.reason})

    parser = create_parser(fmt, Counters("golden"), on_error, **options_for(fmt, case))
    data = (GOLDEN / fmt / f"{case}.input").read_bytes()
    for event in parser.parse_stream(io.BytesIO(data), f"{case}.input"):
        records.append({"event": event.raw, "location": event.location})
    return [orjson.dumps(record).decode() for record in records]


@pytest.mark.parametrize(("fmt", "case"), CASES, ids=[f"{f}/{c}" for f, c in CASES])
def test_parser_output_matches_golden_file(fmt: str, case: str, regen_golden: bool) -> None:
    """The parser yields exactly the events and diagnostics recorded for the case."""
    got = run(fmt, case)
    path = GOLDEN / fmt / f"{case}.expected.jsonl"
    if regen_golden:
        path.write_text("".join(line + "\n" for line in got), encoding="utf-8")
    assert path.exists(), f"{path.name} is missing: run pytest --regen-golden and review it"
    assert got == path.read_text(encoding="utf-8").splitlines()


def test_every_format_has_cases_and_no_orphans() -> None:
    """Each registered format has golden cases, and no expected file lacks its input."""
    assert set(FORMATS) == set(PARSERS)
    for fmt in FORMATS:
        folder = GOLDEN / fmt
        assert len(list(folder.glob("*.input"))) >= 2, fmt
        orphans = [
            path.name
            for path in folder.glob("*.expected.jsonl")
            if not path.with_name(path.name.replace(".expected.jsonl", ".input")).exists()
        ]
        assert orphans == []


@pytest.mark.parametrize(("fmt", "case"), CASES, ids=[f"{f}/{c}" for f, c in CASES])
def test_line_by_line_gives_the_same_events_as_the_stream(fmt: str, case: str) -> None:
    """parse_line over the split lines, then flush, yields the events parse_stream does."""
    data = (GOLDEN / fmt / f"{case}.input").read_bytes()
    options = options_for(fmt, case)
    name = f"{case}.input"
    whole = create_parser(fmt, Counters("a"), lambda _: None, **options)
    expected = [event.raw for event in whole.parse_stream(io.BytesIO(data), name)]
    options = options_for(fmt, case)
    parser = create_parser(fmt, Counters("b"), lambda _: None, **options)
    got = []
    offset = 0
    limit = parser.max_line_bytes
    for number, line in enumerate(data.split(b"\n"), 1):
        if number > 1 and offset >= len(data):
            break  # the empty piece after a final newline is not a line
        text = line.removesuffix(b"\r")
        cut = len(text) > limit
        got += [e.raw for e in parser.parse_line(text[:limit], name, number, offset, truncated=cut)]
        offset += len(line) + 1
    got += [event.raw for event in parser.flush()]
    assert got == expected
