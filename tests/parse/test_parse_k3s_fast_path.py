"""The K3s-stream parsers' fast path for logrus lines gives exactly what the general path gives.

:meth:`K3sLogParser._logrus_line` reads a logrus line without syslog prefix without the
general reading's objects. Each check runs the same lines through a parser with the fast
path and one without it, and compares everything that comes out: the events (raw objects,
key order included), the counters and the error reports.
"""

from __future__ import annotations

from typing import Any

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from k3watch.errors import InputError
from k3watch.parse.k3s_log import K3sLogParser, containerd_parser, syslog_parser
from k3watch.telemetry import Counters

TIMES = [
    "2024-05-23T20:29:55.401842211Z",
    "2024-05-23T20:29:55Z",
    "2024-05-23T20:29:55.4+02:00",
    "2024-05-23 20:29:55.401842",
    "2024-02-30T20:29:55Z",
    "2024-05-23T20:29:60.5Z",
    "not a time",
    "12",
    "",
]
LEVELS = ["info", "warning", "error", "debug", "INFO", "", "trace", "odd"]
WORDS = [
    "starting containerd",
    'loading plugin \\"io.containerd.snapshotter.v1.aufs\\"...',
    "RunPodSandbox for &PodSandboxMetadata{Name:coredns,Uid:8a0a,Namespace:kube-system,}",
    'StartContainer for \\"' + "9b1d" * 16 + '\\" returns successfully',
    'apparmor="DENIED" operation="open"',
    "é \\u00e9 \\xff \\\\ \\q",
    "",
]
FIELDS = [
    ' error="aufs is not supported"',
    " type=io.containerd.snapshotter.v1",
    " revision= version=v1.7.15",
    ' id=abc namespace=k8s.io key="v w"',
    ' left="open',
    " stray words",
    '"glued',
    "  two=spaces",
    "\tkey=value",
    "",
]
OTHER_LINES = [
    "  continued with a Trace step",
    "goroutine 1 [running]:",
    "panic: boom",
    "",
    "   ",
    "May 23 20:29:53 node1 containerd[334]: plain syslog line",
    'May 23 20:29:53 node1 k3s[334]: time="2024-05-23T20:29:53Z" level=info msg="prefixed"',
    'I0523 20:29:53.123456     334 kubelet.go:2160] "SyncLoop ADD" pod="kube-system/x"',
    '{"level":"info","ts":"2024-05-23T20:29:53.1Z","msg":"etcd"}',
    'level=info msg="no time"',
    "time=bare level=info msg=bare",
]


@st.composite
def logrus_lines(draw: st.DrawFn) -> str:
    time = draw(st.sampled_from(TIMES))
    level = draw(st.sampled_from(LEVELS))
    message = draw(st.sampled_from(WORDS))
    fields = "".join(draw(st.lists(st.sampled_from(FIELDS), max_size=3)))
    return f'time="{time}" level={level} msg="{message}"{fields}'


lines = st.lists(st.one_of(logrus_lines(), st.sampled_from(OTHER_LINES)), max_size=12)

PARSERS = {
    "containerd": lambda c, e: containerd_parser(c, e, max_record_bytes=120),
    "k3s": lambda c, e: K3sLogParser(c, e, host="node1", max_record_bytes=120),
    "syslog": lambda c, e: syslog_parser(c, e, unit="x.service"),
    "kernel ident": lambda c, e: K3sLogParser(c, e, ident="kernel"),
}


def run(name: str, texts: list[str], cut: list[bool], fast: bool) -> dict[str, Any]:
    counters = Counters("parse")
    errors: list[InputError] = []
    parser = PARSERS[name](counters, errors.append)
    parser._logrus_fast = fast and parser._logrus_fast
    parser.key_prefix = "/var/log/x#0123@" if cut[:1] == [True] else None
    events = []
    offset = 0
    for number, (text, truncated) in enumerate(zip(texts, cut, strict=True), 1):
        events += parser.parse_line(text.encode(), "x.log", number, offset, truncated=truncated)
        offset += len(text.encode()) + 1
    events += parser.flush()
    return {
        "events": [
            (orjson.dumps(e.raw), list(e.raw), e.source, e.line, e.truncated) for e in events
        ],
        "counters": counters.items(),
        "errors": [(e.reason, str(e)) for e in errors],
    }


@settings(max_examples=300, deadline=None)
@given(
    name=st.sampled_from(sorted(PARSERS)),
    texts=lines,
    cuts=st.lists(st.booleans(), min_size=12, max_size=12),
)
def test_logrus_fast_path_gives_what_the_general_path_gives(
    name: str, texts: list[str], cuts: list[bool]
) -> None:
    cut = cuts[: len(texts)]
    assert run(name, texts, cut, fast=True) == run(name, texts, cut, fast=False)


def test_the_fast_path_is_taken_for_containerd_lines() -> None:
    """Not a test that cannot fail: the comparison above means something only if it is."""
    parser = containerd_parser(Counters("parse"), lambda error: None)
    taken = []
    general = parser._logrus_line
    parser._logrus_line = lambda *args: taken.append(args) or general(*args)  # type: ignore[method-assign]
    parser.parse_line(b'time="2024-05-23T20:29:55Z" level=info msg="x"', "x.log")
    assert len(taken) == 1


def test_a_time_beyond_the_years_a_timestamp_can_hold_is_reported_not_raised() -> None:
    """9999-12-31 at -01:00 is in year 10000 in UTC: the record keeps no time, says why."""
    for text in (
        b'time="9999-12-31T23:59:59-01:00" level=info msg="late"',
        b'{"level":"info","ts":"0001-01-01T00:30:00+01:00","msg":"early"}',
    ):
        errors: list[InputError] = []
        parser = containerd_parser(Counters("t"), errors.append)
        [event] = [*parser.parse_line(text, "log"), *parser.flush()]
        assert "time" not in event.raw
        assert [e.reason for e in errors] == ["invalid_time"]
