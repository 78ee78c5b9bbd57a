"""kube-apiserver-arg values become API-server flags as K3s makes them; log lines are parsed."""

from __future__ import annotations

from k3watch.errors import Location
from k3watch.policy.k3s.apiserver import resolve_flags, running_args
from k3watch.policy.k3s.config import Item


def items(*values: str) -> list[Item]:
    return [Item(v, Location("f.yaml", n)) for n, v in enumerate(values, 1)]


def test_the_last_setting_of_a_flag_wins_and_remembers_what_it_overrides() -> None:
    flags = resolve_flags(items("audit-log-maxage=7", "--audit-log-path=/a", "audit-log-maxage=30"))
    maxage = flags["audit-log-maxage"]
    assert maxage.value == "30"
    assert str(maxage.location) == "f.yaml:3"
    assert [(i.value, str(i.location)) for i in maxage.shadowed] == [("7", "f.yaml:1")]
    assert flags["audit-log-path"].value == "/a"


def test_a_bare_flag_means_true_and_values_keep_their_equals_signs() -> None:
    flags = resolve_flags(items("profiling", "feature-gates=A=true,B=false"))
    assert flags["profiling"].value == "true"
    assert flags["feature-gates"].value == "A=true,B=false"


def test_plus_appends_and_minus_prepends_so_a_minus_value_does_not_win() -> None:
    flags = resolve_flags(items("x=1", "x+=2"))
    assert flags["x"].value == "2"
    flags = resolve_flags(items("y=1", "y-=0"))
    assert flags["y"].value == "1"


def test_a_bare_running_line_gives_its_flags() -> None:
    args = running_args("Running kube-apiserver --a=1 --audit-log-path=/x/audit.log --b")
    assert args == ["--a=1", "--audit-log-path=/x/audit.log", "--b"]


def test_a_logrus_line_is_unquoted_and_a_value_with_a_space_stays_whole() -> None:
    message = (
        'time="2026-01-05T10:00:00Z" level=info msg="Running kube-apiserver '
        '--advertise-port=6443 --audit-policy-file=/p \\"q\\".yaml --z=C:\\\\dir"'
    )
    assert running_args(message) == [
        "--advertise-port=6443",
        '--audit-policy-file=/p "q".yaml',
        "--z=C:\\dir",
    ]


def test_other_messages_are_not_running_lines() -> None:
    assert running_args("Running kube-scheduler --a=1") is None
