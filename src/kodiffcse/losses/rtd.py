"""Replaced-token detection: cross-entropy of the discriminator over non-pad tokens."""
from __future__ import annotations

import torch
import torch.nn.functional as F


def rtd_loss(logits: torch.Tensor, replaced: torch.Tensor, attention_mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(loss, accuracy) over the real tokens; `replaced` is 1 where the generator changed the token."""
    keep = attention_mask.bool()
    flat_logits = logits[keep].float()
    flat_labels = replaced[keep].long()
    loss = F.cross_entropy(flat_logits, flat_labels)
    accuracy = (flat_logits.argmax(-1) == flat_labels).float().mean()
    return loss, accuracy.detach()
