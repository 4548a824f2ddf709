"""BERT-style masking for the generator's input, drawn fresh on every step.

The reference picked its positions once before training (so every epoch saw the same edits) and used
SEP as its "mask" token; here positions come from the global torch RNG on each call, which Accelerate
checkpoints, and the tokenizer's real mask token is used.
"""
from __future__ import annotations

import torch


def mask_tokens(
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    special_ids: torch.Tensor,
    ratio: float,
    mask_id: int,
    vocab_size: int,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Choose `ratio` of the real tokens; 80% become mask, 10% a random token, 10% stay.

    Returns (masked input ids, chosen positions). Special tokens and padding are never chosen.
    """
    device = input_ids.device
    candidates = attention_mask.bool() & ~torch.isin(input_ids, special_ids)
    chosen = (torch.rand(input_ids.shape, device=device) < ratio) & candidates
    masked = input_ids.clone()
    roll = torch.rand(input_ids.shape, device=device)
    to_mask = chosen & (roll < 0.8)
    to_random = chosen & (roll >= 0.8) & (roll < 0.9)
    masked[to_mask] = mask_id
    random_tokens = torch.randint(vocab_size, input_ids.shape, device=device, dtype=input_ids.dtype)
    masked[to_random] = random_tokens[to_random]
    return masked, chosen
