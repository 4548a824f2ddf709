"""Lane dropout: the CPU dropout of the training model keeps nn.Dropout's and SDPA's distribution and semantics."""
import json

import pytest
import torch
from torch import nn
from torch.nn import functional as F

from kodiffcse.modeling.dropout import LANE_ATTENTION, LaneDropout, lane_dropout, lane_sdpa, use_lane_dropout


@pytest.mark.parametrize("p", [0.1, 0.25, 0.5])
def test_keep_rate_and_scale_match_the_rate(p):
    torch.manual_seed(0)
    x = torch.ones(400_000)
    y = lane_dropout(x, p)
    kept = y != 0
    # every lane of the 64-bit draws is used, and each keeps 1 - p of its elements
    for lane in range(4):
        assert abs(kept.view(-1, 4)[:, lane].float().mean().item() - (1 - p)) < 0.005
    scale = y[kept].unique()
    assert len(scale) == 1 and abs(scale.item() - 1 / (1 - p)) < 1e-4
    assert abs(y.mean().item() - 1.0) < 0.01  # unbiased


def test_gradient_is_the_mask_times_the_scale():
    torch.manual_seed(0)
    x = torch.randn(64, 33, requires_grad=True)
    y = lane_dropout(x, 0.1)
    y.sum().backward()
    kept = y.detach() != 0
    assert torch.equal(x.grad, kept.float() / (1 - round(0.1 * 65536) / 65536))


def test_masks_are_fresh_per_call_and_reproducible_under_a_seed():
    x = torch.ones(8, 128)
    torch.manual_seed(3)
    a, b = lane_dropout(x, 0.1), lane_dropout(x, 0.1)
    assert not torch.equal(a != 0, b != 0)
    torch.manual_seed(3)
    assert torch.equal(lane_dropout(x, 0.1), a)


def test_module_is_identity_in_eval_and_keeps_shape_and_dtype():
    m = LaneDropout(0.1)
    x = torch.randn(3, 5, 7, dtype=torch.bfloat16)
    assert m.train()(x).shape == x.shape and m(x).dtype == torch.bfloat16
    assert torch.equal(m.eval()(x), x)
    assert torch.equal(lane_dropout(x, 0.0), x) and not lane_dropout(x, 1.0).any()


class _Attention(nn.Module):
    is_causal = False


def test_attention_math_path_equals_sdpa_with_padding():
    """With a rate that rounds to no drop, the lane path is plain attention: it must equal torch's SDPA."""
    torch.manual_seed(0)
    q, k, v = (torch.randn(3, 2, 7, 8, requires_grad=True) for _ in range(3))
    lengths = torch.tensor([7, 4, 1])
    mask = (torch.arange(7)[None, :] < lengths[:, None])[:, None, None, :].expand(3, 1, 7, 7)
    ours, _ = lane_sdpa(_Attention(), q, k, v, mask, dropout=1e-9, scaling=0.3)
    ref = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, scale=0.3).transpose(1, 2)
    assert torch.allclose(ours, ref, atol=1e-6)
    g_ours = torch.autograd.grad(ours.sum(), (q, k, v))
    g_ref = torch.autograd.grad(ref.sum(), (q, k, v))
    assert all(torch.allclose(a, b, atol=1e-5) for a, b in zip(g_ours, g_ref))


def test_attention_drops_probabilities_at_the_rate():
    torch.manual_seed(0)
    q = k = torch.zeros(64, 4, 16, 8)  # uniform attention: every probability is 1/16
    v = torch.eye(16).expand(64, 4, 16, 16)  # the output row is the (dropped, rescaled) probability row
    out, _ = lane_sdpa(_Attention(), q, k, v, None, dropout=0.25)
    probs = out.transpose(1, 2)
    assert abs((probs == 0).float().mean().item() - 0.25) < 0.01
    assert torch.allclose(probs[probs != 0], torch.tensor(1 / 16 / 0.75))


def test_training_model_uses_it_everywhere_and_saves_plain_configs(tiny, tmp_path):
    from kodiffcse.modeling.diffcse import DiffCSEModel
    from kodiffcse.modeling.discriminator import ConditionalDiscriminator
    from kodiffcse.modeling.heads import projection_for
    from kodiffcse.modeling.loading import load_encoder

    encoder = load_encoder(tiny["roberta"])
    reference = load_encoder(tiny["roberta"]).eval()
    keys = set(encoder.state_dict())
    plain = sum(type(m) is nn.Dropout for m in encoder.modules())
    assert plain > 0 and encoder.config._attn_implementation == "sdpa"
    model = DiffCSEModel(encoder, projection_for("diffcse", encoder.config.hidden_size), "cls_before_pooler",
                         ConditionalDiscriminator(load_encoder(tiny["roberta"])))
    assert not any(type(m) is nn.Dropout for m in model.modules())
    assert sum(isinstance(m, LaneDropout) for m in model.encoder.modules()) == plain
    assert model.encoder.config._attn_implementation == LANE_ATTENTION
    assert model.discriminator.backbone.config._attn_implementation == LANE_ATTENTION
    assert set(model.encoder.state_dict()) == keys
    assert use_lane_dropout(model) == 0  # idempotent

    ids = torch.tensor([[0, 5, 6, 7, 2], [0, 8, 2, 1, 1]])
    att = (ids != 1).long()
    model.eval()
    assert torch.allclose(model.encoder(input_ids=ids, attention_mask=att).last_hidden_state,
                          reference(input_ids=ids, attention_mask=att).last_hidden_state, atol=1e-6)
    # training mode: padding still hides the padded tokens from the real ones
    model.train()
    other = ids.clone()
    other[1, 3:] = 9
    torch.manual_seed(4)
    a = model.encoder(input_ids=ids, attention_mask=att).last_hidden_state
    torch.manual_seed(4)
    b = model.encoder(input_ids=other, attention_mask=att).last_hidden_state
    assert torch.allclose(a[1, :3], b[1, :3], atol=1e-6) and not torch.allclose(a[1, 3:], b[1, 3:])

    model.encoder.save_pretrained(tmp_path)
    assert LANE_ATTENTION not in json.dumps(json.loads((tmp_path / "config.json").read_text()))
    assert load_encoder(str(tmp_path)).config._attn_implementation == "sdpa"
