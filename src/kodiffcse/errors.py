"""User-facing errors: one line, no traceback, non-zero exit."""
from __future__ import annotations

import logging
import sys


class UserError(Exception):
    """A problem with the user's input or settings, reported as one line by the CLI."""

    def __init__(self, message: str, *, path: str | None = None, line: int | None = None):
        where = ""
        if path is not None:
            where = f"{path}:{line}: " if line is not None else f"{path}: "
        super().__init__(where + message)
        self.path = path
        self.line = line


def count(n: int, noun: str, plural: str | None = None) -> str:
    """'1 sentence', '2,888 sentences': numbers in messages, with thousands separators and the right number."""
    return f"{n:,} {noun if n == 1 else plural or noun + 's'}"


class _CurrentStderr(logging.Handler):
    """Writes to whatever sys.stderr is at the time (a StreamHandler keeps the one it was created with)."""

    def emit(self, record: logging.LogRecord) -> None:
        print(self.format(record), file=sys.stderr)


_log = logging.getLogger("kodiffcse")
if not _log.handlers:  # as transformers does for its own logger: plain lines on stderr by default
    _log.addHandler(_CurrentStderr())
    _log.propagate = False


def warn(message: str) -> None:
    """A one-line warning on stderr, without the source line that warnings.warn prints."""
    _log.warning(message)
