"""One training step's computation, shared by the loop, the tests and the benchmark.

Both dropout views are one encoder pass over 2B rows; masks are drawn fresh for all 2B rows; the
generator fills them in one inference pass; the discriminator reads all 2B edited rows in one pass.
Supervised SimCSE's batch is the 3B rows of B triplets, also encoded in one pass.
"""
from __future__ import annotations

import torch

from ..config import ModelConfig
from ..data.masking import mask_tokens
from ..losses import diffcse_loss, supervised_loss
from ..modeling.generator import FrozenGenerator
from ..modeling.packing import PackedBatch


class TrainingStep:
    def __init__(self, cfg: ModelConfig, tokenizer, generator: FrozenGenerator | None):
        if (cfg.objective == "diffcse") != (generator is not None):
            raise ValueError("diffcse needs a generator and simcse must not have one")
        self.cfg, self.generator = cfg, generator
        self.mask_id, self.vocab_size = tokenizer.mask_token_id, len(tokenizer)
        self._special = torch.tensor(sorted(set(tokenizer.all_special_ids)), dtype=torch.long)

    def edits(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(edited ids, replaced labels) from freshly masked, generator-filled copies of the rows."""
        special = self._special.to(input_ids.device)
        masked, chosen = mask_tokens(input_ids, attention_mask, special, self.cfg.masking_ratio, self.mask_id, self.vocab_size)
        packed = PackedBatch.from_mask(attention_mask) if self.cfg.padding_free else None
        edited = input_ids.clone()
        edited[chosen] = self.generator.fill(masked, attention_mask, chosen, packed)
        replaced = (edited != input_ids) & attention_mask.bool()
        return edited, replaced

    def __call__(self, model, batch: dict[str, torch.Tensor], edits=None) -> dict[str, torch.Tensor]:
        if self.cfg.objective == "sup-simcse":  # 3B rows already: anchors, positives, hard negatives; one pass
            outputs = model(batch["input_ids"], batch["attention_mask"])
            return supervised_loss(outputs, self.cfg.temperature, self.cfg.hard_negative_weight)
        input_ids = torch.cat([batch["input_ids"], batch["input_ids"]])
        attention_mask = torch.cat([batch["attention_mask"], batch["attention_mask"]])
        edited = replaced = None
        if self.generator is not None:
            edited, replaced = edits if edits is not None else self.edits(input_ids, attention_mask)
        outputs = model(input_ids, attention_mask, edited)
        return diffcse_loss(outputs, attention_mask, replaced, self.cfg.temperature, self.cfg.lambda_weight)
