"""The trained model: encoder + pooling + projection (training only) + optional conditional discriminator."""
from __future__ import annotations

import torch
from torch import nn

from .discriminator import ConditionalDiscriminator
from .dropout import use_lane_dropout
from .fused_qkv import use_fused_qkv
from .packing import PackedBatch, packable, sentence_vectors, use_varlen_attention
from .read_rows import use_read_rows


class DiffCSEModel(nn.Module):
    """Everything that trains, as one module, so one `accelerate.prepare` wraps it for DDP.

    forward() encodes all 2B rows (both dropout views) in one pass. The discriminator, when present, reads
    the edited rows conditioned on z = MLP(h) (official default) or on h with `before_mlp`, so the RTD
    gradient reaches the encoder through the sentence vector.

    Two switches, both on by default and both exact: `padding_free` runs encoder and discriminator on the
    batch's real tokens only (packing.py); `cpu_kernels` turns on this project's CPU kernels, cheap dropout
    masks (dropout.py) and one q/k/v product (fused_qkv.py), which step aside on GPUs. Off, they leave stock
    transformers modules, for debugging or comparison. On packed rows under CLS pooling the encoder's last
    layer runs at the CLS rows only (read_rows.py), which is exact too.
    """

    def __init__(self, encoder: nn.Module, projection: nn.Module, pooler: str = "cls_before_pooler",
                 discriminator: ConditionalDiscriminator | None = None, before_mlp: bool = False,
                 padding_free: bool = True, cpu_kernels: bool = True):
        super().__init__()
        self.encoder, self.projection, self.discriminator = encoder, projection, discriminator
        self.pooler, self.before_mlp = pooler, before_mlp
        if cpu_kernels:  # the one place the CPU kernels are switched on; lane attention is varlen too
            use_lane_dropout(self)
            use_fused_qkv(self)
        else:
            use_varlen_attention(self)
        backbones = [encoder] + ([discriminator.backbone] if discriminator is not None else [])
        self.padding_free = padding_free and all(packable(b) for b in backbones)  # other families run padded
        # CLS pooling reads one row per sentence: the encoder's last layer runs there only (read_rows.py)
        self.read_cls_only = self.padding_free and pooler == "cls_before_pooler" and use_read_rows(encoder)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                edited_ids: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        packed = PackedBatch.from_mask(attention_mask) if self.padding_free else None
        h = sentence_vectors(self.encoder, input_ids, attention_mask, packed, self.pooler, self.read_cls_only)
        z = self.projection(h)
        out = {"h": h, "z": z}
        if self.discriminator is not None and edited_ids is not None:
            condition = h if self.before_mlp else z
            out["rtd_logits"] = self.discriminator(edited_ids, attention_mask, condition, packed)
        return out
