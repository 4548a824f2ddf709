"""Padding-free encoding: a batch's real tokens as one packed row, so the layers that hold nearly all the
FLOPs (every linear, LayerNorm, GELU and dropout) run on the (tokens, hidden) matrix and none on padding.

Random batches keep their composition (the same in-batch negatives); only the layout changes. The packed
row is what transformers' own padding-free path takes (`DataCollatorWithFlattening`): `input_ids` (1, T),
per-sentence `position_ids`, `cu_seq_lens_q/k` and `max_length_q/k`, passed through the model's **kwargs to
its attention function. Attention alone needs the sentences apart, and `varlen` (the attention function
these models are switched to) keeps them apart per backend: flash-attention's varlen kernel where
it is installed and the tensors are on a GPU in half precision; elsewhere the packed q, k and v are put back
in the (B, heads, L, d) layout just around SDPA with a key-padding mask (the "effective transformer" layout of
FasterTransformer and NVIDIA's MLPerf BERT), which is exact and, at these lengths, a few percent of the FLOPs.
Both branches share this file's packing, position ids and pooling, which the CPU tests cover.

Position ids follow each family's own convention: RoBERTa, XLM-R and CamemBERT count from
`padding_idx + 1` (transformers PR 47525 and sentence-transformers PR 3879 fixed 0-based packed ids that
silently degraded them); BERT and ELECTRA count from 0.
"""
from __future__ import annotations

import functools
import importlib.util
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

VARLEN_ATTENTION = "kodiffcse_varlen"  # stock SDPA inside; LANE_ATTENTION (dropout.py) is the CPU-kernel twin
# Families whose layers hand their **kwargs to the attention function and whose absolute positions are read
# from `position_ids`; any other model would see the packed row as one long sentence, so it runs padded.
PACKABLE = ("bert", "roberta", "xlm-roberta", "camembert", "electra")
# Inference packs a batch only when less of it than this is real tokens: a length-sorted batch is mostly real
# already, and the scatter around attention then costs more than the padding (performance.md, "Encoding").
PACK_BELOW_REAL_SHARE = 0.9


@dataclass(frozen=True)
class PackedBatch:
    """Where a right-padded (B, L) batch's real tokens go in the packed row of T tokens."""

    index: torch.Tensor  # (T,) positions of the real tokens in the flattened (B * L) grid, row-major
    cu_seq_lens: torch.Tensor  # (B + 1,) int32 token offsets of the sentences in the packed row
    positions: torch.Tensor  # (T,) each token's 0-based position in its sentence
    segments: torch.Tensor  # (T,) each token's sentence
    lengths: torch.Tensor  # (B,) tokens per sentence
    key_mask_heads: torch.Tensor  # (1, B, 1, L) True at real keys, for attention in the (heads, B, L, d) layout
    batch: int
    length: int

    @classmethod
    def from_mask(cls, attention_mask: torch.Tensor) -> "PackedBatch":
        keep = attention_mask.bool()
        batch, length = keep.shape
        lengths = keep.sum(1)
        index = keep.reshape(-1).nonzero().squeeze(1)
        cu = torch.zeros(batch + 1, dtype=torch.int32, device=keep.device)
        cu[1:] = lengths.cumsum(0)
        segments = index // length
        positions = torch.arange(index.numel(), device=keep.device) - cu[:-1].long()[segments]  # any padding side
        return cls(index, cu, positions, segments, lengths, keep[None, :, None, :], batch, length)

    @property
    def tokens(self) -> int:
        return self.index.numel()

    @property
    def first(self) -> torch.Tensor:
        """Each sentence's first token (its CLS) in the packed row."""
        return self.cu_seq_lens[:-1].long()

    def pack(self, x: torch.Tensor) -> torch.Tensor:
        """(B, L, ...) -> (T, ...)."""
        return x.reshape(self.batch * self.length, *x.shape[2:])[self.index]

    def unpack(self, x: torch.Tensor) -> torch.Tensor:
        """(T, ...) -> (B, L, ...), zeros at the padding."""
        out = x.new_zeros(self.batch * self.length, *x.shape[1:])
        return out.index_copy_(0, self.index, x).view(self.batch, self.length, *x.shape[1:])

    def unpack_heads(self, x: torch.Tensor) -> torch.Tensor:
        """(heads, T, d) -> (heads, B, L, d), zeros at the padding."""
        out = x.new_zeros(x.shape[0], self.batch * self.length, x.shape[2])
        return out.index_copy_(1, self.index, x).view(x.shape[0], self.batch, self.length, x.shape[2])

    def pack_heads(self, x: torch.Tensor) -> torch.Tensor:
        """(heads, B, L, d) -> (heads, T, d)."""
        return x.reshape(x.shape[0], self.batch * self.length, x.shape[3]).index_select(1, self.index)

    def model_inputs(self, backbone: nn.Module, input_ids: torch.Tensor) -> dict:
        """Keyword arguments for a transformers encoder: the packed row and what its attention reads."""
        return {"input_ids": self.pack(input_ids).unsqueeze(0),
                "position_ids": (self.positions + position_offset(backbone)).unsqueeze(0),
                "cu_seq_lens_q": self.cu_seq_lens, "cu_seq_lens_k": self.cu_seq_lens,
                "max_length_q": self.length, "max_length_k": self.length, "packed": self}


def packable(backbone: nn.Module) -> bool:
    """Whether `backbone` computes a packed row exactly: a known family on a varlen attention function."""
    from .dropout import LANE_ATTENTION

    config = getattr(backbone, "config", None)
    return (getattr(config, "model_type", None) in PACKABLE
            and getattr(config, "_attn_implementation", None) in (VARLEN_ATTENTION, LANE_ATTENTION))


def position_offset(backbone: nn.Module) -> int:
    """The first position id of a sentence: `padding_idx + 1` for the RoBERTa family, 0 for BERT and ELECTRA."""
    embeddings = backbone.embeddings
    if hasattr(embeddings, "create_position_ids_from_input_ids"):  # RoBERTa, XLM-R, CamemBERT
        return int(embeddings.padding_idx) + 1
    return 0


def token_states(backbone: nn.Module, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                 packed: PackedBatch | None) -> torch.Tensor:
    """The last hidden states: (B, L, H) from the padded batch, or (T, H) from the packed row."""
    if packed is None:
        return backbone(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
    return backbone(**packed.model_inputs(backbone, input_ids)).last_hidden_state[0]


def pool_packed(states: torch.Tensor, packed: PackedBatch, mode: str) -> torch.Tensor:
    """`pooling.pool` for (T, H) packed states: each sentence reads its own tokens only."""
    if mode == "cls_before_pooler":
        return states[packed.first]
    if mode == "mean":
        sums = states.new_zeros(packed.batch, states.shape[1]).index_add(0, packed.segments, states)
        return sums / packed.lengths.clamp(min=1).unsqueeze(1).to(states.dtype)
    raise ValueError(f"pooler {mode!r} has no padding-free form; use cls_before_pooler or mean")


@functools.cache
def flash_varlen():
    """flash-attention's varlen kernel when the optional package is installed (the `flash` extra), else None."""
    if importlib.util.find_spec("flash_attn") is None:
        return None
    try:
        from flash_attn import flash_attn_varlen_func
    except ImportError:  # installed against another torch or CUDA: the exact SDPA fallback still works
        return None
    return flash_attn_varlen_func


def _flash_applies(query: torch.Tensor) -> bool:
    return query.is_cuda and query.dtype in (torch.float16, torch.bfloat16)


def sdpa(query, key, value, mask, dropout: float, scaling: float | None) -> torch.Tensor:
    return F.scaled_dot_product_attention(query, key, value, attn_mask=mask, dropout_p=dropout, scale=scaling)


def varlen(inner, attend=sdpa):
    """A transformers attention function that also takes packed q, k and v (1, heads, T, d) with `packed`:
    flash-attention's varlen kernel where it applies, else `attend` over the padded layout. Calls without a
    packed batch (evaluation, the generator's padded mode) go to `inner`, a transformers attention function."""

    def attention(module, query, key, value, attention_mask, dropout=0.0, scaling=None, packed=None, **kwargs):
        if packed is None:
            return inner(module, query, key, value, attention_mask, dropout=dropout, scaling=scaling, **kwargs)
        flash = flash_varlen() if _flash_applies(query) else None
        if flash is not None:
            q, k, v = (x[0].transpose(0, 1) for x in (query, key, value))  # (T, heads, d)
            out = flash(q, k, v, packed.cu_seq_lens, packed.cu_seq_lens, packed.length, packed.length,
                        dropout_p=dropout, softmax_scale=scaling, causal=False)
            return out.unsqueeze(0), None
        # (heads, B, L, d): heads first keeps each copy in and out one contiguous index operation
        q, k, v = (packed.unpack_heads(x[0]) for x in (query, key, value))
        out = attend(q, k, v, packed.key_mask_heads, dropout, scaling)
        return packed.pack_heads(out).transpose(0, 1).unsqueeze(0), None  # (1, T, heads, d)

    return attention


def register_varlen_attention() -> None:
    from transformers import AttentionInterface
    from transformers.integrations.sdpa_attention import sdpa_attention_forward
    from transformers.masking_utils import AttentionMaskInterface, sdpa_mask

    AttentionInterface.register(VARLEN_ATTENTION, varlen(sdpa_attention_forward))
    AttentionMaskInterface.register(VARLEN_ATTENTION, sdpa_mask)  # padded calls (evaluation) still get a mask


def use_varlen_attention(module: nn.Module, name: str = VARLEN_ATTENTION) -> int:
    """Move every SDPA transformers model inside `module` to the varlen attention `name` (exact for padded
    calls too); returns how many were moved. Saved configs keep saying sdpa."""
    register_varlen_attention()
    moved = 0
    for child in module.modules():
        config = getattr(child, "config", None)
        if getattr(config, "_attn_implementation", None) == "sdpa" and hasattr(child, "set_attn_implementation"):
            child.set_attn_implementation(name)
            moved += 1
    return moved
