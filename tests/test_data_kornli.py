"""`kodiffcse data kornli`: pinned digests (git blob ids, SHA-256), atomic writes, the licence, the train triplets,
offline `--from`, and the download path through a local server. The machine-translated train files are not in
../shared, so synthetic ones stand in for them, with the pinned table patched to their blob ids."""
from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from pathlib import Path

import pytest

import kodiffcse.data.kornli_download as kd
from conftest import one_line_error
from kodiffcse.cli import main
from kodiffcse.data.korsts_download import file_digest
from kodiffcse.data.nli import read_triplets
from test_data_korsts import _Server, leftovers

SHARED_KORNLI = Path(__file__).parents[1] / ".." / "shared" / "data" / "kornli"
needs_kornli = pytest.mark.skipif(not (SHARED_KORNLI / "xnli.dev.ko.tsv").exists(),
                                  reason="../shared/data/kornli is absent (shared data not mounted beside the repo)")
SNLI = ("sentence1\tsentence2\tgold_label\n"
        "한 남자가 말을 탄다.\t사람이 동물 위에 있다.\tentailment\n"
        "한 남자가 말을 탄다.\t남자가 식당에서 밥을 먹는다.\tcontradiction\n"
        "한 남자가 말을 탄다.\t남자가 대회를 준비한다.\tneutral\n"
        "아이들이 웃는다.\t아이들이 행복하다.\tentailment\n"  # no contradiction: dropped
        "두 여자가 걷는다.\t여자들이 움직인다.\t-\n")
MNLI = ("sentence1\tsentence2\tgold_label\n"
        "회의는 내일 열린다.\t회의가 예정되어 있다.\tentailment\n"
        "회의는 내일 열린다.\t회의는 취소되었다.\tcontradiction\n")


def git_blob(data: bytes) -> str:
    """Independent of the code under test: the definition, and `git hash-object` where git is installed."""
    return hashlib.sha1(b"blob " + str(len(data)).encode() + b"\0" + data).hexdigest()


@pytest.fixture
def source(tmp_path, monkeypatch):
    """A --from dir: the shared XNLI files (copied into tmp, not the repo) and synthetic train files."""
    src = tmp_path / "src"
    src.mkdir()
    for name in ("xnli.dev.ko.tsv", "xnli.test.ko.tsv"):
        shutil.copyfile(SHARED_KORNLI / name, src / name)
    for name, text in (("snli_1.0_train.ko.tsv", SNLI), ("multinli.train.ko.tsv", MNLI)):
        (src / name).write_text(text, encoding="utf-8")
        monkeypatch.setitem(kd.PINS, name, {"git-blob": git_blob(text.encode())})
    return src


@needs_kornli
def test_pins_of_the_shared_xnli_files_are_theirs():
    for name in ("xnli.dev.ko.tsv", "xnli.test.ko.tsv"):
        data = (SHARED_KORNLI / name).read_bytes()
        assert kd.PINS[name] == {"git-blob": git_blob(data), "sha256": hashlib.sha256(data).hexdigest()}
        assert file_digest(SHARED_KORNLI / name, "git-blob") == git_blob(data)
        if shutil.which("git"):
            out = subprocess.run(["git", "hash-object", str(SHARED_KORNLI / name)], capture_output=True, text=True)
            assert out.stdout.strip() == kd.PINS[name]["git-blob"]
        kd.check_pinned(SHARED_KORNLI / name, name)
    assert kd.PINS["snli_1.0_train.ko.tsv"]["git-blob"] == "c91761e52fca2a7420104589811346986ce94073"
    assert kd.PINS["multinli.train.ko.tsv"]["git-blob"] == "94d26a9d0dd045928148ef8691a256bd0e7d45c3"


@needs_kornli
def test_from_local_copies_writes_files_triplets_and_licence(source, tmp_path, capsys):
    out = tmp_path / "kornli"
    assert main(["data", "kornli", "--out", str(out), "--from", str(source)]) == 0
    stdout = capsys.readouterr().out
    assert "CC BY-SA 4.0" in stdout and "kakaobrain/KorNLUDatasets" in stdout
    assert "snli_1.0_train.ko.tsv: 1 triplets from 5 pairs: kept 1 of 3 premises, dropped 2 " \
           "(1 without a contradiction hypothesis, 1 without an entailment or contradiction hypothesis); " \
           "1 neutral pairs unused, 1 unlabeled '-' pairs" in stdout, stdout
    assert leftovers(out) == sorted([*kd.PINS, kd.TRIPLETS])
    for name in kd.PINS:
        assert (out / name).read_bytes() == (source / name).read_bytes()
    assert (out / kd.TRIPLETS).read_text(encoding="utf-8") == (
        "한 남자가 말을 탄다.\t사람이 동물 위에 있다.\t남자가 식당에서 밥을 먹는다.\n"
        "회의는 내일 열린다.\t회의가 예정되어 있다.\t회의는 취소되었다.\n")
    assert read_triplets(out / kd.TRIPLETS).layout == "triplets"
    assert main(["data", "kornli", "--out", str(out), "--from", str(source)]) == 0  # a re-run is a no-op


@needs_kornli
@pytest.mark.parametrize("name, damage", [
    ("xnli.dev.ko.tsv", "flip"), ("xnli.test.ko.tsv", "cut"), ("snli_1.0_train.ko.tsv", "cut"),
    ("multinli.train.ko.tsv", "flip"),
])
def test_tampered_or_cut_short_file_is_refused_and_leaves_nothing(source, tmp_path, capsys, name, damage):
    data = bytearray((source / name).read_bytes())
    if damage == "flip":
        data[40] ^= 0x01
    else:
        data = data[: len(data) // 2]
    (source / name).write_bytes(bytes(data))
    out = tmp_path / "out"
    err = one_line_error(capsys, ["data", "kornli", "--out", str(out), "--from", str(source)], "data")
    assert name in err and "mismatch" in err and "nothing was written" in err
    assert leftovers(out) == []


@needs_kornli
def test_download_verifies_and_a_cut_short_download_leaves_nothing(source, tmp_path, monkeypatch, capsys):
    cache, out = tmp_path / "cache", tmp_path / "out"
    server = _Server(source, truncate={"multinli.train.ko.tsv"})
    monkeypatch.setenv("KODIFFCSE_KORNLI_URL", server.url)
    try:
        err = one_line_error(capsys, ["data", "kornli", "--out", str(out), "--cache", str(cache), "--no-progress"],
                             "data")
    finally:
        server.close()
    assert "multinli.train.ko.tsv" in err and ("partial download" in err or "interrupted" in err)
    assert "multinli.train.ko.tsv" not in leftovers(cache) and leftovers(out) == []
    server = _Server(source)
    monkeypatch.setenv("KODIFFCSE_KORNLI_URL", server.url)
    try:
        written, _ = kd.fetch_kornli(out, cache=cache, progress=False)
    finally:
        server.close()
    assert sorted(p.name for p in cache.iterdir()) == sorted(kd.PINS)
    assert all(kd.check_pinned(written[n], n) is None for n in kd.PINS)


def test_missing_from_dir_and_missing_file(tmp_path, capsys):
    err = one_line_error(capsys, ["data", "kornli", "--out", str(tmp_path / "o"), "--from", str(tmp_path / "no")],
                         "data")
    assert "not found" in err
    (tmp_path / "partial").mkdir()
    err = one_line_error(capsys, ["data", "kornli", "--out", str(tmp_path / "o"), "--from", str(tmp_path / "partial")],
                         "data")
    assert "missing snli_1.0_train.ko.tsv" in err and not (tmp_path / "o").exists()
