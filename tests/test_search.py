"""VectorIndex: FAISS and numpy return the same exact neighbours; saved indexes load with either backend."""
from __future__ import annotations

import json
import os

import numpy as np
import pytest

from kodiffcse.errors import UserError
from kodiffcse.search import VectorIndex, faiss_available


def unit(rows: int, dim: int = 16, seed: int = 0) -> np.ndarray:
    x = np.random.default_rng(seed).standard_normal((rows, dim)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def brute_force(vectors, queries, k):
    scores = queries @ vectors.T
    ids = np.stack([np.lexsort((np.arange(len(vectors)), -row))[:k] for row in scores])
    return np.take_along_axis(scores, ids, 1), ids


def test_numpy_matches_brute_force_across_blocks(monkeypatch):
    import kodiffcse.search as search

    vectors, queries = unit(500), unit(20, seed=1)
    expected_s, expected_i = brute_force(vectors, queries, 7)
    for block in (7, 64, 1 << 15):
        monkeypatch.setattr(search, "_BLOCK", block)
        scores, ids = VectorIndex(vectors, [str(i) for i in range(500)], backend="numpy").search_vectors(queries, 7)
        np.testing.assert_array_equal(ids, expected_i)
        np.testing.assert_allclose(scores, expected_s, atol=1e-6)


def test_faiss_and_numpy_identical():
    pytest.importorskip("faiss")
    vectors, queries = unit(800, 24, seed=2), unit(30, 24, seed=3)
    sentences = [f"s{i}" for i in range(800)]
    a = VectorIndex(vectors, sentences, backend="faiss")
    b = VectorIndex(vectors, sentences, backend="numpy")
    for k in (1, 5, 50):
        sa, ia = a.search_vectors(queries, k)
        sb, ib = b.search_vectors(queries, k)
        np.testing.assert_array_equal(ia, ib)
        np.testing.assert_array_equal(sa, sb)
    assert a.search(queries[:2], 3) == b.search(queries[:2], 3)


@pytest.mark.parametrize("backend", ["numpy", "faiss"])
def test_ties_break_by_position_and_k_is_capped(backend):
    if backend == "faiss":
        pytest.importorskip("faiss")
    base = unit(3, 8, seed=4)
    vectors = np.concatenate([base, base, base])  # every vector three times
    index = VectorIndex(vectors, [f"s{i}" for i in range(9)], backend=backend)
    _, ids = index.search_vectors(base[1], 3)
    assert ids.tolist() == [[1, 4, 7]]
    scores, ids = index.search_vectors(base, 100)
    assert ids.shape == (3, 9) and np.all(np.diff(scores, axis=1) <= 1e-6)


def test_save_load_round_trip_with_other_backend(tmp_path):
    vectors = unit(50, seed=5)
    sentences = [f"문장 {i} \"따옴표\"\n줄바꿈" for i in range(50)]
    index = VectorIndex(vectors, sentences, backend="numpy", meta={"model": "m"})
    path = index.save(str(tmp_path / "idx"))
    backend = "faiss" if faiss_available() else "numpy"
    loaded = VectorIndex.load(path, backend=backend)
    assert loaded.sentences == sentences and loaded.meta == {"model": "m"} and loaded.backend == backend
    assert loaded.search(vectors[:3], 4) == index.search(vectors[:3], 4)
    index.save(path)  # replacing an index is allowed
    assert sorted(os.listdir(tmp_path)) == ["idx"]


def test_bad_indexes(tmp_path):
    other = tmp_path / "other"
    other.mkdir()
    (other / "keep.txt").write_text("x")
    with pytest.raises(UserError, match="not a kodiffcse index"):
        VectorIndex(unit(3), ["a", "b", "c"]).save(str(other))
    assert (other / "keep.txt").exists()
    with pytest.raises(UserError, match="not a kodiffcse index"):
        VectorIndex.load(str(other))
    path = VectorIndex(unit(3), ["a", "b", "c"]).save(str(tmp_path / "idx"))
    with open(os.path.join(path, "sentences.jsonl"), "a", encoding="utf-8") as fh:
        fh.write(json.dumps("extra") + "\n")
    with pytest.raises(UserError, match="damaged index"):
        VectorIndex.load(path)
    index = VectorIndex(unit(3), ["a", "b", "c"], backend="numpy")
    with pytest.raises(UserError, match="dimensions"):
        index.search_vectors(unit(1, dim=8), 1)
    with pytest.raises(UserError, match="top_k"):
        index.search_vectors(unit(1), 0)
    with pytest.raises(UserError, match="unknown search backend"):
        VectorIndex(unit(3), ["a", "b", "c"], backend="annoy")
