"""Padding-free encoding: a batch's real tokens as one packed row, so the layers that hold nearly all the
FLOPs (every linear, LayerNorm, GELU and dropout) run on the (tokens, hidden) matrix and none on padding.

Random batches keep their composition (the same in-batch negatives); only the layout changes. The packed
row is what transformers' own padding-free path takes (`DataCollatorWithFlattening`): `input_ids` (1, T),
per-sentence `position_ids`, `cu_seq_lens_q/k` and `max_length_q/k`, passed through the model's **kwargs to
its attention function. Attention alone needs the sentences apart, and `varlen` (the attention function
these models are switched to) keeps them apart per backend: flash-attention's varlen kernel where
it is installed and the tensors are on a GPU in half precision; elsewhere the packed q, k and v are gathered
into padded groups of sentences sorted by length just around SDPA with a key-padding mask (the "effective
transformer" layout of FasterTransformer and NVIDIA's MLPerf BERT, grouped), which is exact.
Both branches share this file's packing, position ids and pooling, which the CPU tests cover.

Position ids follow each family's own convention: RoBERTa, XLM-R and CamemBERT count from
`padding_idx + 1` (transformers PR 47525 and sentence-transformers PR 3879 fixed 0-based packed ids that
silently degraded them); BERT and ELECTRA count from 0.
"""
from __future__ import annotations

import functools
import importlib.util
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from .pooling import pool

VARLEN_ATTENTION = "kodiffcse_varlen"  # stock SDPA inside; LANE_ATTENTION (dropout.py) is the CPU-kernel twin
# Families whose layers hand their **kwargs to the attention function and whose absolute positions are read
# from `position_ids`; any other model would see the packed row as one long sentence, so it runs padded.
PACKABLE = ("bert", "roberta", "xlm-roberta", "camembert", "electra")
# Sentences per padded attention layout where no varlen kernel exists (CPU, GPUs without flash-attn).
ATTENTION_CHUNK = 16


@dataclass(frozen=True)
class AttentionLayout:
    """The packed row's sentences, longest first, in groups laid out padded, (heads, n, width, d) each, for
    attention alone where no varlen kernel exists (CPU, GPUs without flash-attn). Each group pads only to
    its own longest sentence, so a random batch's attention does about a third of the work of one padded
    (B, L) layout (performance.md). One gather in and one out, whose backward passes are one scatter-add
    each: a gather or an in-place scatter per group would fill a whole-row gradient once per group."""

    sources: torch.Tensor  # (slots,): the packed token at each group's slots, end to end; T (a zero row) at padding
    shapes: list[tuple[int, int]]  # per group, (n, width)
    key_masks: list[torch.Tensor]  # per group, (1, n, 1, width): True at real keys
    back: torch.Tensor  # (T,): each packed token's slot in the groups' outputs laid end to end

    def groups(self, x: torch.Tensor) -> list[torch.Tensor]:
        """(heads, T, d) -> per group (heads, n, width, d), zeros at the padding."""
        padded = torch.cat([x, x.new_zeros(x.shape[0], 1, x.shape[2])], dim=1)
        flat = padded.index_select(1, self.sources)  # one gather: one scatter-add in the backward pass
        sizes = [n * width for n, width in self.shapes]
        return [part.unflatten(1, shape) for part, shape in zip(flat.split(sizes, dim=1), self.shapes)]

    def join(self, outputs: list[torch.Tensor]) -> torch.Tensor:
        """Per group (heads, n, width, d) -> (heads, T, d) in the packed row's order."""
        flat = torch.cat([o.reshape(o.shape[0], -1, o.shape[3]) for o in outputs], dim=1)
        return flat.index_select(1, self.back)


@dataclass(frozen=True)
class PackedBatch:
    """Where a right-padded (B, L) batch's real tokens go in the packed row of T tokens."""

    index: torch.Tensor  # (T,) positions of the real tokens in the flattened (B * L) grid, row-major
    cu_seq_lens: torch.Tensor  # (B + 1,) int32 token offsets of the sentences in the packed row
    positions: torch.Tensor  # (T,) each token's 0-based position in its sentence
    segments: torch.Tensor  # (T,) each token's sentence
    lengths: torch.Tensor  # (B,) tokens per sentence
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
        return cls(index, cu, positions, segments, lengths, batch, length)

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

    def length_groups(self) -> list[np.ndarray]:
        """The sentences, longest first, in groups of ATTENTION_CHUNK: the padded groups attention runs in
        where no varlen kernel exists, each padded only to its own longest sentence."""
        order = np.argsort(-self.lengths.cpu().numpy(), kind="stable")
        return [order[first:first + ATTENTION_CHUNK] for first in range(0, self.batch, ATTENTION_CHUNK)]

    @functools.cached_property
    def attention_layout(self) -> AttentionLayout:
        lengths = self.lengths.cpu().numpy()
        starts = self.cu_seq_lens[:-1].cpu().numpy().astype(np.int64)
        sources, shapes, masks = [], [], []
        back = np.empty(self.tokens, dtype=np.int64)
        base = 0
        for rows in self.length_groups():
            lens = lengths[rows]
            width = int(lens.max())
            real = np.arange(width)[None, :] < lens[:, None]  # (n, width)
            src = np.full(real.shape, self.tokens, dtype=np.int64)  # T: the zero row
            src[real] = np.repeat(starts[rows], lens) + (np.arange(lens.sum()) - np.repeat(np.cumsum(lens) - lens, lens))
            back[src[real]] = base + np.flatnonzero(real)
            base += real.size
            sources.append(src.reshape(-1))
            shapes.append((len(rows), width))
            masks.append(real)
        device = self.index.device
        return AttentionLayout(torch.from_numpy(np.concatenate(sources)).to(device), shapes,
                               [torch.from_numpy(m).to(device)[None, :, None, :] for m in masks],
                               torch.from_numpy(back).to(device))

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
    embeddings = getattr(backbone, "embeddings", None)
    if hasattr(embeddings, "create_position_ids_from_input_ids"):  # RoBERTa, XLM-R, CamemBERT
        return int(embeddings.padding_idx) + 1
    return 0


def token_states(backbone: nn.Module, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                 packed: PackedBatch | None, read_rows: torch.Tensor | None = None) -> torch.Tensor:
    """The last hidden states: (B, L, H) from the padded batch, or (T, H) from the packed row; with
    `read_rows` (packed rows, ascending; the backbone on read_rows.use_read_rows) those rows' states only."""
    if packed is None:
        return backbone(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
    inputs = packed.model_inputs(backbone, input_ids)
    if read_rows is not None:
        inputs["read_rows"] = read_rows
    return backbone(**inputs).last_hidden_state[0]


def sentence_vectors(backbone: nn.Module, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                     packed: PackedBatch | None, pooler: str, read_cls: bool = False) -> torch.Tensor:
    """Pooled vectors of the padded batch (`packed` None) or of the packed row; `read_cls` (CLS pooling, the
    backbone on read_rows.use_read_rows) runs the last layer at each sentence's first row only."""
    if packed is None:
        outputs = backbone(input_ids=input_ids, attention_mask=attention_mask)
        return pool(outputs.last_hidden_state, attention_mask, pooler, getattr(outputs, "pooler_output", None))
    if read_cls:
        return token_states(backbone, input_ids, attention_mask, packed, packed.first)
    return pool_packed(token_states(backbone, input_ids, attention_mask, packed), packed, pooler)


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
        layout = packed.attention_layout  # heads first: every gather reads and writes contiguous rows
        groups = zip(*(layout.groups(x[0]) for x in (query, key, value)), layout.key_masks)
        out = layout.join([attend(q, k, v, mask, dropout, scaling) for q, k, v, mask in groups])
        return out.transpose(0, 1).unsqueeze(0), None  # (1, T, heads, d)

    return attention


def varlen_mask(*args, attention_mask: torch.Tensor | None = None, **kwargs):
    """transformers' SDPA mask for padded calls (evaluation, the generator's padded mode). A packed row comes
    with no 2D mask: transformers would build a (T, T) block-diagonal mask from its position ids (about 3% of
    a CPU step) that `varlen` never reads, since the packed batch keeps the sentences apart."""
    from transformers.masking_utils import sdpa_mask

    if attention_mask is None:
        return None
    return sdpa_mask(*args, attention_mask=attention_mask, **kwargs)


def register_varlen_attention() -> None:
    from transformers import AttentionInterface
    from transformers.integrations.sdpa_attention import sdpa_attention_forward
    from transformers.masking_utils import AttentionMaskInterface

    AttentionInterface.register(VARLEN_ATTENTION, varlen(sdpa_attention_forward))
    AttentionMaskInterface.register(VARLEN_ATTENTION, varlen_mask)


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
