"""The running server's command line (/proc) and its last `Running kube-apiserver` line."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from tests.k3s.helpers import (
    GOOD_FLAGS,
    Node,
    k3s_entry,
    make_journal,
    running_message,
)

from k3watch.policy.k3s.journal import find_running_line
from k3watch.policy.k3s.layout import Layout
from k3watch.policy.k3s.process import find_server, is_server_argv

T0 = 1_767_607_200_000_000  # 2026-01-05 10:00:00 UTC, in microseconds


def test_the_k3s_server_process_and_its_apiserver_flags_are_found_under_proc(node: Node) -> None:
    node.process(77, ["/usr/local/bin/k3s", "agent"])
    node.process(
        1234,
        [
            "/usr/local/bin/k3s",
            "server",
            "--kube-apiserver-arg=audit-log-maxage=7",
            "--kube-apiserver-arg",
            "audit-log-maxsize=5",
            "--config",
            "/etc/k3s/other.yaml",
        ],
        start_ticks=500,
        btime=1_767_600_000,
    )
    node.path("/proc/self").mkdir()  # not a pid: ignored
    server = find_server(Layout(node.root))
    assert server is not None
    assert server.pid == 1234
    assert [(i.value, str(i.location)) for i in server.apiserver_args] == [
        ("audit-log-maxage=7", "/proc/1234/cmdline"),
        ("audit-log-maxsize=5", "/proc/1234/cmdline"),
    ]
    assert server.config_file == "/etc/k3s/other.yaml"
    assert server.started is not None
    assert server.started.timestamp() > 1_767_600_000


def test_only_k3s_server_command_lines_count() -> None:
    assert is_server_argv(("/usr/local/bin/k3s", "server"))
    assert is_server_argv(("k3s", "--debug", "server", "--disable=traefik"))
    assert not is_server_argv(("/usr/local/bin/k3s", "agent"))
    assert not is_server_argv(("/usr/bin/containerd", "server"))
    assert not is_server_argv(())


def test_no_proc_means_no_process(node: Node) -> None:
    assert find_server(Layout(node.root)) is None


def test_the_last_running_line_of_the_k3s_unit_is_read_from_a_real_journal_file(
    tmp_path: Path, node: Node
) -> None:
    old = running_message(["audit-log-maxage=7"])
    new = running_message(GOOD_FLAGS, time="2026-01-05T11:00:00Z")
    journal = make_journal(
        tmp_path,
        [
            k3s_entry("Starting k3s v1.31.4+k3s1", T0, 1),
            k3s_entry(old, T0 + 1_000_000, 2),
            k3s_entry(new, T0 + 3_600_000_000, 3),
            k3s_entry(
                'time="2026-01-05T11:00:01Z" level=info msg="Running kube-scheduler"',
                T0 + 3_601_000_000,
                4,
            ),
            k3s_entry(
                running_message(["audit-log-maxage=1"]), T0 + 3_700_000_000, 5, unit="other.service"
            ),
        ],
    )
    result = find_running_line(Layout(node.root), journal)
    assert result.line is not None, result.note
    assert "--audit-log-maxage=30" in result.line.args
    assert "--audit-policy-file=/var/lib/rancher/k3s/server/audit-policy.yaml" in result.line.args
    assert result.line.time == datetime(2026, 1, 5, 11, 0, tzinfo=UTC)
    assert result.line.source == f"journal file {journal}"


def test_a_journal_without_the_line_says_so(tmp_path: Path, node: Node) -> None:
    journal = make_journal(tmp_path, [k3s_entry("Starting k3s", T0, 1)])
    result = find_running_line(Layout(node.root), journal)
    assert result.line is None
    assert "no 'Running kube-apiserver' line" in result.note


def test_a_stand_in_root_never_reads_the_hosts_journal(node: Node) -> None:
    result = find_running_line(Layout(node.root))
    assert result.line is None
    assert result.note == "no journal"


def test_openrc_installs_are_read_from_var_log_k3s_log(node: Node) -> None:
    node.write(
        "/var/log/k3s.log",
        running_message(["audit-log-maxage=7"])
        + "\n"
        + 'time="2026-01-05T10:00:01Z" level=info msg="Starting k3s"\n'
        + running_message(GOOD_FLAGS, time="2026-01-05T12:00:00Z")
        + "\n",
    )
    result = find_running_line(Layout(node.root))
    assert result.line is not None
    assert result.line.source == "/var/log/k3s.log"
    assert "--audit-log-maxage=30" in result.line.args
    assert result.line.time == datetime(2026, 1, 5, 12, 0, tzinfo=UTC)
