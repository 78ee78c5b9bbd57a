"""Host installs: systemd units that `systemd-analyze verify` accepts without a word, hardened
as promised; openrc scripts that parse; the first admin token kept out of logs; the
Containerfile's shape.

Golden files: ``tests/golden/deploy/*.service`` and ``*.openrc`` are the default rendering;
regenerate them with ``pytest tests/deploy --regen-golden`` and review the diff.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from tests.deploy.conftest import Invoke

from k3watch.deploy.bootstrap import ensure_admin_token
from k3watch.deploy.host import openrc_scripts, systemd_units
from k3watch.deploy.values import Values, load_values
from k3watch.server.tokens import Role, TokenStore

GOLDEN = Path(__file__).parent.parent / "golden" / "deploy"
REPO = Path(__file__).parent.parent.parent


def directives(text: str) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for line in text.splitlines():
        if "=" in line and not line.startswith(("#", "[", " ")):
            key, _, value = line.partition("=")
            out.setdefault(key, []).append(value)
    return out


def test_default_units_and_scripts_match_the_golden_files(regen_golden: bool) -> None:
    values = load_values(None)
    rendered = {
        **systemd_units(values),
        **{f"{name}.openrc": text for name, text in openrc_scripts(values).items()},
    }
    for name, text in rendered.items():
        golden = GOLDEN / name
        if regen_golden:
            golden.write_text(text, encoding="utf-8")
        assert text == golden.read_text(encoding="utf-8"), name


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze missing")
def test_systemd_analyze_verify_accepts_both_units_without_a_warning(
    write_values: Callable[[str], Path], tmp_path: Path
) -> None:
    # verify checks that ExecStart= names an executable: point it at this venv's k3watch.
    k3watch = Path(sys.executable).parent / "k3watch"
    assert k3watch.exists()
    values = load_values(write_values(f"host: {{k3watch_bin: {k3watch}}}\n"))
    units = tmp_path / "units"
    units.mkdir()
    for name, text in systemd_units(values).items():
        (units / name).write_text(text)
    result = subprocess.run(
        ["systemd-analyze", "verify", *sorted(str(p) for p in units.iterdir())],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout + result.stderr == ""


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze missing")
def test_systemd_analyze_verify_catches_a_broken_unit(tmp_path: Path) -> None:
    """The verification above can fail: a unit whose program is missing does."""
    unit = tmp_path / "k3watch-agent.service"
    unit.write_text(systemd_units(Values())["k3watch-agent.service"])  # /opt/k3watch: absent
    result = subprocess.run(
        ["systemd-analyze", "verify", str(unit)], capture_output=True, text=True, check=False
    )
    assert result.returncode != 0 or result.stderr


def test_the_units_run_a_dedicated_user_in_a_read_only_system() -> None:
    units = systemd_units(Values())
    for name, text in units.items():
        found = directives(text)
        assert found["User"] == ["k3watch"], name
        assert found["ProtectSystem"] == ["strict"], name
        assert found["NoNewPrivileges"] == ["yes"], name
        assert found["StateDirectoryMode"] == ["0700"], name
        assert "SystemCallFilter" in found, name
    agent = directives(units["k3watch-agent.service"])
    assert agent["SupplementaryGroups"] == ["systemd-journal"]
    assert agent["CapabilityBoundingSet"] == ["CAP_DAC_READ_SEARCH"]
    assert agent["AmbientCapabilities"] == ["CAP_DAC_READ_SEARCH"]
    server = directives(units["k3watch-server.service"])
    assert server["CapabilityBoundingSet"] == [""]
    assert "deploy bootstrap" in server["ExecStartPre"][0]


@pytest.mark.skipif(shutil.which("sh") is None, reason="no sh")
def test_the_openrc_scripts_parse_as_shell_and_run_unprivileged(tmp_path: Path) -> None:
    for name, text in openrc_scripts(Values()).items():
        assert text.startswith("#!/sbin/openrc-run\n"), name
        path = tmp_path / name
        path.write_text(text)
        result = subprocess.run(
            ["sh", "-n", str(path)], capture_output=True, text=True, check=False
        )
        assert result.returncode == 0, f"{name}: {result.stderr}"
        assert 'command_user="k3watch:k3watch"' in text
        assert "supervisor=supervise-daemon" in text
        assert "no_new_privs=yes" in text


def test_openrc_scripts_are_written_executable(invoke: Invoke, tmp_path: Path) -> None:
    out = tmp_path / "init.d"
    result = invoke("deploy", "openrc", "--output-dir", str(out))
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in out.iterdir()) == ["k3watch-agent", "k3watch-server"]
    assert all(p.stat().st_mode & 0o777 == 0o755 for p in out.iterdir())


def test_bootstrap_writes_a_working_admin_token_to_a_0600_file_once(
    invoke: Invoke, tmp_path: Path
) -> None:
    data = tmp_path / "data"
    secret_file = tmp_path / "initial-admin-token"
    result = invoke(
        "deploy", "bootstrap", "--data-dir", str(data), "--admin-token-file", str(secret_file)
    )
    assert result.exit_code == 0, result.output
    secret = secret_file.read_text().strip()
    assert secret.startswith("k3w_")
    assert secret not in result.output
    assert secret_file.stat().st_mode & 0o777 == 0o600
    with TokenStore(data / "tokens.sqlite") as tokens:
        info = tokens.authenticate(secret)
        assert info is not None and info.role is Role.ADMIN
        from k3watch.server.runtime import first_admin_token

        assert first_admin_token(tokens) is None  # the server will print none

    again = invoke(
        "deploy", "bootstrap", "--data-dir", str(data), "--admin-token-file", str(secret_file)
    )
    assert again.exit_code == 0
    assert "nothing to do" in again.stdout
    assert secret_file.read_text().strip() == secret


def test_bootstrap_takes_its_token_back_when_the_file_cannot_be_written(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("")
    with pytest.raises(OSError):
        ensure_admin_token(tmp_path / "data", blocker / "token")
    with TokenStore(tmp_path / "data" / "tokens.sqlite") as tokens:
        assert all(t.revoked for t in tokens.list())


def test_the_containerfile_builds_a_slim_non_root_image_pinned_by_digest() -> None:
    text = (REPO / "Containerfile").read_text()
    default = re.search(r"^ARG PYTHON_IMAGE=(\S+)$", text, re.MULTILINE)
    assert default is not None
    assert re.fullmatch(r"\S+:3\.1[1-9]-slim-\w+@sha256:[0-9a-f]{64}", default.group(1))
    stages = re.findall(r"^FROM (\S+)", text, re.MULTILINE)
    assert stages == ["${PYTHON_IMAGE}", "${PYTHON_IMAGE}"]  # multi-stage, one pinned base
    assert "COPY --from=build /opt/k3watch /opt/k3watch" in text
    user = re.findall(r"^USER (\S+)$", text, re.MULTILINE)
    assert user and not user[-1].startswith(("0", "root"))
    assert re.search(r'^ENTRYPOINT \["k3watch"\]$', text, re.MULTILINE)
    # The manifests run the image's program under the name the image provides.
    assert Values().image.command == ("k3watch",)
