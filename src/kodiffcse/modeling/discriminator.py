"""The conditional discriminator: the encoder's architecture reading the edited sentence, with its first
position (CLS) of the embedding output replaced by the sentence vector, predicting replaced/original per token.

A forward hook on the embedding module does the replacement, so transformers is used unpatched (the
official code and the seed vendored a forked transformers for one `cls_input` argument).
"""
from __future__ import annotations

import torch
from torch import nn

from .packing import PackedBatch, token_states


def _embedding_output_module(backbone: nn.Module) -> nn.Module:
    # ELECTRA projects small embeddings up to the hidden size; condition after that projection.
    project = getattr(backbone, "embeddings_project", None)
    return project if project is not None else backbone.embeddings


class ConditionalDiscriminator(nn.Module):
    def __init__(self, backbone: nn.Module):
        super().__init__()
        self.backbone = backbone
        if getattr(backbone, "pooler", None) is not None:
            backbone.pooler = None  # unused here; dropping it keeps DDP free of unused parameters
        self.head = nn.Linear(backbone.config.hidden_size, 2)
        self._condition: torch.Tensor | None = None
        self._packed: PackedBatch | None = None
        _embedding_output_module(backbone).register_forward_hook(self._replace_first_position)

    def _replace_first_position(self, module, inputs, output):
        if self._condition is None:
            raise RuntimeError("ConditionalDiscriminator's backbone was called without a sentence vector")
        cond = self._condition.to(output.dtype)
        if self._packed is not None:  # (1, T, H): each sentence's own first position in the packed row
            return output.index_copy(1, self._packed.first, cond.unsqueeze(0))
        return torch.cat([cond.unsqueeze(1), output[:, 1:]], dim=1)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, condition: torch.Tensor,
                packed: PackedBatch | None = None) -> torch.Tensor:
        """Per-token logits (batch, length, 2) for original (0) / replaced (1); zeros at padding when packed."""
        self._condition, self._packed = condition, packed
        try:
            states = token_states(self.backbone, input_ids, attention_mask, packed)
        finally:
            self._condition = self._packed = None
        logits = self.head(states)
        return logits if packed is None else packed.unpack(logits)
