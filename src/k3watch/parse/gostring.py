"""Go-quoted strings, as logrus and klog write values (``strconv.Quote``, ``%q``).

``"a \\"b\\"\\n\\xff"`` is read back to the text it came from; escaped bytes that are not UTF-8
(``\\xff``) become U+FFFD.
"""

from __future__ import annotations

import re

# A complete double-quoted Go string starting at the match position.
QUOTED = re.compile(r'"((?:[^"\\]|\\.)*)"', re.DOTALL)

_ESCAPE = re.compile(r"\\(x[0-9a-fA-F]{2}|[0-7]{3}|u[0-9a-fA-F]{4}|U[0-9a-fA-F]{8}|.)", re.DOTALL)
_SIMPLE = {
    "a": "\a",
    "b": "\b",
    "f": "\f",
    "n": "\n",
    "r": "\r",
    "t": "\t",
    "v": "\v",
    "\\": "\\",
    '"': '"',
    "'": "'",
}


def unquote(inner: str) -> str:
    """The text of a Go string literal's inside (without its quotes)."""
    if "\\" not in inner:
        return inner
    # The common escape, \" alone (quoted names in containerd's messages), without the
    # general reading. ASCII only: the general reading turns a lone surrogate into U+FFFD.
    if "\\\\" not in inner and inner.count("\\") == inner.count('\\"') and inner.isascii():
        return inner.replace('\\"', '"')
    out = bytearray()
    position = 0
    for match in _ESCAPE.finditer(inner):
        out += inner[position : match.start()].encode("utf-8", "surrogatepass")
        code = match[1]
        head = code[0]
        if head == "x" and len(code) == 3:
            out.append(int(code[1:], 16))
        elif head in "01234567" and len(code) == 3:
            out.append(int(code, 8) & 0xFF)
        elif head in "uU" and len(code) > 1:
            number = int(code[1:], 16)
            out += (chr(number) if number <= 0x10FFFF else "\ufffd").encode(
                "utf-8", "surrogatepass"
            )
        else:
            out += _SIMPLE.get(head, "\\" + head).encode("utf-8", "surrogatepass")
        position = match.end()
    out += inner[position:].encode("utf-8", "surrogatepass")
    return out.decode("utf-8", errors="replace")


def scan(text: str, position: int) -> tuple[str, int] | None:
    """The Go string starting at ``text[position]`` (a ``"``) and the index after it."""
    match = QUOTED.match(text, position)
    if match is None:
        return None
    return unquote(match[1]), match.end()
