"""Bad input to `kodiffcse train`: one line naming the problem, exit 2, no traceback, before any model loads."""
from __future__ import annotations

import subprocess
import sys

import pytest

from conftest import one_line_error, train_argv


def base(tiny, sample, out, *extra):
    return train_argv(tiny, sample, out, *extra, dev_file=sample["dev"], max_steps=1, batch_size=4, max_len=16)


@pytest.mark.parametrize("extra, message", [
    (["--batch-size", "1"], "--batch-size must be at least 2"),
    (["--max-len", "3"], "--max-len must be at least 4"),
    (["--masking-ratio", "0"], "--masking-ratio must be in (0, 1)"),
    (["--masking-ratio", "1.2"], "--masking-ratio must be in (0, 1)"),
    (["--lambda-weight", "-0.1"], "--lambda-weight must be >= 0"),
    (["--temperature", "0"], "--temperature must be > 0"),
    (["--train", "False"], "use `kodiffcse evaluate`"),
])
def test_impossible_settings(tiny, sample, tmp_path, capsys, extra, message):
    assert message in one_line_error(capsys, base(tiny, sample, tmp_path / "out", *extra), "train")
    assert not (tmp_path / "out").exists(), "settings are checked before anything is written"


@pytest.mark.parametrize("option, name, content, message", [
    ("--train-file", "nope.txt", None, "nope.txt: no such file"),
    ("--model", "no-model", None, "no-model: tokenizer not found: no such directory"),
    ("--train-file", "empty.txt", b"\n  \n\r\n", "empty.txt: the corpus has no sentences"),
    ("--train-file", "bad.txt", "첫 문장.\n둘째 문장.\n".encode() + b"\xff\xfe broken\n", "bad.txt:3: invalid UTF-8"),
    ("--dev-file", "dev.tsv", "문장 하나\t문장 둘\t4.0\n문장 셋\t3.0\n".encode(),
     "dev.tsv:2: expected 3 tab-separated columns, found 2"),
])
def test_bad_files_name_file_and_line(tiny, sample, tmp_path, capsys, option, name, content, message):
    path = tmp_path / name
    if content is not None:
        path.write_bytes(content)
    argv = base(tiny, sample, tmp_path / "out")
    argv[argv.index(option) + 1] = str(path)
    assert message in one_line_error(capsys, argv, "train")


def test_vocabulary_mismatch(tiny, sample, tmp_path, capsys):
    argv = base(tiny, sample, tmp_path / "out")
    argv[argv.index("--generator") + 1] = tiny["other-gen"]
    assert "vocabulary mismatch" in one_line_error(capsys, argv, "train")


def test_non_empty_output_dir_is_not_overwritten(tiny, sample, tmp_path, capsys):
    out = tmp_path / "out"
    out.mkdir()
    (out / "precious.txt").write_text("keep me", encoding="utf-8")
    err = one_line_error(capsys, base(tiny, sample, out), "train")
    assert "not empty" in err and "--overwrite-output-dir" in err
    assert (out / "precious.txt").read_text(encoding="utf-8") == "keep me"
    assert sorted(p.name for p in out.iterdir()) == ["precious.txt"]


def test_console_script_prints_one_line_without_traceback(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "kodiffcse.cli", "train", "--train-file", str(tmp_path / "x.txt"),
                           "--output-dir", str(tmp_path / "o")], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.strip() == f"kodiffcse train: error: {tmp_path / 'x.txt'}: no such file"
