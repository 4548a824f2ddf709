"""Self-attention over a packed row on CPU: the q/k/v product, exact per-sentence attention and its backward,
as one autograd function.

A packed row's sentences are a few dozen tokens each, so per sentence the attention itself is a small
fraction of a layer's FLOPs; what costs is moving q, k and v into padded groups and back. Done with stock
ops and autograd (packing.varlen) that is 14 ms a layer at batch 64 (2 x 64 rows, 4 heads), over ten times
its FLOPs, most of it gathers, concatenations, strided copies and their backward scatters
(docs/performance.md). Here one row gather takes the (tokens, 3 x hidden) product straight into the
groups' (sentences x heads, width, head_dim) blocks, each group's scores, softmax, dropout and mixing write
into one buffer, one row gather puts the output back in token order, and the backward mirrors it with one
gather for the q/k/v gradient, which feeds the input and weight products directly. Padding slots read
token 0 and are masked as keys, and their query rows are never read back, so nothing they compute reaches a
real token: the result is the padded step's (tests/test_packing.py).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from .dropout import lane_mask
from .packing import PackedBatch


@dataclass(frozen=True)
class RowLayout:
    """Where each (token, q|k|v, head) row of the (T x 3 x heads, head_dim) product goes in the groups' blocks.

    Blocks hold, per group of n sentences padded to width w, n x heads matrices (w, head_dim), in the order
    group, sentence, head, position; all q blocks come first (R rows), then all k, then all v."""

    groups: list[tuple[int, int, int]]  # per group (n x heads, width, first row)
    gather: torch.Tensor  # (3R,) the product's row at each block row; padding reads token 0
    inverse: torch.Tensor  # (T x 3 x heads,) each product row's block row
    out_rows: torch.Tensor  # (T x heads,) each (token, head)'s row in the q-ordered blocks
    key_bias: list[torch.Tensor]  # per group (n x heads, 1, width): 0 at real keys, -inf at padding
    rows: int  # R


def row_layout(packed: PackedBatch, heads: int) -> RowLayout:
    """The layout for `heads` heads, built once per batch (the encoder and the discriminator share it)."""
    cache = packed.__dict__.setdefault("_row_layouts", {})  # frozen dataclass: a per-instance cache
    if heads not in cache:
        cache[heads] = _build(packed, heads)
    return cache[heads]


def _build(packed: PackedBatch, heads: int) -> RowLayout:
    lengths = packed.lengths.cpu().numpy()
    starts = packed.cu_seq_lens[:-1].cpu().numpy().astype(np.int64)
    tokens = packed.tokens
    groups, gather, out_rows, biases = [], [], np.empty(tokens * heads, dtype=np.int64), []
    base = 0
    for rows in packed.length_groups():
        lens = lengths[rows]
        width = int(lens.max())
        pos = np.arange(width)
        real = pos[None, :] < lens[:, None]  # (n, w)
        tok = np.where(real, starts[rows][:, None] + pos[None, :], 0)  # padding reads token 0
        head = np.arange(heads)[None, :, None]
        block = tok[:, None, :] * (3 * heads) + head  # (n, heads, w): the q row of (token, head)
        gather.append(block.reshape(-1))
        slots = base + np.arange(block.size).reshape(block.shape)
        real_h = np.broadcast_to(real[:, None, :], block.shape)
        out_rows[(tok[:, None, :] * heads + head)[real_h]] = slots[real_h]
        bias = np.where(real, 0.0, -np.inf).astype(np.float32)[:, None, None, :]  # (n, 1, 1, w)
        biases.append(torch.from_numpy(np.ascontiguousarray(np.broadcast_to(bias, (len(rows), heads, 1, width))))
                      .view(len(rows) * heads, 1, width))
        groups.append((len(rows) * heads, width, base))
        base += block.size
    q = np.concatenate(gather)
    inverse = np.empty(tokens * 3 * heads, dtype=np.int64)  # (token, which, head) -> which x R + its q-row slot
    per_token = out_rows.reshape(tokens, 1, heads) + (np.arange(3) * base)[None, :, None]
    inverse[:] = per_token.reshape(-1)
    device = packed.index.device
    as_tensor = lambda a: torch.from_numpy(a).to(device)  # noqa: E731
    return RowLayout(groups, as_tensor(np.concatenate([q, q + heads, q + 2 * heads])), as_tensor(inverse),
                     as_tensor(out_rows), [b.to(device) for b in biases], base)


class PackedSelfAttention(torch.autograd.Function):
    """(T, hidden) -> (T, hidden): softmax(q k^T * scale) v per sentence, q/k/v = x W^T + b, with dropout `p`
    on the attention probabilities (lane masks, one draw for the whole layer)."""

    @staticmethod
    def forward(ctx, x, layout: RowLayout, heads: int, p: float, scale: float, wq, wk, wv, bq, bk, bv):
        weight = torch.cat([wq, wk, wv])
        qkv = torch.addmm(torch.cat([bq, bk, bv]), x, weight.t())  # (T, 3 x hidden)
        d = wq.shape[0] // heads
        blocks = qkv.view(-1, d).index_select(0, layout.gather)  # (3R, d)
        q_all, k_all, v_all = blocks.view(3, layout.rows, d).unbind(0)
        masks = None
        if p > 0:
            sizes = [m * w * w for m, w, _ in layout.groups]
            masks = lane_mask(sum(sizes), p, x.dtype).split(sizes)
        out = x.new_empty(layout.rows, d)
        probs, dropped = [], []
        for i, (m, w, first) in enumerate(layout.groups):
            q, k, v = (t[first:first + m * w].view(m, w, d) for t in (q_all, k_all, v_all))
            prob = torch.softmax(torch.baddbmm(layout.key_bias[i].to(q.dtype), q, k.transpose(1, 2), alpha=scale), dim=-1)
            keep = prob * masks[i].view(m, w, w) if masks is not None else prob
            torch.bmm(keep, v, out=out[first:first + m * w].view(m, w, d))
            probs.append(prob)
            dropped.append(keep)
        ctx.save_for_backward(x, weight, blocks)
        ctx.layout, ctx.heads, ctx.scale = layout, heads, scale
        ctx.attention = (probs, dropped, masks)
        return out.index_select(0, layout.out_rows).view(x.shape[0], -1)

    @staticmethod
    def backward(ctx, grad_out):
        x, weight, blocks = ctx.saved_tensors
        layout, scale = ctx.layout, ctx.scale
        probs, dropped, masks = ctx.attention
        d = blocks.shape[1]
        q_all, k_all, v_all = blocks.view(3, layout.rows, d).unbind(0)
        grad_o = grad_out.new_zeros(layout.rows, d)  # padding query rows: no gradient
        grad_o.index_copy_(0, layout.out_rows, grad_out.reshape(-1, d))
        grad_blocks = blocks.new_empty(3, layout.rows, d)
        for i, (m, w, first) in enumerate(layout.groups):
            rows = slice(first, first + m * w)
            q, k, v, go = (t[rows].view(m, w, d) for t in (q_all, k_all, v_all, grad_o))
            gq, gk, gv = (g[rows].view(m, w, d) for g in grad_blocks.unbind(0))
            torch.bmm(dropped[i].transpose(1, 2), go, out=gv)
            grad_keep = torch.bmm(go, v.transpose(1, 2))
            grad_prob = grad_keep.mul_(masks[i].view(m, w, w)) if masks is not None else grad_keep
            grad_scores = torch._softmax_backward_data(grad_prob, probs[i], -1, probs[i].dtype)
            torch.baddbmm(gq, grad_scores, k, beta=0, alpha=scale, out=gq)
            torch.baddbmm(gk, grad_scores.transpose(1, 2), q, beta=0, alpha=scale, out=gk)
        grad_qkv = grad_blocks.view(-1, d).index_select(0, layout.inverse).view(x.shape[0], -1)  # (T, 3 x hidden)
        dx = grad_qkv @ weight if ctx.needs_input_grad[0] else None
        dw = db = (None, None, None)
        if any(ctx.needs_input_grad[5:8]):
            dw = (grad_qkv.t() @ x).chunk(3)
        if any(ctx.needs_input_grad[8:11]):
            db = torch.mv(grad_qkv.t(), grad_qkv.new_ones(grad_qkv.shape[0])).chunk(3)  # half the time of sum(0)
        return (dx, None, None, None, None, *dw, *db)


def packed_self_attention(module, hidden_states: torch.Tensor, packed: PackedBatch, dropout: float) -> torch.Tensor:
    """A fusable transformers self-attention `module` on the packed row (1, T, hidden) -> (1, T, hidden)."""
    heads = module.num_attention_heads
    out = PackedSelfAttention.apply(hidden_states[0], row_layout(packed, heads), heads, dropout, module.scaling,
                                    module.query.weight, module.key.weight, module.value.weight,
                                    module.query.bias, module.key.bias, module.value.bias)
    return out.unsqueeze(0)
