"""A client of the k3watch server's API, used by the CLI, the demo and the benchmarks.

```python
with Client("https://k3watch.example:8443", token, ca=Path("pki/ca.crt")) as client:
    page = client.search(user="alice", start="24h", q="exec")
    client.act(alert_id=12, action="ack", note="looking")
```
"""

from __future__ import annotations

import gzip
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import httpx

from k3watch.errors import K3watchError


class ApiError(K3watchError):
    """The server refused a request (the message is the server's own ``detail``)."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(f"server answered {status}: {detail}")
        self.status = status
        self.detail = detail


class Client:
    """Calls the API with a bearer token; TLS verified against ``ca`` (or the system store)."""

    def __init__(
        self,
        server: str,
        token: str,
        *,
        ca: Path | None = None,
        cert: Path | None = None,
        key: Path | None = None,
        timeout: float = 30.0,
    ) -> None:
        verify: Any = True
        if server.startswith("https://"):
            from k3watch.certs import client_ssl_context

            verify = client_ssl_context(ca, cert, key)
        self._http = httpx.Client(
            base_url=server.rstrip("/"),
            headers={"Authorization": f"Bearer {token}", "User-Agent": "k3watch-cli"},
            verify=verify,
            timeout=timeout,
        )

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def _call(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        json: Any = None,
        content: bytes | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> Any:
        try:
            response = self._http.request(
                method,
                path,
                params={k: v for k, v in (params or {}).items() if v not in (None, "", ())},
                json=json,
                content=content,
                headers=headers,
            )
        except httpx.HTTPError as exc:
            raise K3watchError(f"cannot reach the server: {exc}") from exc
        if response.status_code >= 400:
            try:
                detail = response.json().get("detail", response.text)
            except ValueError:
                detail = response.text
            raise ApiError(response.status_code, str(detail))
        return response.json()

    # --- events ---

    def search(
        self,
        *,
        start: str | None = None,
        end: str | None = None,
        q: str | None = None,
        limit: int = 100,
        cursor: str | None = None,
        **filters: str | Sequence[str] | None,
    ) -> dict[str, Any]:
        params: dict[str, Any] = {"start": start, "end": end, "q": q, "limit": limit}
        params["cursor"] = cursor
        for name, value in filters.items():
            if value:
                params[name] = value if isinstance(value, str) else ",".join(value)
        result: dict[str, Any] = self._call("GET", "/api/v1/events", params=params)
        return result

    def event(self, key: str) -> dict[str, Any]:
        result: dict[str, Any] = self._call("GET", f"/api/v1/events/{key}")
        return result

    # --- alerts ---

    def alerts(
        self, *, limit: int = 100, cursor: str | None = None, **filters: Any
    ) -> dict[str, Any]:
        params = {"limit": limit, "cursor": cursor} | {
            k: v if isinstance(v, str) or v is None else ",".join(v) for k, v in filters.items()
        }
        result: dict[str, Any] = self._call("GET", "/api/v1/alerts", params=params)
        return result

    def alert(self, alert_id: int) -> dict[str, Any]:
        result: dict[str, Any] = self._call("GET", f"/api/v1/alerts/{alert_id}")
        return result

    def act(
        self, alert_id: int, action: str, note: str = "", assignee: str | None = None
    ) -> dict[str, Any]:
        body = {"action": action, "note": note, "assignee": assignee}
        result: dict[str, Any] = self._call("POST", f"/api/v1/alerts/{alert_id}/actions", json=body)
        return result

    # --- silences ---

    def silences(self, *, active: bool = False) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self._call(
            "GET", "/api/v1/silences", params={"active": "true" if active else None}
        )
        return result

    def add_silence(
        self, matchers: Sequence[str], duration: str, comment: str, starts: str | None = None
    ) -> dict[str, Any]:
        body = {"matchers": list(matchers), "duration": duration, "comment": comment}
        if starts:
            body["starts"] = starts
        result: dict[str, Any] = self._call("POST", "/api/v1/silences", json=body)
        return result

    def expire_silence(self, silence_id: str) -> dict[str, Any]:
        result: dict[str, Any] = self._call("DELETE", f"/api/v1/silences/{silence_id}")
        return result

    # --- the rest ---

    def rules(self, since: str = "30d") -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self._call("GET", "/api/v1/rules", params={"since": since})
        return result

    def stats(self, **params: Any) -> dict[str, Any]:
        result: dict[str, Any] = self._call("GET", "/api/v1/stats", params=params)
        return result

    def ingest(
        self,
        lines: Sequence[bytes],
        *,
        batch: str,
        cluster: str = "",
        node: str = "",
        source: str = "audit",
        compress: bool = True,
    ) -> dict[str, Any]:
        """Send events (JSON lines) as one batch; a retry with the same ``batch`` is safe."""
        body = b"".join(line if line.endswith(b"\n") else line + b"\n" for line in lines)
        headers = {"Content-Type": "application/x-ndjson"}
        if compress:
            body = gzip.compress(body, compresslevel=1)
            headers["Content-Encoding"] = "gzip"
        params = {"batch": batch, "cluster": cluster, "node": node, "source": source}
        result: dict[str, Any] = self._call(
            "POST", "/api/v1/ingest", params=params, content=body, headers=headers
        )
        return result
