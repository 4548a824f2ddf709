"""STS evaluation: whole-set correlations that match sentence-transformers and scipy, every input format,
the reference's per-batch protocol, one encoding per distinct sentence, and the reference table."""
from __future__ import annotations

import json

import numpy as np
import pytest
from scipy.stats import pearsonr, spearmanr

from conftest import KORSTS, needs_shared, one_line_error
from kodiffcse.cli import main
from kodiffcse.data.sts import read_sts
from kodiffcse.evaluation import METRICS, evaluate_sts, markdown_table
from kodiffcse.evaluation.report import COLUMNS
from kodiffcse.inference import SentenceEncoder


@pytest.fixture(scope="module")
def spread_model(tiny, tmp_path_factory):
    """Mean pooling over unit-variance word embeddings: vectors far from parallel.

    A random-init CLS vector is nearly the same for every sentence (cosines of 0.9999...), where
    sentence-transformers' float32 similarities lose the ranking that kodiffcse's float64 keeps.
    """
    import torch
    from transformers import AutoModel, AutoTokenizer

    from kodiffcse.export.sentence_transformers import save_sentence_model

    model = AutoModel.from_pretrained(tiny["roberta"])
    torch.manual_seed(0)
    model.embeddings.word_embeddings.weight.data.normal_(0.0, 1.0)
    out = tmp_path_factory.mktemp("st") / "spread"
    save_sentence_model(model, AutoTokenizer.from_pretrained(tiny["roberta"]), str(out), "mean", 32)
    return str(out)


def distinct_pairs(data):
    keep = [i for i, (a, b) in enumerate(zip(data.sentences1, data.sentences2)) if a != b]
    data.sentences1, data.sentences2 = [data.sentences1[i] for i in keep], [data.sentences2[i] for i in keep]
    data.scores = [data.scores[i] for i in keep]
    return data


def encoder_fn(path, **kw):
    enc = SentenceEncoder.from_pretrained(path, device="cpu", **kw)
    return lambda s: enc.encode(s, normalize=False)


def test_scores_equal_sentence_transformers_evaluator(spread_model, sample):
    """Identical pairs are left out: their cosine is exactly 1 in float64 but float32 rounding breaks
    those ties at random in sentence-transformers, which moves Spearman by ~1e-4."""
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.evaluation import EmbeddingSimilarityEvaluator

    data = distinct_pairs(read_sts(sample["dev"]))
    ours = evaluate_sts(encoder_fn(spread_model), data)
    evaluator = EmbeddingSimilarityEvaluator(data.sentences1, data.sentences2, data.scores, write_csv=False,
                                             similarity_fn_names=["cosine", "euclidean", "manhattan", "dot"])
    theirs = evaluator(SentenceTransformer(spread_model, device="cpu"))
    for sim in ("cosine", "euclidean", "manhattan", "dot"):
        for corr in ("pearson", "spearman"):
            assert ours[f"{sim}_{corr}"] == pytest.approx(theirs[f"{corr}_{sim}"], abs=1e-6), (sim, corr)


def test_scores_equal_independent_scipy_computation(spread_model, sample):
    data = distinct_pairs(read_sts(sample["test"]))  # exact-1.0 cosine ties are rounding-fragile; see above
    encode = encoder_fn(spread_model)
    ours = evaluate_sts(encode, data)
    a, b = encode(data.sentences1).astype(np.float64), encode(data.sentences2).astype(np.float64)
    gold = np.array(data.scores)
    sims = {
        "cosine": [x @ y / np.linalg.norm(x) / np.linalg.norm(y) for x, y in zip(a, b)],
        "euclidean": [-np.sqrt(((x - y) ** 2).sum()) for x, y in zip(a, b)],
        "manhattan": [-np.abs(x - y).sum() for x, y in zip(a, b)],
        "dot": [x @ y for x, y in zip(a, b)],
    }
    for name, values in sims.items():
        assert ours[f"{name}_pearson"] == pytest.approx(pearsonr(gold, values)[0], abs=1e-6)
        assert ours[f"{name}_spearman"] == pytest.approx(spearmanr(gold, values)[0], abs=1e-6)
    assert ours["average"] == pytest.approx(np.mean([ours[m] for m in METRICS]))


def test_duplicate_sentences_are_encoded_once(tiny, sample):
    data = read_sts(sample["dev"])
    data.sentences1 += data.sentences1[:10]
    data.sentences2 += data.sentences1[10:20]
    data.scores += data.scores[:10]
    calls = []
    encode = encoder_fn(tiny["roberta"])

    def counting(sentences):
        calls.append(list(sentences))
        return encode(sentences)

    evaluate_sts(counting, data)
    assert len(calls) == 1
    assert len(calls[0]) == len(set(data.sentences1 + data.sentences2)) < len(data.sentences1) * 2


def test_per_batch_protocol_differs_from_whole_set_and_is_deterministic(tiny, sample):
    data = read_sts(sample["dev"])
    encode = encoder_fn(tiny["roberta"])
    whole = evaluate_sts(encode, data)
    first = evaluate_sts(encode, data, per_batch=16, seed=3)
    again = evaluate_sts(encode, data, per_batch=16, seed=3)
    other_seed = evaluate_sts(encode, data, per_batch=16, seed=4)
    assert first == again
    assert first["cosine_spearman"] != pytest.approx(whole["cosine_spearman"], abs=1e-6)
    assert first["cosine_spearman"] != pytest.approx(other_seed["cosine_spearman"], abs=1e-9)


def test_non_finite_embeddings_are_a_clear_error(sample):
    from kodiffcse.errors import UserError

    data = read_sts(sample["dev"])
    with pytest.raises(UserError, match="non-finite embeddings"):
        evaluate_sts(lambda s: np.full((len(s), 4), np.nan, dtype=np.float32), data)


def write(path, text):
    path.write_text(text, encoding="utf-8")
    return str(path)


def test_every_format_is_read_and_normalised(tmp_path):
    korsts = write(tmp_path / "k.tsv", "genre\tfilename\tyear\tid\tscore\tsentence1\tsentence2\n"
                                      'a\tb\t2012\t1\t5.000\t"따옴표 하나\t문장 둘\na\tb\t2012\t2\t2.5\t셋\t넷\n')
    tsv3 = write(tmp_path / "r.tsv", "문장 하나\t문장 둘\t5\n셋\t넷\t2.5\n")
    klue = write(tmp_path / "k.json", json.dumps([
        {"sentence1": "문장 하나", "sentence2": "문장 둘", "labels": {"label": 5.0, "real-label": 4.9}},
        {"sentence1": "셋", "sentence2": "넷", "labels": {"label": 2.5, "real-label": 2.5}}], ensure_ascii=False))
    csv_file = write(tmp_path / "c.csv", 'sentence1,sentence2,score\n"문장, 하나",문장 둘,5\n셋,넷,2.5\n')
    jsonl = write(tmp_path / "j.jsonl", '{"sentence1": "문장 하나", "sentence2": "문장 둘", "score": 5}\n'
                                        '{"sentence1": "셋", "sentence2": "넷", "score": 2.5}\n')
    expected = {korsts: "korsts", tsv3: "tsv3", klue: "klue-json", csv_file: "csv", jsonl: "jsonl"}
    for path, fmt in expected.items():
        data = read_sts(path)
        assert data.format == fmt and data.scores == [1.0, 0.5] and data.sentences2[1] == "넷", fmt
    assert read_sts(korsts).sentences1[0] == '"따옴표 하나'  # quotes are text, never CSV quoting
    assert read_sts(csv_file).sentences1[0] == "문장, 하나"
    assert read_sts(tsv3, max_score=10).scores == [0.5, 0.25]
    assert read_sts(korsts, fmt="korsts").format == "korsts"


@needs_shared
@pytest.mark.parametrize("split, pairs", [("train", 5749), ("dev", 1500), ("test", 1379)])
def test_korsts_splits_have_exact_pair_counts(split, pairs):
    data = read_sts(KORSTS / f"sts-{split}.tsv")
    assert data.format == "korsts" and len(data) == pairs and not data.skipped
    assert all(0.0 <= s <= 1.0 for s in data.scores)


@pytest.mark.parametrize("content, message", [
    ("a\tb\t3\nc\td\n", "r.tsv:2: expected 3 tab-separated columns, found 2"),
    ("a\tb\tx\n", "r.tsv:1: score 'x' is not a number"),
    ("a\tb\t7\n", "r.tsv:1: score 7 is outside [0, 5]"),
    ("a\tb\t3\n \tb\t3\n", "r.tsv:2: empty sentence"),
    ("", "r.tsv: the file is empty"),
])
def test_bad_rows_name_file_and_line(tmp_path, capsys, tiny, content, message):
    path = write(tmp_path / "r.tsv", content)
    assert message in one_line_error(capsys, ["evaluate", "--model", tiny["roberta"], "--data", path], "evaluate")


def test_invalid_utf8_and_skip_invalid(tmp_path, capsys, tiny):
    path = tmp_path / "r.tsv"
    path.write_bytes("가\t나\t3\n".encode() + b"\xff\t\xfe\t2\n" + "다\t\t1\n라\t마\t9\n바\t사\t4\n"
                     "아\t자\t2\n차\t카\t0.5\n".encode())
    assert main(["evaluate", "--model", tiny["roberta"], "--data", str(path)]) == 2
    assert "r.tsv:2: invalid UTF-8" in capsys.readouterr().err
    data = read_sts(path, skip_invalid=True)
    assert len(data) == 4 and [line for line, _ in data.skipped] == [2, 3, 4]
    out_json = tmp_path / "out.json"
    assert main(["evaluate", "--model", tiny["roberta"], "--data", str(path), "--skip-invalid",
                 "--json", str(out_json)]) == 0
    assert "skipped 3 invalid rows" in capsys.readouterr().out
    record = json.loads(out_json.read_text(encoding="utf-8"))["results"][0]
    assert record["pairs"] == 4 and record["skipped_rows"] == 3


def test_missing_and_unreadable_files(tmp_path, capsys, tiny):
    assert main(["evaluate", "--model", tiny["roberta"], "--data", str(tmp_path / "none.tsv")]) == 2
    assert "none.tsv: no such file" in capsys.readouterr().err
    assert main(["evaluate", "--model", tiny["roberta"], "--data", str(tmp_path)]) == 2
    assert "is a directory" in capsys.readouterr().err
    assert main(["evaluate", "--model", str(tmp_path / "nomodel"), "--data", str(tmp_path)]) == 2


def test_multi_model_multi_file_table_and_json(tmp_path, capsys, tiny, model_dir, sample):
    out = tmp_path / "scores.json"
    code = main(["evaluate", "--model", tiny["roberta"], "--model", model_dir, "--data", sample["dev"],
                 "--data", sample["test"], "--json", str(out)])
    assert code == 0
    table = capsys.readouterr().out
    header = next(line for line in table.splitlines() if line.startswith("| Model"))
    assert header == "| " + " | ".join(COLUMNS) + " |"
    body = [line for line in table.splitlines() if line.startswith("| ") and not line.startswith("| Model")]
    assert len(body) == 4
    records = json.loads(out.read_text(encoding="utf-8"))["results"]
    assert len(records) == 4 and {r["pairs"] for r in records} == {80}
    for r in records:
        assert len(r["data_sha256"]) == 64 and r["parameters"] > 0 and r["size_on_disk_bytes"] > 0
        assert r["protocol"] == "whole-set" and r["pooler"] == "cls_before_pooler"
        assert abs(r["scores_x100"]["cosine_spearman"] - 100 * r["scores"]["cosine_spearman"]) < 0.006
    # Same weights and pooling, so the HF dir and the sentence-transformers dir score the same.
    assert records[0]["scores"] == pytest.approx(records[2]["scores"], abs=1e-6)
    cells = body[0].split("|")[2:-1]
    assert all(len(c.strip().split(".")[1]) == 2 for c in cells)


def test_reference_evaluation_command(tmp_path, capsys, model_dir, sample):
    import os
    import shutil

    shutil.copytree(model_dir, tmp_path / "output" / "best_checkpoint")
    os.makedirs(tmp_path / "Dataset")
    shutil.copy(sample["test"], tmp_path / "Dataset" / "test_sts.tsv")
    argv = ["evaluate", "--model", "klue/roberta-base", "--generator", "klue/roberta-small", "--train", "False",
            "--test", "True", "--max_len", "64", "--batch_size", "128", "--path_to_data", str(tmp_path / "Dataset"),
            "--test_data", "test_sts.tsv", "--path_to_saved_model", str(tmp_path / "output" / "best_checkpoint.pt")]
    assert main(argv) == 0
    assert "best_checkpoint · test_sts.tsv" in capsys.readouterr().out


def test_markdown_table_formats_x100_with_two_decimals():
    scores = {m: 0.5 + i / 100 for i, m in enumerate(METRICS)}
    scores["average"] = 0.123456
    table = markdown_table([("m", scores)])
    assert table.splitlines()[2] == "| m | 12.35 | 50.00 | 51.00 | 52.00 | 53.00 | 54.00 | 55.00 | 56.00 | 57.00 |"
