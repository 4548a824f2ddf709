"""Readers for STS pair files: KorSTS TSV, the reference's 3-column TSV, KLUE-STS JSON, CSV/TSV/JSONL.

TSV is split on tabs and never through a CSV reader: KorSTS has unbalanced double quotes that make
pandas raise (train line 2096, dev line 711) and other readers silently merge rows.
Every problem names file and line; with skip_invalid the row is skipped and counted instead.
"""
from __future__ import annotations

import csv
import io
import json
import math
import os
from dataclasses import dataclass, field

from ..errors import UserError
from .corpus import check_text_file

FORMATS = ("korsts", "tsv3", "klue-json", "csv", "jsonl")
_MAX_SCORE = 5.0


@dataclass
class STSData:
    path: str
    format: str
    sentences1: list[str] = field(default_factory=list)
    sentences2: list[str] = field(default_factory=list)
    scores: list[float] = field(default_factory=list)  # normalised to 0-1
    skipped: list[tuple[int, str]] = field(default_factory=list)  # (line, reason)

    def __len__(self) -> int:
        return len(self.scores)


class _RowError(Exception):
    pass


def _read_bytes(path: str) -> bytes:
    check_text_file(path, "an STS file")
    try:
        with open(path, "rb") as fh:
            data = fh.read()
    except OSError as exc:
        raise UserError(f"cannot read: {exc.strerror}", path=path) from None
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    if not data.strip():
        raise UserError("the file is empty", path=path)
    return data


def _decode_lines(data: bytes, path: str, skip_invalid: bool, skipped: list) -> list[tuple[int, str]]:
    """Split into (line number, text) pairs; invalid UTF-8 or NUL bytes are row errors."""
    out = []
    for i, raw in enumerate(data.split(b"\n"), start=1):
        raw = raw.rstrip(b"\r")
        try:
            if b"\x00" in raw:
                raise _RowError("NUL byte")
            text = raw.decode("utf-8")
        except (UnicodeDecodeError, _RowError) as exc:
            reason = "invalid UTF-8" if isinstance(exc, UnicodeDecodeError) else str(exc)
            if not skip_invalid:
                raise UserError(reason, path=path, line=i) from None
            skipped.append((i, reason))
            continue
        out.append((i, text))
    return out


def _row(s1, s2, score, max_score: float) -> tuple[str, str, float]:
    if not isinstance(s1, str) or not isinstance(s2, str):
        raise _RowError("sentence1 and sentence2 must be text")
    s1, s2 = s1.strip(), s2.strip()
    if not s1 or not s2:
        raise _RowError("empty sentence")
    try:
        value = float(score)
    except (TypeError, ValueError, OverflowError):
        raise _RowError(f"score {str(score)[:40]!r} is not a number") from None
    if not math.isfinite(value) or not 0.0 <= value <= max_score:
        raise _RowError(f"score {value:g} is outside [0, {max_score:g}]")
    return s1, s2, value / max_score


def detect_format(path: str, data: bytes) -> str:
    ext = os.path.splitext(path)[1].lower()
    if ext == ".json":
        return "klue-json"
    if ext == ".jsonl":
        return "jsonl"
    if ext == ".csv":
        return "csv"
    first = data.split(b"\n", 1)[0].rstrip(b"\r").decode("utf-8", errors="replace")
    header = [c.strip().lower() for c in first.split("\t")]
    if {"sentence1", "sentence2", "score"} & set(header):  # a header, even one lacking a column (named then)
        return "korsts"
    return "tsv3"


def read_sts(path: str | os.PathLike, fmt: str | None = None, max_score: float | None = None,
             skip_invalid: bool = False) -> STSData:
    """Read an STS file; `fmt` forces a format, `max_score` overrides the format's maximum (5)."""
    path = os.fspath(path)
    data = _read_bytes(path)
    fmt = fmt or detect_format(path, data)
    if fmt not in FORMATS:
        raise UserError(f"unknown format {fmt!r}; choose one of {', '.join(FORMATS)}", path=path)
    top = max_score if max_score is not None else _MAX_SCORE
    result = STSData(path=path, format=fmt)

    def add(line: int, make) -> None:
        try:
            s1, s2, score = make()
        except _RowError as exc:
            if not skip_invalid:
                raise UserError(str(exc), path=path, line=line) from None
            result.skipped.append((line, str(exc)))
            return
        result.sentences1.append(s1)
        result.sentences2.append(s2)
        result.scores.append(score)

    if fmt in ("korsts", "tsv3"):
        lines = _decode_lines(data, path, skip_invalid, result.skipped)
        if fmt == "korsts":
            if not lines or lines[0][0] != 1:
                raise UserError("the header line is unreadable", path=path, line=1)
            (_, header_line), lines = lines[0], lines[1:]
            header = [c.strip().lower() for c in header_line.split("\t")]
            missing = {"sentence1", "sentence2", "score"} - set(header)
            if missing:
                raise UserError(f"header lacks column(s) {', '.join(sorted(missing))}", path=path, line=1)
            idx = [header.index("sentence1"), header.index("sentence2"), header.index("score")]
            width = len(header)
        else:
            idx, width = [0, 1, 2], 3
        hint = "" if fmt == "korsts" else " (sentence1, sentence2, score; or a header row naming its columns)"
        for line, text in lines:
            if not text.strip():
                continue
            cells = text.split("\t")

            def make(cells=cells):
                if len(cells) != width:
                    raise _RowError(f"expected {width} tab-separated columns, found {len(cells)}{hint}")
                return _row(cells[idx[0]], cells[idx[1]], cells[idx[2]], top)

            add(line, make)
    elif fmt == "csv":
        lines = _decode_lines(data, path, skip_invalid, result.skipped)
        text = "\n".join(t for _, t in lines)
        line_of = [n for n, _ in lines]
        reader = csv.reader(io.StringIO(text))
        try:
            header = [c.strip().lower() for c in next(reader)]
        except StopIteration:
            raise UserError("the file is empty", path=path) from None
        except csv.Error as exc:
            raise UserError(f"malformed CSV header: {exc}", path=path, line=line_of[0] if line_of else 1) from None
        missing = {"sentence1", "sentence2", "score"} - set(header)
        if missing:
            raise UserError(f"header lacks column(s) {', '.join(sorted(missing))}", path=path, line=1)
        i1, i2, isc = header.index("sentence1"), header.index("sentence2"), header.index("score")
        try:
            for cells in reader:
                line = line_of[min(reader.line_num, len(line_of)) - 1]
                if not cells:
                    continue

                def make(cells=cells):
                    if len(cells) != len(header):
                        raise _RowError(f"expected {len(header)} columns, found {len(cells)}")
                    return _row(cells[i1], cells[i2], cells[isc], top)

                add(line, make)
        except csv.Error as exc:
            raise UserError(f"malformed CSV: {exc}", path=path, line=line_of[min(reader.line_num, len(line_of)) - 1]) from None
    elif fmt == "jsonl":
        for line, text in _decode_lines(data, path, skip_invalid, result.skipped):
            if not text.strip():
                continue

            def make(text=text):
                try:
                    obj = json.loads(text)
                except json.JSONDecodeError as exc:
                    raise _RowError(f"invalid JSON: {exc.msg}") from None
                except RecursionError:
                    raise _RowError("invalid JSON: nested too deeply") from None
                if not isinstance(obj, dict):
                    raise _RowError("expected a JSON object")
                return _row(obj.get("sentence1"), obj.get("sentence2"), obj.get("score"), top)

            add(line, make)
    else:  # klue-json
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise UserError("invalid UTF-8", path=path, line=data.count(b"\n", 0, exc.start) + 1) from None
        try:
            items = json.loads(text)
        except json.JSONDecodeError as exc:
            raise UserError(f"invalid JSON: {exc.msg}", path=path, line=exc.lineno) from None
        except RecursionError:
            raise UserError("invalid JSON: nested too deeply", path=path) from None
        if not isinstance(items, list):
            raise UserError("expected a JSON list of objects with sentence1, sentence2 and labels.label", path=path)
        for n, obj in enumerate(items, start=1):

            def make(obj=obj):
                if not isinstance(obj, dict) or not isinstance(obj.get("labels"), dict):
                    raise _RowError("expected an object with sentence1, sentence2 and labels.label")
                return _row(obj.get("sentence1"), obj.get("sentence2"), obj["labels"].get("label"), top)

            add(n, make)  # JSON has no useful line numbers per item; report the item number
    if not result.scores:
        raise UserError("no valid sentence pairs", path=path)
    return result
