"""Exact inner-product search over sentence vectors: FAISS when importable, numpy otherwise.

Both backends are exact (FAISS IndexFlatIP, numpy blocked matmul) and both re-score their candidates in
float32 with numpy and order them by (score desc, corpus position asc), so on the same vectors they return
the same hits. Vectors are L2-normalised, so the score is the cosine similarity.

A saved index is a folder: vectors.npy (float32, memory-mapped on load), sentences.jsonl (one JSON string a
line) and index.json (model, size, dimension). Only the vectors are stored, never a FAISS file, so an index
saved with one backend loads with the other.
"""
from __future__ import annotations

import json
import os

import numpy as np

from .atomic import atomic_dir
from .errors import UserError

INDEX_META = "index.json"
VECTORS = "vectors.npy"
SENTENCES = "sentences.jsonl"
_BLOCK = 1 << 15  # corpus rows scored per numpy matmul: bounds memory to queries x 32768 floats


def faiss_available() -> bool:
    try:
        import faiss  # noqa: F401
    except ImportError:
        return False
    return True


def _top_k_rows(scores: np.ndarray, ids: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Per row, the k best (score desc, id asc) of candidate (scores, ids); -1 ids are padding."""
    scores = np.where(ids < 0, -np.inf, scores)
    order = np.lexsort((ids, -scores), axis=-1)[:, :k]
    return np.take_along_axis(scores, order, -1), np.take_along_axis(ids, order, -1)


class VectorIndex:
    """Sentences and their unit vectors, searchable by cosine similarity."""

    def __init__(self, vectors: np.ndarray, sentences: list[str], backend: str = "auto", meta: dict | None = None):
        vectors = np.asarray(vectors)
        if vectors.ndim != 2 or len(vectors) != len(sentences):
            raise ValueError(f"need one vector per sentence: {vectors.shape} vectors, {len(sentences)} sentences")
        if backend == "auto":
            backend = "faiss" if faiss_available() else "numpy"
        if backend not in ("faiss", "numpy"):
            raise UserError(f"unknown search backend {backend!r}; choose faiss, numpy or auto")
        if backend == "faiss" and not faiss_available():
            raise UserError("the faiss backend needs faiss: pip install 'kodiffcse[faiss]'")
        self.vectors = vectors if vectors.dtype == np.float32 else vectors.astype(np.float32)
        self.sentences, self.backend, self.meta = list(sentences), backend, dict(meta or {})
        self._faiss = None
        if backend == "faiss":
            import faiss

            self._faiss = faiss.IndexFlatIP(self.vectors.shape[1])
            self._faiss.add(np.ascontiguousarray(self.vectors))

    def __len__(self) -> int:
        return len(self.sentences)

    @property
    def dim(self) -> int:
        return self.vectors.shape[1]

    def search_vectors(self, queries: np.ndarray, top_k: int = 5) -> tuple[np.ndarray, np.ndarray]:
        """(scores, ids), each (len(queries), min(top_k, len(self))), best first."""
        queries = np.ascontiguousarray(np.atleast_2d(queries), dtype=np.float32)
        if queries.shape[1] != self.dim:
            raise UserError(f"query vectors have {queries.shape[1]} dimensions, the index {self.dim}")
        if top_k < 1:
            raise UserError(f"top_k must be at least 1, got {top_k}")
        k = min(top_k, len(self))
        if self._faiss is not None:
            # One spare candidate per query so a tie at the k-th place is broken by position, as in numpy.
            _, ids = self._faiss.search(queries, min(k + 1, len(self)))
            ids = ids.astype(np.int64)
            scores = np.einsum("qd,qkd->qk", queries, self.vectors[np.maximum(ids, 0)])
            return _top_k_rows(scores, ids, k)
        best_s = np.full((len(queries), 0), -np.inf, dtype=np.float32)
        best_i = np.zeros((len(queries), 0), dtype=np.int64)
        for start in range(0, len(self), _BLOCK):
            block = np.asarray(self.vectors[start:start + _BLOCK])
            scores = queries @ block.T
            kk = min(k, scores.shape[1])
            part = np.argpartition(-scores, kk - 1, axis=1)[:, :kk] if kk < scores.shape[1] else \
                np.broadcast_to(np.arange(scores.shape[1]), scores.shape)
            cand_s = np.take_along_axis(scores, part, 1)
            best_s, best_i = _top_k_rows(np.concatenate([best_s, cand_s], 1),
                                         np.concatenate([best_i, part + start], 1), k)
        # Re-score the winners the same way the FAISS path does, so both return bit-identical scores.
        best_s = np.einsum("qd,qkd->qk", queries, self.vectors[best_i])
        return _top_k_rows(best_s, best_i, k)

    def search(self, queries: np.ndarray, top_k: int = 5) -> list[list[tuple[str, float]]]:
        scores, ids = self.search_vectors(queries, top_k)
        return [[(self.sentences[i], float(s)) for s, i in zip(row_s, row_i)] for row_s, row_i in zip(scores, ids)]

    def save(self, path: str) -> str:
        """Write the index folder atomically (built beside it, then renamed into place)."""
        path = os.path.abspath(path)
        if os.path.isdir(path) and not os.path.isfile(os.path.join(path, INDEX_META)):
            raise UserError("exists and is not a kodiffcse index; refusing to replace it", path=path)
        with atomic_dir(path) as tmp:
            np.save(os.path.join(tmp, VECTORS), np.asarray(self.vectors))
            with open(os.path.join(tmp, SENTENCES), "w", encoding="utf-8") as fh:
                for sentence in self.sentences:
                    fh.write(json.dumps(sentence, ensure_ascii=False) + "\n")
            meta = {**self.meta, "size": len(self), "dim": self.dim, "format": 1}
            with open(os.path.join(tmp, INDEX_META), "w", encoding="utf-8") as fh:
                json.dump(meta, fh, ensure_ascii=False, indent=2)
        return path

    @classmethod
    def load(cls, path: str, backend: str = "auto") -> "VectorIndex":
        meta_file = os.path.join(path, INDEX_META)
        if not os.path.isfile(meta_file):
            raise UserError(f"not a kodiffcse index (no {INDEX_META})", path=path)
        with open(meta_file, encoding="utf-8") as fh:
            meta = json.load(fh)
        vectors = np.load(os.path.join(path, VECTORS), mmap_mode="r")
        with open(os.path.join(path, SENTENCES), encoding="utf-8") as fh:
            sentences = [json.loads(line) for line in fh]
        if len(sentences) != len(vectors) or meta.get("size") != len(vectors):
            raise UserError(f"damaged index: {len(vectors)} vectors, {len(sentences)} sentences", path=path)
        for key in ("size", "dim", "format"):
            meta.pop(key, None)
        return cls(vectors, sentences, backend=backend, meta=meta)
