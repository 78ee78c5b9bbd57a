"""Every value modifier pySigma 2 parses, each with an event that matches and a near miss.

Each case is ``(detection, fields of a matching event, fields of a near miss)``; the fields are
top-level keys merged into a complete audit event.
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from typing import Any

import pytest

Matches = Callable[[str, dict[str, Any]], bool]
Builder = Callable[..., dict[str, Any]]


def b64(text: str, encoding: str = "utf-8") -> str:
    return base64.b64encode(text.encode(encoding)).decode()


def sel(field: str, value: str) -> str:
    return f"sel:\n  {field}: {value}\ncondition: sel"


def code(value: Any) -> dict[str, Any]:
    return {"responseStatus": {"code": value}}


def ua(text: str) -> dict[str, Any]:
    return {"userAgent": text}


def user(name: str) -> dict[str, Any]:
    return {"user": name}


def data(text: str) -> dict[str, Any]:
    return {"requestObject": {"kind": "Secret", "data": {"script": text}}}


def ips(*addresses: str) -> dict[str, Any]:
    return {"sourceIPs": list(addresses)}


def at(stamp: str) -> dict[str, Any]:
    return {"requestReceivedTimestamp": stamp}


CASES: list[Any] = [
    # --- plain values: case-insensitive equality, wildcards, numbers, booleans -------------
    pytest.param(sel("user.username", "Admin"), user("ADMIN"), user("admin2"), id="plain-ci"),
    pytest.param(sel("user.username|cased", "Admin"), user("Admin"), user("admin"), id="cased"),
    pytest.param(sel("userAgent", "'kube*/v1.*'"), ua("kubectl/v1.31"), ua("kubectl/1.31"), id="*"),
    pytest.param(sel("userAgent", "'curl/?.0'"), ua("curl/8.0"), ua("curl/10.0"), id="?"),
    pytest.param(sel("userAgent", r"'a\*b'"), ua("a*b"), ua("axb"), id="escaped-*"),
    pytest.param(sel("userAgent", r"'a\?b'"), ua("a?b"), ua("axb"), id="escaped-?"),
    pytest.param(sel("userAgent", r"'C:\Win\\*'"), ua("c:\\win\\x"), ua("c:\\winx"), id="bs"),
    pytest.param(sel("responseStatus.code", "403"), code(403), code(404), id="number"),
    pytest.param(sel("responseStatus.code", "403"), code("403"), code("4030"), id="num-str"),
    pytest.param(sel("responseStatus.code", "'403'"), code(403), code(4030), id="str-num"),
    pytest.param(sel("responseStatus.code", "1"), code(1), code(True), id="bool-not-1"),
    pytest.param(
        sel("requestObject.spec.hostPID", "true"),
        {"requestObject": {"spec": {"hostPID": True}}},
        {"requestObject": {"spec": {"hostPID": False}}},
        id="boolean",
    ),
    pytest.param(
        sel("requestObject.spec.hostPID", "true"),
        {"requestObject": {"spec": {"hostPID": "true"}}},
        {"requestObject": {"spec": {"hostPID": 1}}},
        id="boolean-text",
    ),
    pytest.param(
        sel("userAgent", "['x*', '*y', exact, '*mid*', 'a?c']"),
        ua("ends-with-Y"),
        ua("yes-mi-d"),
        id="mixed-list",
    ),
    # --- string modifiers --------------------------------------------------------------
    pytest.param(sel("userAgent|contains", "Curl"), ua("x curl/8"), ua("cur l"), id="contains"),
    pytest.param(
        sel("user.username|startswith", "'system:serviceaccount:'"),
        user("system:serviceaccount:kube-system:default"),
        user("x-system:serviceaccount:"),
        id="startswith",
    ),
    pytest.param(
        sel("objectRef.name|endswith", "-token"),
        {"objectRef": {"resource": "secrets", "name": "sa-token"}},
        {"objectRef": {"resource": "secrets", "name": "sa-token-x"}},
        id="endswith",
    ),
    pytest.param(
        sel("userAgent|contains|all", "[python, requests]"),
        ua("python-requests/2.31"),
        ua("python-urllib/3.11"),
        id="all",
    ),
    pytest.param(
        sel("userAgent|contains|cased", "Go-http"),
        ua("x Go-http-client"),
        ua("x go-http-client"),
        id="contains-cased",
    ),
    pytest.param(
        sel("userAgent|cased|startswith", "Go"),
        ua("Go-http-client"),
        ua("go-http-client"),
        id="cased-startswith",
    ),
    pytest.param(
        sel("userAgent|windash|contains", "' -c '"),
        ua("sh /c id"),
        ua("sh +c id"),
        id="windash",
    ),
    # --- regular expressions ----------------------------------------------------------------
    pytest.param(
        sel("requestURI|re", "'/secrets/[a-z]+$'"),
        {"requestURI": "/api/v1/namespaces/d/secrets/db"},
        {"requestURI": "/api/v1/namespaces/d/Secrets/db"},
        id="re-case-sensitive",
    ),
    pytest.param(
        sel("requestURI|re|i", "'/secrets/[a-z]+$'"),
        {"requestURI": "/api/v1/namespaces/d/SECRETS/db"},
        {"requestURI": "/api/v1/namespaces/d/secrets/db/x"},
        id="re-i",
    ),
    pytest.param(sel("userAgent|re|m", "'^tok$'"), ua("a\ntok\nb"), ua("a\ntoken\nb"), id="re-m"),
    pytest.param(sel("userAgent|re", "'^tok$'"), ua("tok"), ua("a\ntok\nb"), id="re-no-m"),
    pytest.param(sel("userAgent|re|s", "'a.b'"), ua("a\nb"), ua("a\n\nb"), id="re-s"),
    pytest.param(sel("userAgent|re", "'a.b'"), ua("a-b"), ua("a\nb"), id="re-no-s"),
    pytest.param(sel("userAgent|re", r"'^kubectl/v\d+\.'"), ua("kubectl/v1.3"), ua("x"), id="re-d"),
    # --- addresses ---------------------------------------------------------------------
    pytest.param(
        sel("sourceIPs|cidr", "10.0.0.0/8"),
        ips("192.168.1.1", "10.200.3.4"),
        ips("11.0.0.1", "not-an-ip"),
        id="cidr-v4",
    ),
    pytest.param(
        sel("sourceIPs|cidr", "'fd00::/8'"),
        ips("fd12:3456::1"),
        ips("fe80::1", "10.0.0.1"),
        id="cidr-v6",
    ),
    # --- existence -------------------------------------------------------------------
    pytest.param(
        sel("impersonatedUser|exists", "true"),
        {"impersonatedUser": {"username": "bob"}},
        {},
        id="exists-true",
    ),
    pytest.param(
        sel("impersonatedUser|exists", "false"),
        {},
        {"impersonatedUser": {"username": "bob"}},
        id="exists-false",
    ),
    # --- numeric comparisons -----------------------------------------------------------
    pytest.param(sel("responseStatus.code|gt", "400"), code(401), code(400), id="gt"),
    pytest.param(sel("responseStatus.code|gte", "400"), code(400), code(399), id="gte"),
    pytest.param(sel("responseStatus.code|lt", "300"), code(299), code(300), id="lt"),
    pytest.param(sel("responseStatus.code|lte", "300"), code(300), code(301), id="lte"),
    pytest.param(sel("responseStatus.code|gte", "400"), code("500"), code("ok"), id="gte-str"),
    pytest.param(sel("responseStatus.code|gte", "1.5"), code(1.5), code(1.49), id="gte-float"),
    pytest.param(sel("responseStatus.code|gt", "0"), code(5), code(True), id="gt-bool"),
    pytest.param(sel("responseStatus.code|lt", "1"), code(0), code(None), id="lt-null"),
    pytest.param(sel("verb|neq", "get"), {"verb": "list"}, {"verb": "GET"}, id="neq-string"),
    pytest.param(sel("responseStatus.code|neq", "200"), code(403), code("200"), id="neq-number"),
    pytest.param(sel("verb|neq", "get"), {"verb": None}, {"verb": "get"}, id="neq-null"),
    # --- field references ----------------------------------------------------------------
    pytest.param(
        sel("objectRef.name|fieldref", "user.username"),
        {"objectRef": {"resource": "users", "name": "Alice"}},
        {"objectRef": {"resource": "users", "name": "alice2"}},
        id="fieldref",
    ),
    pytest.param(
        sel("objectRef.name|fieldref|startswith", "user.username"),
        {"objectRef": {"resource": "pods", "name": "alice-debug"}},
        {"objectRef": {"resource": "pods", "name": "debug-alice"}},
        id="fieldref-startswith",
    ),
    pytest.param(
        sel("objectRef.name|fieldref|endswith", "user.username"),
        {"objectRef": {"resource": "pods", "name": "debug-alice"}},
        {"objectRef": {"resource": "pods", "name": "alice-debug"}},
        id="fieldref-endswith",
    ),
    pytest.param(
        sel("objectRef.name|fieldref|contains", "user.username"),
        {"objectRef": {"resource": "pods", "name": "x-alice-y"}},
        {"objectRef": {"resource": "pods", "name": "x-alic-y"}},
        id="fieldref-contains",
    ),
    pytest.param(
        sel("objectRef.name|neq|fieldref", "user.username"),
        {"objectRef": {"resource": "pods", "name": "bob"}},
        {"objectRef": {"resource": "pods", "name": "alice"}},
        id="neq-fieldref",
    ),
    # --- encodings -----------------------------------------------------------------------
    pytest.param(
        sel("requestObject.data.script|base64", "'curl x'"),
        data(b64("curl x")),
        data(b64("curl y")),
        id="base64",
    ),
    pytest.param(
        sel("requestObject.data.script|base64offset|contains", "'/etc/shadow'"),
        data(b64("cat /etc/shadow")),
        data(b64("cat /etc/passwd")),
        id="base64offset-0",
    ),
    pytest.param(
        sel("requestObject.data.script|base64offset|contains", "'/etc/shadow'"),
        data(b64("c /etc/shadow")),
        data(b64("c /etc/shad0w")),
        id="base64offset-1",
    ),
    pytest.param(
        sel("requestObject.data.script|base64offset|contains", "'/etc/shadow'"),
        data(b64("cd /etc/shadow")),
        data(b64("cd /etc/shad0w")),
        id="base64offset-2",
    ),
    pytest.param(
        sel("requestObject.data.script|wide|base64offset|contains", "ping"),
        data(b64("run ping", "utf-16-le")),
        data(b64("run ping")),
        id="wide-base64offset",
    ),
    pytest.param(
        sel("requestObject.data.script|utf16|base64", "ab"),
        data(b64("\ufeffab", "utf-16-le")),
        data(b64("ab", "utf-16-le")),
        id="utf16-base64",
    ),
    pytest.param(
        sel("requestObject.data.script|utf16be|base64", "ab"),
        data(b64("ab", "utf-16-be")),
        data(b64("ab", "utf-16-le")),
        id="utf16be-base64",
    ),
    pytest.param(sel("userAgent|wide", "ab"), ua("a\x00b\x00"), ua("ab"), id="wide"),
    pytest.param(sel("userAgent|utf16be", "ab"), ua("\x00a\x00b"), ua("a\x00b\x00"), id="utf16be"),
    # --- timestamp parts (UTC) -----------------------------------------------------------
    pytest.param(
        sel("requestReceivedTimestamp|hour", "3"),
        at("2026-01-05T03:59:59Z"),
        at("2026-01-05T04:00:00Z"),
        id="hour",
    ),
    pytest.param(
        sel("requestReceivedTimestamp|minute", "30"),
        at("2026-01-05T10:30:00.123456789Z"),
        at("2026-01-05T10:31:00Z"),
        id="minute",
    ),
    pytest.param(
        sel("requestReceivedTimestamp|day", "5"),
        at("2026-01-05T23:00:00Z"),
        at("2026-01-05T23:00:00-02:00"),
        id="day",
    ),
    pytest.param(
        sel("requestReceivedTimestamp|week", "2"),
        at("2026-01-05T10:00:00Z"),
        at("2026-01-04T10:00:00Z"),
        id="week",
    ),
    pytest.param(
        sel("requestReceivedTimestamp|month", "1"),
        at("2026-01-31T10:00:00Z"),
        at("2026-02-01T10:00:00Z"),
        id="month",
    ),
    pytest.param(
        sel("requestReceivedTimestamp|year", "2026"),
        at("2026-12-31T23:59:59Z"),
        at("not a timestamp"),
        id="year",
    ),
    # --- keywords (no field): searched inside every string of the event ----------------------
    pytest.param(
        "kw:\n  - mimikatz\ncondition: kw",
        ua("run MimiKatz now"),
        ua("mimi katz"),
        id="keyword",
    ),
    pytest.param(
        "kw:\n  '|all': [cat, shadow]\ncondition: kw",
        {"requestURI": "/x?command=cat", "userAgent": "shadow"},
        {"requestURI": "/x?command=cat"},
        id="keyword-all",
    ),
    pytest.param(
        "kw:\n  - 'evil?ool'\ncondition: kw",
        {"requestObject": {"metadata": {"labels": {"a": "an eviltool here"}}}},
        {"requestObject": {"metadata": {"labels": {"a": "an eviltoool here"}}}},
        id="keyword-glob",
    ),
    pytest.param(
        "kw:\n  '|cased': [EvilTool]\ncondition: kw",
        ua("x EvilTool"),
        ua("x eviltool"),
        id="keyword-cased",
    ),
    pytest.param(
        "kw:\n  '|re': 'ev[0-9]l'\ncondition: kw",
        ua("an ev1l one"),
        ua("an evil one"),
        id="keyword-re",
    ),
]


@pytest.mark.parametrize(("detection", "hit", "miss"), CASES)
def test_modifier_matches_the_event_and_not_the_near_miss(
    matches: Matches,
    event: Builder,
    detection: str,
    hit: dict[str, Any],
    miss: dict[str, Any],
) -> None:
    assert matches(detection, event(**hit)), "should match"
    assert not matches(detection, event(**miss)), "should not match"


def test_a_missing_field_is_not_equal_under_neq(matches: Matches, event: Builder) -> None:
    """pySigma parses ``neq`` as a negated item, so an event without the field matches it."""
    raw = event()
    del raw["verb"]
    assert matches(sel("verb|neq", "get"), raw)
    assert not matches(sel("verb|neq", "get"), event("get"))


def test_a_missing_field_never_satisfies_a_comparison(matches: Matches, event: Builder) -> None:
    raw = event()
    del raw["responseStatus"]
    for op in ("lt", "lte", "gt", "gte"):
        assert not matches(sel(f"responseStatus.code|{op}", "200"), raw)
        assert matches(sel(f"responseStatus.code|{op}", "200"), event(code=200)) is (
            op in ("lte", "gte")
        )


# --- placeholders ------------------------------------------------------------------------------


EXPAND = """
    title: admins
    id: 00000000-0000-4000-8000-000000000001
    logsource: {product: kubernetes, service: audit}
    detection:
        sel:
            user.username|expand: '%admins%'
        condition: sel
"""


def test_expand_resolves_a_placeholder_to_its_values(load: Any, run: Any, event: Builder) -> None:
    ruleset = load(EXPAND, placeholders={"admins": ["root", "ops-*"]})
    assert len(run(ruleset, [event(user="root")])) == 1
    assert len(run(ruleset, [event(user="OPS-jane", t=1)])) == 1
    assert run(ruleset, [event(user="alice")]) == []


def test_an_unresolved_placeholder_is_a_located_load_error(load: Any) -> None:
    ruleset = load(EXPAND, errors_ok=True)
    assert len(ruleset) == 0
    (error,) = ruleset.errors
    assert "placeholder %admins% is not resolved" in str(error)
    assert error.location is not None
    assert error.location.source.endswith("rules.yml")
    assert error.location.line == 7  # the `user.username|expand` line


def test_a_placeholder_without_expand_is_a_literal_value(matches: Matches, event: Builder) -> None:
    detection = sel("user.username", "'%admins%'")
    assert matches(detection, event(user="%admins%"))
    assert not matches(detection, event(user="admins"))
