"""Fused q/k/v projection: the training model's self-attention computes exactly what transformers' does."""
import copy
import json
import pickle

import pytest
import torch

from kodiffcse.modeling import fused_qkv
from kodiffcse.modeling.dropout import use_lane_dropout
from kodiffcse.modeling.fused_qkv import FusedQKVSelfAttention, use_fused_qkv
from kodiffcse.modeling.loading import load_encoder


@pytest.fixture
def count_fused(monkeypatch):
    calls = []
    forward = fused_qkv._FusedQKVProjection.forward

    def counting(ctx, *args):
        calls.append(1)
        return forward(ctx, *args)

    monkeypatch.setattr(fused_qkv._FusedQKVProjection, "forward", staticmethod(counting))
    return calls


def _pair(path):
    plain = load_encoder(path)
    use_lane_dropout(plain)
    fused = copy.deepcopy(plain)
    layers = plain.config.num_hidden_layers
    assert use_fused_qkv(fused) == layers and use_fused_qkv(fused) == 0  # idempotent
    assert sum(isinstance(m, FusedQKVSelfAttention) for m in fused.modules()) == layers
    assert not any(isinstance(m, FusedQKVSelfAttention) for m in plain.modules())
    return plain, fused


def _run(model, ids, att, seed):
    model.zero_grad(set_to_none=True)
    torch.manual_seed(seed)
    out = model(input_ids=ids, attention_mask=att).last_hidden_state
    # a fixed random read-out: the sum of squares of a LayerNorm output is constant and would give no gradient
    weights = torch.randn(out.shape, generator=torch.Generator().manual_seed(0))
    (out * weights).sum().backward()
    return out.detach(), {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}


@pytest.mark.parametrize("arch", ["roberta", "bert"])
def test_same_outputs_and_gradients_as_transformers(tiny, arch, count_fused):
    plain, fused = _pair(tiny[arch])
    ids = torch.tensor([[0, 5, 6, 7, 2, 1], [0, 8, 9, 10, 11, 2], [0, 12, 2, 1, 1, 1]])
    att = (ids != 1).long()
    for mode in ("train", "eval"):
        plain.train(mode == "train"), fused.train(mode == "train")
        count_fused.clear()
        out_p, grads_p = _run(plain, ids, att, seed=3)
        assert not count_fused
        out_f, grads_f = _run(fused, ids, att, seed=3)  # the same seed draws the same dropout masks
        assert len(count_fused) == plain.config.num_hidden_layers, "the fused projection did not run"
        assert torch.allclose(out_p, out_f, atol=1e-5), mode
        assert grads_p.keys() == grads_f.keys() and any(".query." in n for n in grads_f)
        for name in grads_p:
            assert torch.allclose(grads_p[name], grads_f[name], atol=1e-5, rtol=1e-4), (mode, name)


def test_autocast_falls_back_to_transformers(tiny, count_fused):
    plain, fused = _pair(tiny["roberta"])
    ids = torch.tensor([[0, 5, 6, 7, 2]])
    fused.eval(), plain.eval()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out_f = fused(input_ids=ids).last_hidden_state
        out_p = plain(input_ids=ids).last_hidden_state
    assert not count_fused
    assert torch.equal(out_f, out_p)


def test_state_dict_saved_model_and_pickling(tiny, tmp_path):
    plain, fused = _pair(tiny["roberta"])
    assert list(fused.state_dict()) == list(plain.state_dict())
    fused.save_pretrained(tmp_path / "fused")
    plain.save_pretrained(tmp_path / "plain")
    assert (json.loads((tmp_path / "fused" / "config.json").read_text())
            == json.loads((tmp_path / "plain" / "config.json").read_text()))
    reloaded = load_encoder(str(tmp_path / "fused"))
    assert not any(isinstance(m, FusedQKVSelfAttention) for m in reloaded.modules())
    unpickled = pickle.loads(pickle.dumps(fused))
    assert sum(isinstance(m, FusedQKVSelfAttention) for m in unpickled.modules()) == plain.config.num_hidden_layers


def test_training_model_uses_it(tiny):
    from kodiffcse.modeling.diffcse import DiffCSEModel
    from kodiffcse.modeling.discriminator import ConditionalDiscriminator
    from kodiffcse.modeling.heads import projection_for

    encoder = load_encoder(tiny["roberta"])
    model = DiffCSEModel(encoder, projection_for("diffcse", encoder.config.hidden_size), "cls_before_pooler",
                         ConditionalDiscriminator(load_encoder(tiny["roberta"])))
    layers = encoder.config.num_hidden_layers
    assert sum(isinstance(m, FusedQKVSelfAttention) for m in model.modules()) == 2 * layers
