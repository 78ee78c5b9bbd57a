"""Sources: where input bytes come from (files, directories of rotated logs, stdin).

A source hands the parsers a binary stream and nothing more: decompression and line splitting
happen here, turning bytes into events happens in :mod:`k3watch.parse`.
"""

from k3watch.sources.files import (
    InputFile,
    OverlongLine,
    iter_lines,
    open_input,
    open_stream,
    resolve_inputs,
)

__all__ = [
    "InputFile",
    "OverlongLine",
    "iter_lines",
    "open_input",
    "open_stream",
    "resolve_inputs",
]
