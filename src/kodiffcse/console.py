"""Output that cannot break a run: a pipe whose reader died turns into silence, not an exception.

Ctrl-C on `kodiffcse train ... | tee log` reaches tee too. The run still has a checkpoint to save, and
every later print, progress bar or log line would otherwise raise BrokenPipeError first.
"""
from __future__ import annotations

import contextlib
import os
import sys


class PipeSafe:
    """Wraps a text stream; after the first broken pipe, its file descriptor points at /dev/null."""

    def __init__(self, stream):
        self._stream = stream

    def write(self, text: str) -> int:
        try:
            return self._stream.write(text)
        except BrokenPipeError:
            self._silence()
            return len(text)

    def flush(self) -> None:
        try:
            self._stream.flush()
        except BrokenPipeError:
            self._silence()

    def _silence(self) -> None:
        with contextlib.suppress(OSError, ValueError, AttributeError):
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, self._stream.fileno())  # what is still buffered, and interpreter exit, flush there
            os.close(devnull)

    def __getattr__(self, name):
        return getattr(self._stream, name)


@contextlib.contextmanager
def pipe_safe_output():
    saved = sys.stdout, sys.stderr
    sys.stdout, sys.stderr = PipeSafe(sys.stdout), PipeSafe(sys.stderr)
    try:
        yield
    finally:
        sys.stdout, sys.stderr = saved
