"""The CPU packed self-attention (projection + per-sentence attention + hand-written backward) is the plain
per-sentence computation, with its dropout masks, in the forward and in every gradient."""
from __future__ import annotations

import pytest
import torch

from kodiffcse.modeling import packing
from kodiffcse.modeling.dropout import lane_mask
from kodiffcse.modeling.packed_attention import PackedSelfAttention, row_layout
from kodiffcse.modeling.packing import PackedBatch

HEADS, DIM = 2, 3
LENGTHS = [5, 1, 3, 7, 2, 4, 6]  # three groups of three: one partial, and padding inside each
MASK_SEED = 3  # _kernel and _kernel_masks seed alike, so the plain computation gets the kernel's masks


@pytest.fixture(autouse=True)
def small_groups(monkeypatch):
    monkeypatch.setattr(packing, "ATTENTION_CHUNK", 3)


def _inputs(dtype=torch.float64):
    mask = torch.arange(max(LENGTHS))[None, :] < torch.tensor(LENGTHS)[:, None]
    packed = PackedBatch.from_mask(mask)
    generator = torch.Generator().manual_seed(0)
    hidden = HEADS * DIM
    x = torch.randn(packed.tokens, hidden, generator=generator, dtype=dtype)
    weights = [torch.randn(hidden, hidden, generator=generator, dtype=dtype) * 0.5 for _ in range(3)]
    biases = [torch.randn(hidden, generator=generator, dtype=dtype) for _ in range(3)]
    return packed, [t.requires_grad_() for t in (x, *weights, *biases)]


def _plain(packed, p, x, wq, wk, wv, bq, bk, bv, masks=None):
    """Each sentence on its own: q, k, v, softmax over its own tokens, the kernel's mask block for it."""
    layout = row_layout(packed, HEADS)
    q, k, v = (torch.nn.functional.linear(x, w, b).view(-1, HEADS, DIM) for w, b in ((wq, bq), (wk, bk), (wv, bv)))
    out = torch.empty_like(q)
    for g, sentences in enumerate(packed.length_groups()):
        m, width, _ = layout.groups[g]
        for j, s in enumerate(sentences.tolist()):
            a, n = int(packed.cu_seq_lens[s]), int(packed.lengths[s])
            for h in range(HEADS):
                probs = torch.softmax(q[a:a + n, h] @ k[a:a + n, h].T / DIM ** 0.5, dim=-1)
                if masks is not None:
                    probs = probs * masks[g].view(m, width, width)[j * HEADS + h, :n, :n]
                out[a:a + n, h] = probs @ v[a:a + n, h]
    return out.reshape(x.shape)


def _kernel(packed, p, *tensors):
    torch.manual_seed(MASK_SEED)  # the kernel's one draw of masks for the layer
    return PackedSelfAttention.apply(tensors[0], row_layout(packed, HEADS), HEADS, p, DIM ** -0.5, *tensors[1:])


def _kernel_masks(packed, p):
    """The per-group attention dropout masks `_kernel` draws (None without dropout); seeds as `_kernel` does
    either way, so what the test draws next does not depend on p."""
    torch.manual_seed(MASK_SEED)
    if not p:
        return None
    sizes = [m * w * w for m, w, _ in row_layout(packed, HEADS).groups]
    return lane_mask(sum(sizes), p, torch.float64).split(sizes)


@pytest.mark.parametrize("p", [0.0, 0.3])
def test_forward_is_each_sentences_own_attention_with_the_kernels_masks(p):
    packed, tensors = _inputs()
    masks = _kernel_masks(packed, p)
    got = _kernel(packed, p, *tensors)
    torch.testing.assert_close(got, _plain(packed, p, *tensors, masks=masks), atol=1e-12, rtol=1e-10)
    if p:
        assert (torch.cat(masks) == 0).any()  # some probabilities were dropped


@pytest.mark.parametrize("p", [0.0, 0.3])
def test_backward_matches_autograd_of_the_plain_computation(p):
    packed, tensors = _inputs()
    masks = _kernel_masks(packed, p)
    grad_out = torch.randn(packed.tokens, HEADS * DIM, dtype=torch.float64)
    got = torch.autograd.grad(_kernel(packed, p, *tensors), tensors, grad_out)
    want = torch.autograd.grad(_plain(packed, p, *tensors, masks=masks), tensors, grad_out)
    for name, g, w in zip(("x", "wq", "wk", "wv", "bq", "bk", "bv"), got, want):
        torch.testing.assert_close(g, w, atol=1e-10, rtol=1e-8, msg=lambda m, name=name: f"{name}: {m}")


def test_gradcheck_with_dropout():
    packed, tensors = _inputs()
    assert torch.autograd.gradcheck(lambda *t: _kernel(packed, 0.3, *t), tensors, eps=1e-6, atol=1e-5)


def test_layout_sends_every_real_row_to_one_slot_and_back():
    packed, _ = _inputs()
    layout = row_layout(packed, HEADS)
    rows = packed.tokens * 3 * HEADS
    assert torch.equal(layout.gather[layout.inverse], torch.arange(rows))  # each real row has its own slot
    assert layout.rows == sum(m * w for m, w, _ in layout.groups)
    assert row_layout(packed, HEADS) is layout  # built once per batch
