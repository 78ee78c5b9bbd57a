"""How an event is kept: its key and JSON in one zstd frame, compressed with a dictionary.

A stored ``body`` is a magic-less zstd frame of the *envelope*: the event's JSON exactly as
received (after redaction), preceded by its key unless the key is the one the JSON itself gives
(``auditID/stage`` of an audit event). A batch is compressed in one call
(``multi_compress_to_buffer``), with the newest trained dictionary (none until enough events
were written to train one). ``events.z`` is ``dictionary id × 2 + truncated``.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import orjson
import zstandard

from k3watch.store.base import DECISION_ANNOTATION, IncomingEvent, event_key

LEVEL = 3
DICT_SIZE = 64 * 1024
FIRST_TRAINING = 4096
"""Events written before the first dictionary is trained."""
RETRAIN_AT = (131_072, 4_194_304)
"""A new dictionary is trained when the store has this many events, then every
``RETRAIN_EVERY`` events."""
RETRAIN_EVERY = 4_194_304
TRAINING_SAMPLES = 4096
_FORMAT = zstandard.FORMAT_ZSTD1_MAGICLESS

_blake2b = hashlib.blake2b
_from_bytes = int.from_bytes
_INT_LIMIT = 1 << 62


def encode_body(raw: dict[str, Any]) -> bytes:
    """The JSON of an event that came without its encoding."""
    try:
        return orjson.dumps(raw)
    except TypeError:
        pass
    # Values JSON does not have, non-string keys, integers beyond 64 bits: keep what can be kept.
    try:
        return orjson.dumps(raw, default=str, option=orjson.OPT_NON_STR_KEYS)
    except TypeError:
        return json.dumps(raw, default=str, separators=(",", ":"), ensure_ascii=False).encode(
            "utf-8", "surrogatepass"
        )


def _envelope(key: str, raw: dict[str, Any], body: bytes) -> bytes:
    """What is compressed for an event: its JSON alone when the key is the audit event's own
    (``auditID/stage``, read back from the JSON), else a zero byte, the key's length (LEB128),
    the key and the JSON."""
    if body[:1] != b"\x00" and key == event_key(raw, ""):
        return body
    encoded = key.encode("utf-8", "surrogatepass")
    return b"".join((b"\x00", _leb128(len(encoded)), encoded, body))


def _loads(data: bytes) -> Any:
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError:
        return json.loads(data)  # what orjson refuses and JSON parsers accept (NaN…)


def open_envelope(data: bytes) -> tuple[str, dict[str, Any]]:
    """Key and event of a decompressed envelope."""
    if data[:1] != b"\x00":
        raw = _loads(data)
        return event_key(raw, ""), raw
    size = shift = 0
    pos = 1
    while True:
        byte = data[pos]
        pos += 1
        size |= (byte & 0x7F) << shift
        if byte < 0x80:
            break
        shift += 7
    key = data[pos : pos + size].decode("utf-8", "surrogatepass")
    return key, _loads(data[pos + size :])


def _leb128(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _params() -> zstandard.ZstdCompressionParameters:
    return zstandard.ZstdCompressionParameters.from_level(
        LEVEL, format=_FORMAT, write_content_size=True, write_checksum=False, write_dict_id=False
    )


class Compressor:
    """Compresses batches of envelopes with one dictionary (the writer's; not thread-safe)."""

    def __init__(self, dict_id: int, data: bytes | None) -> None:
        self.dict_id = dict_id
        self.sha = hashlib.sha256(data).digest() if data is not None else bytes(32)
        params = _params()
        dictionary = None
        if data is not None:
            dictionary = zstandard.ZstdCompressionDict(data)
            dictionary.precompute_compress(compression_params=params)  # not reloaded per frame
        self._cctx = zstandard.ZstdCompressor(dict_data=dictionary, compression_params=params)

    def compress(self, envelopes: Sequence[bytes]) -> list[bytes]:
        if len(envelopes) < 8:
            return [self._cctx.compress(e) for e in envelopes]
        result = self._cctx.multi_compress_to_buffer(list(envelopes), threads=0)
        return [result[i].tobytes() for i in range(len(result))]


def train(samples: Sequence[bytes]) -> bytes:
    """A zstd dictionary for envelopes like ``samples``."""
    dictionary = zstandard.train_dictionary(DICT_SIZE, list(samples), level=LEVEL)
    return bytes(dictionary.as_bytes())


def next_training(events: int) -> int:
    """The event count at which the dictionary after one trained at ``events`` is due."""
    for mark in (FIRST_TRAINING, *RETRAIN_AT):
        if events < mark:
            return mark
    return (events // RETRAIN_EVERY + 1) * RETRAIN_EVERY


class Decompressors:
    """Decompression per dictionary id, one context per thread (contexts are not shared)."""

    def __init__(self) -> None:
        self._dicts: dict[int, bytes | None] = {0: None}
        self._lock = threading.Lock()
        self._local = threading.local()

    def known(self, dict_id: int) -> bool:
        return dict_id in self._dicts

    def add(self, dict_id: int, data: bytes) -> None:
        with self._lock:
            self._dicts[dict_id] = data

    def decompress(self, dict_id: int, frame: bytes) -> bytes:
        contexts: dict[int, zstandard.ZstdDecompressor] | None = getattr(
            self._local, "contexts", None
        )
        if contexts is None:
            contexts = self._local.contexts = {}
        dctx = contexts.get(dict_id)
        if dctx is None:
            data = self._dicts[dict_id]
            dictionary = zstandard.ZstdCompressionDict(data) if data is not None else None
            dctx = contexts[dict_id] = zstandard.ZstdDecompressor(
                dict_data=dictionary, format=_FORMAT
            )
        return dctx.decompress(frame)


Fields = tuple[
    str | None,
    str | None,
    str | None,
    str | None,
    str | None,
    str | None,
    str | None,
    str | None,
    str | None,
    int,
]
"""user, verb, resource, namespace, name, source IP, decision, stage, text, code."""


def key_hash(key: str) -> int:
    return _from_bytes(
        _blake2b(key.encode("utf-8", "surrogatepass"), digest_size=8).digest(), "big", signed=True
    )


def envelope(event: IncomingEvent) -> bytes:
    """What is compressed into ``body`` for an event (``codec.envelope``)."""
    body = event.body
    if body is None:
        body = encode_body(event.raw)
    raw = event.raw
    audit_id, stage = raw.get("auditID"), raw.get("stage")
    if (
        type(audit_id) is str
        and type(stage) is str
        and audit_id
        and event.key == f"{audit_id}/{stage}"
        and body[:1] != b"\x00"
    ):
        return body  # the key is read back from the JSON (codec.envelope)
    return _envelope(event.key, raw, body)


def extract(
    raw: dict[str, Any],
    _type: type[type] = type,
    _str: type[str] = str,
    _dict: type[dict[Any, Any]] = dict,
    _list: type[list[Any]] = list,
    _int: type[int] = int,
) -> Fields:
    """What ``base.field_values`` reads, as a tuple (see ``Fields``); code 0 when absent.
    (Builtins are bound as defaults: this runs once per event.)"""
    get = raw.get
    user: Any = get("user")
    ref: Any = get("objectRef")
    status: Any = get("responseStatus")
    annotations: Any = get("annotations")
    ips: Any = get("sourceIPs")
    verb: Any = get("verb")
    stage: Any = get("stage")
    text: Any = get("requestURI")
    if text is None:
        text = get("message")
    code: Any = status.get("code") if _type(status) is _dict else None
    resource: Any
    namespace: Any
    name: Any
    if _type(ref) is _dict:
        resource, namespace, name = ref.get("resource"), ref.get("namespace"), ref.get("name")
    else:
        resource = namespace = name = None
    username: Any = user.get("username") if _type(user) is _dict else None
    ip: Any = ips[0] if _type(ips) is _list and ips else None
    decision: Any = annotations.get(DECISION_ANNOTATION) if _type(annotations) is _dict else None
    return (
        username if _type(username) is _str else None,
        verb if _type(verb) is _str else None,
        resource if _type(resource) is _str else None,
        namespace if _type(namespace) is _str else None,
        name if _type(name) is _str else None,
        ip if _type(ip) is _str else None,
        decision if _type(decision) is _str else None,
        stage if _type(stage) is _str else None,
        text if _type(text) is _str else None,
        code if _type(code) is _int and -_INT_LIMIT < code < _INT_LIMIT else 0,
    )


@dataclass(slots=True)
class Rows:
    """A batch's events as the writer inserts them, computed away from it (``RowEncoder``):
    key, key hash, time, field values, compressed envelope and truncation flag per event, and
    the dictionary every frame was compressed with."""

    keys: list[str]
    hashes: list[int]
    times: list[float]
    fields: list[Fields]
    frames: list[bytes]
    truncated: list[bool]
    dict_id: int

    def __len__(self) -> int:
        return len(self.keys)

    def select(self, keep: Sequence[bool]) -> Rows:
        """The rows whose flag in ``keep`` is true."""

        def pick(column: list[Any]) -> list[Any]:
            return [value for value, wanted in zip(column, keep, strict=True) if wanted]

        return Rows(
            pick(self.keys),
            pick(self.hashes),
            pick(self.times),
            pick(self.fields),
            pick(self.frames),
            pick(self.truncated),
            self.dict_id,
        )


def encode_rows(
    events: Sequence[IncomingEvent], compressor: Compressor, hashes: list[int] | None = None
) -> Rows:
    """The rows of ``events``, compressed with ``compressor``'s dictionary (``hashes``: their
    key hashes, when the caller has them)."""
    keys = [e.key for e in events]
    return Rows(
        keys,
        hashes if hashes is not None else list(map(key_hash, keys)),
        [e.time for e in events],
        [extract(e.raw) for e in events],
        compressor.compress([envelope(e) for e in events]),
        [e.truncated for e in events],
        compressor.dict_id,
    )


@dataclass(frozen=True, slots=True)
class RowEncoder:
    """Encodes events into ``Rows`` in any process (it pickles as a path and a dictionary id):
    the dictionary is read from the store file once per process and kept."""

    path: str
    dict_id: int

    def encode(self, events: Sequence[IncomingEvent]) -> Rows:
        rows = encode_rows(events, _compressor(self.path, self.dict_id))
        # One object per distinct value: the rows cross to the writer's process pickled, and
        # pickle sends an object it has seen as a reference (most values repeat in a batch).
        seen: dict[object, Any] = {}
        same = seen.setdefault
        rows.fields = [tuple(map(same, values, values)) for values in rows.fields]
        return rows


_local = threading.local()


def _compressor(path: str, dict_id: int) -> Compressor:
    """This thread's compressor for a dictionary of the store at ``path``."""
    cache: dict[tuple[str, int], Compressor] | None = getattr(_local, "compressors", None)
    if cache is None:
        cache = _local.compressors = {}
    found = cache.get((path, dict_id))
    if found is None:
        data = None
        if dict_id:
            db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
            try:
                row = db.execute("SELECT data FROM dicts WHERE id = ?", (dict_id,)).fetchone()
            finally:
                db.close()
            if row is None:
                raise LookupError(f"{path}: no compression dictionary {dict_id}")
            data = bytes(row[0])
        if len(cache) >= 4:  # older dictionaries are not used for new events again
            cache.clear()
        found = cache[path, dict_id] = Compressor(dict_id, data)
    return found
