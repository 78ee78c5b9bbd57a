"""The JSON-lines file destination: the alert contract per line, private, rotated by size."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import orjson
import pytest
from tests.alerting.helpers import make_alert, make_notification

from k3watch.alerting.config import FileConfig
from k3watch.alerting.sinks.destination import DeliveryError
from k3watch.alerting.sinks.jsonl_file import JsonLinesFileDestination


def destination(path: Path, **fields: object) -> JsonLinesFileDestination:
    return JsonLinesFileDestination(FileConfig(name="file", path=str(path), **fields))  # type: ignore[arg-type]


def lines(path: Path) -> list[dict[str, object]]:
    return [orjson.loads(line) for line in path.read_bytes().splitlines()]


def test_each_alert_is_one_line_of_its_json_contract_in_a_private_file(tmp_path: Path) -> None:
    path = tmp_path / "alerts" / "alerts.jsonl"
    file = destination(path)
    file.deliver([make_notification(user="alice"), make_notification(user="bob")])
    file.close()
    assert lines(path) == [make_alert(user="alice").to_dict(), make_alert(user="bob").to_dict()]
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_the_file_rotates_by_size_and_keeps_the_configured_number_of_copies(
    tmp_path: Path,
) -> None:
    path = tmp_path / "alerts.jsonl"
    file = destination(path, max_size="4KiB", backups=2)
    size = len(orjson.dumps(make_notification().alert)) + 1
    per_file = 4096 // size
    for n in range(per_file * 3 + 1):
        file.deliver([make_notification(user=f"user-{n:04d}")])
    file.close()
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "alerts.jsonl",
        "alerts.jsonl.1",
        "alerts.jsonl.2",
    ]
    assert all(p.stat().st_size <= 4096 for p in tmp_path.iterdir())
    newest_backup = lines(tmp_path / "alerts.jsonl.1")
    current = lines(path)
    assert newest_backup[-1]["group"] == {  # type: ignore[comparison-overlap]
        "user.username": f"user-{per_file * 3 - 1:04d}",
        "objectRef.namespace": "shop",
    }
    assert current[0]["group"]["user.username"] == f"user-{per_file * 3:04d}"  # type: ignore[index]
    assert file.counters.get("rotated") == 3


def test_a_file_moved_away_by_another_tool_is_started_again(tmp_path: Path) -> None:
    path = tmp_path / "alerts.jsonl"
    file = destination(path)
    file.deliver([make_notification(user="before")])
    path.rename(tmp_path / "alerts.jsonl.old")
    file.deliver([make_notification(user="after")])
    assert [r["group"]["user.username"] for r in lines(path)] == ["after"]  # type: ignore[index]


def test_an_unwritable_location_is_a_delivery_error(tmp_path: Path) -> None:
    if os.geteuid() == 0:
        blocked = tmp_path / "a-file"
        blocked.write_text("")
        path = blocked / "alerts.jsonl"  # a directory that is a file: fails even for root
    else:
        tmp_path.chmod(0o500)
        path = tmp_path / "alerts.jsonl"
    with pytest.raises(DeliveryError) as caught:
        destination(path).deliver([make_notification()])
    assert caught.value.reason == "io"
