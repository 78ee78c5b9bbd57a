"""The first admin token of a deployed server, written to a file instead of a log.

``k3watch server`` creates an admin token on its first start and prints it, which suits a
terminal but not a pod or a unit, whose output ends up in log stores. ``k3watch deploy
bootstrap`` runs before the server (an init container, ``ExecStartPre=``): when the data
directory has no active admin token it creates one named ``initial-admin`` and writes its
secret to a file (mode 0600) on the server's own volume; the server then finds an admin token
and prints none. Read the file once, make your own tokens, delete it (docs/deploy.md).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from k3watch.durable import write_atomically

TOKEN_FILE = "tokens.sqlite"  # in the data directory, as the server keeps it
ADMIN_NAME = "initial-admin"


@dataclass(frozen=True, slots=True)
class Bootstrap:
    """What bootstrap did: ``created`` a token (its id) or found one."""

    created: bool
    token_id: str | None
    secret_file: Path


def ensure_admin_token(data_dir: Path, secret_file: Path) -> Bootstrap:
    """Create an admin token and write its secret to ``secret_file`` unless the server already
    has an active admin token. The secret is never returned or printed."""
    from k3watch.server.tokens import Role, TokenStore

    with TokenStore(data_dir / TOKEN_FILE) as tokens:
        if any(t.role is Role.ADMIN and not t.revoked for t in tokens.list()):
            return Bootstrap(False, None, secret_file)
        info, secret = tokens.create(ADMIN_NAME, Role.ADMIN)
        try:
            secret_file.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            write_atomically(secret_file, (secret + "\n").encode("ascii"), 0o600)
        except OSError:
            # A token nobody can read would stop the server from making one: take it back.
            tokens.revoke(info.id)
            raise
    return Bootstrap(True, info.id, secret_file)
