"""API bearer tokens and the roles they carry.

A token is ``k3w_`` followed by 43 URL-safe characters (32 random bytes). Only its SHA-256
is stored, in a SQLite file (mode 0600, WAL) with the token's id, name, role, creation and
expiry times, when it was last used and whether it was revoked. The secret is shown once,
by ``TokenStore.create``, and cannot be recovered afterwards.

``TokenStore.authenticate`` is on the hot path of every request, ingest included: a token it
accepted is remembered for ``cache_ttl`` seconds (5 by default), so that an agent sending
hundreds of batches a second does not query SQLite for each. A revocation made through the
same store takes effect at once; one made by another process (``k3watch token revoke``
while the server runs) within ``cache_ttl``.
"""

from __future__ import annotations

import builtins
import enum
import hashlib
import hmac
import logging
import re
import secrets
import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from k3watch.durable import open_private_db
from k3watch.errors import UsageError

log = logging.getLogger(__name__)

PREFIX = "k3w_"
SECRET_CHARS = 43  # secrets.token_urlsafe(32): 32 bytes, base64url without padding
DEFAULT_CACHE_TTL = 5.0
LAST_USED_INTERVAL = 60.0  # write last_used at most this often per token

SCHEMA = """
CREATE TABLE IF NOT EXISTS tokens (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    role TEXT NOT NULL,
    hash TEXT NOT NULL UNIQUE,
    created REAL NOT NULL,
    expires REAL,
    last_used REAL,
    revoked REAL
);
CREATE UNIQUE INDEX IF NOT EXISTS tokens_active_name ON tokens (name) WHERE revoked IS NULL;
"""
_COLUMNS = "id, name, role, created, expires, last_used, revoked"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@:-]{0,63}$")


class Role(enum.Enum):
    """What a token may do. ``admin`` ⊇ ``analyst`` ⊇ ``viewer``; ``agent`` only sends events."""

    AGENT = "agent"  # ingest: audit events in, nothing out
    VIEWER = "viewer"  # read alerts, events, rules, status
    ANALYST = "analyst"  # viewer, plus alert triage and silences
    ADMIN = "admin"  # everything, token management included

    def allows(self, needed: Role) -> bool:
        """Whether a token with this role may do what needs the role ``needed``."""
        return needed in _GRANTS[self]

    @classmethod
    def parse(cls, text: str) -> Role:
        """The role named ``text``; UsageError listing the roles otherwise."""
        try:
            return cls(text.strip().lower())
        except ValueError:
            names = ", ".join(r.value for r in cls)
            raise UsageError(f"unknown role {text!r}", hint=f"one of {names}") from None


# An agent's token must not read anything back: a compromised node learns nothing from it.
# An admin may also ingest, so that one token is enough to try things out.
_GRANTS: dict[Role, frozenset[Role]] = {
    Role.AGENT: frozenset({Role.AGENT}),
    Role.VIEWER: frozenset({Role.VIEWER}),
    Role.ANALYST: frozenset({Role.VIEWER, Role.ANALYST}),
    Role.ADMIN: frozenset(Role),
}


@dataclass(frozen=True, slots=True)
class TokenInfo:
    """A token as stored, without its secret (times are epoch seconds)."""

    id: str
    name: str
    role: Role
    created: float
    expires: float | None
    last_used: float | None
    revoked: bool

    def expired(self, now: float) -> bool:
        """Whether the token has expired at ``now``."""
        return self.expires is not None and now >= self.expires

    def state(self, now: float) -> str:
        """``active``, ``expired`` or ``revoked``."""
        if self.revoked:
            return "revoked"
        return "expired" if self.expired(now) else "active"


@dataclass(slots=True)
class _Cached:
    info: TokenInfo
    checked: float  # when the database last confirmed the token


class TokenStore:
    """The tokens in one SQLite file; safe to use from several threads."""

    def __init__(
        self,
        path: Path,
        *,
        cache_ttl: float = DEFAULT_CACHE_TTL,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.path = Path(path)
        self.cache_ttl = cache_ttl
        self.clock = clock
        self._lock = threading.Lock()
        self._cache: dict[str, _Cached] = {}  # by hash; only tokens that authenticated
        self._db = open_private_db(self.path, "token", lambda db: db.executescript(SCHEMA))

    def create(
        self, name: str, role: Role, *, expires: float | None = None
    ) -> tuple[TokenInfo, str]:
        """Create a token; return it and its secret, which is not kept and not shown again.

        ``expires`` is an epoch time (None: never). Raise UsageError for a bad name, a name
        an active token already has, or an expiry in the past.
        """
        if not _NAME.match(name):
            raise UsageError(
                f"token name {name!r} is not allowed",
                hint="use 1 to 64 letters, digits, '.', '_', '@', ':' or '-', "
                "starting with a letter or digit",
            )
        if not isinstance(role, Role):
            raise UsageError(f"not a role: {role!r}")
        now = self.clock()
        if expires is not None and expires <= now:
            raise UsageError("the expiry time is in the past")
        for _ in range(5):  # a new random id and secret if one collides (32-bit ids can)
            secret = PREFIX + secrets.token_urlsafe(32)
            info = TokenInfo(
                id=secrets.token_hex(4),
                name=name,
                role=role,
                created=now,
                expires=expires,
                last_used=None,
                revoked=False,
            )
            try:
                with self._lock, self._db:
                    if self._active_named(name) is not None:
                        raise UsageError(
                            f"an active token is already named {name!r}",
                            hint=f"choose another name, or revoke it first: "
                            f"k3watch token revoke {name}",
                        )
                    self._db.execute(
                        "INSERT INTO tokens (id, name, role, hash, created, expires)"
                        " VALUES (?, ?, ?, ?, ?, ?)",
                        (info.id, name, role.value, _digest(secret), now, expires),
                    )
            except sqlite3.IntegrityError:
                continue
            log.info("token %s (%s, role %s) created", info.id, name, role.value)
            return info, secret
        raise UsageError("could not create a token with a unique id; try again")

    def list(self) -> builtins.list[TokenInfo]:
        """Every token, revoked and expired ones included, oldest first."""
        with self._lock:
            rows = self._db.execute(
                f"SELECT {_COLUMNS} FROM tokens ORDER BY created, id"
            ).fetchall()
        return [_info(row) for row in rows]

    def get(self, token_id: str) -> TokenInfo | None:
        """The token with this id, revoked or expired ones included."""
        with self._lock:
            row = self._db.execute(
                f"SELECT {_COLUMNS} FROM tokens WHERE id = ?", (token_id,)
            ).fetchone()
        return None if row is None else _info(row)

    def revoke(self, id_or_name: str) -> TokenInfo:
        """Revoke the token with this id (or this name, among active tokens); return it.

        Raise UsageError when no token matches, when the id and the name match two different
        tokens, or when the token is already revoked.
        """
        now = self.clock()
        with self._lock, self._db:
            by_id = self._db.execute(
                f"SELECT {_COLUMNS} FROM tokens WHERE id = ?", (id_or_name,)
            ).fetchone()
            by_name = self._active_named(id_or_name)
            row = by_id if by_id is not None else by_name
            if row is None:
                raise UsageError(
                    f"no token with the id or name {id_or_name!r}",
                    hint="'k3watch token list' shows them",
                )
            if by_name is not None and row[0] != by_name[0]:
                raise UsageError(
                    f"{id_or_name!r} is the id of one token and the name of another",
                    hint=f"give the id of the one to revoke ({row[0]} or {by_name[0]})",
                )
            info = _info(row)
            if info.revoked:
                raise UsageError(f"token {info.id} ({info.name}) is already revoked")
            self._db.execute("UPDATE tokens SET revoked = ? WHERE id = ?", (now, info.id))
            # Forget it here at once; other processes' caches forget it within cache_ttl.
            self._cache = {h: c for h, c in self._cache.items() if c.info.id != info.id}
        log.info("token %s (%s) revoked", info.id, info.name)
        return replace(info, revoked=True)

    def authenticate(self, secret: str) -> TokenInfo | None:
        """The token whose secret is ``secret``; None when unknown, revoked or expired."""
        # Anything not shaped like a token is refused before hashing: a header of megabytes
        # costs nothing, and no database query is made for it.
        if len(secret) != len(PREFIX) + SECRET_CHARS or not secret.startswith(PREFIX):
            return None
        digest = _digest(secret)
        now = self.clock()
        with self._lock:
            cached = self._cache.get(digest)
            if cached is not None and now - cached.checked < self.cache_ttl:
                info = cached.info
            else:
                self._cache.pop(digest, None)
                found = self._lookup(digest)
                if found is None:
                    return None
                info = found
                cached = self._cache[digest] = _Cached(info, now)
            if info.expired(now):
                del self._cache[digest]
                return None
            if info.last_used is None or now - info.last_used >= LAST_USED_INTERVAL:
                info = cached.info = self._touch(info, now)
        return info

    def close(self) -> None:
        """Close the database; the store cannot be used afterwards."""
        with self._lock:
            self._cache.clear()
            self._db.close()

    def __enter__(self) -> TokenStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- internals (called with the lock held) ---

    def _active_named(self, name: str) -> tuple[Any, ...] | None:
        row: tuple[Any, ...] | None = self._db.execute(
            f"SELECT {_COLUMNS} FROM tokens WHERE name = ? AND revoked IS NULL", (name,)
        ).fetchone()
        return row

    def _lookup(self, digest: str) -> TokenInfo | None:
        row = self._db.execute(
            f"SELECT {_COLUMNS}, hash FROM tokens WHERE hash = ? AND revoked IS NULL", (digest,)
        ).fetchone()
        # The query found the row by its hash, not by the secret, so how long it took says
        # nothing about the secret; the constant-time comparison is kept all the same.
        if row is None or not hmac.compare_digest(str(row[-1]), digest):
            return None
        return _info(row[:-1])

    def _touch(self, info: TokenInfo, now: float) -> TokenInfo:
        try:
            with self._db:
                self._db.execute("UPDATE tokens SET last_used = ? WHERE id = ?", (now, info.id))
        except sqlite3.OperationalError as exc:
            # A busy or read-only database must not refuse a valid token.
            log.warning("could not record the use of token %s: %s", info.id, exc)
        return replace(info, last_used=now)


def _digest(secret: str) -> str:
    # A fast hash is right here: a token has 256 random bits, so there is nothing to guess a
    # dictionary word from, and a slow password hash would only slow every request down.
    return hashlib.sha256(secret.encode()).hexdigest()


def _info(row: Sequence[Any]) -> TokenInfo:
    ident, name, role, created, expires, last_used, revoked = row
    return TokenInfo(
        id=str(ident),
        name=str(name),
        role=Role(role),
        created=float(created),
        expires=None if expires is None else float(expires),
        last_used=None if last_used is None else float(last_used),
        revoked=revoked is not None,
    )
