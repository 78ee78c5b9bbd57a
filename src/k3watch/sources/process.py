"""A child process whose output is read line by line, as the journald source runs journalctl.

A thread reads the child's standard output into a bounded queue: when the consumer falls
behind the queue fills, the thread blocks, the pipe fills and the child waits, so no line is
ever dropped. Lines over the limit keep their first bytes and are marked cut. Standard error
goes to a temporary file, whose last line explains an exit.
"""

from __future__ import annotations

import contextlib
import queue
import subprocess
import tempfile
import threading
from collections.abc import Sequence
from typing import Literal

LINE: Literal["line"] = "line"
CUT: Literal["cut"] = "cut"
END: Literal["end"] = "end"
Kind = Literal["line", "cut", "end"]

_STDERR_TAIL = 64 * 1024


class LineProcess:
    """Runs ``command``; :meth:`get` hands out its output lines, then ``("end", b"")``.

    Raises OSError when the program cannot be started.
    """

    def __init__(
        self, command: Sequence[str], *, max_line_bytes: int, queue_lines: int, name: str
    ) -> None:
        self.max_line_bytes = max_line_bytes
        self._lines: queue.Queue[tuple[Kind, bytes]] = queue.Queue(maxsize=queue_lines)
        self._stderr = tempfile.TemporaryFile()  # noqa: SIM115 - closed by wait() or stop()
        try:
            self._process = subprocess.Popen(
                list(command),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=self._stderr,
            )
        except OSError:
            self._stderr.close()
            raise
        self._reader = threading.Thread(target=self._read, name=f"{name}-reader", daemon=True)
        self._reader.start()

    @property
    def pid(self) -> int:
        return self._process.pid

    def get(self, timeout: float) -> tuple[Kind, bytes] | None:
        """The next line (``line`` or ``cut``) or the ``end``; ``None`` if none came in time."""
        try:
            if timeout <= 0:
                return self._lines.get_nowait()
            return self._lines.get(timeout=timeout)
        except queue.Empty:
            return None

    def wait(self) -> tuple[int, str]:
        """After the ``end``: the exit status and the last line of standard error."""
        status = self._process.wait()
        self._reader.join()
        self._close()
        return status, self._stderr_line()

    def stop(self) -> None:
        """Terminate the child (killed if it does not exit within 5 s) and the reader."""
        self._process.terminate()
        try:
            self._process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()
        # The reader may wait on a full queue: empty it until the reader is gone.
        while self._reader.is_alive():
            with contextlib.suppress(queue.Empty):
                self._lines.get(timeout=0.05)
        self._close()
        self._stderr.close()

    def _read(self) -> None:
        stdout = self._process.stdout
        assert stdout is not None
        limit = self.max_line_bytes
        put = self._lines.put
        try:
            while line := stdout.readline(limit + 1):
                if line.endswith(b"\n"):
                    put((LINE, line[:-1]))
                elif len(line) <= limit:  # the last line, without a newline
                    put((LINE, line))
                else:
                    while (rest := stdout.readline(limit)) and not rest.endswith(b"\n"):
                        pass  # the rest of an over-long line
                    put((CUT, line[:limit]))
        except (OSError, ValueError):
            pass  # the pipe was closed by stop()
        put((END, b""))

    def _close(self) -> None:
        if self._process.stdout is not None:
            self._process.stdout.close()

    def _stderr_line(self) -> str:
        with self._stderr:
            size = self._stderr.seek(0, 2)
            self._stderr.seek(max(0, size - _STDERR_TAIL))
            text = self._stderr.read().decode(errors="replace").strip()
        return text.splitlines()[-1] if text else ""
