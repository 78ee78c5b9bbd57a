"""Who is using the web UI: logins, signed session cookies, CSRF tokens and role checks.

A login (a user's password, or an API token pasted once) gives a session cookie signed with
the server's key (``web-secret`` in the data directory, made on first start). The cookie holds
no secret: the user name and their *generation* (:class:`~k3watch.server.users.UserInfo`), or
the token's id, a CSRF token, and when it was issued. Each request checks it again against the
user or token store, so a removed user, a changed password or role, and a revoked token end
the session at once; logging out records the session as ended, so a copy of the cookie is
refused too. The cookie is ``HttpOnly``, ``SameSite=Strict``, and
``Secure`` when the page came over HTTPS.

Every form that changes something carries the session's CSRF token, compared in constant time
(the login form carries one from a short-lived cookie of its own). Failed logins are limited
per address and per user name.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import secrets
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from itsdangerous import BadSignature, URLSafeTimedSerializer

from k3watch.errors import UsageError
from k3watch.server.auth import RateLimiter
from k3watch.server.tokens import Role, TokenStore
from k3watch.server.users import UserStore

log = logging.getLogger(__name__)

COOKIE = "k3watch_session"
LOGIN_COOKIE = "k3watch_login"
LOGIN_FORM_SECONDS = 3600  # how long a login page's form stays valid
SECRET_FILE = "web-secret"


@dataclass(frozen=True, slots=True)
class Session:
    """A logged-in person: a user, or whoever holds a token (named after it)."""

    name: str
    kind: Literal["user", "token"]
    role: Role
    csrf: str
    issued: float

    def allows(self, role: Role) -> bool:
        return self.role.allows(role)


class NotLoggedIn(Exception):
    """No valid session: the page sends the browser to the login page."""


class Forbidden(Exception):
    """Logged in, but the role does not allow this."""

    def __init__(self, session: Session, needed: Role) -> None:
        super().__init__(f"the {session.role.value} role may not do this ({needed.value} needed)")
        self.session = session
        self.needed = needed


class BadForm(Exception):
    """A form that changes something came without the session's CSRF token."""


class Sessions:
    """Issues and checks session cookies for one server."""

    def __init__(
        self,
        secret: bytes,
        users: UserStore,
        tokens: TokenStore,
        *,
        lifetime: float,
        attempts_per_minute: float,
        clock: Any = time.time,
    ) -> None:
        self._signer = URLSafeTimedSerializer(secret, salt="k3watch-session")
        self._login_signer = URLSafeTimedSerializer(secret, salt="k3watch-login-form")
        self.users = users
        self.tokens = tokens
        self.lifetime = lifetime
        self.clock = clock
        rate = attempts_per_minute / 60
        self.throttle = RateLimiter(rate, burst=2 * attempts_per_minute)

    # -- logging in ------------------------------------------------------------------------

    def login_form(self) -> tuple[str, str]:
        """A CSRF token for a login form, and the cookie value that vouches for it."""
        token = secrets.token_urlsafe(24)
        return token, self._login_signer.dumps(token)

    def login_form_valid(self, cookie: str | None, token: str) -> bool:
        if not cookie or not token:
            return False
        try:
            expected = self._login_signer.loads(cookie, max_age=LOGIN_FORM_SECONDS)
        except BadSignature:
            return False
        return isinstance(expected, str) and hmac.compare_digest(expected, token)

    def refused(self, address: str, name: str) -> float:
        """0 when a login attempt from ``address`` for ``name`` may be tried now, else the
        seconds to wait (only failed attempts count; see :meth:`failed`)."""
        return max(self.throttle.wait(f"ip:{address}"), self.throttle.wait(f"user:{name}"))

    def failed(self, address: str, name: str) -> None:
        """Count a failed attempt against the address and the name."""
        self.throttle.allow(f"ip:{address}")
        self.throttle.allow(f"user:{name}")

    def with_password(self, name: str, password: str) -> str | None:
        """A session cookie for the user, or None when the name or password is wrong."""
        user = self.users.authenticate(name, password)
        if user is None:
            return None
        return self._issue({"k": "user", "u": user.name, "g": user.generation})

    def with_token(self, secret: str) -> str | None:
        """A session cookie for the token's holder, or None for an unknown token. Agent tokens
        cannot log in: they only send events."""
        token = self.tokens.authenticate(secret.strip())
        if token is None or token.role is Role.AGENT:
            return None
        return self._issue({"k": "token", "u": token.name, "g": token.id})

    def _issue(self, claims: dict[str, str]) -> str:
        claims["c"] = secrets.token_urlsafe(24)
        return self._signer.dumps(claims)

    # -- checking ----------------------------------------------------------------------------

    def session(self, cookie: str | None) -> Session | None:
        """The session a cookie stands for, if it is valid now."""
        if not cookie:
            return None
        try:
            claims, issued = self._signer.loads(
                cookie, max_age=int(self.lifetime), return_timestamp=True
            )
        except BadSignature:
            return None
        if not isinstance(claims, dict):
            return None
        kind, name, generation, csrf = (claims.get(k) for k in ("k", "u", "g", "c"))
        if not (isinstance(name, str) and isinstance(generation, str) and isinstance(csrf, str)):
            return None
        role: Role | None = None
        how: Literal["user", "token"] = "user"
        if kind == "user":
            user = self.users.get(name)
            if user is not None and hmac.compare_digest(user.generation, generation):
                role = user.role
        elif kind == "token":
            token = self.tokens.get(generation)
            if token is not None and token.state(self.clock()) == "active":
                role, how = token.role, "token"
        if role is None or role is Role.AGENT or self.users.session_ended(_session_id(csrf)):
            return None
        return Session(name, how, role, csrf, issued.timestamp())

    def end(self, session: Session) -> None:
        """Log out: the session's cookie is refused from now on, even if kept elsewhere."""
        self.users.end_session(_session_id(session.csrf), session.issued + self.lifetime)

    def require(self, cookie: str | None, role: Role) -> Session:
        """The session, or NotLoggedIn / Forbidden."""
        session = self.session(cookie)
        if session is None:
            raise NotLoggedIn()
        if not session.allows(role):
            raise Forbidden(session, role)
        return session

    @staticmethod
    def check_form(session: Session, token: str | None) -> None:
        """Raise BadForm unless ``token`` is the session's CSRF token."""
        if not token or not hmac.compare_digest(session.csrf, token):
            raise BadForm()


def _session_id(csrf: str) -> str:
    # A session is named by a hash of its random CSRF token, which is never stored as such.
    return hashlib.sha256(csrf.encode()).hexdigest()[:32]


def load_secret(directory: Path) -> bytes:
    """The key that signs session cookies: ``web-secret`` in the data directory (0600),
    made on first use. Deleting the file ends every session."""
    path = directory / SECRET_FILE
    try:
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            secret = path.read_bytes()
            if len(secret) < 32:
                raise UsageError(
                    f"the web session key {path} is too short",
                    hint="delete it: a new one is made at the next start (sessions end)",
                ) from None
            return secret
        secret = secrets.token_bytes(32)
        with os.fdopen(fd, "wb") as out:
            out.write(secret)
            out.flush()
            os.fsync(out.fileno())
        return secret
    except OSError as exc:
        raise UsageError(f"cannot read or make {path}: {exc.strerror or exc}") from exc
