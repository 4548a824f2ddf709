"""The last layer of a packed row, computed only at the rows that are read afterwards.

What leaves an encoder's last layer is read at few rows: the sentence vector is each sentence's CLS state,
and the generator's MLM head reads the masked positions alone. A layer's output row depends on every key
and value of its sentence but on its own query, attention output, FFN and LayerNorms only, so the last
layer needs keys and values at every token and the rest (five sixths of a layer's per-token FLOPs) at the
read rows only: one row of about 25 per sentence for CLS pooling, the edited 15% for the generator. That
is about a tenth of a DiffCSE step's FLOPs, forward and backward (docs/performance.md), and the result is
the same as the whole layer's at those rows (tests/test_packing.py).

The swapped class is transformers' own layer with a forward that takes `read_rows` alongside the packed
batch; without both it is transformers' forward unchanged (padded calls, evaluation, other layers).
Attention for the read rows runs over each sentence's keys padded to the batch's longest (one layer, so
the padding costs little), with the model's own dropout: lane masks under the CPU kernels, else SDPA's.
"""
from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from .dropout import LANE_ATTENTION, lane_attention
from .packing import PackedBatch, sdpa

# Layers whose forward is transformers' standard "self-attention, output with residual, feed-forward chunk".
_LAYERS = {
    "transformers.models.bert.modeling_bert": "BertLayer",
    "transformers.models.roberta.modeling_roberta": "RobertaLayer",
    "transformers.models.xlm_roberta.modeling_xlm_roberta": "XLMRobertaLayer",
    "transformers.models.camembert.modeling_camembert": "CamembertLayer",
    "transformers.models.electra.modeling_electra": "ElectraLayer",
}
_classes: dict[type, type] = {}


class ReadRowsLayer(nn.Module):
    """Mixin placed before a transformers layer class; see the module docstring."""

    def forward(self, hidden_states, *args, **kwargs):
        rows, packed = kwargs.pop("read_rows", None), kwargs.get("packed")
        if rows is None or packed is None:
            return super().forward(hidden_states, *args, **kwargs)
        x = hidden_states[0]  # (T, hidden)
        context = read_rows_attention(self.attention.self, x, packed, rows)
        out = self.feed_forward_chunk(self.attention.output(context, x.index_select(0, rows)))
        return out.unsqueeze(0)  # (1, rows, hidden)


def read_rows_attention(module: nn.Module, x: torch.Tensor, packed: PackedBatch, rows: torch.Tensor) -> torch.Tensor:
    """Self-attention output (len(rows), hidden) at the packed rows `rows` (ascending) of x (T, hidden)."""
    heads, d = module.num_attention_heads, module.attention_head_size
    batch, length, width = packed.batch, packed.length, heads * d
    q = F.linear(x.index_select(0, rows), module.query.weight, module.query.bias)
    kv = F.linear(x, torch.cat([module.key.weight, module.value.weight]), torch.cat([module.key.bias, module.value.bias]))
    k, v = packed.unpack(kv).view(batch, length, 2, heads, d).permute(2, 0, 3, 1, 4).unbind(0)  # (B, heads, L, d)
    slots, per_sentence = query_slots(packed, rows)
    queries = q.new_zeros(batch * per_sentence, width).index_copy(0, slots, q)
    queries = queries.view(batch, per_sentence, heads, d).transpose(1, 2)  # (B, heads, Q, d)
    real = torch.ones(packed.tokens, dtype=torch.bool, device=x.device)
    keys = packed.unpack(real).view(batch, 1, 1, length)  # where unpack put k and v, whichever side the padding is on
    attend = lane_attention if module.config._attn_implementation == LANE_ATTENTION else sdpa
    out = attend(queries, k, v, keys, module.dropout.p if module.training else 0.0, module.scaling)
    return out.transpose(1, 2).reshape(batch * per_sentence, width).index_select(0, slots)


def query_slots(packed: PackedBatch, rows: torch.Tensor) -> tuple[torch.Tensor, int]:
    """Each read row's slot in a (B x Q) grid of per-sentence query slots, and Q, the most rows of a sentence."""
    segments = packed.segments.index_select(0, rows)
    counts = torch.bincount(segments, minlength=packed.batch)
    per_sentence = max(int(counts.max()), 1) if rows.numel() else 1
    starts = counts.cumsum(0) - counts
    within = torch.arange(rows.numel(), device=rows.device) - starts.index_select(0, segments)
    return segments * per_sentence + within, per_sentence


def use_read_rows(backbone: nn.Module) -> bool:
    """Swap `backbone`'s last layer to its read-rows subclass; whether it now has one (False for other families)."""
    layers = getattr(getattr(backbone, "encoder", None), "layer", None)
    if not isinstance(layers, nn.ModuleList) or len(layers) == 0:
        return False
    last = layers[-1]
    if isinstance(last, ReadRowsLayer):
        return True
    cls = type(last)
    attention = getattr(getattr(last, "attention", None), "self", None)
    if (_LAYERS.get(cls.__module__) != cls.__name__ or getattr(last, "is_decoder", False)
            or getattr(last, "add_cross_attention", False) or attention is None
            or not all(type(getattr(attention, n, None)) is nn.Linear and getattr(attention, n).bias is not None
                       for n in ("query", "key", "value"))):  # the weights are read directly: plain linears only
        return False
    if cls not in _classes:
        name = f"ReadRows{cls.__name__}"
        _classes[cls] = globals()[name] = type(name, (ReadRowsLayer, cls), {})  # picklable
    last.__class__ = _classes[cls]
    return True
