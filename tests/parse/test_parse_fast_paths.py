"""The fast paths of the logrus, Go string and time readers read exactly as the general ones.

Each reference below is the plain reading the fast path stands in for: a per-pair loop for
logrus, a per-escape decoder for Go strings, ``datetime`` for times.
"""

from __future__ import annotations

import random
import re
from datetime import datetime, timedelta

import pytest

from k3watch.parse import gostring
from k3watch.parse.components import container_from_message
from k3watch.parse.logrus import LogrusLine, parse_logrus
from k3watch.parse.logs import LEVELS
from k3watch.parse.timestamps import format_us, parse_rfc3339, wall_us

_PAIR = re.compile(r'([^\s="]+)=("(?:[^"\\]|\\.)*(?:"|\\?$)|[^\s"]*)')


def _value(raw: str) -> str:
    if raw[:1] == '"':
        inner = raw[1:]
        if inner.endswith('"') and (len(inner) - 1 - len(inner[:-1].rstrip("\\"))) % 2 == 0:
            inner = inner[:-1]
        return gostring.unquote(inner)
    return raw


def reference_logrus(text: str) -> LogrusLine:
    """The key/value form read one pair at a time, the first time/level/msg taken out."""
    pairs: list[tuple[str, str]] = []
    position = 0
    while True:
        while position < len(text) and text[position] == " ":
            position += 1
        match = _PAIR.match(text, position)
        if position >= len(text) or match is None:
            break
        if match.end() < len(text) and text[match.end()] != " ":
            break
        pairs.append((match[1], _value(match[2])))
        position = match.end()
    level: str | None = None
    message: str | None = None
    when: str | None = None
    fields: dict[str, str] = {}
    for key, value in pairs:
        if key == "time" and when is None:
            when = value
        elif key == "level" and level is None:
            level = LEVELS.get(value, value.lower() or None)
        elif key == "msg" and message is None:
            message = value
        else:
            fields[key] = value
    rest = text[position:].strip()
    if rest:
        message = f"{message} {rest}" if message else rest
    return LogrusLine(level, message or "", when, fields, "text")


ODD_LINES = [
    'time="2024-05-23T20:29:53Z" level=info msg="plain"',
    'time="2024-05-23T20:29:53Z" level=info msg="a \\"quoted\\" word" key="v w" bare=x empty=',
    'time="2024-05-23T20:29:53Z" level=info msg="left open',
    'time="2024-05-23T20:29:53Z" level=info msg="ends in a backslash\\',
    'time="2024-05-23T20:29:53Z" level=info msg="escaped end\\"',
    'time="2024-05-23T20:29:53Z" level=info msg="glued"text key=value',
    'time="2024-05-23T20:29:53Z" level=info msg="ok" key="glued"x other=y',
    'time="2024-05-23T20:29:53Z" level=info msg="ok" a=b"c d=e',
    'time="2024-05-23T20:29:53Z" level=info msg="first" msg="second" time=x level=debug',
    'time="2024-05-23T20:29:53Z" level= msg="empty level" level=warning',
    'time="2024-05-23T20:29:53Z" level="info" msg="quoted level"',
    'time="2024-05-23T20:29:53Z" level=a=b msg="level with an equals sign"',
    'time="2024-05-23T20:29:53Z"  level=info msg="two spaces"',
    'time="2024-05-23T20:29:53Z" level=info msg="trailing spaces"   ',
    'time="2024-05-23T20:29:53Z" level=info msg="tab after"\tkey=value',
    'time="2024-05-23T20:29:53Z" level=info msg="newline at the end"\n',
    'time="2024-05-23T20:29:53Z" level=info msg="a backslash then a newline\\\n',
    'time="2024-05-23T20:29:53Z" level=info msg="" key=""',
    'time="2024-05-23\\"T20" level=info msg="escape in the time"',
    'time="2024-05-23T20:29:53Z" msg="no level" level=info',
    'time="2024-05-23T20:29:53Z" level=info msg="stray words" after the pairs',
    'time="2024-05-23T20:29:53Z" level=INFO msg="upper-case level"',
    'time="2024-05-23T20:29:53Z" level=info msg="key=value inside"',
    'time="2024-05-23T20:29:53Z" level=info msg="\\u00e9 \\xff \\101 \\q \\\\"',
    'time="2024-05-23T20:29:53Z" level=info msg="é \\"unicode\\" ü"',
    'time="" level= msg=""',
    "time=bare level=info msg=bare",
    'level=info msg="no time"',
    'time="2024-05-23T20:29:53Z"',
    'time="2024-05-23T20:29:53Z" level=info',
    "time=",
]


@pytest.mark.parametrize("text", ODD_LINES)
def test_odd_logrus_lines_read_as_pair_by_pair(text: str) -> None:
    line = parse_logrus(text)
    assert line == reference_logrus(text)
    assert line is not None and list(line.fields) == list(reference_logrus(text).fields)


def test_mutated_logrus_lines_read_as_pair_by_pair() -> None:
    atoms = ['"', "\\", " ", "=", "x", '\\"', "\\\\", "é", "\t", "\n", "msg=", "level=", '"a b"']
    rnd = random.Random(7)
    for _ in range(3000):
        text = rnd.choice(ODD_LINES)
        for _ in range(rnd.randint(1, 3)):
            at = rnd.randint(0, len(text))
            cut = rnd.random() < 0.3  # a line cut short, else a piece inserted
            text = text[:at] if cut else text[:at] + rnd.choice(atoms) + text[at:]
        if not text.startswith(("time=", "level=")):
            continue
        assert parse_logrus(text) == reference_logrus(text), text


def test_terminal_form_is_not_read_as_key_value() -> None:
    line = parse_logrus("INFO[0000] Starting k3s v1.29.4+k3s1          key=value")
    assert line is not None and line.form == "terminal"
    assert (line.message, line.fields) == ("Starting k3s v1.29.4+k3s1", {"key": "value"})


@pytest.mark.parametrize(
    ("inner", "text"),
    [
        (r"a \"quoted\" word", 'a "quoted" word'),
        (r"\"\"", '""'),
        (r"\\\"", '\\"'),
        (r"\"\\", '"\\'),
        ('é \\"non-ASCII\\"', 'é "non-ASCII"'),
        (r"ends in \\", "ends in \\"),
        ("\\", "\\"),
        (r"x\"", 'x"'),
    ],
)
def test_go_strings_with_simple_escapes(inner: str, text: str) -> None:
    assert gostring.unquote(inner) == text


def test_a_hex_escape_without_its_digits_is_kept_as_written() -> None:
    assert gostring.unquote(r"\x \xz \x4") == r"\x \xz \x4"


def test_a_lone_surrogate_still_takes_the_general_reading() -> None:
    text = gostring.unquote('\ud800 \\"')
    assert "\ud800" not in text and text.endswith(' "')


def reference_rfc3339(text: str) -> tuple[int, int | None] | None:
    match = re.fullmatch(
        r"(\d{4})-(\d\d)-(\d\d)[T ](\d\d):(\d\d):(\d\d)(?:[.,](\d{1,9}))?"
        r"(?:(Z|z)|([+-])(\d\d):?(\d\d))?",
        text.strip(),
    )
    if match is None:
        return None
    micro = int((match[7] + "000000")[:6]) if match[7] else 0
    wall = wall_us(*(int(match[i]) for i in range(1, 7)), micro)
    if wall is None:
        return None
    if match[8]:
        return wall, 0
    if match[9]:
        hours, minutes = int(match[10]), int(match[11])
        if hours > 23 or minutes > 59:
            return None
        offset = (hours * 3600 + minutes * 60) * 1_000_000
        return wall, offset if match[9] == "+" else -offset
    return wall, None


@pytest.mark.parametrize(
    "text",
    [
        "2024-05-23T20:29:53Z",
        "2024-05-23T20:29:53.5Z",
        "2024-05-23T20:29:53.123456789+02:00",
        "2024-05-23 20:29:53,1-0130",
        "2024-05-23T20:29:53",
        "2016-12-31T23:59:60.5Z",
        "2016-12-31T23:59:61Z",
        "2024-02-30T20:29:53Z",
        "2024-05-23T24:00:00Z",
        "2024-05-23T20:29:53+24:00",
        "2024-05-23T20:29:53+23:60",
        " 2024-05-23T20:29:53z ",
        "2024-05-23T20:29:53.Z",
        "0000-01-01T00:00:00Z",
    ],
)
def test_times_read_the_same_the_second_time(text: str) -> None:
    """The second reading comes from the remembered second and zone."""
    expected = reference_rfc3339(text)
    assert parse_rfc3339(text) == expected
    assert parse_rfc3339(text) == expected


def test_times_of_a_remembered_second_keep_their_own_fraction() -> None:
    rnd = random.Random(3)
    for _ in range(2000):
        text = (
            f"2024-05-23T20:29:{rnd.choice(['53', '59', '60'])}"
            f"{rnd.choice(['', '.1', '.123456', '.999999999', ',5'])}"
            f"{rnd.choice(['', 'Z', '+02:00', '-0130', '+14:00'])}"
        )
        assert parse_rfc3339(text) == reference_rfc3339(text), text


def test_utc_times_read_by_position_read_as_the_expression_does() -> None:
    """A UTC time with a fraction in a remembered second is read by position: every text
    near that shape (fraction lengths, non-ASCII digits, other zones, text around it) reads
    as the reference does."""
    second = "2024-05-23T20:29:53"
    parse_rfc3339(second + "Z")  # remembered from now on
    rnd = random.Random(11)
    digits = "0123456789"
    for _ in range(3000):
        fraction = "".join(rnd.choice(digits) for _ in range(rnd.randint(0, 11)))
        if rnd.random() < 0.1:
            fraction += rnd.choice(["\u0663", "\u00b2", "a", " ", "."])
        text = (
            f"{rnd.choice(['', ' '])}{rnd.choice([second, '2024-05-23 20:29:53'])}"
            f"{rnd.choice(['.', '.', ','])}{fraction}{rnd.choice(['Z', 'Z', 'z', '+00:00'])}"
            f"{rnd.choice(['', '', ' ', 'Z'])}"
        )
        assert parse_rfc3339(text) == reference_rfc3339(text), text


def test_format_us_matches_strftime() -> None:
    rnd = random.Random(5)
    values = [0, -1, 1, 999_999, 1_000_000, 253402300799999999, -62135596800000000]
    values += [rnd.randint(-62135596800000000, 253402300799999999) for _ in range(2000)]
    values += [1716496195_000000 + rnd.randint(0, 3_000_000) for _ in range(2000)]
    for us in values:
        expected = (datetime(1970, 1, 1) + timedelta(microseconds=us)).strftime(
            "%Y-%m-%dT%H:%M:%S.%fZ"
        )
        assert format_us(us) == expected


def test_format_us_out_of_range_raises_as_datetime_does() -> None:
    with pytest.raises(OverflowError):
        format_us(253402300800000000)


_RETURNED_ID = re.compile(
    r"(?:returns container id|(?:Start|Stop|Remove)Container for|ExecSync for|Exec for) "
    r'"?([0-9a-f]{64})'
)


def test_container_id_is_the_leftmost_after_its_words() -> None:
    first, second = "a" * 64, "b" * 64
    words = [
        "returns container id",
        "StartContainer for",
        "StopContainer for",
        "RemoveContainer for",
        "ExecSync for",
        "Exec for",
        "CreateContainer for",
    ]
    rnd = random.Random(11)
    for _ in range(2000):
        parts = [rnd.choice([*words, " ", '"', first, second, "x"]) for _ in range(8)]
        message = "ontainer " + "".join(parts)
        found = _RETURNED_ID.search(message)
        assert container_from_message(message).get("id") == (found and found[1]), message
