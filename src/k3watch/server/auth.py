"""Bearer-token authentication, roles and per-token rate limits for every endpoint but health."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from fastapi import Depends, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from k3watch.server.tokens import Role, TokenInfo, TokenStore
from k3watch.telemetry import Counters

_bearer = HTTPBearer(auto_error=False, description="A k3watch token (k3watch token create)")


class RateLimiter:
    """A token bucket per key (an API token…): ``rate`` requests per second, bursts of
    ``burst`` (``2 * rate`` unless given)."""

    def __init__(
        self,
        rate: float,
        clock: Callable[[], float] = time.monotonic,
        *,
        burst: float | None = None,
    ) -> None:
        self.rate = rate
        self.burst = max(1.0, 2 * rate) if burst is None else burst
        self._clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}
        self._lock = threading.Lock()
        # Keys may come from a client (an address, a user name tried): the buckets that have
        # filled up again are forgotten once there are this many, so memory stays bounded.
        self.max_keys = 50_000

    def wait(self, key: str, cost: float = 1.0) -> float:
        """The seconds until ``allow(key, cost)`` would succeed (0: now), using nothing."""
        now = self._clock()
        with self._lock:
            level, then = self._buckets.get(key, (self.burst, now))
        level = min(self.burst, level + (now - then) * self.rate)
        return 0.0 if level >= cost else (cost - level) / self.rate

    def allow(self, key: str, cost: float = 1.0) -> float:
        """0 when allowed now, else the seconds to wait before retrying."""
        now = self._clock()
        with self._lock:
            level, then = self._buckets.get(key, (self.burst, now))
            level = min(self.burst, level + (now - then) * self.rate)
            if len(self._buckets) >= self.max_keys:
                self._forget_full(now)
            if level >= cost:
                self._buckets[key] = (level - cost, now)
                return 0.0
            self._buckets[key] = (level, now)
            return (cost - level) / self.rate

    def _forget_full(self, now: float) -> None:
        refill = self.burst / self.rate
        self._buckets = {k: v for k, v in self._buckets.items() if now - v[1] < refill}


class Auth:
    """Decides who is calling (``Authorization: Bearer …``) and whether their role suffices."""

    def __init__(self, tokens: TokenStore, counters: Counters | None = None) -> None:
        self.tokens = tokens
        self.counters = counters or Counters("auth")

    def require(self, role: Role) -> Callable[..., TokenInfo]:
        """A FastAPI dependency: the caller's token, or 401/403."""

        def dependency(
            request: Request,
            credentials: HTTPAuthorizationCredentials | None = Depends(_bearer),  # noqa: B008
        ) -> TokenInfo:
            if credentials is None or credentials.scheme.lower() != "bearer":
                self.counters.inc("refused", reason="no_token")
                raise HTTPException(
                    401, "a bearer token is required", {"WWW-Authenticate": "Bearer"}
                )
            token = self.tokens.authenticate(credentials.credentials)
            if token is None:
                self.counters.inc("refused", reason="bad_token")
                raise HTTPException(
                    401, "unknown, revoked or expired token", {"WWW-Authenticate": "Bearer"}
                )
            if not token.role.allows(role):
                self.counters.inc("refused", reason="role")
                raise HTTPException(
                    403, f"the {token.role.value} role may not do this ({role.value} needed)"
                )
            request.state.token = token
            return token

        return dependency
