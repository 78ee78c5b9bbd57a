"""What the network destinations share: TLS contexts, and HTTP POSTs whose failures are sorted
into retryable and permanent ones.

Status codes and what the outbox does with them:

- 2xx: delivered.
- 408, 425, 429 and 5xx: the receiver is busy or broken → retried (``Retry-After`` honoured).
- 401, 403, 404: most often a wrong token or URL that an operator will fix → retried until
  the outbox's ``max_age``, so the alerts are there once the configuration is right.
- Any other 4xx (400, 413, 422…): the receiver rejected the content itself; sending it again
  cannot help → dropped, logged and counted as ``dropped{rejected}``.
"""

from __future__ import annotations

import ssl
import time
from collections.abc import Mapping
from email.utils import parsedate_to_datetime

import httpx

from k3watch.alerting.config import TlsConfig
from k3watch.alerting.sinks.destination import DeliveryError

RETRYABLE_4XX = frozenset({401, 403, 404, 408, 425, 429})
_BODY_EXCERPT = 300


def client_ssl_context(tls: TlsConfig, destination: str) -> ssl.SSLContext:
    """A client context that verifies the server (with ``tls.ca_file`` when given) and presents
    ``tls.cert_file`` when given."""
    try:
        context = ssl.create_default_context(cafile=tls.ca_file)
        if tls.cert_file:
            context.load_cert_chain(tls.cert_file, tls.key_file)
    except (OSError, ssl.SSLError) as exc:
        raise DeliveryError(
            destination,
            f"cannot load TLS files: {exc}",
            reason="tls_config",
            hint="check tls.ca_file, tls.cert_file and tls.key_file",
        ) from exc
    return context


class HttpPoster:
    """One pooled HTTP client per destination; ``post`` raises a classified DeliveryError."""

    def __init__(
        self,
        destination: str,
        *,
        timeout: float,
        tls: TlsConfig,
        auth: httpx.Auth | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        self.destination = destination
        self._extensions = {"sni_hostname": tls.server_name} if tls.server_name else {}
        self._client = httpx.Client(
            verify=client_ssl_context(tls, destination),
            timeout=timeout,
            auth=auth,
            headers=dict(headers or {}),
            follow_redirects=False,  # a redirect would re-send a signed body somewhere else
        )

    def post(self, url: str, body: bytes, headers: Mapping[str, str]) -> httpx.Response:
        """POST ``body``; return the 2xx response or raise DeliveryError."""
        try:
            response = self._client.post(
                url, content=body, headers=dict(headers), extensions=self._extensions
            )
        except httpx.TimeoutException as exc:
            raise self._error(f"no answer from {url} in time ({exc})", "timeout") from exc
        except httpx.ConnectError as exc:
            reason = "tls" if _is_tls(exc) else "connection"
            raise self._error(f"cannot connect to {url}: {exc}", reason) from exc
        except httpx.HTTPError as exc:
            # A refused client certificate shows up after the handshake, as a read error.
            reason = "tls" if _is_tls(exc) else "transport"
            raise self._error(f"request to {url} failed: {exc}", reason) from exc
        if response.is_success:
            return response
        status = response.status_code
        excerpt = " ".join(response.text[:_BODY_EXCERPT].split())
        message = f"{url} answered HTTP {status}" + (f": {excerpt}" if excerpt else "")
        permanent = 400 <= status < 500 and status not in RETRYABLE_4XX
        raise DeliveryError(
            self.destination,
            message,
            reason=f"http_{status}",
            permanent=permanent,
            retry_after=retry_after(response.headers.get("retry-after")),
            hint="the receiver rejected the alert as invalid" if permanent else "",
        )

    def close(self) -> None:
        self._client.close()

    def _error(self, message: str, reason: str) -> DeliveryError:
        return DeliveryError(self.destination, message, reason=reason)


def _is_tls(exc: BaseException) -> bool:
    """True when a TLS failure (handshake, certificate, alert) is behind ``exc``."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, ssl.SSLError) or "[SSL" in str(seen):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds from a ``Retry-After`` header (delay in seconds or an HTTP date)."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value).timestamp()
    except (TypeError, ValueError):
        return None
    return max(0.0, when - (time.time() if now is None else now))
