"""Secrets rendered from files the user names (never invented): the server's TLS pair and the
CA from a ``k3watch certs init`` directory, the agent token, the webhook token.

Without such a file the manifests only reference the Secret by name, and docs/deploy.md shows
the ``kubectl create secret`` command. Rendered Secrets go into their own document set
(``k3watch-secrets.yaml``, mode 0600), which ``deploy install`` never shows in a diff.
"""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

from k3watch.deploy.objects import metadata
from k3watch.deploy.values import Values, line_of
from k3watch.errors import UsageError


def ca_config_map(values: Values) -> dict[str, Any] | None:
    """The CA certificate agents trust (public: a ConfigMap), when ``tls.from_dir`` is set."""
    if values.tls.from_dir is None:
        return None
    ca = _read(values, Path(values.tls.from_dir) / "ca.crt", "$.tls.from_dir")
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": metadata(values, values.tls.ca_config_map, None),
        "data": {"ca.crt": ca.decode("ascii")},
    }


def secret_objects(values: Values) -> list[dict[str, Any]]:
    """Every Secret the values name a file for."""
    out: list[dict[str, Any]] = []
    if values.tls.from_dir is not None:
        pki = Path(values.tls.from_dir)
        out.append(
            _tls(values, values.tls.secret, pki / "server.crt", pki / "server.key", "server")
        )
        if values.tls.mutual:
            name = values.tls.client_name
            client = pki / "clients"
            out.append(
                _tls(
                    values,
                    values.tls.client_secret,
                    client / f"{name}.crt",
                    client / f"{name}.key",
                    "agent",
                )
            )
    if values.agent.token_file is not None:
        token = _token(values, Path(values.agent.token_file), "$.agent.token_file")
        out.append(_opaque(values, values.agent.token_secret, token, "agent"))
    if values.audit.source == "webhook" and values.audit.webhook_token_file is not None:
        path = Path(values.audit.webhook_token_file)
        token = _token(values, path, "$.audit.webhook_token_file")
        out.append(_opaque(values, values.audit.webhook_token_secret, token, "agent"))
    return out


def webhook_token(values: Values) -> str | None:
    """The webhook token from ``audit.webhook_token_file``, when set."""
    if values.audit.webhook_token_file is None:
        return None
    path = Path(values.audit.webhook_token_file)
    return _token(values, path, "$.audit.webhook_token_file").decode("utf-8")


def _tls(values: Values, name: str, cert: Path, key: Path, component: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": metadata(values, name, component),
        "type": "kubernetes.io/tls",
        "data": {
            "tls.crt": _b64(_read(values, cert, "$.tls.from_dir")),
            "tls.key": _b64(_read(values, key, "$.tls.from_dir")),
        },
    }


def _opaque(values: Values, name: str, token: bytes, component: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": metadata(values, name, component),
        "type": "Opaque",
        "data": {"token": _b64(token)},
    }


def _token(values: Values, path: Path, key: str) -> bytes:
    token = _read(values, path, key).strip()
    if not token or b"\n" in token or len(token) < 16:
        raise UsageError(
            f"{path} must hold one token of 16 characters or more on one line",
            line_of(values, key),
        )
    return token


def _read(values: Values, path: Path, key: str) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise UsageError(
            f"cannot read {path}: {exc.strerror or exc}",
            line_of(values, key),
            hint="k3watch certs init --dir DIR writes ca.crt, server.crt and server.key"
            if key == "$.tls.from_dir"
            else "",
        ) from exc


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")
