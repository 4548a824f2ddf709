"""User-facing errors: one line, no traceback, non-zero exit."""
from __future__ import annotations


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
