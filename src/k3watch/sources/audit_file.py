"""The ``audit_file`` source: the API server's audit log, followed through its rotations.

K3s's API server (``--audit-log-path``) writes one JSON ``Event`` a line and rotates by
renaming the file to ``audit-<UTC time>.log`` (``--audit-log-maxsize``), gzip-compressing the
backup when ``--audit-log-compress`` is set, and deleting backups past
``--audit-log-maxbackup`` / ``--audit-log-maxage``. This is the generic
:class:`~k3watch.sources.tail.FileSource` with the ``audit`` parser and K3s's defaults; audit
events carry no ``_key`` (the server de-duplicates them by ``auditID`` and ``stage``).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from k3watch.errors import InputError
from k3watch.parse.audit import DEFAULT_MAX_EVENT_BYTES
from k3watch.sources.checkpoint import CheckpointStore
from k3watch.sources.lines import AUDIT, DEFAULT_MAX_AUDIT_LINE_BYTES
from k3watch.sources.tail import FileSource
from k3watch.telemetry import Counters

# Where the K3s hardening guide puts the audit log (its directory is 0700, root only).
K3S_AUDIT_LOG = "/var/lib/rancher/k3s/server/logs/audit.log"


class AuditFileSource(FileSource):
    """Follows the API-server audit log at ``path`` (K3s's hardening-guide path by default).

    Each line is one audit ``Event`` (or an ``EventList``); an event over
    ``max_event_bytes`` keeps its metadata and loses its request and response bodies; a line
    over ``max_line_bytes`` is skipped and reported. The other options are
    :class:`~k3watch.sources.tail.FileSource`'s.
    """

    def __init__(
        self,
        path: str | Path = K3S_AUDIT_LOG,
        *,
        name: str = "audit_file",
        checkpoints: CheckpointStore | None = None,
        follow: bool = True,
        start_at: str = "beginning",
        read_backups: bool = False,
        poll_interval: float = 0.25,
        rotate_wait: float = 1.0,
        max_line_bytes: int = DEFAULT_MAX_AUDIT_LINE_BYTES,
        max_event_bytes: int = DEFAULT_MAX_EVENT_BYTES,
        counters: Counters | None = None,
        parser_counters: Counters | None = None,
        on_error: Callable[[InputError], None] | None = None,
    ) -> None:
        super().__init__(
            path,
            format=AUDIT,
            name=name,
            checkpoints=checkpoints,
            follow=follow,
            start_at=start_at,
            read_backups=read_backups,
            poll_interval=poll_interval,
            rotate_wait=rotate_wait,
            max_line_bytes=max_line_bytes,
            max_event_bytes=max_event_bytes,
            counters=counters,
            parser_counters=parser_counters,
            on_error=on_error,
        )
