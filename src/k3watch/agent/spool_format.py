"""The frames of the agent's spool: how one batch is laid out in a segment, written and read.

A frame is one batch of one source: a 16-byte prefix (magic ``K3SF``, header length, body
length, CRC-32 of header and body, big-endian), a JSON header (source name, server label,
format, event count, first and last event time, when it was written, the body's encoding) and
the body: one JSON object per line, compressed (``zstd`` unless ``agent.compression`` says
otherwise). It is sent as it is stored, so a batch is compressed once however often it is
sent, and the spool holds many times more events than its size in JSON.
"""

from __future__ import annotations

import gzip
import struct
import threading
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import orjson
import zstandard

MAGIC = b"K3SF"
PREFIX = struct.Struct(">4sIII")  # magic, header length, body length, CRC-32
MAX_HEADER_BYTES = 64 * 1024
MAX_BODY_BYTES = 1024 * 1024 * 1024
ZSTD, GZIP, IDENTITY = "zstd", "gzip", "identity"
ENCODINGS = (ZSTD, GZIP, IDENTITY)

# (segment number, byte offset): frames before it are done.
Cursor = tuple[int, int]


class SpoolError(Exception):
    """A frame that cannot be read back (damaged on disk)."""


@dataclass(frozen=True, slots=True)
class FrameHeader:
    """What a frame holds: ``count`` events of the source ``source`` (filed on the server
    under ``label``, read as ``format``), written at ``written``, with event times from
    ``first_time`` to ``last_time`` when known (epoch seconds)."""

    source: str
    label: str
    format: str
    count: int
    first_time: float | None = None
    last_time: float | None = None
    written: float = 0.0
    encoding: str = IDENTITY
    """How the body is compressed: ``zstd``, ``gzip`` or ``identity`` (the HTTP names)."""

    def encode(self) -> bytes:
        return orjson.dumps(
            {
                "source": self.source,
                "label": self.label,
                "format": self.format,
                "count": self.count,
                "first_time": self.first_time,
                "last_time": self.last_time,
                "written": self.written,
                "encoding": self.encoding,
            }
        )

    @classmethod
    def decode(cls, data: bytes) -> FrameHeader:
        obj: Any = orjson.loads(data)
        if type(obj) is not dict:
            raise ValueError("the frame header is not a JSON object")
        return cls(
            source=str(obj["source"]),
            label=str(obj["label"]),
            format=str(obj["format"]),
            count=int(obj["count"]),
            first_time=_number(obj.get("first_time")),
            last_time=_number(obj.get("last_time")),
            written=_number(obj.get("written")) or 0.0,
            encoding=check_encoding(obj.get("encoding", IDENTITY)),
        )


def check_encoding(value: object) -> str:
    """``value`` if it is a body encoding this spool knows; ValueError if not."""
    if value not in ENCODINGS:
        raise ValueError(f"unknown body encoding {value!r}")
    return str(value)


def _number(value: object) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


@dataclass(frozen=True, slots=True)
class Frame:
    """One batch read back from the spool, at ``offset`` in ``segment`` (up to ``end``)."""

    segment: int
    offset: int
    end: int
    header: FrameHeader
    body: bytes

    @property
    def cursor(self) -> Cursor:
        return (self.segment, self.offset)

    @property
    def lines(self) -> list[bytes]:
        """The events, one JSON object each (without newline)."""
        return decompress(self.body, self.header.encoding).splitlines()


def compress(data: bytes, encoding: str) -> bytes:
    """``data`` compressed as ``encoding`` (``zstd`` at level 1, ``gzip`` at level 1)."""
    if encoding == ZSTD:
        return _zstd_compressor().compress(data)
    if encoding == GZIP:
        return gzip.compress(data, compresslevel=1)
    return data


def decompress(data: bytes, encoding: str) -> bytes:
    if encoding == ZSTD:
        return zstandard.ZstdDecompressor().decompress(data)
    if encoding == GZIP:
        return gzip.decompress(data)
    return data


_compressors = threading.local()


def _zstd_compressor() -> zstandard.ZstdCompressor:
    # One per thread (a compressor is not thread-safe), kept: making one allocates its tables.
    compressor: zstandard.ZstdCompressor | None = getattr(_compressors, "zstd", None)
    if compressor is None:
        compressor = _compressors.zstd = zstandard.ZstdCompressor(level=1)
    return compressor


def encode_frame(header: FrameHeader, lines: Sequence[bytes]) -> list[bytes]:
    """A frame's parts: prefix, header and body (``lines`` joined by newlines, compressed as
    ``header.encoding``)."""
    head = header.encode()
    body = compress(b"\n".join(lines) + b"\n", header.encoding) if lines else b""
    crc = zlib.crc32(body, zlib.crc32(head))
    return [PREFIX.pack(MAGIC, len(head), len(body), crc), head, body]


@dataclass(frozen=True, slots=True)
class LocatedFrame:
    """A frame's header as found on disk, and where its parts are."""

    header: FrameHeader
    head: bytes
    crc: int
    end: int
    body_length: int


def read_header(stream: Any, offset: int, size: int) -> LocatedFrame:
    """The header of the frame at ``offset`` in a segment of ``size`` bytes (the stream is
    then at its body)."""
    stream.seek(offset)
    prefix = stream.read(PREFIX.size)
    if len(prefix) < PREFIX.size:
        raise SpoolError("incomplete frame prefix")
    magic, head_length, body_length, crc = PREFIX.unpack(prefix)
    if magic != MAGIC:
        raise SpoolError("no frame starts here")
    if head_length > MAX_HEADER_BYTES or body_length > MAX_BODY_BYTES:
        raise SpoolError("frame lengths out of range")
    end = offset + PREFIX.size + head_length + body_length
    if end > size:
        raise SpoolError("frame cut short")
    head = stream.read(head_length)
    try:
        header = FrameHeader.decode(head)
    except (ValueError, KeyError, TypeError) as exc:
        raise SpoolError(f"unreadable frame header: {exc}") from exc
    return LocatedFrame(header, head, crc, end, body_length)


def read_body(stream: Any, located: LocatedFrame) -> bytes:
    """The body of a frame whose header was just read, its CRC checked."""
    body: bytes = stream.read(located.body_length)
    if len(body) != located.body_length or zlib.crc32(body, zlib.crc32(located.head)) != (
        located.crc
    ):
        raise SpoolError("checksum mismatch")
    return body
