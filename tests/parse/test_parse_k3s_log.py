"""The K3s stream: continuation lines, components, real kubelet logs, and the registry."""

from __future__ import annotations

import io
import re
from pathlib import Path
from typing import Any

import pytest

from k3watch.errors import InputError, UsageError
from k3watch.event import Event
from k3watch.parse.k3s_log import K3sLogParser
from k3watch.parse.registry import PARSERS, create_parser
from k3watch.telemetry import Counters

KIND = Path(__file__).parents[1] / "corpus" / "gangmuk-kind-kubelet-logs"
KLOG_TIME = re.compile(r"[IWEF](\d\d)(\d\d) (\d\d:\d\d:\d\d\.\d{6}) ")
NOW = 1718000000.0  # 2024-06-10


def parse(text: str, **options: Any) -> tuple[list[Event], list[InputError], Counters]:
    errors: list[InputError] = []
    counters = Counters("k3s")
    parser = K3sLogParser(counters, errors.append, now=lambda: NOW, **options)
    events = list(parser.parse_stream(io.BytesIO(text.encode()), "k3s.log"))
    return events, errors, counters


def test_trace_steps_join_their_klog_line() -> None:
    """``Trace[…]:`` lines have no header: they extend the record before them."""
    events, errors, counters = parse(
        'I0523 20:30:01.503131     334 trace.go:236] Trace[9]: "Get" (total time: 603ms):\n'
        'Trace[9]: ---"About to write a response" 603ms (20:30:01.503)\n'
        "Trace[9]: [603.2ms] [603.2ms] END\n"
        'time="2024-05-23T20:30:02Z" level=info msg="next"\n'
    )
    assert errors == []
    assert len(events) == 2
    assert events[0].raw["message"].count("\n") == 2
    assert events[0].raw["_key"] == "k3s.log@0" and events[0].line == 1
    assert counters.get("joined") == 2


def test_multiline_klog_value_is_read_once_joined() -> None:
    """``err=<`` … `` >`` spans lines; the fields are read from the joined record."""
    events, _, _ = parse(
        'W0523 22:29:57.010010    2211 kuberuntime_manager.go:237] "No log rotation" err=<\n'
        "\trpc error: code = Unimplemented\n"
        ' > runtime="containerd"\n'
    )
    assert events[0].raw["message"] == "No log rotation"
    assert events[0].raw["fields"] == {
        "err": "rpc error: code = Unimplemented",
        "runtime": "containerd",
    }


def test_go_panic_starts_a_record_and_takes_its_stack_trace() -> None:
    events, _, _ = parse(
        'time="2024-05-23T20:31:11Z" level=info msg="before"\n'
        "panic: runtime error: invalid memory address or nil pointer dereference\n"
        "goroutine 1 [running]:\n"
        "\t/go/src/github.com/k3s-io/k3s/main.go:12 +0x1d\n"
    )
    assert [e.raw["message"].split("\n")[0] for e in events] == [
        "before",
        "panic: runtime error: invalid memory address or nil pointer dereference",
    ]
    assert events[1].raw["message"].count("\n") == 2


def test_continuations_join_their_own_writer_in_a_syslog_file() -> None:
    """Lines of another program between a header and its continuation do not break it."""
    events, _, _ = parse(
        "May 23 20:30:01 server k3s[334]: I0523 20:30:01.503131     334 trace.go:236] Trace[9]: x\n"
        "May 23 20:30:01 server sshd[9]: Accepted publickey for admin\n"
        "May 23 20:30:01 server k3s[334]: Trace[9]: [603.2ms] [603.2ms] END\n"
    )
    messages = {e.raw["ident"]: e.raw["message"] for e in events}
    assert messages == {
        "sshd": "Accepted publickey for admin",
        "k3s": "Trace[9]: x\nTrace[9]: [603.2ms] [603.2ms] END",
    }


def test_plain_lines_of_ordinary_programs_stay_apart() -> None:
    events, _, _ = parse(
        "May 23 20:30:01 server systemd[1]: Starting a.service...\n"
        "May 23 20:30:01 server systemd[1]: Started a.service.\n"
    )
    assert len(events) == 2


def test_continuation_overflow_truncates_the_record() -> None:
    """Past max_record_bytes the record is closed, marked truncated; the rest is dropped."""
    lines = ['time="2024-05-23T20:30:02Z" level=info msg="head"'] + ["x" * 40] * 10
    events, _, counters = parse("\n".join(lines) + "\n", max_record_bytes=100)
    assert len(events) == 1 and events[0].raw["truncated"] is True
    assert len(events[0].raw["message"]) <= 100
    assert counters.get("dropped", "continuation_overflow") > 0


@pytest.mark.parametrize(
    ("line", "component"),
    [
        ('time="2024-05-23T20:29:53Z" level=info msg="Starting k3s"', "k3s"),
        ('{"level":"info","ts":1716496194.5,"msg":"x","caller":"embed/etcd.go:1"}', "etcd"),
        ("I0523 20:30:05.114020     334 kubelet.go:2403] x", "kubelet"),
        ("I0523 20:30:05.114020     334 genericapiserver.go:742] x", "kube-apiserver"),
        ("I0523 20:30:05.114020     334 controllermanager.go:735] x", "kube-controller-manager"),
        ("I0523 20:30:05.114020     334 schedule_one.go:286] x", "kube-scheduler"),
        ("I0523 20:30:05.114020     334 proxier.go:805] x", "kube-proxy"),
        ("I0523 20:30:05.114020     334 vxlan_network.go:65] x", "flannel"),
        ("I0523 20:30:05.114020     334 reflector.go:539] shared by every component", None),
    ],
)
def test_component_is_derived_from_the_line(line: str, component: str | None) -> None:
    events, _, _ = parse(line + "\n")
    assert events[0].raw.get("component") == component


def test_containerd_parser_names_its_component_and_containers() -> None:
    errors: list[InputError] = []
    parser = create_parser("containerd", Counters("c"), errors.append)
    line = (
        'time="2024-05-23T20:30:03.4Z" level=info msg="StartContainer for '
        '\\"9b1d5d3c2f0e4a8b7c6d5e4f3a2b1c0d9e8f7a6b5c4d3e2f1a0b9c8d7e6f5a4b\\" '
        'returns successfully"'
    )
    events = list(parser.parse_lines([line], "containerd.log"))
    assert errors == []
    assert events[0].raw["component"] == "containerd"
    assert events[0].raw["container"]["id"].startswith("9b1d5d3c")


@pytest.mark.parametrize("path", sorted(KIND.rglob("*.log.txt")), ids=lambda p: p.name)
def test_real_kind_logs_read_without_errors(path: Path) -> None:
    """Every line of the kind clusters' kubelet journals and scheduler logs is a klog record."""
    data = path.read_bytes()
    lines = data.count(b"\n") + (not data.endswith(b"\n"))
    errors: list[InputError] = []
    parser = create_parser("syslog", Counters("kind"), errors.append, now=lambda: 1_706_000_000.0)
    events = list(parser.parse_stream(io.BytesIO(data), path.name))
    assert errors == []
    assert len(events) == lines
    assert {e.raw["format"] for e in events} == {"klog"}
    if "kubelet" in path.name:
        assert {e.raw["component"] for e in events} == {"kubelet"}
        assert {e.raw["host"] for e in events} == {path.name.split("kubelet-")[1].split(".")[0]}
    # kind nodes run on UTC: each time is the klog header's, in the year the file was written.
    year = path.name[:4]
    texts = data.decode().splitlines()
    for event in events:
        header = KLOG_TIME.search(texts[event.line - 1])
        assert header is not None
        month, day, clock = header.groups()
        assert event.raw["time"] == f"{year}-{month}-{day}T{clock}Z"


def test_registry_builds_each_parser_and_rejects_unknown_names() -> None:
    for name in PARSERS:
        parser = create_parser(name, Counters(name), lambda _: None)
        assert list(parser.parse_lines([], "empty")) == []
    with pytest.raises(UsageError, match="unknown log format"):
        create_parser("nginx", Counters("x"), lambda _: None)
    with pytest.raises(UsageError, match="bad options"):
        create_parser("kernel", Counters("x"), lambda _: None, colour=True)


def test_parse_line_accepts_text_and_returns_what_it_completes() -> None:
    """A header line is held; the next header (or flush) returns it."""
    parser = K3sLogParser(Counters("x"), lambda _: None)
    assert parser.parse_line('time="2024-05-23T20:30:02Z" level=info msg="a"', "s", 1, 0) == []
    done = parser.parse_line('time="2024-05-23T20:30:03Z" level=info msg="b"', "s", 2, 47)
    assert [e.raw["message"] for e in done] == ["a"]
    assert [e.raw["_key"] for e in parser.flush()] == ["s@47"]
    assert parser.flush() == []
