"""A reference-faithful KoDiffCSE training step, for benchmarks only (never used for training).

It follows the reference's structure, defects included, so that the speed comparison is honest:
- every batch is padded to max_len;
- masks are computed once, before training (`premask`), with the whole batch's masked copy stored;
- per view: one encoder pass, one generator pass (full MLM logits over every position, padding included)
  and one discriminator pass, i.e. two of each per step;
- the sentence vector is the BERT/RoBERTa pooler output (dense + tanh over CLS), used for the contrastive
  loss and to condition the discriminator.
The discriminator's conditioning reuses kodiffcse's hook (the reference forked transformers for it);
the arithmetic is the same.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from kodiffcse.data.masking import mask_tokens
from kodiffcse.modeling.discriminator import ConditionalDiscriminator


class BaselineModel(nn.Module):
    def __init__(self, encoder: nn.Module, discriminator: ConditionalDiscriminator):
        super().__init__()
        self.encoder, self.discriminator = encoder, discriminator


def premask(tokenizer, input_ids: torch.Tensor, attention_mask: torch.Tensor, ratio: float) -> tuple:
    """Masked copy and chosen positions, drawn once before training as the reference does."""
    special = torch.tensor(sorted(set(tokenizer.all_special_ids)), dtype=torch.long)
    return mask_tokens(input_ids, attention_mask, special, ratio, tokenizer.mask_token_id, len(tokenizer))


def baseline_loss(model: BaselineModel, generator: nn.Module, batch: dict, temperature: float,
                  lambda_weight: float, autocast_dtype=None) -> torch.Tensor:
    """Loss of one reference-style step over a max_len-padded batch with precomputed masks."""
    ids, att, masked = batch["input_ids"], batch["attention_mask"], batch["masked_ids"]
    device_type = ids.device.type
    vectors, rtd_losses = [], []
    for _view in range(2):
        with torch.autocast(device_type, dtype=autocast_dtype or torch.bfloat16, enabled=autocast_dtype is not None):
            pooled = model.encoder(input_ids=ids, attention_mask=att).pooler_output
            with torch.no_grad():
                logits = generator(input_ids=masked, attention_mask=att).logits  # (B, max_len, V)
                edited = logits.argmax(-1)
            edited[:, 0] = ids[:, 0]
            replaced = (edited != ids) & att.bool()
            rtd_logits = model.discriminator(edited, att, pooled)
        keep = att.bool()
        rtd_losses.append(F.cross_entropy(rtd_logits[keep].float(), replaced[keep].long()))
        vectors.append(pooled)
    z1, z2 = vectors
    sim = F.cosine_similarity(z1.float().unsqueeze(1), z2.float().unsqueeze(0), dim=-1) / temperature
    contrastive = F.cross_entropy(sim, torch.arange(len(z1), device=z1.device))
    return contrastive + lambda_weight * (rtd_losses[0] + rtd_losses[1]) / 2
