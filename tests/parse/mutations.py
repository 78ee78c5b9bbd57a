"""Damage done to valid input lines by the parser fuzz tests."""

from __future__ import annotations

from hypothesis import strategies as st


def mutate(draw: st.DrawFn, text: bytes) -> bytes:
    """``text`` with up to four bytes deletions, insertions, flips or a cut."""
    line = bytearray(text)
    for _ in range(draw(st.integers(0, 4))):
        position = draw(st.integers(0, len(line)))
        match draw(st.sampled_from(["delete", "insert", "flip", "cut"])):
            case "delete":
                del line[position : position + draw(st.integers(1, 20))]
            case "insert":
                line[position:position] = draw(st.binary(min_size=1, max_size=8))
            case "flip" if position < len(line):
                line[position] ^= draw(st.integers(1, 255))
            case "cut":
                del line[position:]
    return bytes(line)


def joined(draw: st.DrawFn, lines: list[bytes]) -> bytes:
    """The lines joined with ``\\n`` or ``\\r\\n`` newlines."""
    return draw(st.sampled_from([b"\n", b"\r\n"])).join(lines)
