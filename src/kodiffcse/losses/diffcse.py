"""DiffCSE = InfoNCE + lambda x RTD; with no discriminator output it is SimCSE."""
from __future__ import annotations

import torch

from .infonce import info_nce
from .rtd import rtd_loss


def diffcse_loss(outputs: dict[str, torch.Tensor], attention_mask: torch.Tensor, replaced: torch.Tensor | None,
                 temperature: float, lambda_weight: float) -> dict[str, torch.Tensor]:
    """`outputs` come from DiffCSEModel over 2B rows: rows [0, B) are view 1, rows [B, 2B) view 2."""
    z = outputs["z"]
    b = z.shape[0] // 2
    contrastive = info_nce(z[:b], z[b:], temperature)
    result = {"infonce": contrastive, "loss": contrastive}
    if "rtd_logits" in outputs:
        rtd, accuracy = rtd_loss(outputs["rtd_logits"], replaced, attention_mask)
        result.update(rtd=rtd, rtd_accuracy=accuracy, loss=contrastive + lambda_weight * rtd)
    return result
