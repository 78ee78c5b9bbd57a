"""Parsers: bytes from a source in, normalized :class:`~k3watch.event.Event` objects out.

Each parser reports bad input as located :class:`~k3watch.errors.InputError` diagnostics and
keeps going; none of them raises on what it reads.
"""

from k3watch.parse.audit import AuditParser

__all__ = ["AuditParser"]
