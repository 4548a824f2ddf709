"""encode / similarity / search commands: round trips and every bad input as a one-line error."""
from __future__ import annotations

import json
import os

import numpy as np
import pytest

from conftest import one_line_error
from kodiffcse.cli import main


@pytest.fixture(scope="module")
def mean_model_dir(tiny, sample, tmp_path_factory):
    from transformers import AutoModel, AutoTokenizer

    from kodiffcse.export.sentence_transformers import save_sentence_model

    out = tmp_path_factory.mktemp("cli") / "best"
    save_sentence_model(AutoModel.from_pretrained(tiny["roberta"]), AutoTokenizer.from_pretrained(tiny["roberta"]),
                        str(out), "mean", 32)
    return str(out)


LINES = ["한 소녀가 머리를 빗고 있다.", "", "남자가 기타를 친다", "아주 긴 문장 " * 60, "마지막 줄"]


@pytest.fixture
def text_file(tmp_path):
    path = tmp_path / "in.txt"
    # BOM, CRLF, a blank line and no newline at the end: row i is still line i + 1.
    path.write_bytes(("\ufeff" + LINES[0] + "\r\n" + "\n".join(LINES[1:])).encode("utf-8"))
    return str(path)


def test_encode_npy_and_jsonl_round_trip(mean_model_dir, text_file, tmp_path, capsys):
    from kodiffcse import SentenceEncoder

    expected = SentenceEncoder.from_pretrained(mean_model_dir, device="cpu").encode(LINES)
    capsys.readouterr()  # its own truncation line
    out = tmp_path / "emb.npy"
    assert main(["encode", "--model", mean_model_dir, "--input", text_file, "--output", str(out), "--chunk-size", "2",
                 "--batch-size", "2"]) == 0
    err = capsys.readouterr().err
    assert err.count("truncated") == 1 and "1 of 5 texts" in err
    np.testing.assert_allclose(np.load(out), expected, atol=1e-5)
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".tmp")] == []
    umask = os.umask(0)
    os.umask(umask)
    assert out.stat().st_mode & 0o777 == 0o666 & ~umask  # a plain file's permissions, not mkstemp's 0600

    out_jsonl = tmp_path / "emb.jsonl"
    assert main(["encode", "--model", mean_model_dir, "--input", text_file, "--output", str(out_jsonl)]) == 0
    rows = [json.loads(line) for line in out_jsonl.read_text(encoding="utf-8").splitlines()]
    assert [r["text"] for r in rows] == LINES
    np.testing.assert_allclose(np.array([r["embedding"] for r in rows]), expected, atol=1e-5)

    raw = tmp_path / "raw.npy"
    assert main(["encode", "--model", mean_model_dir, "--input", text_file, "--output", str(raw), "--no-normalize"]) == 0
    assert not np.allclose(np.linalg.norm(np.load(raw), axis=1), 1.0)


def test_encode_bad_inputs(mean_model_dir, text_file, tmp_path, capsys):
    out = str(tmp_path / "emb.npy")
    bad = tmp_path / "bad.txt"
    bad.write_bytes("좋은 줄\n또 좋은 줄\n".encode() + b"\xff\xfe broken\n")
    cases = [
        (["--input", str(bad), "--output", out], "bad.txt:3: invalid UTF-8"),
        (["--input", str(tmp_path / "nope.txt"), "--output", out], "nope.txt: no such file"),
        (["--input", text_file, "--output", str(tmp_path / "emb.csv")], "unknown output format 'csv'"),
        (["--input", text_file, "--output", str(tmp_path / "no" / "dir.npy")], "folder does not exist"),
        (["--input", text_file, "--output", out, "--chunk-size", "0"], "--chunk-size must be at least 1"),
    ]
    (tmp_path / "empty.txt").write_text("")
    cases.append((["--input", str(tmp_path / "empty.txt"), "--output", out], "the input is empty"))
    for extra, message in cases:
        assert message in one_line_error(capsys, ["encode", "--model", mean_model_dir, *extra], "encode")
    assert not os.path.exists(out)
    open(out, "w").close()
    argv = ["encode", "--model", mean_model_dir, "--input", text_file, "--output", out]
    assert "--overwrite" in one_line_error(capsys, argv, "encode")


@pytest.mark.parametrize("command", ["encode", "similarity", "search"])
def test_missing_model_is_one_line_error(command, text_file, tmp_path, capsys):
    argv = {"encode": ["--input", text_file, "--output", str(tmp_path / "x.npy")],
            "similarity": ["가", "나"], "search": ["--corpus", text_file, "--query", "가"]}[command]
    argv = [command, "--model", str(tmp_path / "no-model"), *argv]
    assert "no-model: model not found" in one_line_error(capsys, argv, command)


def test_similarity(mean_model_dir, capsys):
    from kodiffcse import SentenceEncoder

    enc = SentenceEncoder.from_pretrained(mean_model_dir, device="cpu")
    assert main(["similarity", "--model", mean_model_dir, "문장 하나", "문장 둘"]) == 0
    printed = float(capsys.readouterr().out.strip())
    assert printed == pytest.approx(enc.similarity("문장 하나", "문장 둘"), abs=1e-4)
    assert main(["similarity", "--model", mean_model_dir, "--json", "가", "나", "다"]) == 0
    matrix = np.array(json.loads(capsys.readouterr().out)["similarity"])
    np.testing.assert_allclose(matrix, enc.similarity(["가", "나", "다"], ["가", "나", "다"]), atol=1e-5)
    argv = ["similarity", "--model", mean_model_dir, "혼자"]
    assert "at least two sentences" in one_line_error(capsys, argv, "similarity")


def test_search_builds_saves_and_reuses_index(mean_model_dir, sample, tmp_path, capsys, monkeypatch):
    from kodiffcse import SentenceEncoder
    from kodiffcse.data.corpus import LineCorpus

    corpus_file = tmp_path / "corpus.txt"
    corpus = [LineCorpus(sample["corpus"])[i] for i in range(40)]
    corpus_file.write_text("\n".join(corpus) + "\n", encoding="utf-8")
    index = str(tmp_path / "idx")
    query = corpus[7]
    argv = ["search", "--model", mean_model_dir, "--corpus", str(corpus_file), "--query", query, "-k", "3",
            "--index", index, "--json"]
    assert main(argv) == 0
    first = json.loads(capsys.readouterr().out)
    assert first["query"] == query and len(first["results"]) == 3
    assert first["results"][0]["sentence"] == query and first["results"][0]["score"] == pytest.approx(1.0, abs=1e-5)
    enc = SentenceEncoder.from_pretrained(mean_model_dir, device="cpu")
    scores = enc.encode([query]) @ enc.encode(corpus).T
    assert [r["sentence"] for r in first["results"]] == [corpus[i] for i in np.argsort(-scores[0], kind="stable")[:3]]

    def no_rebuild(*args, **kwargs):
        raise AssertionError("the saved index should have been reused")

    monkeypatch.setattr(SentenceEncoder, "build_index", no_rebuild)
    assert main(argv) == 0
    assert json.loads(capsys.readouterr().out) == first
    assert main(["search", "--model", mean_model_dir, "--index", index, "--query", query, "-k", "3", "--json",
                 "--backend", "numpy"]) == 0  # no --corpus needed once the index exists
    assert json.loads(capsys.readouterr().out) == first

    corpus_file.write_text("\n".join(corpus[:20]) + "\n", encoding="utf-8")
    assert "--rebuild" in one_line_error(capsys, argv, "search")
    monkeypatch.undo()
    assert main(argv + ["--rebuild"]) == 0
    assert all(r["sentence"] in corpus[:20] for r in json.loads(capsys.readouterr().out)["results"])


def test_search_text_output_and_bad_input(mean_model_dir, text_file, tmp_path, capsys):
    assert main(["search", "--model", mean_model_dir, "--corpus", text_file, "--query", "기타", "-k", "2"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "query: 기타" and len(out) == 3 and out[1].strip().startswith("1. ")
    search = ["search", "--model", mean_model_dir]
    assert "--corpus is required" in one_line_error(capsys, [*search, "--query", "기타"], "search")
    argv = [*search, "--corpus", text_file, "--query", "기타", "-k", "0"]
    assert "--top-k must be at least 1" in one_line_error(capsys, argv, "search")
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "a.txt").write_text("x")
    argv = [*search, "--corpus", text_file, "--query", "x", "--index", str(foreign)]
    assert "not a kodiffcse index" in one_line_error(capsys, argv, "search")
