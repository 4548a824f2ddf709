"""Supervised SimCSE's InfoNCE (official `sup-simcse`): NLI triplets, entailment as positive, contradiction as
hard negative, every other positive and every hard negative in the batch (all processes) as negatives.

Layout: this process's B anchors are scored against the rows gathered from every process, where each
process contributes its B positives followed by its B hard negatives (one all_gather of 2B rows). The
official code orders the columns [all positives | all hard negatives]; cross-entropy does not depend on the
column order, so the loss is the same. As in the InfoNCE of the unsupervised objectives (infonce.py), the
anchors are this process's own and the gathered rows from other processes are constants; the official code
also gathers the anchors, so its loss is the mean of every process's loss here.

`hard_negative_weight` is the official option of the same name: added to the logit (after the temperature)
of each anchor's own hard negative; 0 (the official default) leaves it an ordinary negative.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from .infonce import gather_with_local_grad


def sup_simcse_logits(anchor: torch.Tensor, positive: torch.Tensor, hard_negative: torch.Tensor, temperature: float,
                      hard_negative_weight: float = 0.0) -> tuple[torch.Tensor, torch.Tensor]:
    """(B, world x 2B) logits and each anchor's positive column."""
    b = anchor.shape[0]
    rows = F.normalize(torch.cat([positive, hard_negative]).float(), dim=-1)
    gathered, offset = gather_with_local_grad(rows)  # [p_0; n_0; p_1; n_1; ...], this process's block at offset
    logits = F.normalize(anchor.float(), dim=-1) @ gathered.T / temperature
    index = torch.arange(b, device=anchor.device)
    labels = index + offset
    if hard_negative_weight:
        weights = torch.zeros_like(logits)
        weights[index, labels + b] = hard_negative_weight
        logits = logits + weights
    return logits, labels


def sup_simcse_loss(anchor: torch.Tensor, positive: torch.Tensor, hard_negative: torch.Tensor, temperature: float,
                    hard_negative_weight: float = 0.0) -> torch.Tensor:
    logits, labels = sup_simcse_logits(anchor, positive, hard_negative, temperature, hard_negative_weight)
    return F.cross_entropy(logits, labels)


def supervised_loss(outputs: dict[str, torch.Tensor], temperature: float,
                    hard_negative_weight: float) -> dict[str, torch.Tensor]:
    """`outputs` come from DiffCSEModel over 3B rows: anchors [0, B), positives [B, 2B), hard negatives [2B, 3B)."""
    z = outputs["z"]
    b = z.shape[0] // 3
    loss = sup_simcse_loss(z[:b], z[b:2 * b], z[2 * b:], temperature, hard_negative_weight)
    return {"infonce": loss, "loss": loss}
