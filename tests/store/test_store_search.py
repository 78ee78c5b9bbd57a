"""SqliteStore: search (filters, text, time range, order, pagination) and aggregation, checked
against a reference evaluation of every event."""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest
from tests.store.helpers import T0, audit, batch, incoming, keys, matches, newest_first, open_store

from k3watch.store.base import (
    SEARCH_FIELDS,
    AggregateQuery,
    EventQuery,
    IncomingEvent,
    StoredEvent,
    field_values,
)
from k3watch.store.sqlite import SqliteStore

ORIGINS = [
    {"cluster": "prod", "node": "server-1", "source": "audit"},
    {"cluster": "prod", "node": "server-2", "source": "audit"},
    {"cluster": "staging", "node": "server-1", "source": "journald"},
]
Written = list[tuple[IncomingEvent, dict[str, str]]]


def _raw(i: int, t: float, rng: random.Random) -> dict[str, Any]:
    rare = i % 97 == 0
    resource = rng.choice(["pods", "pods", "secrets", "configmaps", None])
    name = f"web-{i % 13}"
    uri = None
    if i % 41 == 0:
        uri = f"/api/v1/namespaces/shop/pods/{name}/exec?command=sh&container=App_Main"
    return audit(
        i,
        t,
        user="system:admin" if rare else rng.choice(["alice", "bob", "Carol@Example.com"]),
        verb="delete" if i % 23 == 0 else rng.choice(["get", "list", "watch"]),
        resource=resource,
        namespace=rng.choice(["default", "kube-system", "shop", None]),
        name=name,
        ip=f"10.0.{i % 3}.{i % 5}",
        code=403 if rare else rng.choice([200, 200, 201, 404]),
        decision="forbid" if rare else "allow",
        stage="ResponseStarted" if i % 11 == 0 else "ResponseComplete",
        uri=uri,
    )


@pytest.fixture(scope="module")
def loaded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[SqliteStore, Written]]:
    """About 700 events over 11 sealed segments and an unsealed tail, from three origins, in
    batches arriving mostly in time order, one late, one with a clock in the future."""
    rng = random.Random(7)
    store = open_store(tmp_path_factory.mktemp("search"))
    written: Written = []
    t = T0
    for number in range(24):
        events = []
        for _ in range(29):
            i = len(written) + len(events)
            t += rng.choice([0.5, 1.0, 1.0, 2.0, 0.0])  # equal times happen
            events.append(incoming(_raw(i, t, rng), t))
        if number == 15:  # a late batch: an agent catching up on an hour ago
            events = [incoming(e.raw, e.time - 3600) for e in events]
        if number == 20:  # one event from a clock far in the future
            events[3] = incoming(events[3].raw, events[3].time + 10 * 86400)
        origin = ORIGINS[number % 3]
        store.write(batch(f"b{number}", events, **origin))
        written += [(e, origin) for e in events]
    yield store, written
    store.close()


def everything(store: SqliteStore, query: EventQuery) -> list[StoredEvent]:
    """Every page of a search, following the cursor."""
    out: list[StoredEvent] = []
    cursor = None
    for _ in range(1000):
        page = store.search(
            EventQuery(query.start, query.end, query.filters, query.text, query.limit, cursor)
        )
        out += page.events
        cursor = page.cursor
        if cursor is None:
            return out
    raise AssertionError("pagination did not end")


def expected(
    written: Written,
    filters: Mapping[str, Sequence[str]] | None = None,
    text: str | None = None,
    start: float | None = None,
    end: float | None = None,
) -> list[str]:
    chosen = [e for e, origin in written if matches(e, origin, filters or {}, text, start, end)]
    return newest_first(chosen)


def test_the_fixture_has_sealed_segments_and_a_tail(loaded: tuple[SqliteStore, Written]) -> None:
    store, written = loaded
    sealed = store._db().execute("SELECT value FROM meta WHERE key = 'sealed'").fetchone()[0]
    assert sealed == len(written) // 64 >= 10


def test_all_events_newest_first(loaded: tuple[SqliteStore, Written]) -> None:
    """No filter: every event, by time then arrival, newest first, across pages."""
    store, written = loaded
    assert keys(everything(store, EventQuery(limit=37))) == expected(written)


@pytest.mark.parametrize("field", SEARCH_FIELDS)
def test_each_field_filter_returns_exactly_the_matching_events(
    loaded: tuple[SqliteStore, Written], field: str
) -> None:
    """For every search field and two of its values: the events having one of them."""
    store, written = loaded
    counts = Counter(
        str(v)
        for e, origin in written
        if (v := {**field_values(e.raw), **origin}.get(field)) is not None
    )
    common, rare = counts.most_common()[0][0], counts.most_common()[-1][0]
    for values in ([common], [rare], [common, rare]):
        query = EventQuery(filters={field: values}, limit=50)
        assert keys(everything(store, query)) == expected(written, {field: values}), values


def test_filters_on_several_fields_all_apply(loaded: tuple[SqliteStore, Written]) -> None:
    """Fields combine with AND, values of one field with OR."""
    store, written = loaded
    for filters in (
        {"user": ["alice", "bob"], "verb": ["get"], "namespace": ["shop"]},
        {"resource": ["pods"], "verb": ["delete"], "cluster": ["prod"]},
        {"code": ["403"], "decision": ["forbid"], "stage": ["ResponseComplete"]},
        {"node": ["server-1"], "source": ["audit"], "name": ["web-3"], "source_ip": ["10.0.0.3"]},
        {"user": ["system:admin"], "verb": ["watch"], "resource": ["secrets"]},
    ):
        assert keys(everything(store, EventQuery(filters=filters))) == expected(written, filters)


@pytest.mark.parametrize(
    "filters",
    [
        {"user": ["nobody"]},
        {"user": ["alice"], "namespace": ["no-such-namespace"]},
        {"code": ["999"]},
        {"code": ["abc"]},
        {"cluster": ["elsewhere"]},
        {"verb": ["get"], "source": ["nowhere"]},
    ],
)
def test_a_value_never_seen_matches_nothing(
    loaded: tuple[SqliteStore, Written], filters: dict[str, list[str]]
) -> None:
    store, _ = loaded
    page = store.search(EventQuery(filters=filters))
    assert page.events == [] and page.cursor is None


def test_a_combination_of_seen_values_matching_nothing_is_empty(
    loaded: tuple[SqliteStore, Written],
) -> None:
    """Every value exists, no event has them all: an empty page, not an error or a scan gone
    wrong."""
    store, written = loaded
    filters = {"user": ["system:admin"], "verb": ["list"], "stage": ["ResponseStarted"]}
    assert expected(written, filters) == []
    assert store.search(EventQuery(filters=filters)).events == []


def test_an_empty_value_list_is_no_filter(loaded: tuple[SqliteStore, Written]) -> None:
    store, written = loaded
    page = store.search(EventQuery(filters={"user": []}, limit=5))
    assert keys(page.events) == expected(written)[:5]


def test_an_unknown_field_is_an_error(loaded: tuple[SqliteStore, Written]) -> None:
    store, _ = loaded
    with pytest.raises(ValueError, match="unknown search field"):
        store.search(EventQuery(filters={"colour": ["red"]}))


@pytest.mark.parametrize(
    "text",
    [
        "exec",  # a word of the request URI
        "EXEC",  # case does not matter
        "exe",  # the last word may be a prefix
        "shop exec",  # all words must occur
        "app_main",  # punctuation inside a word: its parts, in order
        "web-3",
        "pods web-1",
        "v1 nam",  # prefix of the last word only
    ],
)
def test_text_search(loaded: tuple[SqliteStore, Written], text: str) -> None:
    store, written = loaded
    assert keys(everything(store, EventQuery(text=text))) == expected(written, text=text)


def test_text_search_needs_whole_words_before_the_last(loaded: tuple[SqliteStore, Written]) -> None:
    """Only the last word is a prefix: 'exe shop' does not match 'exec'."""
    store, written = loaded
    assert store.search(EventQuery(text="exe shop")).events == []
    assert expected(written, text="exe shop") == []


@pytest.mark.parametrize("text", ["", "   ", "--", "*", '"', "()"])
def test_a_text_without_words_is_no_text_filter(
    loaded: tuple[SqliteStore, Written], text: str
) -> None:
    store, written = loaded
    assert keys(store.search(EventQuery(text=text, limit=10)).events) == expected(written)[:10]


@pytest.mark.parametrize(
    "text",
    [
        '" OR 1=1 --',
        "foo*",
        "NEAR(exec shop)",
        "exec OR shop",
        "exec NOT shop",
        "value:exec",
        "'; DROP TABLE events; --",
        '"exec" "shop',
        "^exec",
        "{exec}",
    ],
)
def test_text_with_query_syntax_is_taken_literally(
    loaded: tuple[SqliteStore, Written], text: str
) -> None:
    """FTS5 operators and SQL in the text are words to look for, nothing else."""
    store, written = loaded
    assert keys(everything(store, EventQuery(text=text))) == expected(written, text=text)
    assert store.stats().events == len(written)


def test_text_and_filters_combine(loaded: tuple[SqliteStore, Written]) -> None:
    store, written = loaded
    filters = {"verb": ["get", "list"], "cluster": ["prod"]}
    result = everything(store, EventQuery(text="exec", filters=filters))
    assert keys(result) == expected(written, filters, text="exec")


def test_time_range_start_inclusive_end_exclusive(loaded: tuple[SqliteStore, Written]) -> None:
    """An event at ``start`` is in, one at ``end`` is out."""
    store, written = loaded
    times = sorted({e.time for e, _ in written})
    start, end = times[100], times[300]
    result = keys(everything(store, EventQuery(start=start, end=end)))
    assert result == expected(written, start=start, end=end)
    at_start = {e.key for e, _ in written if e.time == start}
    at_end = {e.key for e, _ in written if e.time == end}
    assert at_start <= set(result) and not at_end & set(result)


def test_time_ranges_with_filters_and_text(loaded: tuple[SqliteStore, Written]) -> None:
    store, written = loaded
    times = sorted(e.time for e, _ in written)
    for start, end in ((times[0], times[50]), (times[200], None), (None, times[400])):
        for filters, text in (({"user": ["bob"]}, None), ({}, "exec"), ({"code": ["403"]}, None)):
            query = EventQuery(start=start, end=end, filters=filters, text=text, limit=20)
            assert keys(everything(store, query)) == expected(written, filters, text, start, end)


def test_late_and_future_events_take_their_place_in_time(
    loaded: tuple[SqliteStore, Written],
) -> None:
    """The event from the future comes first; the late batch sits an hour back."""
    store, written = loaded
    future = max(written, key=lambda item: item[0].time)[0]
    assert keys(store.search(EventQuery(limit=1)).events) == [future.key]
    late = [e for e, _ in written[15 * 29 : 16 * 29]]
    window = EventQuery(start=late[0].time - 1, end=late[-1].time + 1)
    assert {e.key for e in late} <= set(keys(everything(store, window)))


def test_an_invalid_cursor_is_an_error(loaded: tuple[SqliteStore, Written]) -> None:
    store, _ = loaded
    for cursor in ("garbage", "e30", ""):
        if cursor:
            with pytest.raises(ValueError, match="invalid cursor"):
                store.search(EventQuery(cursor=cursor))


def test_pages_have_no_duplicates_or_gaps_while_events_are_written(tmp_path: Path) -> None:
    """Every event present when paging starts is returned exactly once, although new events
    (newer, and older) are written between the pages."""
    rng = random.Random(3)
    with open_store(tmp_path) as store:
        first = [incoming(_raw(i, T0 + i, rng), T0 + i) for i in range(300)]
        for n in range(0, 300, 25):
            store.write(batch(f"a{n}", first[n : n + 25]))
        seen: list[str] = []
        cursor = None
        number = 1000
        while True:
            page = store.search(
                EventQuery(filters={"verb": ["get", "list", "watch"]}, limit=17, cursor=cursor)
            )
            seen += keys(page.events)
            more = [
                incoming(_raw(number + k, T0 + rng.uniform(-50, 400), rng), 0.0) for k in range(20)
            ]
            more = [incoming(e.raw, T0 + rng.uniform(-50, 400)) for e in more]
            store.write(batch(f"late{number}", more))
            number += 20
            cursor = page.cursor
            if cursor is None:
                break
        assert len(seen) == len(set(seen))
        before = {e.key for e in first if e.raw["verb"] != "delete"}
        assert before <= set(seen)


# --- aggregation ---


def _reference_counts(
    written: Written,
    by: str | None,
    bucket: float | None,
    filters: Mapping[str, Sequence[str]] | None = None,
    start: float | None = None,
    end: float | None = None,
) -> Counter[tuple[float | None, str | None]]:
    out: Counter[tuple[float | None, str | None]] = Counter()
    for event, origin in written:
        if not matches(event, origin, filters or {}, None, start, end):
            continue
        value = None
        if by is not None:
            raw = {**field_values(event.raw), **origin}.get(by)
            if raw is None:
                continue
            value = str(raw)
        key = None if bucket is None else (event.time // bucket) * bucket
        out[key, value] += 1
    return out


@pytest.mark.parametrize(
    "by", [None, "user", "verb", "node", "code", "name", "cluster", "decision"]
)
@pytest.mark.parametrize("bucket", [None, 60.0, 3600.0])
def test_aggregate_counts(
    loaded: tuple[SqliteStore, Written], by: str | None, bucket: float | None
) -> None:
    """Counts per bucket and value equal the reference, with and without a time range."""
    store, written = loaded
    times = sorted(e.time for e, _ in written)
    for start, end in ((None, None), (times[40] + 0.25, times[600] - 0.25)):
        buckets = store.aggregate(AggregateQuery(start, end, bucket, by, limit=1000))
        got = Counter({(b.start, b.value): b.count for b in buckets})
        assert got == _reference_counts(written, by, bucket, None, start, end)


def test_aggregate_with_filters(loaded: tuple[SqliteStore, Written]) -> None:
    """Filters the rollup can answer (verb, decision, origin) and those it cannot (user)."""
    store, written = loaded
    times = sorted(e.time for e, _ in written)
    for filters in (
        {"verb": ["get"]},
        {"cluster": ["prod"], "code": ["200", "201"]},
        {"user": ["bob"]},
        {"user": ["alice"], "verb": ["list"]},
    ):
        for bucket, by in ((3600.0, None), (None, "verb"), (7200.0, "user")):
            for start, end in ((None, None), (times[10], times[500])):
                query = AggregateQuery(start, end, bucket, by, filters, limit=1000)
                got = Counter({(b.start, b.value): b.count for b in store.aggregate(query)})
                assert got == _reference_counts(written, by, bucket, filters, start, end), (
                    filters,
                    bucket,
                    by,
                )


def test_aggregate_keeps_the_largest_values(loaded: tuple[SqliteStore, Written]) -> None:
    store, written = loaded
    buckets = store.aggregate(AggregateQuery(by="name", limit=3))
    totals = Counter(field_values(e.raw)["name"] for e, _ in written)
    assert [(b.value, b.count) for b in buckets] == [
        (name, count) for name, count in sorted(totals.items(), key=lambda kv: (-kv[1], kv[0]))[:3]
    ]


def test_aggregate_of_an_unknown_value_is_empty(loaded: tuple[SqliteStore, Written]) -> None:
    store, _ = loaded
    assert store.aggregate(AggregateQuery(filters={"user": ["nobody"]}, bucket=60)) == []


def test_aggregate_rejects_bad_arguments(loaded: tuple[SqliteStore, Written]) -> None:
    store, _ = loaded
    with pytest.raises(ValueError):
        store.aggregate(AggregateQuery(by="colour"))
    with pytest.raises(ValueError):
        store.aggregate(AggregateQuery(bucket=0))


@pytest.mark.parametrize(("seek", "indexed", "row"), [(4, 10, 3), (0, 0, 0)])
def test_many_matching_values_take_the_other_paths(
    loaded: tuple[SqliteStore, Written],
    monkeypatch: pytest.MonkeyPatch,
    seek: int,
    indexed: int,
    row: int,
) -> None:
    """With low limits, long value lists are read from whole segments, checked on rows, or put
    in temporary tables: the results do not change."""
    from k3watch.store import catalog, query

    monkeypatch.setattr(catalog, "SEEK_VALUES", seek)
    monkeypatch.setattr(query, "SEEK_VALUES", seek)
    monkeypatch.setattr(catalog, "POSTINGS_VALUES", indexed)
    monkeypatch.setattr(catalog, "ROW_VALUES", row)
    store, written = loaded
    for text in ("api", "v1 web", "exec", "namespaces shop"):
        query_ = EventQuery(text=text, limit=40)
        assert keys(everything(store, query_)) == expected(written, text=text), text
    filters = {
        "user": ["alice", "bob", "system:admin"],
        "name": ["web-1", "web-2", "web-5", "web-9"],
    }
    assert keys(everything(store, EventQuery(filters=filters))) == expected(written, filters)
    buckets = store.aggregate(AggregateQuery(by="verb", filters=filters, limit=100))
    got = Counter({(b.start, b.value): b.count for b in buckets})
    assert got == _reference_counts(written, "verb", None, filters)
