"""ONNX export agrees with PyTorch and sentence-transformers; the model card records data, scores and use."""
from __future__ import annotations

import json
import os
import shutil

import numpy as np
import pytest

from conftest import KORSTS, needs_shared


@pytest.fixture(scope="module")
def onnx_dir(model_dir, tmp_path_factory):
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnxscript")
    from kodiffcse.cli import main

    out = str(tmp_path_factory.mktemp("onnx") / "model-onnx")
    assert main(["export", "onnx", "--model", model_dir, "--out", out]) == 0
    return out


def _sts_sentences(path) -> list[str]:
    from kodiffcse.data.sts import read_sts

    data = read_sts(path)
    return list(dict.fromkeys(data.sentences1 + data.sentences2))


def _check_agreement(model_dir, onnx_dir, sentences):
    from sentence_transformers import SentenceTransformer

    from kodiffcse import SentenceEncoder
    from kodiffcse.export.onnx import OnnxEncoder

    torch_vecs = SentenceEncoder.from_pretrained(model_dir, device="cpu").encode(sentences, batch_size=64)
    onnx_vecs = OnnxEncoder(onnx_dir).encode(sentences, batch_size=64)
    st_vecs = SentenceTransformer(model_dir, device="cpu").encode(sentences, batch_size=64, normalize_embeddings=True)
    for other in (onnx_vecs, st_vecs):
        assert other.shape == torch_vecs.shape
        assert np.sum(other * torch_vecs, axis=1).min() >= 0.9999


def test_onnx_matches_pytorch_and_sentence_transformers(model_dir, onnx_dir, sample):
    assert {"model.onnx", "kodiffcse_onnx.json", "config.json", "tokenizer.json"} <= set(os.listdir(onnx_dir))
    sentences = _sts_sentences(sample["test"]) + ["", "아주 긴 문장 " * 60]
    _check_agreement(model_dir, onnx_dir, sentences)


@needs_shared
def test_onnx_matches_pytorch_on_korsts(model_dir, onnx_dir):
    _check_agreement(model_dir, onnx_dir, _sts_sentences(KORSTS / "sts-test.tsv"))


def test_onnx_encoder_order_and_bad_input(onnx_dir):
    from kodiffcse.errors import UserError
    from kodiffcse.export.onnx import OnnxEncoder

    enc = OnnxEncoder(onnx_dir)
    items = ["하나", "둘 셋 넷 다섯", "", "여섯 일곱"]
    whole = enc.encode(items, batch_size=2)
    np.testing.assert_allclose(enc.encode(items[::-1], batch_size=3), whole[::-1], atol=1e-5)
    assert enc.encode([]).shape == (0, whole.shape[1])
    with pytest.raises(UserError, match="item 1 is float"):
        enc.encode(["a", 1.5])


def test_onnx_export_refuses_a_foreign_folder(model_dir, tmp_path):
    pytest.importorskip("onnxscript")
    from kodiffcse.cli import main

    (tmp_path / "keep.txt").write_text("x")
    assert main(["export", "onnx", "--model", model_dir, "--out", str(tmp_path)]) == 2
    assert os.listdir(tmp_path) == ["keep.txt"]


def test_model_card_written_by_training_export(model_dir):
    card = open(os.path.join(model_dir, "README.md"), encoding="utf-8").read()
    assert card.startswith("---\n") and "language:\n- ko" in card and "library_name: sentence-transformers" in card
    assert "- kodiffcse" in card and "- diffcse" in card
    assert "## kodiffcse" in card and "### Training Data" in card and "### Intended Use" in card
    assert "| dev (step 2) | sts-dev.tsv | 12.34 | 43.21 |" in card
    assert '"masking_ratio"' in card  # the full config
    assert "한 소녀가 머리를 빗고 있다." in card  # usage example run on Korean sentences
    assert card.index("## kodiffcse") < card.index("## Training Details")


def test_model_card_command_adds_test_scores(model_dir, tmp_path, capsys):
    from sentence_transformers import SentenceTransformer

    from kodiffcse.cli import main

    run_dir = str(tmp_path / "run")  # a copy: the session's model_dir stays as other tests expect it
    shutil.copytree(os.path.dirname(model_dir), run_dir)
    model_dir = os.path.join(run_dir, os.path.basename(model_dir))
    with open(os.path.join(run_dir, "test_scores.json"), "w", encoding="utf-8") as fh:
        json.dump({"test_file": "/data/sts-test.tsv", "scores": {"cosine_spearman": 0.5, "cosine_pearson": 0.25}}, fh)
    assert main(["export", "card", "--model", run_dir, "--model-id", "me/ko-diffcse", "--license", "apache-2.0"]) == 0
    card = open(os.path.join(model_dir, "README.md"), encoding="utf-8").read()
    assert "| test | sts-test.tsv | 25.00 | 50.00 |" in card and "| dev (step 2) |" in card
    assert "license: apache-2.0" in card and 'SentenceTransformer("me/ko-diffcse")' in card
    assert SentenceTransformer(model_dir, device="cpu").encode(["문장"]).shape == (1, 32)
    assert main(["export", "card", "--model", os.path.join(run_dir, "missing")]) == 2
    assert "no such directory" in capsys.readouterr().err
