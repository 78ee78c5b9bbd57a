"""End to end with a real server: --once delivers every event exactly once, checkpoints, outages,
restarts with a torn spool, oversized and invalid batches, back-pressure."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import msgspec
import orjson
import pytest
from tests.agent.conftest import (
    StartServer,
    agent_config,
    free_url,
    sample_events,
    write_audit_log,
)

from k3watch.agent.config import AgentConfig, StdinSourceConfig
from k3watch.agent.run import CHECKPOINT_DIR, SPOOL_DIR, Agent
from k3watch.agent.spool import SUFFIX, FrameHeader, Spool
from k3watch.server.config import LimitsConfig


def run_once(config: AgentConfig, timeout: float = 30.0, **options: object) -> tuple[int, Agent]:
    agent = Agent(config, once=True, **options)  # type: ignore[arg-type]
    return agent.run(once_timeout=timeout), agent


def test_once_stores_every_event_of_the_audit_log_exactly_once(
    tmp_path: Path, k3watch_server: StartServer
) -> None:
    server = k3watch_server()
    events = sample_events()
    write_audit_log(tmp_path / "audit.log", events)
    code, agent = run_once(agent_config(tmp_path, server.url, server.agent_token))
    assert code == 0
    assert server.stored() == len(events)
    assert agent.forwarder.counters.get("accepted") == len(events)
    assert agent.forwarder.counters.get("duplicates") == 0
    assert agent.spool.backlog_events == 0
    # Batches of at most batch_max_events, one request each.
    assert agent.spool.counters.get("frames") == -(-len(events) // 100)


def test_a_second_run_sends_nothing_already_sent_and_then_only_what_is_new(
    tmp_path: Path, k3watch_server: StartServer
) -> None:
    server = k3watch_server()
    events = sample_events()
    log = write_audit_log(tmp_path / "audit.log", events[:500])
    config = agent_config(tmp_path, server.url, server.agent_token)
    assert run_once(config)[0] == 0
    code, again = run_once(config)
    assert code == 0
    assert again.forwarder.counters.get("sent_events") == 0, "the checkpoint held"
    write_audit_log(log, events[500:])
    code, third = run_once(config)
    assert code == 0
    assert third.forwarder.counters.get("sent_events") == len(events) - 500
    assert third.forwarder.counters.get("duplicates") == 0
    assert server.stored() == len(events)
    assert server.runtime.pipeline.counters.get("duplicates") == 0


def test_events_sent_again_after_a_lost_checkpoint_are_stored_once(
    tmp_path: Path, k3watch_server: StartServer
) -> None:
    """At least once to the server (the checkpoint is gone, so everything is read and sent
    again), exactly once in the store (the server drops what it has)."""
    server = k3watch_server()
    events = sample_events()
    write_audit_log(tmp_path / "audit.log", events)
    config = agent_config(tmp_path, server.url, server.agent_token)
    assert run_once(config)[0] == 0
    shutil.rmtree(tmp_path / "agent" / CHECKPOINT_DIR)
    code, again = run_once(config)
    assert code == 0
    assert again.forwarder.counters.get("sent_events") == len(events)
    assert again.forwarder.counters.get("duplicates") == len(events)
    assert server.stored() == len(events)


def test_while_the_server_is_down_events_wait_in_the_spool_and_go_exactly_once_later(
    tmp_path: Path, k3watch_server: StartServer, caplog: pytest.LogCaptureFixture
) -> None:
    events = sample_events()
    write_audit_log(tmp_path / "audit.log", events)
    down = agent_config(tmp_path, free_url(), "k3w_not_checked")
    caplog.set_level(logging.WARNING, logger="k3watch.agent")
    code, agent = run_once(down, timeout=1.5)
    assert code == 1, "not everything was delivered"
    assert agent.spool.backlog_events == len(events)
    assert agent.forwarder.counters.get("failed", reason="connection") >= 1
    assert any("not delivered" in r.getMessage() for r in caplog.records)

    server = k3watch_server()
    up = msgspec.structs.replace(down, server=server.url, token=server.agent_token)
    code, later = run_once(up)
    assert code == 0
    assert later.forwarder.counters.get("sent_events") == len(events)
    assert server.stored() == len(events)
    assert later.forwarder.counters.get("duplicates") == 0


def test_a_torn_frame_left_by_a_crash_is_cut_and_the_rest_delivered(
    tmp_path: Path, k3watch_server: StartServer
) -> None:
    events = sample_events()
    write_audit_log(tmp_path / "audit.log", events)
    config = agent_config(tmp_path, free_url(), "k3w_not_checked")
    assert run_once(config, timeout=0.5)[0] == 1
    spool_dir = tmp_path / "agent" / SPOOL_DIR
    last = sorted(spool_dir.glob(f"*{SUFFIX}"))[-1]
    with last.open("ab") as out:  # a frame half written when the node lost power
        out.write(b"K3SF\x00\x00\x00\x40\x00\x00\x10\x00garbage")
    server = k3watch_server()
    code, agent = run_once(
        msgspec.structs.replace(config, server=server.url, token=server.agent_token)
    )
    assert code == 0
    assert agent.spool.counters.get("torn_frames") == 1
    assert server.stored() == len(events)


def test_a_batch_over_the_servers_body_limit_is_split_until_it_fits(
    tmp_path: Path, k3watch_server: StartServer
) -> None:
    server = k3watch_server(limits=LimitsConfig(max_body="48KiB"))
    events = sample_events()[:300]
    write_audit_log(tmp_path / "audit.log", events)
    config = agent_config(tmp_path, server.url, server.agent_token)
    code, agent = run_once(config)
    assert code == 0
    assert agent.forwarder.counters.get("requests", reason="413") >= 1
    assert agent.forwarder.counters.get("splits") >= 1
    assert server.stored() == len(events)
    assert agent.forwarder.counters.get("dropped", reason="too_large") == 0


def test_an_invalid_batch_is_dropped_counted_and_does_not_block_the_spool(
    tmp_path: Path, k3watch_server: StartServer, caplog: pytest.LogCaptureFixture
) -> None:
    server = k3watch_server()
    events = sample_events()[:200]
    write_audit_log(tmp_path / "audit.log", events)
    config = agent_config(tmp_path, server.url, server.agent_token)
    spool = Spool(tmp_path / "agent" / SPOOL_DIR, max_size=1 << 30)
    # A label the server refuses (422), left in the spool by some older agent.
    spool.append(FrameHeader("old", "not a label!", "audit", 2), [b'{"a":1}', b'{"a":2}'])
    # A batch the server takes, with one line that is no audit event.
    good = [orjson.dumps(e) for e in sample_events()[200:203]]
    spool.append(FrameHeader("old", "audit", "audit", 4), [*good, b'{"kind":"Nope"}'])
    spool.close()
    caplog.set_level(logging.WARNING, logger="k3watch.agent")
    code, agent = run_once(config)
    assert code == 0
    counters = agent.forwarder.counters
    assert counters.get("requests", reason="422") == 1
    assert counters.get("dropped", reason="rejected_by_server") == 2 + 1
    assert server.stored() == len(events) + 3
    assert any("refused batch" in r.getMessage() for r in caplog.records)
    assert any("rejected 1 of the 4 events" in r.getMessage() for r in caplog.records)


def test_a_busy_server_is_retried_after_its_retry_after(
    tmp_path: Path, k3watch_server: StartServer
) -> None:
    server = k3watch_server(limits=LimitsConfig(requests_per_second=2.0))
    events = sample_events()[:600]
    write_audit_log(tmp_path / "audit.log", events)
    code, agent = run_once(agent_config(tmp_path, server.url, server.agent_token))
    assert code == 0
    assert agent.forwarder.counters.get("requests", reason="429") >= 1
    assert agent.forwarder.counters.get("retries", reason="busy") >= 1
    assert server.stored() == len(events)


def test_a_wrong_token_is_retried_and_reported_not_dropped(
    tmp_path: Path, k3watch_server: StartServer, caplog: pytest.LogCaptureFixture
) -> None:
    server = k3watch_server()
    events = sample_events()[:50]
    write_audit_log(tmp_path / "audit.log", events)
    caplog.set_level(logging.ERROR, logger="k3watch.agent")
    config = agent_config(tmp_path, server.url, "k3w_wrong")
    code, agent = run_once(config, timeout=1.0)
    assert code == 1
    assert agent.forwarder.counters.get("failed", reason="unauthorized") >= 1
    assert agent.spool.backlog_events == len(events)
    assert any("agent.token" in r.getMessage() for r in caplog.records)
    fixed = msgspec.structs.replace(config, token=server.agent_token)
    assert run_once(fixed)[0] == 0
    assert server.stored() == len(events)


def test_stdin_lines_are_delivered_with_once(tmp_path: Path, k3watch_server: StartServer) -> None:
    import io

    server = k3watch_server()
    events = sample_events()[:120]
    stream = io.BytesIO(b"".join(orjson.dumps(e) + b"\n" for e in events))
    config = agent_config(tmp_path, server.url, server.agent_token, sources=(StdinSourceConfig(),))
    code, _ = run_once(config, stdin=stream)
    assert code == 0
    assert server.stored() == len(events)
