"""SentenceEncoder: agreement with sentence-transformers, input order, bad input, similarity and search."""
from __future__ import annotations

import warnings

import numpy as np
import pytest

from kodiffcse.errors import UserError


@pytest.fixture(scope="module")
def sentences(sample):
    from kodiffcse.data.sts import read_sts

    data = read_sts(sample["test"])
    return list(dict.fromkeys(data.sentences1 + data.sentences2))[:60]


@pytest.fixture(scope="module")
def enc(model_dir):
    from kodiffcse import SentenceEncoder

    return SentenceEncoder.from_pretrained(model_dir, device="cpu")


def test_top_level_import_and_layout(enc):
    import kodiffcse

    assert kodiffcse.SentenceEncoder is type(enc)
    assert enc.pooler == "cls_before_pooler" and enc.max_len == 32


def test_matches_sentence_transformers(model_dir, enc, sentences):
    from sentence_transformers import SentenceTransformer

    ours = enc.encode(sentences, batch_size=7)
    st = SentenceTransformer(model_dir, device="cpu").encode(sentences, batch_size=7, normalize_embeddings=True)
    assert ours.dtype == np.float32 and ours.shape == st.shape
    cos = np.sum(ours * st, axis=1)
    assert cos.min() >= 0.9999, cos.min()


def test_order_preserved_and_tensor_output(enc, sentences):
    import torch

    rng = np.random.default_rng(0)
    perm = rng.permutation(len(sentences))
    whole = enc.encode(sentences, batch_size=8)
    shuffled = enc.encode([sentences[i] for i in perm], batch_size=5)
    np.testing.assert_allclose(shuffled, whole[perm], atol=1e-5)
    one_by_one = np.stack([enc.encode(s) for s in sentences[:10]])
    np.testing.assert_allclose(one_by_one, whole[:10], atol=1e-5)
    as_tensor = enc.encode(sentences[:3], convert_to_tensor=True)
    assert isinstance(as_tensor, torch.Tensor) and torch.allclose(as_tensor, torch.from_numpy(whole[:3]), atol=1e-5)


def test_mean_pooler_and_unnormalized(enc, sentences, model_dir):
    from kodiffcse import SentenceEncoder

    raw = enc.encode(sentences[:4], normalize=False)
    assert not np.allclose(np.linalg.norm(raw, axis=1), 1.0)
    mean = SentenceEncoder.from_pretrained(model_dir, device="cpu", pooler="mean").encode(sentences[:4])
    assert not np.allclose(mean, enc.encode(sentences[:4]))


def test_empty_strings_and_empty_list(enc):
    out = enc.encode(["", "문장", ""])
    assert out.shape == (3, 32) and np.all(np.isfinite(out))
    np.testing.assert_allclose(out[0], out[2], atol=1e-6)
    assert enc.encode([]).shape == (0, 32)


def test_long_texts_truncated_with_one_plain_line(enc, capsys):
    long = "아주 긴 문장 " * 80
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out = enc.encode([long, "짧다", long + "끝", long], batch_size=2)
        enc.encode([long, "짧다", long + "끝", long], batch_size=2)  # the same texts again: not repeated
    assert not caught, "a Python warning prints its source line"
    assert capsys.readouterr().err == "3 of 4 texts are longer than 32 tokens and were truncated\n"
    assert enc.last_truncated == 3 and np.all(np.isfinite(out))
    enc.encode([long])
    assert capsys.readouterr().err == "1 of 1 text is longer than 32 tokens and was truncated\n"


def test_non_string_item_names_its_index(enc):
    with pytest.raises(UserError, match="item 2 is int"):
        enc.encode(["a", "b", 3])
    with pytest.raises(UserError, match="item 0 is NoneType"):
        enc.similarity([None], ["x"])


@pytest.mark.parametrize("path", ["/no/such/model", "./missing-model", "a/b/c"])
def test_missing_model_is_one_line_error(path):
    from kodiffcse import SentenceEncoder

    with pytest.raises(UserError) as info:
        SentenceEncoder.from_pretrained(path)
    assert "\n" not in str(info.value) and path in str(info.value)


def test_train_output_dir_resolves_to_best(model_dir):
    import os

    from kodiffcse import SentenceEncoder

    enc = SentenceEncoder.from_pretrained(os.path.dirname(model_dir), device="cpu")
    assert enc.name_or_path == model_dir


def test_similarity(enc, sentences):
    a, b = sentences[:3], sentences[3:5]
    matrix = enc.similarity(a, b)
    assert matrix.shape == (3, 2)
    np.testing.assert_allclose(matrix, enc.encode(a) @ enc.encode(b).T, atol=1e-6)
    single = enc.similarity(a[0], b[1])
    assert isinstance(single, float) and single == pytest.approx(float(matrix[0, 1]), abs=1e-6)
    assert enc.similarity(a[0], a[0]) == pytest.approx(1.0, abs=1e-5)
    calls = enc.encode_calls
    square = enc.similarity(a, a)  # the CLI's all-pairs matrix: one encoding of the list, not two
    assert enc.encode_calls - calls == 1
    np.testing.assert_allclose(np.diag(square), 1.0, atol=1e-5)


@pytest.mark.parametrize("backend", ["numpy", "faiss"])
def test_build_index_and_search(model_dir, sentences, backend):
    from kodiffcse import SentenceEncoder

    if backend == "faiss":
        pytest.importorskip("faiss")
    enc = SentenceEncoder.from_pretrained(model_dir, device="cpu", pooler="mean")
    corpus, queries = sentences[:40], sentences[40:43]
    index = enc.build_index(corpus, backend=backend)
    assert index.backend == backend and len(index) == 40
    hits = enc.search(queries, top_k=4)
    scores = enc.encode(queries) @ enc.encode(corpus).T
    for q, row in enumerate(hits):
        expected = np.argsort(-scores[q], kind="stable")[:4]
        assert [s for s, _ in row] == [corpus[i] for i in expected]
        np.testing.assert_allclose([x for _, x in row], scores[q, expected], atol=1e-5)
    single = enc.search(corpus[5], top_k=1)
    assert single[0][0] == corpus[5] and single[0][1] == pytest.approx(1.0, abs=1e-5)
    assert all(score >= 0.99 for _, score in enc.search(queries[0], top_k=10, threshold=0.99))


def test_search_without_index_is_an_error(model_dir):
    from kodiffcse import SentenceEncoder

    with pytest.raises(UserError, match="build_index"):
        SentenceEncoder.from_pretrained(model_dir, device="cpu").search("질문")
