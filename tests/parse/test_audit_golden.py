"""Golden files: tests/golden/audit/<case>.input → <case>.expected.jsonl.

Each expected line is an event (``{"event": raw, "location": …, "truncated": …}``) or a
diagnostic (``{"error": str(InputError), "reason": …}``) in the order the parser produced them.
``pytest --regen-golden`` rewrites the expected files; review them as a diff.
"""

from __future__ import annotations

import gzip
import io
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from k3watch.errors import InputError
from k3watch.event import Event
from k3watch.parse.audit import AuditParser
from k3watch.sources.files import InputFile, open_input
from k3watch.telemetry import Counters

GOLDEN = Path(__file__).parents[1] / "golden" / "audit"
CASES = sorted(path.name.removesuffix(".input") for path in GOLDEN.glob("*.input"))


def run(parse: Callable[[AuditParser], Iterator[Event]]) -> list[dict[str, Any]]:
    """Events and diagnostics as golden records, in the order the parser produced them."""
    records: list[dict[str, Any]] = []

    def on_error(error: InputError) -> None:
        records.append({"error": str(error), "reason": error.reason})

    parser = AuditParser(Counters("golden"), on_error)
    for event in parse(parser):
        records.append(
            {"event": event.raw, "location": event.location, "truncated": event.truncated}
        )
    return records


def render(records: list[dict[str, Any]]) -> list[str]:
    return [orjson.dumps(record).decode() for record in records]


def expected_lines(case: str) -> list[str]:
    path = GOLDEN / f"{case}.expected.jsonl"
    assert path.exists(), f"{path.name} is missing: run pytest --regen-golden and review it"
    return path.read_text(encoding="utf-8").splitlines()


@pytest.mark.parametrize("case", CASES)
def test_parse_stream_output_matches_golden_file(case: str, regen_golden: bool) -> None:
    """parse_stream yields exactly the events and diagnostics recorded for the case."""
    data = (GOLDEN / f"{case}.input").read_bytes()
    got = render(run(lambda parser: parser.parse_stream(io.BytesIO(data), f"{case}.input")))
    if regen_golden:
        text = "".join(line + "\n" for line in got)
        (GOLDEN / f"{case}.expected.jsonl").write_text(text, encoding="utf-8")
    assert got == expected_lines(case)


@pytest.mark.parametrize("case", CASES)
def test_parse_bytes_gives_the_same_output_as_parse_stream(case: str) -> None:
    """A whole document parsed at once gives the same records as reading it line by line."""
    data = (GOLDEN / f"{case}.input").read_bytes()
    got = render(run(lambda parser: parser.parse_bytes(data, f"{case}.input")))
    assert got == expected_lines(case)


def test_every_expected_file_has_an_input() -> None:
    """No stale expected file is left behind when a case is renamed or removed."""
    orphans = [
        path.name
        for path in GOLDEN.glob("*.expected.jsonl")
        if not (GOLDEN / path.name.replace(".expected.jsonl", ".input")).exists()
    ]
    assert orphans == []
    assert len(CASES) >= 15


def test_gzip_file_gives_the_same_output_as_plain(tmp_path: Path) -> None:
    """A gzip file of several members, named .log, reads like the uncompressed JSON lines."""
    data = (GOLDEN / "jsonl.input").read_bytes()
    first, rest = data.split(b"\n", 1)
    path = tmp_path / "jsonl.input"  # the location must match the golden file's
    path.write_bytes(gzip.compress(first + b"\n") + gzip.compress(rest))
    inp = InputFile("jsonl.input", path, path.stat().st_size)

    def from_file(parser: AuditParser) -> Iterator[Event]:
        with open_input(inp) as stream:
            yield from parser.parse_stream(stream, inp.name)

    assert render(run(from_file)) == expected_lines("jsonl")
    compressed = path.read_bytes()
    got = render(run(lambda parser: parser.parse_bytes(compressed, "jsonl.input")))
    assert got == expected_lines("jsonl")
