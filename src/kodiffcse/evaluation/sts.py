"""Pearson and Spearman of gold scores against cosine, -Euclidean, -Manhattan and dot similarity.

Correlations are computed over the whole set, as sentence-transformers and MTEB do. The reference
computed them per shuffled mini-batch and averaged them, so its numbers depend on batch size and
shuffling; `per_batch` reproduces that protocol only to compare with its published figures.
Each distinct sentence is encoded once (KorSTS repeats many).
"""
from __future__ import annotations

from collections.abc import Callable

import numpy as np
from scipy.stats import pearsonr, spearmanr

from ..config import METRICS, SIMILARITIES
from ..data.sts import STSData
from ..errors import UserError



def similarities(a: np.ndarray, b: np.ndarray) -> dict[str, np.ndarray]:
    a64, b64 = a.astype(np.float64), b.astype(np.float64)
    norms = np.linalg.norm(a64, axis=1) * np.linalg.norm(b64, axis=1)
    return {
        "cosine": (a64 * b64).sum(1) / np.maximum(norms, 1e-12),
        "euclidean": -np.linalg.norm(a64 - b64, axis=1),
        "manhattan": -np.abs(a64 - b64).sum(1),
        "dot": (a64 * b64).sum(1),
    }


def correlations(gold: np.ndarray, sims: dict[str, np.ndarray]) -> dict[str, float]:
    out = {}
    for name in SIMILARITIES:
        out[f"{name}_pearson"] = float(pearsonr(gold, sims[name])[0])
        out[f"{name}_spearman"] = float(spearmanr(gold, sims[name])[0])
    return out


def _per_batch(gold: np.ndarray, sims: dict[str, np.ndarray], batch_size: int, seed: int) -> dict[str, float]:
    order = np.random.default_rng(seed).permutation(len(gold))
    runs = []
    for start in range(0, len(order), batch_size):
        rows = order[start:start + batch_size]
        if len(rows) < 3 or np.ptp(gold[rows]) == 0:
            continue  # a correlation is undefined here; the reference would have produced NaN
        runs.append(correlations(gold[rows], {k: v[rows] for k, v in sims.items()}))
    if not runs:
        raise UserError(f"--per-batch-average {batch_size}: no batch has enough varied pairs")
    return {m: float(np.mean([r[m] for r in runs])) for m in METRICS}


def evaluate_sts(encode: Callable[[list[str]], np.ndarray], data: STSData, per_batch: int | None = None,
                 seed: int = 0) -> dict[str, float]:
    """Scores in [-1, 1] for each metric plus their 'average'; `encode` maps sentences to raw vectors."""
    unique = list(dict.fromkeys(data.sentences1 + data.sentences2))
    index = {s: i for i, s in enumerate(unique)}
    vectors = np.asarray(encode(unique), dtype=np.float32)
    if not np.isfinite(vectors).all():
        bad = int((~np.isfinite(vectors).all(1)).sum())
        raise UserError(f"the model produced non-finite embeddings for {bad} of {len(unique)} sentences", path=data.path)
    a = vectors[[index[s] for s in data.sentences1]]
    b = vectors[[index[s] for s in data.sentences2]]
    gold = np.asarray(data.scores, dtype=np.float64)
    sims = similarities(a, b)
    scores = _per_batch(gold, sims, per_batch, seed) if per_batch else correlations(gold, sims)
    if not all(np.isfinite(v) for v in scores.values()):
        raise UserError("correlations are undefined (constant gold scores or constant similarities)", path=data.path)
    scores["average"] = float(np.mean([scores[m] for m in METRICS]))
    return scores


def evaluate_encoder(encoder, data: STSData, batch_size: int = 128, per_batch: int | None = None,
                     seed: int = 0) -> dict[str, float]:
    """Score a SentenceEncoder on its raw vectors: Euclidean, Manhattan and dot scores change with normalising."""
    return evaluate_sts(lambda s: encoder.encode(s, batch_size=batch_size, normalize=False), data, per_batch, seed)
