"""One product for the query, key and value projections of BERT-family self-attention on CPU.

At the widths CPU training runs (256 hidden), three [tokens, 256] x [256, 256] products run at about three
quarters of the rate of one [tokens, 256] x [256, 768] product, in the forward and in both backward products,
and the three input gradients must then be summed (docs/performance.md). The swapped class is transformers'
own with a forward that concatenates the three weights on the fly: no new parameters, so state dicts, saving
and loading are unchanged, and it returns q, k and v already in the heads-first layout attention reads.
Anything else (GPU, autocast, torch.compile, caches, cross-attention, non-SDPA attention) runs transformers'
forward unchanged.
"""
from __future__ import annotations

import torch
from torch import nn

from .dropout import LANE_ATTENTION, cpu_eager
from .packed_attention import packed_self_attention
from .packing import VARLEN_ATTENTION

# Classes whose forward is transformers' standard "project, split heads, attention interface, merge heads".
_FUSABLE = {
    "transformers.models.bert.modeling_bert": "BertSelfAttention",
    "transformers.models.roberta.modeling_roberta": "RobertaSelfAttention",
    "transformers.models.xlm_roberta.modeling_xlm_roberta": "XLMRobertaSelfAttention",
    "transformers.models.camembert.modeling_camembert": "CamembertSelfAttention",
    "transformers.models.electra.modeling_electra": "ElectraSelfAttention",
}
_fused_classes: dict[type, type] = {}


class _FusedQKVProjection(torch.autograd.Function):
    """(q, k, v), each (batch, heads, length, head_dim) and contiguous, from one product with the three
    weights stacked; backward writes the three gradients into one (tokens, 3 x width) matrix for the
    input and weight products, and sums the bias gradient with a matrix-vector product."""

    @staticmethod
    def forward(ctx, x, heads: int, wq, wk, wv, bq, bk, bv):
        batch, length, width = x.shape
        rows = x.reshape(batch * length, width)
        weight = torch.cat([wq, wk, wv])
        qkv = torch.addmm(torch.cat([bq, bk, bv]), rows, weight.t())
        head_dim = wq.shape[0] // heads
        ctx.save_for_backward(rows, weight)
        ctx.dims = (batch, length, heads, head_dim)
        q, k, v = qkv.view(batch, length, 3, heads, head_dim).permute(2, 0, 3, 1, 4).contiguous().unbind(0)
        return q, k, v

    @staticmethod
    def backward(ctx, gq, gk, gv):
        rows, weight = ctx.saved_tensors
        batch, length, heads, head_dim = ctx.dims
        grad = rows.new_empty(batch, length, 3, heads, head_dim)
        for i, g in enumerate((gq, gk, gv)):
            if g is None:
                grad[:, :, i].zero_()
            else:
                grad[:, :, i].copy_(g.transpose(1, 2))
        grad = grad.view(batch * length, 3 * heads * head_dim)
        dx = (grad @ weight).view(batch, length, -1) if ctx.needs_input_grad[0] else None
        dw = db = (None, None, None)
        if any(ctx.needs_input_grad[2:5]):
            dw = (grad.t() @ rows).chunk(3)
        if any(ctx.needs_input_grad[5:8]):
            db = torch.mv(grad.t(), grad.new_ones(grad.shape[0])).chunk(3)  # half the time of grad.sum(0)
        return (dx, None, *dw, *db)


class FusedQKVSelfAttention(nn.Module):
    """Mixin placed before a fusable transformers class; see the module docstring."""

    def forward(self, hidden_states, attention_mask=None, cache=None, **kwargs):
        from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS

        impl = self.config._attn_implementation
        if (cache is not None or kwargs.get("past_key_values") is not None
                or kwargs.get("encoder_hidden_states") is not None or hidden_states.dim() != 3
                or impl not in ("sdpa", LANE_ATTENTION, VARLEN_ATTENTION) or not _fusable_input(hidden_states)):
            return super().forward(hidden_states, attention_mask, cache=cache, **kwargs)
        if kwargs.get("packed") is not None:  # a packed row: projection and attention in one function
            out = packed_self_attention(self, hidden_states, kwargs["packed"], self.dropout.p if self.training else 0.0)
            return out, None
        q, k, v = _FusedQKVProjection.apply(hidden_states, self.num_attention_heads, self.query.weight,
                                            self.key.weight, self.value.weight, self.query.bias, self.key.bias,
                                            self.value.bias)
        out, weights = ALL_ATTENTION_FUNCTIONS[impl](
            self, q, k, v, attention_mask, dropout=self.dropout.p if self.training else 0.0, scaling=self.scaling,
            **kwargs)
        return out.reshape(*hidden_states.shape[:-1], -1).contiguous(), weights


def _fusable_input(x: torch.Tensor) -> bool:
    return cpu_eager(x) and x.dtype == torch.float32 and not torch.is_autocast_enabled("cpu")


def _fusable(module: nn.Module) -> bool:
    cls = type(module)
    return (_FUSABLE.get(cls.__module__) == cls.__name__ and not module.is_causal
            and not getattr(module, "is_decoder", False)
            and all(type(getattr(module, n, None)) is nn.Linear and getattr(module, n).bias is not None
                    for n in ("query", "key", "value")))


def use_fused_qkv(module: nn.Module) -> int:
    """Swap every fusable self-attention inside `module` to its fused-projection subclass; returns how many
    were swapped (0 when called again)."""
    swapped = 0
    for child in module.modules():
        if _fusable(child):
            cls = type(child)
            if cls not in _fused_classes:
                name = f"FusedQKV{cls.__name__}"
                _fused_classes[cls] = globals()[name] = type(name, (FusedQKVSelfAttention, cls), {})  # picklable
            child.__class__ = _fused_classes[cls]
            swapped += 1
    return swapped
