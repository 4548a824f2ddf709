"""Projection heads applied to the sentence vector in training only."""
from __future__ import annotations

from torch import nn


class BatchNormProjection(nn.Sequential):
    """DiffCSE's projector: Linear(d, 2d) -> BN -> ReLU -> Linear(2d, d) -> BN(affine=False)."""

    def __init__(self, dim: int):
        super().__init__(
            nn.Linear(dim, 2 * dim, bias=False), nn.BatchNorm1d(2 * dim), nn.ReLU(inplace=True),
            nn.Linear(2 * dim, dim, bias=False), nn.BatchNorm1d(dim, affine=False),
        )


class TanhProjection(nn.Sequential):
    """SimCSE's MLP: Linear(d, d) -> tanh."""

    def __init__(self, dim: int):
        super().__init__(nn.Linear(dim, dim), nn.Tanh())


def projection_for(objective: str, dim: int) -> nn.Module:
    return BatchNormProjection(dim) if objective == "diffcse" else TanhProjection(dim)
