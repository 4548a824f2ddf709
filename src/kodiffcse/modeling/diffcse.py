"""The trained model: encoder + pooling + projection (training only) + optional conditional discriminator."""
from __future__ import annotations

import torch
from torch import nn

from .discriminator import ConditionalDiscriminator
from .dropout import use_lane_dropout
from .fused_qkv import use_fused_qkv
from .pooling import pool


class DiffCSEModel(nn.Module):
    """Everything that trains, as one module, so one `accelerator.prepare` wraps it for DDP.

    forward() encodes all 2B rows (both dropout views) in one pass. The discriminator, when present, reads
    the edited rows conditioned on z = MLP(h) (official default) or on h with `before_mlp`, so the RTD
    gradient reaches the encoder through the sentence vector. On CPU its dropouts draw masks cheaply (dropout.py)
    and its self-attention projects q, k and v in one product (fused_qkv.py).
    """

    def __init__(self, encoder: nn.Module, projection: nn.Module, pooler: str = "cls_before_pooler",
                 discriminator: ConditionalDiscriminator | None = None, before_mlp: bool = False):
        super().__init__()
        self.encoder, self.projection, self.discriminator = encoder, projection, discriminator
        self.pooler, self.before_mlp = pooler, before_mlp
        use_lane_dropout(self)
        use_fused_qkv(self)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                edited_ids: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        hidden = self.encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        h = pool(hidden, attention_mask, self.pooler)
        z = self.projection(h)
        out = {"h": h, "z": z}
        if self.discriminator is not None and edited_ids is not None:
            condition = h if self.before_mlp else z
            out["rtd_logits"] = self.discriminator(edited_ids, attention_mask, condition)
        return out
