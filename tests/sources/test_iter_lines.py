"""iter_lines: numbered lines from chunks, CRLF, last line, over-long lines, bounded memory."""

from __future__ import annotations

import io
import tracemalloc

from hypothesis import given, settings
from hypothesis import strategies as st

from k3watch.sources.files import OverlongLine, iter_lines


def lines_of(data: bytes, max_line_bytes: int = 1000, chunk_size: int = 4) -> list[object]:
    return list(iter_lines(io.BytesIO(data), max_line_bytes, chunk_size))


def reference(data: bytes, max_line_bytes: int) -> list[tuple[int, bytes | str]]:
    """What iter_lines must yield, computed the slow obvious way (over-long lines as "long")."""
    if not data:
        return []
    lines = data.split(b"\n")
    if lines[-1] == b"":
        lines.pop()
    out: list[tuple[int, bytes | str]] = []
    for number, raw in enumerate(lines, 1):
        line = raw.removesuffix(b"\r")
        out.append((number, "long" if len(line) > max_line_bytes else line))
    return out


def test_lines_are_numbered_from_one_without_newlines() -> None:
    """Each line comes with its 1-based number and without its newline; blank lines count."""
    assert lines_of(b"a\n\nbc\n") == [(1, b"a"), (2, b""), (3, b"bc")]


def test_crlf_line_endings_are_stripped() -> None:
    """A ``\\r`` before the newline is removed, also when the chunk splits ``\\r`` and ``\\n``."""
    assert lines_of(b"abc\r\ndef\r\n", chunk_size=4) == [(1, b"abc"), (2, b"def")]
    assert lines_of(b"a\rb\n") == [(1, b"a\rb")]


def test_last_line_without_newline_is_yielded() -> None:
    """A file that does not end in a newline still yields its last line."""
    assert lines_of(b"a\nlast") == [(1, b"a"), (2, b"last")]
    assert lines_of(b"last\r") == [(1, b"last")]


def test_empty_input_yields_nothing() -> None:
    """No bytes, no lines."""
    assert lines_of(b"") == []


def test_overlong_line_is_skipped_with_its_length_and_reading_continues() -> None:
    """A line over the limit becomes OverlongLine(length); the lines after it are intact."""
    data = b"short\n" + b"x" * 50 + b"\nafter\n" + b"y" * 30
    assert lines_of(data, max_line_bytes=10, chunk_size=8) == [
        (1, b"short"),
        (2, OverlongLine(50)),
        (3, b"after"),
        (4, OverlongLine(30)),
    ]


def test_line_of_exactly_the_limit_is_kept() -> None:
    """The limit is inclusive, and a stripped ``\\r`` does not count against it."""
    assert lines_of(b"x" * 10 + b"\r\n", max_line_bytes=10, chunk_size=3) == [(1, b"x" * 10)]
    assert lines_of(b"x" * 11 + b"\n", max_line_bytes=10) == [(1, OverlongLine(11))]


@settings(max_examples=500, deadline=None)
@given(
    data=st.lists(st.sampled_from([b"a", b"bb", b"\n", b"\r", b"\r\n", b"{}"]), max_size=40).map(
        b"".join
    ),
    max_line_bytes=st.integers(0, 8),
    chunk_size=st.integers(1, 9),
)
def test_any_chunking_gives_the_same_lines_as_splitting_the_whole(
    data: bytes, max_line_bytes: int, chunk_size: int
) -> None:
    """Chunk boundaries never change the lines, their numbers or which ones are over-long."""
    got = [
        (number, "long" if isinstance(line, OverlongLine) else line)
        for number, line in iter_lines(io.BytesIO(data), max_line_bytes, chunk_size)
    ]
    assert got == reference(data, max_line_bytes)


class _Endless(io.RawIOBase):
    """``size`` bytes of ``x`` with no newline, made on demand so the test holds none of it."""

    def __init__(self, size: int) -> None:
        self._left = size

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        size = min(size, self._left)
        self._left -= size
        return b"x" * size


def test_memory_stays_bounded_on_a_huge_line() -> None:
    """A 64 MiB line with a 1 MiB limit is skipped holding about the limit plus a chunk."""
    tracemalloc.start()
    try:
        found = list(iter_lines(_Endless(64 * 1024 * 1024), 1024 * 1024, 256 * 1024))  # type: ignore[arg-type]
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert found == [(1, OverlongLine(64 * 1024 * 1024))]
    assert peak < 4 * 1024 * 1024
