"""The single-line readers: Go strings, logrus, klog and syslog prefixes."""

from __future__ import annotations

from pathlib import Path

import pytest

from k3watch.parse import gostring
from k3watch.parse.klog import parse_klog, split_structured
from k3watch.parse.logrus import parse_logrus
from k3watch.parse.syslog import split_syslog
from k3watch.parse.timestamps import LocalClock

APPARMOR = Path(__file__).parents[1] / "corpus" / "apparmor-libapparmor-testsuite"


@pytest.mark.parametrize(
    ("inner", "text"),
    [
        ("plain", "plain"),
        (r"a \"quoted\" word", 'a "quoted" word'),
        (r"tab\tnew\nline\\", "tab\tnew\nline\\"),
        (r"\u00e9\U0001F600", "é😀"),
        (r"\xc3\xa9", "é"),
        (r"bad \xff byte", "bad \ufffd byte"),
        (r"\101", "A"),
        (r"\q", "\\q"),
    ],
)
def test_go_strings_unquote_to_their_text(inner: str, text: str) -> None:
    assert gostring.unquote(inner) == text


def test_logrus_key_value_form() -> None:
    """time, level and msg are taken out; the other pairs are fields, unquoted."""
    line = parse_logrus(
        'time="2024-05-23T20:29:53Z" level=warning msg="Unable to \\"watch\\"" '
        'error="a b" node=server-1'
    )
    assert line is not None
    assert (line.time, line.level, line.message) == (
        "2024-05-23T20:29:53Z",
        "warning",
        'Unable to "watch"',
    )
    assert line.fields == {"error": "a b", "node": "server-1"}
    assert line.form == "text"


def test_logrus_terminal_form_separates_fields_after_the_padding() -> None:
    """Fields follow the 44-character padded message after at least two spaces."""
    line = parse_logrus(
        "WARN[2019-05-24T08:36:52.000120034+00:00] Unable to remove node password"
        '            error="not found" node=server-1'
    )
    assert line is not None
    assert line.level == "warning" and line.time == "2019-05-24T08:36:52.000120034+00:00"
    assert line.message == "Unable to remove node password"
    assert line.fields == {"error": "not found", "node": "server-1"}


def test_logrus_terminal_form_keeps_key_value_text_of_the_message() -> None:
    """``a=b`` inside a message (one space apart) is message text, not a field."""
    line = parse_logrus("INFO[0000] Configuring sqlite3 pooling: maxIdleConns=2, maxOpenConns=0")
    assert line is not None
    assert line.message == "Configuring sqlite3 pooling: maxIdleConns=2, maxOpenConns=0"
    assert line.fields == {} and line.time == "0000"


def test_logrus_coloured_terminal_form() -> None:
    """Colour codes mark the keys; they do not reach the message or the fields."""
    line = parse_logrus(
        "\x1b[31mERRO\x1b[0m[2024-05-23T20:29:55Z] Sending HTTP 401 response   "
        ' \x1b[31mclient\x1b[0m=10.0.0.7 \x1b[31mpath\x1b[0m="/v1-k3s/serving-kubelet.crt"'
    )
    assert line is not None
    assert line.level == "error" and line.message == "Sending HTTP 401 response"
    assert line.fields == {"client": "10.0.0.7", "path": "/v1-k3s/serving-kubelet.crt"}


@pytest.mark.parametrize(
    "text",
    ["I0523 20:29:54.215736 334 x.go:1] klog", "plain text", "", "{json}", "time"],
)
def test_other_lines_are_not_logrus(text: str) -> None:
    assert parse_logrus(text) is None


def test_klog_header() -> None:
    line = parse_klog('E0523 20:30:05.300112     334 pod_workers.go:1298] "Error" err="x"')
    assert line is not None
    assert (line.level, line.month, line.day, line.micro) == ("error", 5, 23, 300112)
    assert (line.pid, line.caller, line.body) == (334, "pod_workers.go:1298", '"Error" err="x"')


def test_klog_structured_values() -> None:
    """Quoted strings, bare numbers, bracketed Go values with spaces, multi-line strings."""
    body = (
        '"DeleteContainer returned error" containerID={Type:containerd ID:6727ed} '
        'pods=[kube-system/a default/b] total=1 err=<\n\tline one\n\tline two\n > after="x y"'
    )
    assert split_structured(body) == (
        "DeleteContainer returned error",
        {
            "containerID": "{Type:containerd ID:6727ed}",
            "pods": "[kube-system/a default/b]",
            "total": "1",
            "err": "line one\nline two",
            "after": "x y",
        },
    )


@pytest.mark.parametrize(
    "body",
    ["Generated self-signed cert in-memory", '"msg" then words', '"unterminated', '"m" k'],
)
def test_klog_plain_messages_are_not_structured(body: str) -> None:
    assert split_structured(body) is None


def test_syslog_bsd_prefix() -> None:
    prefix = split_syslog("May 23 20:29:53 server k3s[334]: time=x")
    assert prefix is not None
    assert (prefix.host, prefix.ident, prefix.pid, prefix.message) == (
        "server",
        "k3s",
        334,
        "time=x",
    )
    assert (prefix.month, prefix.day, prefix.hour, prefix.wall) == (5, 23, 20, None)


def test_syslog_rfc5424_prefix() -> None:
    prefix = split_syslog('<165>1 2024-05-23T20:30:07.003Z server k3s 334 - [a b="c"] hello')
    assert prefix is not None
    assert (prefix.host, prefix.ident, prefix.pid, prefix.severity) == ("server", "k3s", 334, 5)
    assert prefix.message == "hello" and prefix.offset == 0


def test_syslog_socklog_prefix_has_a_facility_and_no_host() -> None:
    prefix = split_syslog("2021-09-11T20:57:41.91645 kern.notice: [  469.180605] audit: x")
    assert prefix is not None
    assert (prefix.host, prefix.ident, prefix.level) == (None, "kern", "notice")


def test_every_syslog_date_form_of_the_apparmor_corpus_resolves_to_the_same_moment() -> None:
    """The 18 ``syslog_datetime`` lines write 2013-01-01 15:09:04 in every form rsyslog has."""
    moments = set()
    for path in sorted(APPARMOR.glob("syslog_datetime_*.in")):
        prefix = split_syslog(path.read_text().strip())
        assert prefix is not None, path.name
        assert (prefix.host, prefix.ident) == ("localhost", "kernel")
        assert prefix.message.startswith("[ 1911.569682] type=1400")
        wall = prefix.wall
        if wall is None:
            clock = LocalClock(now=lambda: 1_400_000_000.0)
            wall = clock.resolve(
                prefix.month, prefix.day, prefix.hour, prefix.minute, prefix.second
            )
            assert wall is not None
        moments.add((wall - (prefix.offset or 0)) // 1_000_000 % 86400)
    assert len(moments) == 3  # 15:09:04 in UTC, at +08:00 and at -08:00


@pytest.mark.parametrize(
    "text",
    [
        "I0523 20:29:53.000000 1 a.go:1] x",
        "Foo 23 20:29:53 h x: y",
        "",
        "2024-13-01T00:00:00Z h x: y",
    ],
)
def test_lines_without_a_syslog_prefix(text: str) -> None:
    assert split_syslog(text) is None
