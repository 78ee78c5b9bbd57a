"""Tuning shared by the long-running processes: the server, its ingest workers, the agent."""

from __future__ import annotations

import gc


def tune_gc() -> None:
    """Collect garbage less often: ingest allocates millions of short-lived objects that
    reference counting frees, and every default-threshold collection walks the long-lived rules
    and caches again (measured: parsing runs about 1.8 times faster in the server, and the
    agent reads a file about 1.3 times faster)."""
    gc.collect()
    gc.freeze()  # what exists now (rules, compiled predicates, config) lives as long as we do
    gc.set_threshold(50_000, 20, 100)
