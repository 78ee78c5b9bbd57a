"""Values files: defaults that render, and every mistake reported with its file and line."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from k3watch.deploy.manifests import render
from k3watch.deploy.values import Values, load_values
from k3watch.errors import UsageError


def error_of(path: Path) -> str:
    with pytest.raises(UsageError) as caught:
        render(load_values(path))
    return str(caught.value)


def test_no_values_file_gives_the_defaults() -> None:
    assert load_values(None) == Values()


def test_an_empty_values_file_gives_the_defaults(write_values: Callable[[str], Path]) -> None:
    values = load_values(write_values(""))
    assert msgspec_without_source(values) == msgspec_without_source(Values())


def msgspec_without_source(values: Values) -> Values:
    import msgspec

    return msgspec.structs.replace(values, source="")


def test_an_unknown_nested_key_names_its_file_and_line(
    write_values: Callable[[str], Path],
) -> None:
    path = write_values("cluster: prod\nserver:\n  storage:\n    size: 5Gi\n    sise: 6Gi\n")
    assert error_of(path) == f"{path}:5: unknown key 'sise'"


def test_a_wrong_type_names_the_line_of_its_key(write_values: Callable[[str], Path]) -> None:
    path = write_values("agent:\n  journal: maybe\n")
    message = error_of(path)
    assert message.startswith(f"{path}:2: agent.journal: Expected 'bool'")


def test_a_bad_choice_is_refused_with_its_line(write_values: Callable[[str], Path]) -> None:
    path = write_values("audit:\n  source: syslog\n")
    assert error_of(path).startswith(f"{path}:2: audit.source: Invalid enum value 'syslog'")


def test_a_name_kubernetes_refuses_is_reported_at_its_line(
    write_values: Callable[[str], Path],
) -> None:
    path = write_values("namespace: K3watch_Prod\n")
    assert error_of(path) == (
        f"{path}:1: namespace: 'K3watch_Prod' is not a Kubernetes name (lowercase, digits, '-')"
    )


def test_a_bad_quantity_is_reported_at_its_line(write_values: Callable[[str], Path]) -> None:
    path = write_values(
        "agent:\n  resources:\n    cpu_request: lots\n    memory_request: 1Gi\n"
        "    cpu_limit: null\n    memory_limit: 1Gi\n"
    )
    assert error_of(path) == f"{path}:3: agent.resources.cpu_request: 'lots' is not a quantity"


def test_server_config_the_server_would_refuse_is_reported_at_server_config(
    write_values: Callable[[str], Path],
) -> None:
    path = write_values("cluster: prod\nserver:\n  config:\n    server:\n      suppress: soon\n")
    message = error_of(path)
    assert message.startswith(f"{path}:3: the rendered server configuration is not valid:")
    assert "suppress" in message


def test_agent_config_with_an_unknown_key_is_refused(write_values: Callable[[str], Path]) -> None:
    path = write_values("agent:\n  config:\n    agent:\n      batch_size: 5\n")
    message = error_of(path)
    assert message.startswith(f"{path}:2: the rendered agent configuration is not valid:")
    assert "unknown key 'batch_size'" in message


def test_an_extra_source_of_an_unknown_format_is_refused(
    write_values: Callable[[str], Path],
) -> None:
    path = write_values(
        "agent:\n  extra_sources:\n    - {type: file, path: /var/log/nginx.log, format: nginx}\n"
    )
    assert "unknown log format 'nginx'" in error_of(path)


def test_relative_file_paths_are_relative_to_the_values_file(
    write_values: Callable[[str], Path], tmp_path: Path
) -> None:
    values = load_values(write_values("agent:\n  token_file: secrets/agent.token\n"))
    assert values.agent.token_file == str(tmp_path / "secrets" / "agent.token")


def test_a_missing_token_file_is_reported_at_the_key_naming_it(
    write_values: Callable[[str], Path],
) -> None:
    path = write_values("cluster: prod\nagent:\n  token_file: nowhere.token\n")
    message = error_of(path)
    assert message.startswith(f"{path}:3: cannot read ")
    assert "nowhere.token" in message


def test_a_token_file_with_two_lines_is_refused(
    write_values: Callable[[str], Path], tmp_path: Path
) -> None:
    (tmp_path / "two.token").write_text("k3w_" + "a" * 43 + "\nsecond line\n")
    path = write_values("agent:\n  token_file: two.token\n")
    assert "must hold one token" in error_of(path)


def test_invalid_yaml_names_its_line(write_values: Callable[[str], Path]) -> None:
    path = write_values("cluster: prod\nserver: [\n")
    with pytest.raises(UsageError) as caught:
        load_values(path)
    assert str(caught.value).startswith(f"{path}:3: invalid YAML")
