"""The unlabeled corpus as a memory-mapped line index.

A Wikipedia corpus has millions of lines, so nothing is tokenised up front: one vectorised scan records
where each non-blank line starts and how many bytes it has, and checks the whole file is UTF-8 without NUL bytes so bad input fails before any model loads.
Sentences are decoded and tokenised per batch, in the data loader's workers.
"""
from __future__ import annotations

import mmap
import os

import numpy as np

from ..errors import UserError

_CHUNK = 1 << 24
_BOM = b"\xef\xbb\xbf"
_WHITESPACE = np.zeros(256, dtype=bool)
_WHITESPACE[[b for b in range(128) if chr(b).isspace()]] = True  # exactly what str.strip() removes in ASCII
_ASCII_TEXT = np.zeros(256, dtype=bool)
_ASCII_TEXT[[b for b in range(128) if not chr(b).isspace()]] = True


def _text(raw: bytes) -> str:
    """A line as a sentence: stray byte-order marks (from concatenated files) and outer whitespace removed."""
    return raw.decode("utf-8").replace("\ufeff", "").strip()


def check_text_file(path: str, expected: str = "a text file with one sentence per line") -> None:
    """One-line errors for a missing path, or a directory where a file (`expected`) is expected."""
    if not os.path.exists(path):
        raise UserError("no such file", path=path)
    if os.path.isdir(path):
        raise UserError(f"is a directory, expected {expected}", path=path)


def check_text_block(block: bytes, first_line: int, path: str) -> None:
    """One-line errors for a NUL byte or invalid UTF-8 in `block`, whole lines that start at line `first_line`."""
    nul = block.find(b"\0")
    if nul >= 0:
        raise UserError("NUL byte: this does not look like a text file", path=path,
                        line=first_line + block.count(b"\n", 0, nul))
    try:
        block.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise UserError(f"invalid UTF-8 (byte 0x{block[exc.start]:02x})", path=path,
                        line=first_line + block.count(b"\n", 0, exc.start)) from None


def _scan_block(block: bytes, first_line: int, path: str):
    """Return (starts, byte lengths, n_lines) of the non-blank lines in a block that ends with a newline."""
    check_text_block(block, first_line, path)
    arr = np.frombuffer(block, dtype=np.uint8)
    newlines = np.flatnonzero(arr == 10)
    starts = np.concatenate(([0], newlines[:-1] + 1))
    ends = newlines.copy()
    # Per-line sums over [start, next start): the line plus its newline (a reduceat is far cheaper than cumsums).
    nonspace = np.add.reduceat(~_WHITESPACE[arr], starts, dtype=np.int32)
    keep = nonspace > 0  # lines that hold only whitespace count as blank
    # Lines with no visible ASCII may still be blank: Unicode spaces (U+3000, U+2028...) or a stray BOM.
    ascii_text = np.add.reduceat(_ASCII_TEXT[arr], starts, dtype=np.int32)
    for i in np.flatnonzero(keep & (ascii_text == 0)):
        keep[i] = bool(_text(block[starts[i]:ends[i]]))
    crlf = (ends > starts) & (arr[np.maximum(ends - 1, 0)] == 13)
    ends -= crlf
    return starts[keep], (ends - starts)[keep], newlines.size


class LineCorpus:
    """Random access to the non-blank lines of a UTF-8 text file, without loading it."""

    def __init__(self, path: str | os.PathLike):
        self.path = os.fspath(path)
        check_text_file(self.path)
        starts, lengths = [], []
        offset, line_no, carry = 0, 1, b""
        try:
            with open(self.path, "rb") as fh:
                while True:
                    chunk = fh.read(_CHUNK)
                    if offset == 0 and not carry and chunk.startswith(_BOM):
                        chunk, offset = chunk[len(_BOM):], len(_BOM)
                    data = carry + chunk
                    if not chunk:
                        if not data:
                            break
                        data += b"\n"  # last line without a newline
                        cut = len(data)
                    else:
                        cut = data.rfind(b"\n") + 1
                        if cut == 0:
                            carry = data
                            continue
                    s, n, count = _scan_block(data[:cut], line_no, self.path)
                    starts.append(s + offset)
                    lengths.append(n)
                    offset, line_no, carry = offset + cut, line_no + count, data[cut:]
                    if not chunk:
                        break
        except OSError as exc:
            raise UserError(f"cannot read: {exc.strerror}", path=self.path) from None
        self.starts = np.concatenate(starts).astype(np.int64) if starts else np.zeros(0, np.int64)
        self.lengths = np.concatenate(lengths).astype(np.int64) if lengths else np.zeros(0, np.int64)
        if len(self.starts) == 0:
            raise UserError("the corpus has no sentences (empty or only blank lines)", path=self.path)
        self._mm: mmap.mmap | None = None

    def __len__(self) -> int:
        return len(self.starts)

    def __getitem__(self, i: int) -> str:
        if self._mm is None:  # opened lazily so each data-loader worker has its own map
            with open(self.path, "rb") as fh:
                self._mm = mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ)
        start = int(self.starts[i])
        return _text(self._mm[start:start + int(self.lengths[i])])

    def __getstate__(self):
        state = dict(self.__dict__)
        state["_mm"] = None
        return state
