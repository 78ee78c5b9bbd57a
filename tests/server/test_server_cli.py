"""The commands that talk to a server: search, alerts, silence."""

from __future__ import annotations

import orjson
from click.testing import CliRunner, Result
from tests.server.conftest import Running, StartServer
from tests.server.test_server_ingest import attack_day, lines

from k3watch.cli import main


def run(running: Running, role: str, *args: str) -> Result:
    runner = CliRunner(
        env={"K3WATCH_SERVER": running.url, "K3WATCH_TOKEN": running.tokens[role], "COLUMNS": "200"}
    )
    return runner.invoke(main, list(args), catch_exceptions=False)


def loaded(start_server: StartServer) -> Running:
    running = start_server()
    with running.client("agent") as agent:
        agent.ingest(lines(attack_day()[0]), batch="attacks")
    return running


def test_search_filters_by_field_and_words(start_server: StartServer) -> None:
    running = loaded(start_server)
    result = run(
        running,
        "viewer",
        "search",
        "--start",
        "3650d",
        "--where",
        "verb=create",
        "exec",
        "--format",
        "json",
    )
    assert result.exit_code == 0, result.output
    events = orjson.loads(result.stdout)["events"]
    assert events
    assert all(
        e["event"]["verb"] == "create" and "exec" in e["event"]["requestURI"] for e in events
    )


def test_search_refuses_an_unknown_field(start_server: StartServer) -> None:
    running = start_server()
    result = run(running, "viewer", "search", "--where", "colour=red")
    assert result.exit_code == 2
    assert "colour=red" in result.output


def test_alerts_list_show_and_ack(start_server: StartServer) -> None:
    running = loaded(start_server)
    listed = run(running, "viewer", "alerts", "list")
    assert listed.exit_code == 0
    assert "open" in listed.stdout
    first = running.client().alerts()["alerts"][0]
    acked = run(running, "analyst", "alerts", "ack", str(first["id"]), "-m", "on it")
    assert acked.exit_code == 0
    assert "acknowledged" in acked.stdout
    shown = run(running, "viewer", "alerts", "show", str(first["id"]))
    assert "test-analyst ack: on it" in shown.stdout


def test_a_viewer_token_cannot_ack(start_server: StartServer) -> None:
    running = loaded(start_server)
    first = running.client().alerts()["alerts"][0]
    result = run(running, "viewer", "alerts", "ack", str(first["id"]))
    assert result.exit_code == 2
    assert "403" in result.output


def test_silence_add_list_expire(start_server: StartServer) -> None:
    running = start_server()
    added = run(
        running,
        "analyst",
        "silence",
        "add",
        "severity=low",
        "-d",
        "1h",
        "-c",
        "noisy",
        "--format",
        "json",
    )
    assert added.exit_code == 0, added.output
    silence = orjson.loads(added.stdout)
    listed = run(running, "viewer", "silence", "list")
    assert silence["id"] in listed.stdout
    expired = run(running, "analyst", "silence", "expire", silence["id"])
    assert expired.exit_code == 0
    assert silence["id"] not in run(running, "viewer", "silence", "list").stdout


def test_an_unreachable_server_is_a_clear_error(start_server: StartServer) -> None:
    runner = CliRunner(env={"K3WATCH_SERVER": "http://127.0.0.1:9", "K3WATCH_TOKEN": "x"})
    result = runner.invoke(main, ["alerts", "list"], catch_exceptions=False)
    assert result.exit_code == 2
    assert "cannot reach the server" in result.output
