"""Request bodies are decoded in the ingest workers, to the same limits as before decoding."""

from __future__ import annotations

import gzip
import zlib

import pytest
import zstandard

from k3watch.server.prepare import BodyRefused, decompress

LIMIT = 1000


@pytest.mark.parametrize(
    ("encoding", "encode"),
    [
        ("identity", lambda data: data),
        ("gzip", gzip.compress),
        ("zstd", zstandard.ZstdCompressor().compress),
        ("deflate", zlib.compress),
    ],
)
def test_each_encoding_decodes(encoding: str, encode: object) -> None:
    data = b'{"a": 1}\n' * 50
    assert decompress(encode(data), encoding, LIMIT) == data  # type: ignore[operator]


def test_concatenated_gzip_members_are_one_body() -> None:
    body = gzip.compress(b"first\n") + gzip.compress(b"second\n")
    assert decompress(body, "gzip", LIMIT) == b"first\nsecond\n"


@pytest.mark.parametrize("encoding", ["gzip", "zstd", "deflate"])
def test_a_body_over_the_limit_once_decoded_is_a_413(encoding: str) -> None:
    data = b"x" * (LIMIT * 50)
    body = {
        "gzip": gzip.compress,
        "zstd": zstandard.ZstdCompressor().compress,
        "deflate": zlib.compress,
    }[encoding](data)
    assert len(body) < LIMIT
    with pytest.raises(BodyRefused) as refused:
        decompress(body, encoding, LIMIT)
    assert refused.value.status == 413


def test_a_truncated_gzip_body_is_a_400() -> None:
    body = gzip.compress(b"some events\n" * 20)[:-12]
    with pytest.raises(BodyRefused) as refused:
        decompress(body, "gzip", LIMIT)
    assert refused.value.status == 400
    assert "gzip" in str(refused.value)


def test_an_unknown_encoding_is_a_415() -> None:
    with pytest.raises(BodyRefused) as refused:
        decompress(b"data", "br", LIMIT)
    assert refused.value.status == 415
