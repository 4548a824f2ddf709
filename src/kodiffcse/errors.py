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
