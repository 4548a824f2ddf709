"""The conditional discriminator: the encoder's architecture reading the edited sentence, with position 0
of its embedding output replaced by the sentence vector, predicting replaced/original per token.

A forward hook on the embedding module does the replacement, so transformers is used unpatched (the
official code and the seed vendored a forked transformers for one `cls_input` argument).
"""
from __future__ import annotations

import torch
from torch import nn


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
        _embedding_output_module(backbone).register_forward_hook(self._replace_first_position)

    def _replace_first_position(self, module, inputs, output):
        if self._condition is None:
            raise RuntimeError("ConditionalDiscriminator's backbone was called without a sentence vector")
        cond = self._condition.to(output.dtype).unsqueeze(1)
        return torch.cat([cond, output[:, 1:]], dim=1)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, condition: torch.Tensor) -> torch.Tensor:
        """Per-token logits (batch, length, 2) for original (0) / replaced (1)."""
        self._condition = condition
        try:
            hidden = self.backbone(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        finally:
            self._condition = None
        return self.head(hidden)
