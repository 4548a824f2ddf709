"""The reference README's performance table (x100, two decimals) and its JSON twin."""
from __future__ import annotations

from .sts import METRICS

COLUMNS = ["Model", "Average", "Cosine Pearson", "Cosine Spearman", "Euclidean Pearson", "Euclidean Spearman",
           "Manhattan Pearson", "Manhattan Spearman", "Dot Pearson", "Dot Spearman"]


def scores_x100(scores: dict[str, float]) -> dict[str, float]:
    return {k: round(100.0 * v, 2) for k, v in scores.items()}


def markdown_table(rows: list[tuple[str, dict[str, float]]]) -> str:
    """rows: (label, scores in [-1, 1]) pairs."""
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "|".join([":---"] + [":---:"] * (len(COLUMNS) - 1)) + "|"]
    for label, scores in rows:
        cells = [f"{100.0 * scores[k]:.2f}" for k in ("average", *METRICS)]
        lines.append("| " + " | ".join([label, *cells]) + " |")
    return "\n".join(lines)
