"""The subtle parts of DiffCSE, each pinned by a test that fails if it breaks."""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from kodiffcse.config import ModelConfig
from kodiffcse.modeling.diffcse import DiffCSEModel
from kodiffcse.modeling.discriminator import ConditionalDiscriminator
from kodiffcse.modeling.generator import load_generator
from kodiffcse.modeling.heads import projection_for
from kodiffcse.modeling.loading import load_encoder, load_tokenizer
from kodiffcse.training.step import TrainingStep

SENTENCES = ["한 남자가 공원에서 기타를 치고 있다.", "고양이가 잠을 잔다.", "아이들이 학교에서 책을 읽고 있다.",
             "요리사가 부엌에서 음식을 만들고 있다."]


def build(tiny, arch="roberta", objective="diffcse", before_mlp=False, lambda_weight=0.005):
    torch.manual_seed(0)
    cfg = ModelConfig(model=tiny[arch], generator=tiny[f"{arch}-gen"], objective=objective, max_len=32,
                      masking_ratio=0.3, lambda_weight=lambda_weight, before_mlp=before_mlp)
    tokenizer = load_tokenizer(cfg.model)
    generator = load_generator(cfg.generator, cfg.model, tokenizer) if objective == "diffcse" else None
    disc = ConditionalDiscriminator(load_encoder(cfg.model)) if objective == "diffcse" else None
    encoder = load_encoder(cfg.model)
    model = DiffCSEModel(encoder, projection_for(objective, encoder.config.hidden_size), cfg.pooler, disc, before_mlp)
    batch = tokenizer(SENTENCES, padding=True, return_tensors="pt")
    return cfg, tokenizer, generator, model, TrainingStep(cfg, tokenizer, generator), dict(batch)


@pytest.mark.parametrize("arch", ["roberta", "bert"])
def test_loss_equals_plain_infonce_plus_lambda_rtd(tiny, arch):
    cfg, tokenizer, generator, model, step, batch = build(tiny, arch, lambda_weight=0.37)
    ids = torch.cat([batch["input_ids"]] * 2)
    mask = torch.cat([batch["attention_mask"]] * 2)
    torch.manual_seed(1)
    edited, replaced = step.edits(ids, mask)
    assert replaced.any(), "the generator should replace some tokens"
    torch.manual_seed(2)
    losses = step(model, batch, edits=(edited, replaced))
    torch.manual_seed(2)  # the same dropout masks for the reference computation
    out = model(ids, mask, edited)
    z = out["z"].double()
    b = len(SENTENCES)
    # InfoNCE, written out by hand.
    z1 = z[:b] / z[:b].norm(dim=1, keepdim=True)
    z2 = z[b:] / z[b:].norm(dim=1, keepdim=True)
    logits = (z1 @ z2.T) / cfg.temperature
    infonce = -torch.mean(torch.diagonal(logits) - torch.logsumexp(logits, dim=1))
    # RTD: mean cross-entropy over every non-pad token.
    rtd_terms = []
    for row in range(2 * b):
        for col in range(ids.shape[1]):
            if mask[row, col]:
                lg = out["rtd_logits"][row, col].double()
                rtd_terms.append(torch.logsumexp(lg, 0) - lg[int(replaced[row, col])])
    rtd = torch.stack(rtd_terms).mean()
    expected = infonce + 0.37 * rtd
    assert math.isclose(losses["infonce"].item(), infonce.item(), abs_tol=1e-5)
    assert math.isclose(losses["rtd"].item(), rtd.item(), abs_tol=1e-5)
    assert math.isclose(losses["loss"].item(), expected.item(), abs_tol=1e-5)


def test_generator_frozen_in_eval_mode_and_unchanged_by_training(tiny):
    cfg, tokenizer, generator, model, step, batch = build(tiny)
    before = {k: v.clone() for k, v in generator.model.state_dict().items()}
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    model.train()
    for _ in range(3):
        step(model, batch)["loss"].backward()
        optimizer.step()
        optimizer.zero_grad()
    assert not generator.model.training
    assert all(not m.training for m in generator.model.modules())
    for name, p in generator.model.named_parameters():
        assert not p.requires_grad and p.grad is None, name
        assert torch.equal(p, before[name]), f"generator weight {name} changed"
    assert not any(p is q for p in model.parameters() for q in generator.model.parameters())


def test_rtd_gradient_reaches_encoder_through_sentence_vector(tiny):
    for before_mlp in (False, True):
        cfg, tokenizer, generator, model, step, batch = build(tiny, before_mlp=before_mlp)
        ids, mask = torch.cat([batch["input_ids"]] * 2), torch.cat([batch["attention_mask"]] * 2)
        edited, replaced = step.edits(ids, mask)
        out = model(ids, mask, edited)
        rtd = F.cross_entropy(out["rtd_logits"][mask.bool()], replaced[mask.bool()].long())
        enc_params = [p for p in model.encoder.parameters() if p.requires_grad]
        grads = torch.autograd.grad(rtd, enc_params + list(model.projection.parameters()), allow_unused=True)
        enc_grads = grads[: len(enc_params)]
        total = sum(g.abs().sum() for g in enc_grads if g is not None)
        assert total > 0, "RTD must reach the encoder"
        proj_total = sum(g.abs().sum() for g in grads[len(enc_grads):] if g is not None)
        assert (proj_total > 0) == (not before_mlp), "z = MLP(h) conditions unless --before-mlp"
        # Cut the sentence vector: then no RTD gradient may reach the encoder at all.
        out = model.discriminator(edited, mask, out["z"].detach())
        rtd_cut = F.cross_entropy(out[mask.bool()], replaced[mask.bool()].long())
        cut = torch.autograd.grad(rtd_cut, enc_params, allow_unused=True)
        assert all(g is None or g.abs().sum() == 0 for g in cut)


def test_masks_are_fresh_every_step(tiny):
    cfg, tokenizer, generator, model, step, batch = build(tiny)
    ids, mask = torch.cat([batch["input_ids"]] * 2), torch.cat([batch["attention_mask"]] * 2)
    seen = []
    for _ in range(4):
        edited, _ = step.edits(ids, mask)
        seen.append(edited)
    assert any(not torch.equal(seen[0], other) for other in seen[1:])


def test_masking_never_chooses_special_or_padding_tokens(tiny):
    from kodiffcse.data.masking import mask_tokens

    tokenizer = load_tokenizer(tiny["roberta"])
    batch = tokenizer(SENTENCES * 50, padding=True, return_tensors="pt")
    special = torch.tensor(tokenizer.all_special_ids)
    masked, chosen = mask_tokens(batch["input_ids"], batch["attention_mask"], special, 0.5,
                                 tokenizer.mask_token_id, len(tokenizer))
    assert not chosen[~batch["attention_mask"].bool()].any()
    assert not chosen[torch.isin(batch["input_ids"], special)].any()
    share = chosen.sum() / (batch["attention_mask"].bool() & ~torch.isin(batch["input_ids"], special)).sum()
    assert 0.45 < share < 0.55
    masked_share = (masked[chosen] == tokenizer.mask_token_id).float().mean()
    assert 0.72 < masked_share < 0.88  # 80% of chosen become [MASK]


def test_simcse_never_builds_or_calls_the_generator(tiny, monkeypatch):
    import kodiffcse.modeling.generator as gen_module

    def boom(*args, **kwargs):
        raise AssertionError("simcse touched the generator")

    monkeypatch.setattr(gen_module.FrozenGenerator, "fill", boom)
    cfg, tokenizer, generator, model, step, batch = build(tiny, objective="simcse")
    assert generator is None and model.discriminator is None
    losses = step(model, batch)
    assert set(losses) == {"loss", "infonce"} and torch.isfinite(losses["loss"])


def test_one_encoder_pass_over_both_views(tiny):
    cfg, tokenizer, generator, model, step, batch = build(tiny)
    sentences = []  # per encoder call: the sentences it read, as packed (the default) or padded rows

    def count(module, args, kwargs, out):
        packed = kwargs.get("cu_seq_lens_q")
        sentences.append(len(packed) - 1 if packed is not None else out.last_hidden_state.shape[0])

    model.encoder.register_forward_hook(count, with_kwargs=True)
    step(model, batch)
    assert model.padding_free and sentences == [2 * len(SENTENCES)]


def test_dropout_views_differ_in_training(tiny):
    cfg, tokenizer, generator, model, step, batch = build(tiny)
    model.train()
    out = model(torch.cat([batch["input_ids"]] * 2), torch.cat([batch["attention_mask"]] * 2))
    b = len(SENTENCES)
    assert not torch.allclose(out["h"][:b], out["h"][b:])


def test_vocabulary_mismatch_is_refused(tiny):
    from kodiffcse.errors import UserError

    tokenizer = load_tokenizer(tiny["roberta"])
    with pytest.raises(UserError, match="vocabulary mismatch"):
        load_generator(tiny["other-gen"], tiny["roberta"], tokenizer)


@pytest.mark.parametrize("arch", ["xlm-roberta", "electra"])
def test_other_encoder_families_train_one_step(tiny, tmp_path, arch):
    from kodiffcse.tiny import build_mlm

    build_mlm(tiny["tokenizer"], tmp_path / arch, arch=arch, layers=2, hidden=32, heads=2)
    paths = {arch: str(tmp_path / arch), f"{arch}-gen": "layers:1"}
    cfg, tokenizer, generator, model, step, batch = build(paths, arch)
    model.train()
    losses = step(model, batch)
    losses["loss"].backward()
    assert torch.isfinite(losses["loss"]) and "rtd" in losses
    grads = [p.grad for p in model.encoder.parameters() if p.requires_grad]
    assert all(g is not None for g in grads)


def test_generator_derived_from_encoder_layers(tiny):
    tokenizer = load_tokenizer(tiny["roberta"])
    gen = load_generator("layers:1", tiny["roberta"], tokenizer)
    assert len(gen.model.base_model.encoder.layer) == 1 and not gen.model.training
    ids = tokenizer(SENTENCES, padding=True, return_tensors="pt")
    chosen = ids["attention_mask"].bool().clone()
    chosen[:, 0] = False
    fills = gen.fill(ids["input_ids"], ids["attention_mask"], chosen)
    assert fills.shape == (int(chosen.sum()),)
