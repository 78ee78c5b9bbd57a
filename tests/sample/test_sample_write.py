"""write_sample: JSON lines on disk (gzip for .gz) and a truthful summary."""

from __future__ import annotations

import gzip
from pathlib import Path

import orjson

from k3watch.sample import SCENARIOS, generate_events, write_sample


def test_gzip_file_round_trips_to_the_generated_events(tmp_path: Path) -> None:
    path = tmp_path / "audit.log.gz"
    info = write_sample(path, days=0.7, seed=3)
    with gzip.open(path, "rb") as handle:
        lines = handle.read().splitlines(keepends=True)
    assert [orjson.loads(line) for line in lines] == list(generate_events(days=0.7, seed=3))
    assert info.events == len(lines)
    assert info.bytes == sum(map(len, lines))
    assert info.first == orjson.loads(lines[0])["requestReceivedTimestamp"]
    assert info.last == orjson.loads(lines[-1])["requestReceivedTimestamp"]


def test_plain_and_gzip_files_hold_the_same_lines(tmp_path: Path) -> None:
    write_sample(tmp_path / "a.jsonl", days=0.2, attacks=False)
    write_sample(tmp_path / "a.jsonl.gz", days=0.2, attacks=False)
    assert (tmp_path / "a.jsonl").read_bytes() == gzip.decompress(
        (tmp_path / "a.jsonl.gz").read_bytes()
    )


def test_gzip_bytes_are_deterministic(tmp_path: Path) -> None:
    write_sample(tmp_path / "one" / "x.gz", days=0.2, attacks=False)
    write_sample(tmp_path / "two" / "x.gz", days=0.2, attacks=False)
    assert (tmp_path / "one" / "x.gz").read_bytes() == (tmp_path / "two" / "x.gz").read_bytes()


def test_summary_counts_attack_events_by_scenario(tmp_path: Path) -> None:
    info = write_sample(tmp_path / "audit.log", days=0.7)
    assert set(info.attack_events) == {s.name for s in SCENARIOS}
    assert info.attack_events["brute-force"] == 40
    assert all(count > 0 for count in info.attack_events.values())
    assert info.attack_total == sum(info.attack_events.values())


def test_quiet_sample_counts_no_attacks(tmp_path: Path) -> None:
    info = write_sample(tmp_path / "audit.log", days=0.3, attacks=False)
    assert info.attack_events == {} and info.attack_total == 0
