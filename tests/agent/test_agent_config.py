"""The ``agent:`` section: defaults, relative paths, secrets by reference, located errors; the
command's answer to a bad configuration."""

from __future__ import annotations

import logging
import textwrap
from pathlib import Path

import pytest
from click.testing import CliRunner

from k3watch.agent.config import (
    AgentConfig,
    AuditFileSourceConfig,
    FileSourceConfig,
    JournaldSourceConfig,
    WebhookSourceConfig,
)
from k3watch.cli import main
from k3watch.config import load_config
from k3watch.errors import UsageError


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "k3watch.yaml"
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def test_a_full_agent_section_is_read_with_paths_relative_to_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AGENT_TOKEN", "k3w_secret")
    config = load_config(
        write(
            tmp_path,
            """
            agent:
              server: https://k3watch.example:8443
              token: $env:AGENT_TOKEN
              ca_file: pki/ca.crt
              spool_dir: state
              spool_max_size: 256MiB
              sources:
                - type: audit_file
                  path: logs/audit.log
                - type: file
                  path: /var/log/k3s.log
                  format: k3s
                - type: journald
                  units: [k3s]
                - type: webhook
                  token: hook-token
            """,
        )
    ).agent
    assert config.token == "k3w_secret"
    assert config.ca_file == str(tmp_path / "pki/ca.crt")
    assert config.spool_dir == str(tmp_path / "state")
    assert config.spool_max_size_bytes == 256 * 1024 * 1024
    audit, k3s, journal, hook = config.sources
    assert isinstance(audit, AuditFileSourceConfig) and audit.path == str(
        tmp_path / "logs/audit.log"
    )
    assert (audit.source_name, audit.server_label, audit.wire_format) == (
        "audit_file",
        "audit",
        "audit",
    )
    assert isinstance(k3s, FileSourceConfig)
    assert (k3s.source_name, k3s.server_label, k3s.wire_format) == (
        "/var/log/k3s.log",
        "k3s",
        "log",
    )
    assert isinstance(journal, JournaldSourceConfig) and journal.server_label == "journald"
    assert isinstance(hook, WebhookSourceConfig) and hook.server_label == "audit"
    config.require()


def test_defaults_need_no_agent_section() -> None:
    config = AgentConfig()
    assert config.spool_dir == "/var/lib/k3watch/agent"
    assert config.spool_max_size_bytes == 1024**3
    assert config.batch_max_events == 1000 and config.batch_max_wait_seconds == 1.0
    assert config.metrics_listen == "127.0.0.1:9142"
    assert config.node_name  # the host name
    with pytest.raises(ValueError, match=r"agent\.server is not set"):
        config.require()


@pytest.mark.parametrize(
    ("text", "line", "message"),
    [
        (
            "agent:\n  sources:\n    - type: file\n      path: x.log\n      format: nginx\n",
            3,
            "unknown log format 'nginx'",
        ),
        (
            "agent:\n  sources:\n    - type: webhook\n      host: 0.0.0.0\n      token: t\n",
            3,
            "without TLS",
        ),
        ("agent:\n  sources:\n    - type: tcp\n", 3, "Invalid value 'tcp'"),
        ("agent:\n  spool_dir: x\n  batch_size: 3\n", 3, "unknown key 'batch_size'"),
        ("agent:\n  server: http://10.0.0.1:8443\n", 2, "plain http sends the token in clear"),
        (
            "agent:\n  sources:\n    - type: audit_file\n    - type: audit_file\n",
            3,
            "two sources are named 'audit_file'",
        ),
        ("agent:\n  spool_max_size: 10k\n", 2, "at least 1MiB"),
        ("agent:\n  node: 'node one'\n", 2, "agent.node 'node one'"),
    ],
)
def test_bad_values_are_errors_with_their_line(
    tmp_path: Path, text: str, line: int, message: str
) -> None:
    path = write(tmp_path, text)
    with pytest.raises(UsageError) as error:
        load_config(path)
    assert str(error.value).startswith(f"{path}:{line}: ")
    assert message in str(error.value)


def test_http_is_allowed_to_a_loopback_server(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, "agent:\n  server: http://127.0.0.1:8443/\n")).agent
    assert config.server == "http://127.0.0.1:8443/"


def run_command(*args: str) -> tuple[int, str]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    try:
        result = CliRunner().invoke(main, ["agent", *args])
    finally:  # the command sets up logging for its process
        root.handlers[:] = handlers
        root.setLevel(level)
    return result.exit_code, result.stderr


def test_the_command_refuses_a_bad_configuration_in_one_located_line(tmp_path: Path) -> None:
    path = write(tmp_path, "agent:\n  batch_max_events: 0\n")
    code, stderr = run_command("--config", str(path))
    assert code == 2
    assert stderr.strip().count("\n") == 0
    assert stderr.startswith(f"error: {path}:2: agent.batch_max_events")


def test_the_command_names_what_is_missing(tmp_path: Path) -> None:
    path = write(tmp_path, "agent:\n  server: https://k3watch.example:8443\n")
    code, stderr = run_command("--config", str(path))
    assert code == 2
    assert stderr.strip() == f"error: {path}: agent.token is not set (an agent token: " + (
        "k3watch token create NAME --role agent)"
    )


def test_the_command_reports_a_spool_it_cannot_use(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("")
    path = write(
        tmp_path,
        f"""
        agent:
          server: http://127.0.0.1:9
          token: t
          spool_dir: {blocker}
          metrics_listen: null
          sources: [{{type: audit_file, path: audit.log}}]
        """,
    )
    code, stderr = run_command("--config", str(path), "--once")
    assert code == 2
    assert "cannot open the spool" in stderr and "agent.spool_dir" in stderr


def test_the_command_reports_a_certificate_it_cannot_read(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        agent:
          server: https://k3watch.example:8443
          token: t
          ca_file: missing-ca.crt
          spool_dir: agent
          metrics_listen: null
          sources: [{type: audit_file, path: audit.log}]
        """,
    )
    code, stderr = run_command("--config", str(path), "--once")
    assert code == 2
    assert stderr.startswith(f"error: {path}: ") and "missing-ca.crt" in stderr
    assert stderr.strip().count("\n") == 0
