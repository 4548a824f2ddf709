"""Untrusted input: the corpus and STS readers either parse or raise one UserError naming file and line.

Property-based (hypothesis) over arbitrary bytes and over line-shaped input built from the awkward parts
real files have: BOM, CRLF, NUL, invalid UTF-8, stray quotes, tabs, Unicode spaces, wrong column counts.
"""
from __future__ import annotations

import json
import os
import tempfile

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kodiffcse.data.corpus import LineCorpus
from kodiffcse.data.sts import FORMATS, STSData, read_sts
from kodiffcse.errors import UserError

FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

_PIECES = [b"\xef\xbb\xbf", b"\r\n", b"\n", b"\r", b"\t", b"\x00", b"\xff", b"\xc3", b"\xed\xa0\x80", b'"', b"'",
           b" ", "\u3000".encode(), "\u2028".encode(), "\ufeff".encode(), b"\x1c", b"sentence1", b"sentence2",
           b"score", b"3.5", b"-1", b"nan", b"1e999", b"5", "한국어 문장".encode(), b"{", b"}", b"[", b"]", b",",
           b'"score": 2', b"\\", b"1" * 40]
line_bytes = st.lists(st.sampled_from(_PIECES), max_size=30).map(b"".join)
any_bytes = st.one_of(st.binary(max_size=400), line_bytes)


def _write(data: bytes, suffix: str) -> str:
    fd, path = tempfile.mkstemp(suffix=suffix)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
    return path


def _check_error(exc: UserError, path: str, data: bytes) -> None:
    message = str(exc)
    assert "\n" not in message and message.startswith(path), message
    if exc.line is not None:
        assert 1 <= exc.line <= max(data.count(b"\n") + 1, 1) or "item" in message, (exc.line, message)


def _expected_sentences(data: bytes) -> list[str]:
    text = data.decode("utf-8")
    if text.startswith("\ufeff"):
        text = text[1:]
    out = []
    for line in text.split("\n"):
        s = line.replace("\ufeff", "").strip()
        if s:
            out.append(s)
    return out


@FUZZ
@given(any_bytes)
def test_corpus_parses_or_names_file_and_line(data):
    path = _write(data, ".txt")
    try:
        corpus = LineCorpus(path)
    except UserError as exc:
        _check_error(exc, path, data)
        try:
            data.decode("utf-8")
            valid = b"\x00" not in data
        except UnicodeDecodeError:
            valid = False
        assert not valid or not _expected_sentences(data), "valid text with sentences must parse"
    else:
        sentences = [corpus[i] for i in range(len(corpus))]
        assert sentences == _expected_sentences(data)  # blank and whitespace-only lines never become sentences
    finally:
        os.remove(path)


def test_corpus_huge_line_and_many_chunks(tmp_path, monkeypatch):
    import kodiffcse.data.corpus as corpus_mod

    monkeypatch.setattr(corpus_mod, "_CHUNK", 64)  # force lines that straddle and exceed read chunks
    path = tmp_path / "c.txt"
    huge = "가" * 500
    path.write_bytes(b"\xef\xbb\xbf" + f"첫 문장\r\n{huge}\n\n  \n끝".encode())
    assert [LineCorpus(path)[i] for i in range(3)] == ["첫 문장", huge, "끝"]
    path.write_bytes("좋은 줄\n".encode() * 40 + b"bad \xff byte\n")
    with pytest.raises(UserError, match=r":41: invalid UTF-8"):
        LineCorpus(path)


@pytest.mark.parametrize("data", [b"", b"\xef\xbb\xbf", b"\n\r\n \t\n", "\u3000\n\ufeff\n".encode()])
def test_corpus_without_sentences_is_one_error(tmp_path, data):
    path = tmp_path / "c.txt"
    path.write_bytes(data)
    with pytest.raises(UserError, match="no sentences"):
        LineCorpus(path)


_SUFFIX = {"korsts": ".tsv", "tsv3": ".tsv", "csv": ".csv", "jsonl": ".jsonl", "klue-json": ".json"}


def _check_sts(data: bytes, fmt: str | None, suffix: str, skip_invalid: bool) -> None:
    path = _write(data, suffix)
    try:
        result = read_sts(path, fmt=fmt, skip_invalid=skip_invalid)
    except UserError as exc:
        _check_error(exc, path, data)
    else:
        assert isinstance(result, STSData) and len(result) > 0
        assert len(result.sentences1) == len(result.sentences2) == len(result.scores)
        assert all(0.0 <= s <= 1.0 for s in result.scores)
        assert all(a.strip() and b.strip() for a, b in zip(result.sentences1, result.sentences2))
        assert all(isinstance(line, int) and line >= 1 and "\n" not in why for line, why in result.skipped)
    finally:
        os.remove(path)


@FUZZ
@given(any_bytes, st.sampled_from([None, *FORMATS]), st.booleans())
def test_sts_reader_parses_or_names_file_and_line(data, fmt, skip_invalid):
    _check_sts(data, fmt, _SUFFIX.get(fmt, ".tsv"), skip_invalid)


tsv_cell = st.lists(st.sampled_from(list('ab 가나"\'\r\u3000,.{}') + ["3", "5.0", "-2", "nan"]), max_size=6).map("".join)


@FUZZ
@given(st.lists(st.lists(tsv_cell, min_size=0, max_size=5), max_size=8), st.booleans(), st.booleans(),
       st.booleans())
def test_korsts_shaped_rows_parse_or_name_the_line(rows, header, crlf, skip_invalid):
    lines = ["\t".join(r) for r in rows]
    if header:
        lines.insert(0, "genre\tfilename\tyear\tid\tscore\tsentence1\tsentence2")
    data = ("\r\n" if crlf else "\n").join(lines).encode()
    _check_sts(data, None, ".tsv", skip_invalid)


@FUZZ
@given(st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=5),
                    lambda kids: st.lists(kids, max_size=3) | st.dictionaries(
                        st.sampled_from(["sentence1", "sentence2", "score", "labels", "label", "x"]), kids, max_size=4),
                    max_leaves=12), st.booleans())
def test_json_values_of_any_shape(value, skip_invalid):
    text = json.dumps(value)
    _check_sts(text.encode(), "klue-json", ".json", skip_invalid)
    _check_sts((text + "\n" + text).encode(), "jsonl", ".jsonl", skip_invalid)


@pytest.mark.parametrize("fmt, data", [
    ("klue-json", b"[" * 100_000 + b"]" * 100_000),
    ("jsonl", b'{"sentence1": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"),
    ("jsonl", b'{"sentence1": "a", "sentence2": "b", "score": 1' + b"0" * 400 + b"}"),
    ("klue-json", b'[{"sentence1": "a", "sentence2": "b", "labels": {"label": 1' + b"0" * 400 + b"}}]"),
    ("csv", b"sentence1,sentence2,score\n\"" + b"x" * 200_000 + b'",b,3\n'),
    ("korsts", b"\xffscore\tsentence1\tsentence2\nok\tfine\t3\n"),
    ("tsv3", "가".encode() * 3_000_000 + b"\tb\t3\n"),
], ids=["deep-json", "deep-jsonl", "huge-int-jsonl", "huge-int-json", "huge-csv-field", "bad-header", "huge-line"])
@pytest.mark.parametrize("skip_invalid", [False, True])
def test_pathological_inputs_are_one_line_errors_or_parse(fmt, data, skip_invalid):
    _check_sts(data, fmt, _SUFFIX[fmt], skip_invalid)


def test_wrong_column_count_names_the_line(tmp_path):
    path = tmp_path / "dev.tsv"
    path.write_bytes(b"\xef\xbb\xbfa\tb\t3\r\nc\td\r\ne\tf\t1\r\n")
    with pytest.raises(UserError, match=r"dev\.tsv:2: expected 3 tab-separated columns, found 2"):
        read_sts(path)
    result = read_sts(path, skip_invalid=True)
    assert result.sentences1 == ["a", "e"] and result.skipped[0][0] == 2
    assert result.skipped[0][1].startswith("expected 3 tab-separated columns, found 2 (sentence1, sentence2, score")
