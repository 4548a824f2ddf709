"""Dropout whose CPU masks cost a quarter of torch's own, for the hidden states and the attention probabilities.

Dropout is SimCSE's augmentation, so every training step draws a mask for every activation of the encoder
and the discriminator. On CPU torch's `bernoulli_` draws one mt19937 number per element, serially (about
10 ns each): 14% of a CPU training step, and SDPA's math path adds its own mask handling on top
(docs/performance.md). Here one 64-bit word of a numpy SFC64 stream, seeded from torch's generator, gives
four 16-bit lanes, each compared with a threshold. The keep probability is 1 - p rounded to a multiple of
1/65536 (p = 0.1 becomes 0.100006) and the scale uses that rounded rate, so the output stays unbiased. Masks
are fresh on every call and reproducible under `torch.manual_seed`. On other devices (CUDA's fused dropout
is already fast), under torch.compile (which fuses its own random masks), in eval mode and for in-place
use, everything is plain `nn.Dropout` and SDPA.
"""
from __future__ import annotations

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

_LANES = 65536
LANE_ATTENTION = "kodiffcse_lane_sdpa"


def lane_dropout(x: torch.Tensor, p: float) -> torch.Tensor:
    """Training-mode dropout of a CPU tensor `x` at rate `p` from 16 random bits per element."""
    drop = round(p * _LANES)
    if drop == 0:
        return x
    if drop >= _LANES:
        return torch.zeros_like(x)
    keep, scale = _lane_keep(x.numel(), drop)
    mask = keep.view(x.shape).to(x.dtype)  # 0/1 bytes to floats: one fast pass
    if x.dtype in (torch.float32, torch.float64):
        return x * mask.mul_(scale)  # forward and backward are one multiplication each
    return (x * mask).mul_(scale)  # a scale rounded into a 16-bit mask would bias the output


def lane_mask(n: int, p: float, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """lane_dropout's multiplier for `n` elements of a float32 or float64 tensor: 0 or the unbiasing scale."""
    drop = min(round(p * _LANES), _LANES)
    if drop == 0 or drop == _LANES:
        return torch.full((n,), float(drop == 0), dtype=dtype)
    keep, scale = _lane_keep(n, drop)
    return keep.to(dtype).mul_(scale)


def _lane_keep(n: int, drop: int) -> tuple[torch.Tensor, float]:
    """`n` 0/1 bytes, each 0 with probability drop / 65536, and the scale that keeps dropout unbiased."""
    seed = int(torch.empty((), dtype=torch.int64).random_())  # the masks follow torch's RNG state
    words = np.random.SFC64(seed).random_raw((n + 3) // 4)
    keep = np.greater_equal(words.view(np.int16)[:n], drop - _LANES // 2).view(np.uint8)
    return torch.from_numpy(keep), _LANES / (_LANES - drop)


def cpu_eager(x: torch.Tensor) -> bool:
    """A CPU float tensor outside torch.compile: where this project's hand-made CPU kernels apply."""
    return x.device.type == "cpu" and x.is_floating_point() and not torch.compiler.is_compiling()


class LaneDropout(nn.Dropout):
    """nn.Dropout with lane_dropout's masks on CPU; the module swap keeps every state dict unchanged."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training and not self.inplace and cpu_eager(x):
            return lane_dropout(x, self.p)
        return F.dropout(x, self.p, self.training, self.inplace)


def lane_attention(query, key, value, mask, dropout: float, scaling: float | None) -> torch.Tensor:
    """Bidirectional attention (..., length, head_dim) whose probabilities, in CPU training, are dropped with
    lane masks; `mask` is boolean (True: attend) or additive. Elsewhere it is torch's SDPA."""
    if dropout == 0.0 or not cpu_eager(query):
        return F.scaled_dot_product_attention(query, key, value, attn_mask=mask, dropout_p=dropout, scale=scaling)
    scores = torch.matmul(query, key.transpose(-1, -2)).mul_(scaling if scaling is not None else query.shape[-1] ** -0.5)
    if mask is not None:
        scores = (scores.masked_fill_(~mask, torch.finfo(scores.dtype).min)
                  if mask.dtype == torch.bool else scores.add_(mask))
    probs = lane_dropout(torch.softmax(scores, dim=-1), dropout)
    return torch.matmul(probs, value)


def lane_sdpa(module, query, key, value, attention_mask, dropout=0.0, scaling=None, is_causal=None, **kwargs):
    """transformers' SDPA attention, except that CPU training of a plain bidirectional encoder drops
    attention probabilities with lane masks (SDPA's math path, which CPU training with dropout takes anyway)."""
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    plain = (not (is_causal if is_causal is not None else getattr(module, "is_causal", False))
             and kwargs.get("position_bias") is None and kwargs.get("softcap") is None
             and key.shape == query.shape)  # equal shapes: self-attention, one key head per query head
    if dropout == 0.0 or not plain or not cpu_eager(query):
        return sdpa_attention_forward(module, query, key, value, attention_mask, dropout=dropout, scaling=scaling,
                                      is_causal=is_causal, **kwargs)
    return lane_attention(query, key, value, attention_mask, dropout, scaling).transpose(1, 2).contiguous(), None


def _register_lane_sdpa() -> None:
    from transformers import AttentionInterface
    from transformers.masking_utils import AttentionMaskInterface

    from .packing import varlen, varlen_mask

    AttentionInterface.register(LANE_ATTENTION, varlen(lane_sdpa, lane_attention))  # packed batches too (packing.py)
    AttentionMaskInterface.register(LANE_ATTENTION, varlen_mask)  # without it transformers passes no padding mask


def use_lane_dropout(module: nn.Module) -> int:
    """Swap every plain nn.Dropout inside `module` for LaneDropout and move its SDPA transformers models to
    lane_sdpa; returns how many dropouts were swapped. Saved configs keep saying sdpa."""
    from .packing import use_varlen_attention

    _register_lane_sdpa()
    use_varlen_attention(module, LANE_ATTENTION)
    swapped = 0
    for parent in module.modules():
        for name, child in list(parent.named_children()):
            if type(child) is nn.Dropout:
                setattr(parent, name, LaneDropout(child.p, child.inplace))
                swapped += 1
    return swapped
