"""Web UI users: names, roles and argon2 password hashes.

People log in to the web UI with a username and password (or with an API token). A user has
one of the token roles (``viewer``, ``analyst``, ``admin``; never ``agent``). Passwords are
hashed with argon2id (``argon2-cffi``'s defaults, re-hashed on login when those change) in a
SQLite file (mode 0600) next to the tokens; nothing can turn a hash back into the password.

A session cookie carries the user's *generation*: a value that changes whenever the password,
the role or the user itself changes, so that such a change ends the sessions opened before it.
"""

from __future__ import annotations

import builtins
import hashlib
import logging
import re
import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from k3watch.durable import open_private_db
from k3watch.errors import UsageError
from k3watch.server.tokens import Role

log = logging.getLogger(__name__)

MIN_PASSWORD = 12
MAX_PASSWORD = 1024  # hashing a megabyte-long "password" is work nobody needs to do

SCHEMA = """
CREATE TABLE IF NOT EXISTS users (
    name TEXT PRIMARY KEY,
    role TEXT NOT NULL,
    hash TEXT NOT NULL,
    created REAL NOT NULL,
    updated REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS ended_sessions (
    id TEXT PRIMARY KEY,
    expires REAL NOT NULL
) WITHOUT ROWID;
"""
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$")
USER_ROLES = (Role.VIEWER, Role.ANALYST, Role.ADMIN)


@dataclass(frozen=True, slots=True)
class UserInfo:
    """A user as stored, without the password hash."""

    name: str
    role: Role
    created: float
    updated: float
    generation: str
    """Changes with the password, the role, or a re-created user (see the module)."""


class UserStore:
    """The users in one SQLite file; safe to use from several threads."""

    def __init__(
        self,
        path: Path,
        *,
        hasher: PasswordHasher | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.path = Path(path)
        self.clock = clock
        self._hasher = hasher or PasswordHasher()
        self._lock = threading.Lock()
        self._db = open_private_db(self.path, "user", lambda db: db.executescript(SCHEMA))
        # Verified against when the name is unknown, so that a wrong name takes as long as a
        # wrong password and the response time does not tell which names exist. Made by the
        # first login, not here: the user commands and the server's start need none.
        self._decoy: str | None = None

    def add(self, name: str, role: Role, password: str) -> UserInfo:
        """Create a user; UsageError for a bad name or role, a weak password, or a name taken."""
        _check_name(name)
        _check_role(role)
        _check_password(password)
        digest = self._hasher.hash(password)
        now = self.clock()
        try:
            with self._lock, self._db:
                self._db.execute(
                    "INSERT INTO users (name, role, hash, created, updated) VALUES (?, ?, ?, ?, ?)",
                    (name, role.value, digest, now, now),
                )
        except sqlite3.IntegrityError:
            raise UsageError(
                f"a user named {name!r} exists already",
                hint=f"k3watch user passwd {name} changes the password",
            ) from None
        log.info("user %s (role %s) added", name, role.value)
        return UserInfo(name, role, now, now, _generation(digest, role))

    def set_password(self, name: str, password: str) -> UserInfo:
        """Replace a user's password (which ends their open sessions)."""
        _check_password(password)
        return self._update(name, hash=self._hasher.hash(password))

    def set_role(self, name: str, role: Role) -> UserInfo:
        _check_role(role)
        return self._update(name, role=role.value)

    def remove(self, name: str) -> None:
        with self._lock, self._db:
            removed = self._db.execute("DELETE FROM users WHERE name = ?", (name,)).rowcount
        if not removed:
            raise UsageError(f"no user named {name!r}", hint="'k3watch user list' shows them")
        log.info("user %s removed", name)

    def get(self, name: str) -> UserInfo | None:
        with self._lock:
            row = self._db.execute(
                "SELECT name, role, hash, created, updated FROM users WHERE name = ?", (name,)
            ).fetchone()
        return None if row is None else _info(row)

    def list(self) -> builtins.list[UserInfo]:
        with self._lock:
            rows = self._db.execute(
                "SELECT name, role, hash, created, updated FROM users ORDER BY name"
            ).fetchall()
        return [_info(row) for row in rows]

    def authenticate(self, name: str, password: str) -> UserInfo | None:
        """The user when ``password`` is theirs, else None (unknown name or wrong password)."""
        if len(password) > MAX_PASSWORD:
            return None
        with self._lock:
            row = self._db.execute(
                "SELECT name, role, hash, created, updated FROM users WHERE name = ?", (name,)
            ).fetchone()
        if self._decoy is None:
            self._decoy = self._hasher.hash("k3watch: no such user")
        digest = self._decoy if row is None else str(row[2])
        try:
            self._hasher.verify(digest, password)
        except (VerificationError, InvalidHashError):
            return None
        if row is None:
            return None  # the decoy's own password, under a name that does not exist
        if self._hasher.check_needs_rehash(digest):
            return self._update(name, hash=self._hasher.hash(password))
        return _info(row)

    def end_session(self, session_id: str, expires: float) -> None:
        """Record that a session (its id, until it would expire anyway) was logged out."""
        now = self.clock()
        with self._lock, self._db:
            self._db.execute("DELETE FROM ended_sessions WHERE expires < ?", (now,))
            self._db.execute(
                "INSERT OR REPLACE INTO ended_sessions VALUES (?, ?)", (session_id, expires)
            )

    def session_ended(self, session_id: str) -> bool:
        with self._lock:
            row = self._db.execute(
                "SELECT 1 FROM ended_sessions WHERE id = ?", (session_id,)
            ).fetchone()
        return row is not None

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def __enter__(self) -> UserStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _update(self, name: str, **columns: str) -> UserInfo:
        sets = ", ".join(f"{column} = ?" for column in columns)
        now = self.clock()
        with self._lock, self._db:
            changed = self._db.execute(
                f"UPDATE users SET {sets}, updated = ? WHERE name = ?",
                (*columns.values(), now, name),
            ).rowcount
            row = self._db.execute(
                "SELECT name, role, hash, created, updated FROM users WHERE name = ?", (name,)
            ).fetchone()
        if not changed or row is None:
            raise UsageError(f"no user named {name!r}", hint="'k3watch user list' shows them")
        return _info(row)


def _info(row: Sequence[Any]) -> UserInfo:
    name, role, digest, created, updated = row
    parsed = Role(str(role))
    return UserInfo(
        str(name), parsed, float(created), float(updated), _generation(str(digest), parsed)
    )


def _generation(digest: str, role: Role) -> str:
    # The hash has a random salt: a new password (or the same one set again) gives a new value.
    return hashlib.sha256(f"{role.value}:{digest}".encode()).hexdigest()[:16]


def _check_name(name: str) -> None:
    if not _NAME.match(name):
        raise UsageError(
            f"user name {name!r} is not allowed",
            hint="use 1 to 64 letters, digits, '.', '_', '@' or '-', starting with a letter "
            "or digit",
        )


def _check_role(role: Role) -> None:
    if role not in USER_ROLES:
        raise UsageError(
            f"a user cannot have the {role.value} role",
            hint="one of " + ", ".join(r.value for r in USER_ROLES),
        )


def _check_password(password: str) -> None:
    if len(password) < MIN_PASSWORD:
        raise UsageError(f"the password must have at least {MIN_PASSWORD} characters")
    if len(password) > MAX_PASSWORD:
        raise UsageError(f"the password must have at most {MAX_PASSWORD} characters")
