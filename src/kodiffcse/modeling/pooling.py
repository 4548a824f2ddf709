"""Sentence vectors from token states.

`cls_before_pooler` (the CLS hidden state) is what DiffCSE and SimCSE evaluate with; evaluating with the
training MLP or a different pooler costs many points (SimCSE issue #100: 56.87 against 76.25).
"""
from __future__ import annotations

import torch

POOLERS = ("cls_before_pooler", "cls", "mean")


def pool(hidden: torch.Tensor, attention_mask: torch.Tensor, mode: str, pooler_output: torch.Tensor | None = None) -> torch.Tensor:
    if mode == "cls_before_pooler":
        return hidden[:, 0]
    if mode == "mean":
        mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
        return (hidden * mask).sum(1) / mask.sum(1).clamp(min=1.0)
    if mode == "cls":  # the checkpoint's own pooler layer (dense + tanh over CLS)
        if pooler_output is None:
            raise ValueError("pooler 'cls' needs a model with a pooler layer; use cls_before_pooler or mean")
        return pooler_output
    raise ValueError(f"unknown pooler {mode!r}; choose one of {', '.join(POOLERS)}")
