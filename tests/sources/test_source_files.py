"""resolve_inputs and open_input: rotated-log ordering, gzip by magic bytes, errors, stdin."""

from __future__ import annotations

import builtins
import errno
import gzip
import io
import os
import sys
from pathlib import Path

import pytest

from k3watch.errors import InputError
from k3watch.sources.files import InputFile, iter_lines, open_input, resolve_inputs
from k3watch.telemetry import Counters


def resolve(*paths: str | Path) -> tuple[list[InputFile], list[InputError], Counters]:
    errors: list[InputError] = []
    counters = Counters("sources")
    inputs = resolve_inputs([str(p) for p in paths], errors.append, counters)
    return inputs, errors, counters


def read_all(inp: InputFile) -> bytes:
    with open_input(inp) as stream:
        return stream.read()


def input_for(path: Path) -> InputFile:
    return InputFile(str(path), path, path.stat().st_size)


def test_directory_expands_to_audit_logs_oldest_first(tmp_path: Path) -> None:
    """Lumberjack backups by timestamp, then logrotate .N from high to low, then the live file."""
    names = [
        "audit.log",
        "audit.log.1",
        "audit.log.2.gz",
        "audit.log.10",
        "audit-2024-05-01T10-20-30.123.log",
        "audit-2024-04-30T09-00-00.000.log.gz",
        "audit-2024-05-01T09-00-00.000.log",
        "webhook.json",
        "k3s.ndjson",
        "events.jsonl.gz",
    ]
    for name in names:
        (tmp_path / name).write_bytes(b"{}\n")
    inputs, errors, _ = resolve(tmp_path)
    assert [Path(inp.name).name for inp in inputs] == [
        "audit-2024-04-30T09-00-00.000.log.gz",
        "audit-2024-05-01T09-00-00.000.log",
        "audit-2024-05-01T10-20-30.123.log",
        "audit.log.10",
        "audit.log.2.gz",
        "audit.log.1",
        "audit.log",
        "events.jsonl.gz",
        "k3s.ndjson",
        "webhook.json",
    ]
    assert errors == []
    assert all(inp.size == 3 and inp.path is not None for inp in inputs)


def test_directory_skips_hidden_files_other_names_and_subdirectories(tmp_path: Path) -> None:
    """Only audit log names are taken; the rest is counted in files_skipped by reason."""
    (tmp_path / "audit.log").write_bytes(b"")
    (tmp_path / ".audit.log.swp").write_bytes(b"")
    (tmp_path / "notes.txt").write_bytes(b"")
    (tmp_path / "policy.yaml").write_bytes(b"")
    (tmp_path / "old.log").mkdir()
    (tmp_path / "nested").mkdir()
    (tmp_path / "nested" / "audit.log").write_bytes(b"")
    inputs, errors, counters = resolve(tmp_path)
    assert [Path(inp.name).name for inp in inputs] == ["audit.log"]
    assert errors == []
    assert counters.by_reason("files_skipped") == {
        "hidden": 1,
        "not_a_file": 1,
        "not_audit_name": 3,
    }


def test_paths_keep_their_order_and_dash_means_stdin(tmp_path: Path) -> None:
    """Inputs come in the order given; ``-`` is stdin with no path and no size."""
    (tmp_path / "b.log").write_bytes(b"12345")
    (tmp_path / "a.log").write_bytes(b"1")
    inputs, _, counters = resolve(tmp_path / "b.log", "-", tmp_path / "a.log")
    assert inputs == [
        InputFile(str(tmp_path / "b.log"), tmp_path / "b.log", 5),
        InputFile("<stdin>", None, None),
        InputFile(str(tmp_path / "a.log"), tmp_path / "a.log", 1),
    ]
    assert counters.get("files") == 3


def test_missing_path_is_reported_and_the_others_are_kept(tmp_path: Path) -> None:
    """A missing path gives one not_found diagnostic naming it; resolving does not raise."""
    (tmp_path / "audit.log").write_bytes(b"")
    missing = tmp_path / "nope.log"
    inputs, errors, counters = resolve(missing, tmp_path / "audit.log")
    assert [inp.name for inp in inputs] == [str(tmp_path / "audit.log")]
    assert [(str(e.location), e.reason) for e in errors] == [(str(missing), "not_found")]
    assert counters.get("files_failed", reason="not_found") == 1


def test_directory_without_audit_logs_is_reported(tmp_path: Path) -> None:
    """Scanning a directory that holds no audit log says so instead of finding nothing."""
    (tmp_path / "README.md").write_bytes(b"")
    inputs, errors, _ = resolve(tmp_path)
    assert inputs == []
    assert [e.reason for e in errors] == ["no_audit_files"]


@pytest.mark.skipif(
    hasattr(os, "geteuid") and os.geteuid() == 0, reason="root reads files whatever their mode"
)
def test_unreadable_file_is_reported_as_permission_denied(tmp_path: Path) -> None:
    """A file with mode 000 gives a permission_denied diagnostic, from resolve and open."""
    path = tmp_path / "audit.log"
    path.write_bytes(b"{}\n")
    path.chmod(0)
    try:
        inputs, errors, _ = resolve(path)
        assert inputs == []
        assert [e.reason for e in errors] == ["permission_denied"]
        with pytest.raises(InputError) as raised:
            open_input(InputFile(str(path), path, 3))
        assert raised.value.reason == "permission_denied"
    finally:
        path.chmod(0o600)


def test_permission_denied_is_reported_with_a_hint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """EACCES (simulated, so it also runs as root) becomes permission_denied with a hint."""
    path = tmp_path / "audit.log"
    path.write_bytes(b"{}\n")
    monkeypatch.setattr(os, "access", lambda *_args, **_kw: False)
    inputs, errors, _ = resolve(path, tmp_path)
    assert inputs == []
    assert [e.reason for e in errors] == ["permission_denied", "permission_denied"]
    assert "0700" in errors[0].hint

    def refuse(*_args: object, **_kw: object) -> object:
        raise PermissionError(errno.EACCES, "Permission denied")

    monkeypatch.setattr(builtins, "open", refuse)
    with pytest.raises(InputError) as raised:
        open_input(input_for(path))
    assert raised.value.reason == "permission_denied"
    assert str(raised.value.location) == str(path)


def test_open_input_on_a_missing_file_raises_a_located_input_error(tmp_path: Path) -> None:
    """A file removed after resolving raises InputError(not_found), not OSError."""
    path = tmp_path / "gone.log"
    with pytest.raises(InputError) as raised:
        open_input(InputFile("gone.log", path, 10))
    assert (str(raised.value.location), raised.value.reason) == ("gone.log", "not_found")


def test_gzip_is_detected_by_magic_bytes_not_by_name(tmp_path: Path) -> None:
    """A gzip file named .log is decompressed; a plain file named .gz is read as is."""
    disguised = tmp_path / "audit.log"
    disguised.write_bytes(gzip.compress(b'{"a":1}\n'))
    plain = tmp_path / "audit.log.1.gz"
    plain.write_bytes(b'{"b":2}\n')
    assert read_all(input_for(disguised)) == b'{"a":1}\n'
    assert read_all(input_for(plain)) == b'{"b":2}\n'


def test_concatenated_gzip_members_are_all_read(tmp_path: Path) -> None:
    """``cat a.gz b.gz c.gz`` reads as the three contents one after another."""
    path = tmp_path / "audit.log.gz"
    path.write_bytes(b"".join(gzip.compress(f"line {n}\n".encode()) for n in range(3)))
    assert read_all(input_for(path)) == b"line 0\nline 1\nline 2\n"


def test_zero_padding_after_the_last_gzip_member_is_ignored(tmp_path: Path) -> None:
    """Trailing NUL bytes (as left by some copy tools) end the stream cleanly, as gzip(1) does."""
    path = tmp_path / "audit.log.gz"
    path.write_bytes(gzip.compress(b"x\n") + b"\0" * 512)
    assert read_all(input_for(path)) == b"x\n"


def test_corrupt_gzip_raises_input_error_after_the_good_data(tmp_path: Path) -> None:
    """Garbage after a member fails as invalid_gzip once the member has been read."""
    path = tmp_path / "audit.log.gz"
    path.write_bytes(gzip.compress(b"good\n") + b"\x1f\x8b garbage that is not deflate")
    with open_input(input_for(path)) as stream:
        assert stream.read(100) == b"good\n"
        with pytest.raises(InputError) as raised:
            stream.read(100)
    assert raised.value.reason == "invalid_gzip"


def test_progress_reports_on_disk_bytes_for_plain_and_gzip_files(tmp_path: Path) -> None:
    """on_progress adds up to the file size, compressed bytes for a gzip file."""
    payload = b"".join(b'{"n":%d}\n' % n for n in range(50_000))
    for name, content in [("plain.log", payload), ("packed.log.gz", gzip.compress(payload))]:
        path = tmp_path / name
        path.write_bytes(content)
        seen: list[int] = []
        with open_input(input_for(path), seen.append) as stream:
            assert sum(1 for _ in iter_lines(stream, 1000, chunk_size=4096)) == 50_000
        assert sum(seen) == len(content), name
        assert len(seen) > 1, "progress should come in steps, not all at once"


def test_open_input_on_a_directory_raises_is_a_directory(tmp_path: Path) -> None:
    """A directory passed to open_input is a located error, not an OSError."""
    with pytest.raises(InputError) as raised:
        open_input(InputFile(str(tmp_path), tmp_path, None))
    assert raised.value.reason == "is_a_directory"


def test_closing_the_stream_closes_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The file descriptor is released when the returned stream is closed (gzip or not)."""
    opened: list[io.IOBase] = []
    real_open = builtins.open

    def recording_open(*args: object, **kwargs: object) -> object:
        handle = real_open(*args, **kwargs)  # type: ignore[call-overload]
        opened.append(handle)
        return handle

    monkeypatch.setattr(builtins, "open", recording_open)
    for name, content in [("audit.log", b"x\n"), ("audit.log.1", gzip.compress(b"x\n"))]:
        path = tmp_path / name
        path.write_bytes(content)
        stream = open_input(input_for(path))
        assert not opened[-1].closed
        stream.close()
        assert opened[-1].closed, name


def fake_stdin(monkeypatch: pytest.MonkeyPatch, data: bytes) -> io.TextIOWrapper:
    stdin = io.TextIOWrapper(io.BytesIO(data))
    monkeypatch.setattr(sys, "stdin", stdin)
    return stdin


def test_stdin_is_read_in_binary(monkeypatch: pytest.MonkeyPatch) -> None:
    """``-`` reads sys.stdin.buffer; closing the stream leaves stdin open."""
    stdin = fake_stdin(monkeypatch, b'{"a":1}\n{"b":2}')
    (inp,) = resolve("-")[0]
    with open_input(inp) as stream:
        assert list(iter_lines(stream, 100)) == [(1, b'{"a":1}'), (2, b'{"b":2}')]
    assert not stdin.buffer.closed


def test_gzip_on_stdin_is_decompressed(monkeypatch: pytest.MonkeyPatch) -> None:
    """``zcat``-free use: compressed bytes piped to stdin are detected and decompressed."""
    fake_stdin(monkeypatch, gzip.compress(b"one\n") + gzip.compress(b"two\n"))
    with open_input(InputFile("<stdin>", None, None)) as stream:
        assert stream.read() == b"one\ntwo\n"


def test_empty_and_one_byte_inputs_are_read(monkeypatch: pytest.MonkeyPatch) -> None:
    """Inputs shorter than the gzip magic are still returned intact."""
    for data in (b"", b"x", b"\x1f"):
        fake_stdin(monkeypatch, data)
        with open_input(InputFile("<stdin>", None, None)) as stream:
            assert stream.read() == data
