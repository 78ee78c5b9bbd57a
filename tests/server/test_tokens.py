"""API tokens: roles, the store's life cycle, the authentication cache and what is on disk."""

from __future__ import annotations

import os
import re
import stat
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from k3watch.errors import UsageError
from k3watch.server.tokens import LAST_USED_INTERVAL, Role, TokenInfo, TokenStore

A, V, N, D = Role.AGENT, Role.VIEWER, Role.ANALYST, Role.ADMIN

# (role held, role needed) pairs that are allowed; every other pair is refused.
ALLOWED = {
    (A, A),
    (V, V),
    (N, V),
    (N, N),
    (D, A),
    (D, V),
    (D, N),
    (D, D),
}


class Clock:
    def __init__(self, now: float = 1_700_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "data" / "tokens.sqlite"


@pytest.fixture
def store(path: Path, clock: Clock) -> Iterator[TokenStore]:
    with TokenStore(path, clock=clock) as opened:
        yield opened


# --- roles ---


@pytest.mark.parametrize("held", list(Role))
@pytest.mark.parametrize("needed", list(Role))
def test_roles_matrix(held: Role, needed: Role) -> None:
    assert held.allows(needed) is ((held, needed) in ALLOWED)


def test_an_agent_token_reads_nothing() -> None:
    assert [r for r in Role if A.allows(r)] == [A]


def test_roles_parse_by_name() -> None:
    assert Role.parse("Analyst") is N
    with pytest.raises(UsageError, match="unknown role 'root'") as raised:
        Role.parse("root")
    assert "agent, viewer, analyst, admin" in str(raised.value)


# --- life cycle ---


def test_create_returns_the_secret_once(store: TokenStore, clock: Clock) -> None:
    info, secret = store.create("node1", A)
    assert re.fullmatch(r"k3w_[A-Za-z0-9_-]{43}", secret)
    assert re.fullmatch(r"[0-9a-f]{8}", info.id)
    assert info == TokenInfo(info.id, "node1", A, clock.now, None, None, False)
    assert store.list() == [info]
    other_info, other = store.create("node2", A)
    assert other != secret and other_info.id != info.id


def test_authenticate_finds_the_token(store: TokenStore) -> None:
    info, secret = store.create("alice", N)
    found = store.authenticate(secret)
    assert found is not None
    assert (found.id, found.name, found.role) == (info.id, "alice", N)


@pytest.mark.parametrize(
    "secret",
    ["", "k3w_", "Bearer x", "k3w_" + "A" * 43, "x3w_" + "A" * 43, "k3w_" + "A" * 10_000],
)
def test_unknown_secrets_are_refused(store: TokenStore, secret: str) -> None:
    store.create("alice", D)
    assert store.authenticate(secret) is None


def test_a_secret_altered_by_one_character_is_refused(store: TokenStore) -> None:
    _, secret = store.create("alice", D)
    altered = secret[:-1] + ("A" if secret[-1] != "A" else "B")
    assert store.authenticate(altered) is None


def test_revoke_by_id_or_name(store: TokenStore) -> None:
    first, first_secret = store.create("node1", A)
    second, second_secret = store.create("node2", A)
    assert store.revoke(first.id).revoked
    revoked = store.revoke("node2")
    assert (revoked.id, revoked.revoked) == (second.id, True)
    assert store.authenticate(first_secret) is None
    assert store.authenticate(second_secret) is None
    assert [t.revoked for t in store.list()] == [True, True]


def test_revoking_an_unknown_or_revoked_token_is_an_error(store: TokenStore) -> None:
    with pytest.raises(UsageError, match="no token with the id or name 'ghost'"):
        store.revoke("ghost")
    info, _ = store.create("node1", A)
    store.revoke(info.id)
    with pytest.raises(UsageError, match="already revoked"):
        store.revoke(info.id)
    with pytest.raises(UsageError, match="no token"):
        store.revoke("node1")  # names resolve among active tokens only


def test_an_id_that_is_another_tokens_name_is_ambiguous(store: TokenStore) -> None:
    first, _ = store.create("node1", A)
    second, _ = store.create(first.id, A)
    with pytest.raises(UsageError, match="the id of one token and the name of another"):
        store.revoke(first.id)
    assert store.revoke(second.id).name == first.id


def test_names_are_unique_among_active_tokens(store: TokenStore) -> None:
    first, _ = store.create("node1", A)
    with pytest.raises(UsageError, match="already named 'node1'") as raised:
        store.create("node1", V)
    assert "k3watch token revoke node1" in str(raised.value)
    store.revoke(first.id)
    again, secret = store.create("node1", V)
    found = store.authenticate(secret)
    assert found is not None and found.id == again.id
    assert [t.name for t in store.list()] == ["node1", "node1"]


@pytest.mark.parametrize("name", ["", " x", "-x", "a/b", "x" * 65, "naïve"])
def test_bad_names_are_refused(store: TokenStore, name: str) -> None:
    with pytest.raises(UsageError, match="is not allowed"):
        store.create(name, V)


def test_expired_tokens_are_refused(store: TokenStore, clock: Clock) -> None:
    info, secret = store.create("temp", V, expires=clock.now + 60)
    assert info.expires == clock.now + 60
    assert store.authenticate(secret) is not None  # now cached
    clock.now += 59
    assert store.authenticate(secret) is not None
    clock.now += 1
    assert store.authenticate(secret) is None
    assert store.list()[0].state(clock.now) == "expired"


def test_an_expiry_in_the_past_is_refused(store: TokenStore, clock: Clock) -> None:
    with pytest.raises(UsageError, match="in the past"):
        store.create("temp", V, expires=clock.now)


def test_tokens_persist_across_stores(path: Path, clock: Clock) -> None:
    with TokenStore(path, clock=clock) as first:
        info, secret = first.create("node1", A)
    with TokenStore(path, clock=clock) as second:
        assert second.list() == [info]
        found = second.authenticate(secret)
        assert found is not None and found.id == info.id


# --- the cache ---


def count_lookups(store: TokenStore) -> list[str]:
    """Record every database lookup ``store`` makes for a secret's hash."""
    calls: list[str] = []
    lookup = store._lookup

    def counting(digest: str) -> TokenInfo | None:
        calls.append(digest)
        return lookup(digest)

    store._lookup = counting  # type: ignore[method-assign]
    return calls


def test_the_cache_spares_the_database(store: TokenStore, clock: Clock) -> None:
    _, secret = store.create("node1", A)
    calls = count_lookups(store)
    for _ in range(100):
        assert store.authenticate(secret) is not None
        clock.now += 0.01
    assert len(calls) == 1
    clock.now += store.cache_ttl
    assert store.authenticate(secret) is not None
    assert len(calls) == 2


def test_a_revocation_by_another_process_applies_at_once_with_ttl_0(
    path: Path, clock: Clock
) -> None:
    with (
        TokenStore(path, clock=clock, cache_ttl=0) as server,
        TokenStore(path, clock=clock) as cli,
    ):
        info, secret = cli.create("node1", A)
        assert server.authenticate(secret) is not None
        assert server.authenticate(secret) is not None
        cli.revoke(info.id)
        assert server.authenticate(secret) is None


def test_a_revocation_by_another_process_applies_within_the_ttl(path: Path, clock: Clock) -> None:
    with (
        TokenStore(path, clock=clock, cache_ttl=5) as server,
        TokenStore(path, clock=clock) as cli,
    ):
        _, secret = cli.create("node1", A)
        assert server.authenticate(secret) is not None
        cli.revoke("node1")
        clock.now += 4.9
        assert server.authenticate(secret) is not None  # still cached
        clock.now += 0.1
        assert server.authenticate(secret) is None
        clock.now -= 5  # and it stays refused: the cache entry is gone
        assert server.authenticate(secret) is None


def test_a_revocation_through_the_same_store_applies_at_once(path: Path, clock: Clock) -> None:
    with TokenStore(path, clock=clock, cache_ttl=3600) as store:
        info, secret = store.create("node1", A)
        assert store.authenticate(secret) is not None
        store.revoke(info.id)
        assert store.authenticate(secret) is None


def test_last_used_is_written_at_most_once_a_minute(
    store: TokenStore, path: Path, clock: Clock
) -> None:
    _, secret = store.create("node1", A)
    start = clock.now

    def stored_last_used() -> float | None:
        with TokenStore(path, clock=clock) as reader:
            (token,) = reader.list()
        return token.last_used

    found = store.authenticate(secret)
    assert found is not None and found.last_used == start
    assert stored_last_used() == start
    clock.now += LAST_USED_INTERVAL - 1
    assert store.authenticate(secret) is not None
    assert stored_last_used() == start
    clock.now += 1
    found = store.authenticate(secret)
    assert found is not None and found.last_used == clock.now
    assert stored_last_used() == clock.now


def test_concurrent_authentication(path: Path) -> None:
    with TokenStore(path, cache_ttl=0) as store:
        secrets = [store.create(f"node{i}", A)[1] for i in range(4)]
        failures: list[str] = []

        def work(secret: str) -> None:
            for _ in range(200):
                if store.authenticate(secret) is None:
                    failures.append(secret)

        threads = [threading.Thread(target=work, args=(s,)) for s in secrets * 2]
        for thread in threads:
            thread.start()
        store.create("late", V)
        for thread in threads:
            thread.join()
        assert failures == []


# --- on disk ---


def read_files(path: Path) -> bytes:
    """The database with its write-ahead log, as bytes."""
    return b"".join(
        p.read_bytes() for p in (path, path.with_name(path.name + "-wal")) if p.exists()
    )


def test_the_secret_is_never_stored(path: Path) -> None:
    import hashlib

    store = TokenStore(path)
    _, secret = store.create("node1", A)
    assert store.authenticate(secret) is not None
    digest = hashlib.sha256(secret.encode()).hexdigest().encode()
    body = secret.removeprefix("k3w_").encode()
    on_disk = read_files(path)
    assert digest in on_disk  # the right files were read
    assert body not in on_disk
    store.close()
    on_disk = read_files(path)
    assert digest in on_disk
    assert body not in on_disk


def test_the_file_is_created_0600(tmp_path: Path) -> None:
    previous = os.umask(0)
    try:
        path = tmp_path / "tokens.sqlite"
        with TokenStore(path) as store:
            store.create("node1", A)
            for file in (path, path.with_name(path.name + "-wal")):
                if file.exists():
                    assert stat.S_IMODE(file.stat().st_mode) == 0o600, file
    finally:
        os.umask(previous)


def test_an_existing_file_open_to_others_is_closed(tmp_path: Path) -> None:
    path = tmp_path / "tokens.sqlite"
    with TokenStore(path):
        pass
    path.chmod(0o644)
    with TokenStore(path):
        pass
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_a_file_that_is_not_a_token_database_is_a_usage_error(tmp_path: Path) -> None:
    path = tmp_path / "tokens.sqlite"
    path.write_bytes(b"this is not SQLite" * 100)
    path.chmod(0o600)
    with pytest.raises(UsageError, match="not a k3watch token file"):
        TokenStore(path)
