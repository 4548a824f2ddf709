"""Padding-free training computes exactly what the padded step computes, for every supported family."""
from __future__ import annotations

import pytest
import torch

from kodiffcse.config import ModelConfig
from kodiffcse.losses import diffcse_loss
from kodiffcse.modeling import packing
from kodiffcse.modeling.diffcse import DiffCSEModel
from kodiffcse.modeling.discriminator import ConditionalDiscriminator
from kodiffcse.modeling.generator import load_generator
from kodiffcse.modeling.heads import projection_for
from kodiffcse.modeling.loading import load_encoder, load_tokenizer
from kodiffcse.modeling.packing import PackedBatch
from kodiffcse.training.step import TrainingStep

ARCHS = ("bert", "roberta", "xlm-roberta", "electra")
# Lengths from 3 to the batch's longest, so every sentence but one has padding in the padded layout.
SENTENCES = ["한 남자가 공원에서 기타를 치고 있다.", "고양이", "아이들이 주말에 바닷가에서 사진을 찍고 있다 그리고 웃는다.",
             "두 사람이 시장에서 사과를 먹고 있다.", "의사가 책을 읽고 있다.", "비가 온다"]
TOL = dict(atol=1e-5, rtol=1e-5)


@pytest.fixture(autouse=True)
def small_attention_groups(monkeypatch):
    """Groups of 5 sentences: the 12 rows of a test batch run attention in three padded groups, one partial."""
    monkeypatch.setattr(packing, "ATTENTION_CHUNK", 5)


@pytest.fixture(scope="module")
def families(tiny, tmp_path_factory):
    """Encoder and generator dirs of each family over the tiny tokenizer, with dropout, as training has."""
    from kodiffcse.tiny import build_mlm

    root = tmp_path_factory.mktemp("families")
    for arch in ARCHS:
        build_mlm(tiny["tokenizer"], root / arch, arch=arch, layers=2, hidden=32, heads=2, seed=0)
        build_mlm(tiny["tokenizer"], root / f"{arch}-gen", arch=arch, layers=1, hidden=32, heads=2, seed=1)
    return root


def _step(families, arch, pooler, padding_free, cpu_kernels=True):
    """Model and training step built alike from the same weights; only the layout switches differ."""
    cfg = ModelConfig(model=str(families / arch), generator=str(families / f"{arch}-gen"), max_len=32, pooler=pooler,
                      masking_ratio=0.3, padding_free=padding_free, cpu_kernels=cpu_kernels)
    tokenizer = load_tokenizer(cfg.model)
    torch.manual_seed(0)
    encoder = load_encoder(cfg.model)
    model = DiffCSEModel(encoder, projection_for("diffcse", 32), pooler, ConditionalDiscriminator(load_encoder(cfg.model)),
                         False, padding_free, cpu_kernels)
    step = TrainingStep(cfg, tokenizer, load_generator(cfg.generator, cfg.model, tokenizer, cpu_kernels=cpu_kernels))
    batch = dict(tokenizer(SENTENCES, padding=True, return_tensors="pt"))
    return model.eval(), step, batch  # eval: dropout off, so both layouts are comparable


def _run(model, step, batch):
    ids, mask = torch.cat([batch["input_ids"]] * 2), torch.cat([batch["attention_mask"]] * 2)
    torch.manual_seed(1)  # the same masks for both layouts
    edited, replaced = step.edits(ids, mask)
    packed = PackedBatch.from_mask(mask) if model.padding_free else None
    tokens = packing.token_states(model.encoder, ids, mask, packed)
    out = model(ids, mask, edited)
    losses = diffcse_loss(out, mask, replaced, 0.05, 0.5)  # a large lambda: the RTD gradient counts
    losses["loss"].backward()
    keep = mask.bool()
    return {"edited": edited, "tokens": tokens.detach()[keep] if packed is None else tokens.detach(),
            "h": out["h"].detach(), "z": out["z"].detach(), "rtd_logits": out["rtd_logits"].detach()[keep],
            "loss": losses["loss"].detach(),
            "grads": {n: p.grad for n, p in model.named_parameters() if p.grad is not None}}


@pytest.mark.parametrize("pooler", ["cls_before_pooler", "mean"])
@pytest.mark.parametrize("arch", ARCHS)
def test_packed_step_equals_padded_step(families, arch, pooler):
    padded = _run(*_step(families, arch, pooler, padding_free=False))
    packed = _run(*_step(families, arch, pooler, padding_free=True))
    assert torch.equal(packed["edited"], padded["edited"]), "the generator's fills differ"
    for key in ("tokens", "h", "z", "rtd_logits", "loss"):
        torch.testing.assert_close(packed[key], padded[key], **TOL, msg=lambda m, key=key: f"{key}: {m}")
    assert packed["grads"].keys() == padded["grads"].keys()
    assert len(padded["grads"]) > 20  # encoder, discriminator, projection and RTD head all get gradients
    for name, grad in padded["grads"].items():
        torch.testing.assert_close(packed["grads"][name], grad, **TOL, msg=lambda m, name=name: f"{name}: {m}")


@pytest.mark.parametrize("cpu_kernels", [True, False])
def test_both_kernel_settings_give_the_padded_result(families, cpu_kernels):
    """`cpu_kernels` false leaves stock transformers modules (SDPA, nn.Dropout, separate q/k/v) and packs still."""
    from kodiffcse.modeling.dropout import LANE_ATTENTION, LaneDropout
    from kodiffcse.modeling.fused_qkv import FusedQKVSelfAttention

    model, step, batch = _step(families, "roberta", "cls_before_pooler", True, cpu_kernels)
    modules = list(model.modules())
    assert any(isinstance(m, LaneDropout) for m in modules) == cpu_kernels
    assert any(isinstance(m, FusedQKVSelfAttention) for m in modules) == cpu_kernels
    assert any(isinstance(m, FusedQKVSelfAttention) for m in step.generator.model.modules()) == cpu_kernels
    assert model.encoder.config._attn_implementation == (LANE_ATTENTION if cpu_kernels else packing.VARLEN_ATTENTION)
    reference = _run(*_step(families, "roberta", "cls_before_pooler", False, cpu_kernels=False))  # all stock
    got = _run(model, step, batch)
    torch.testing.assert_close(got["loss"], reference["loss"], **TOL)
    for name, grad in reference["grads"].items():
        torch.testing.assert_close(got["grads"][name], grad, **TOL)


@pytest.mark.parametrize("pooler", ["cls_before_pooler", "mean"])
def test_last_layers_run_at_the_rows_that_are_read(families, pooler):
    """The encoder's last layer runs at the 2B CLS rows under CLS pooling (every token under mean pooling)
    and the generator's at the masked rows; test_packed_step_equals_padded_step checks what they compute."""
    model, step, batch = _step(families, "roberta", pooler, True)
    seen = {}
    layers = {"encoder": model.encoder.encoder.layer, "generator": step.generator.model.base_model.encoder.layer,
              "discriminator": model.discriminator.backbone.encoder.layer}
    def record(name):
        def hook(module, inputs, output):
            seen.setdefault(name, []).append(inputs[0].shape[-2])
        return hook

    hooks = [layer[-1].intermediate.dense.register_forward_hook(record(name)) for name, layer in layers.items()]
    try:
        out = _run(model, step, batch)
    finally:
        for hook in hooks:
            hook.remove()
    mask = torch.cat([batch["attention_mask"]] * 2)
    torch.manual_seed(1)  # as _run: the same masked positions
    _, chosen = mask_tokens_of(step, torch.cat([batch["input_ids"]] * 2), mask)
    tokens = int(mask.sum())
    # _run's first encoder call asks for every token's state (token_states without read rows), the model's reads
    assert seen["encoder"] == [tokens, 2 * len(SENTENCES) if pooler == "cls_before_pooler" else tokens]
    assert seen["generator"] == [int(chosen.sum())] and 0 < int(chosen.sum()) < tokens
    assert seen["discriminator"] == [tokens]  # RTD reads every token
    assert out["h"].shape == (2 * len(SENTENCES), 32)


def test_read_rows_are_the_whole_layers_rows_whichever_side_the_padding_is_on(families):
    model, _, batch = _step(families, "bert", "cls_before_pooler", True)
    ids, mask = batch["input_ids"], batch["attention_mask"]
    lengths = mask.sum(1)
    left_ids, left_mask = torch.zeros_like(ids), torch.zeros_like(mask)
    for row, n in enumerate(lengths.tolist()):  # the same sentences, padded on the left
        left_ids[row, ids.shape[1] - n:], left_mask[row, ids.shape[1] - n:] = ids[row, :n], 1
    for ids, mask in ((ids, mask), (left_ids, left_mask)):
        packed = PackedBatch.from_mask(mask)
        rows = torch.tensor([0, 2, 5, packed.tokens - 1])  # three rows of the first sentence, one of the last, none of the rest
        with torch.no_grad():
            whole = packing.token_states(model.encoder, ids, mask, packed)
            read = packing.token_states(model.encoder, ids, mask, packed, rows)
        torch.testing.assert_close(read, whole[rows], **TOL)


def mask_tokens_of(step, ids, mask):
    from kodiffcse.data.masking import mask_tokens

    return mask_tokens(ids, mask, step._special, step.cfg.masking_ratio, step.mask_id, step.vocab_size)


def test_query_slots_put_each_sentences_rows_side_by_side():
    from kodiffcse.modeling.read_rows import query_slots

    packed = PackedBatch.from_mask(torch.tensor([[1, 1, 1, 0], [1, 0, 0, 0], [1, 1, 1, 1]]))
    slots, per_sentence = query_slots(packed, torch.tensor([0, 2, 4, 5, 6, 7]))  # 2, 0 and 4 rows of the three
    assert per_sentence == 4 and slots.tolist() == [0, 1, 8, 9, 10, 11]
    slots, per_sentence = query_slots(packed, packed.first)
    assert per_sentence == 1 and slots.tolist() == [0, 1, 2]


def test_roberta_packed_positions_start_after_the_padding_index(families, monkeypatch):
    """RoBERTa counts positions from padding_idx + 1: 0-based packed ids would silently change its outputs."""
    model, _, batch = _step(families, "roberta", "cls_before_pooler", True)
    ids, mask = batch["input_ids"], batch["attention_mask"]
    packed = PackedBatch.from_mask(mask)
    pad = model.encoder.config.pad_token_id
    positions = packed.model_inputs(model.encoder, ids)["position_ids"][0]
    assert positions[packed.first].tolist() == [pad + 1] * len(SENTENCES)
    assert positions[packed.first[1:] - 1].tolist() == [pad + n for n in mask.sum(1)[:-1].tolist()]
    with torch.no_grad():
        padded = model.encoder(input_ids=ids, attention_mask=mask).last_hidden_state[mask.bool()]
        right = packing.token_states(model.encoder, ids, mask, packed)
        monkeypatch.setattr(packing, "position_offset", lambda backbone: 0)
        zero_based = packing.token_states(model.encoder, ids, mask, packed)
    torch.testing.assert_close(right, padded, **TOL)
    assert (zero_based - padded).abs().max() > 1e-2  # the failure this test exists to catch
    bert = load_encoder(str(families / "bert"))
    assert packed.model_inputs(bert, ids)["position_ids"][0, packed.first].tolist() == [0] * len(SENTENCES)


def test_the_discriminator_conditions_each_sentences_own_first_position(families):
    model, _, batch = _step(families, "electra", "cls_before_pooler", True)  # ELECTRA: after the projection
    disc, mask = model.discriminator, batch["attention_mask"]
    packed = PackedBatch.from_mask(mask)
    condition = torch.randn(len(SENTENCES), 32)
    seen = []
    module = disc.backbone.embeddings_project
    hook = module.register_forward_hook(lambda mod, inp, out: seen.append(out.detach()), prepend=False)
    try:
        disc(batch["input_ids"], mask, condition, packed)
    finally:
        hook.remove()
    # hooks run in order: ours (registered first) replaced the rows before this one saw them
    torch.testing.assert_close(seen[0][0, packed.first], condition)
    inputs = packed.model_inputs(disc.backbone, batch["input_ids"])
    with torch.no_grad():
        embedded = disc.backbone.embeddings(input_ids=inputs["input_ids"], position_ids=inputs["position_ids"])
        unconditioned = torch.nn.functional.linear(embedded, module.weight, module.bias)[0]
    others = torch.ones(packed.tokens, dtype=torch.bool)
    others[packed.first] = False
    torch.testing.assert_close(seen[0][0, others], unconditioned[others])  # every other token as embedded


def test_pooling_reads_each_sentences_own_tokens():
    mask = torch.tensor([[1, 1, 1, 0], [1, 0, 0, 0], [1, 1, 1, 1]])
    packed = PackedBatch.from_mask(mask)
    states = torch.arange(packed.tokens, dtype=torch.float32).unsqueeze(1).repeat(1, 2)  # token k holds k
    assert packing.pool_packed(states, packed, "cls_before_pooler")[:, 0].tolist() == [0.0, 3.0, 4.0]
    assert packing.pool_packed(states, packed, "mean")[:, 0].tolist() == [1.0, 3.0, 5.5]
    assert packed.cu_seq_lens.tolist() == [0, 3, 4, 8] and packed.cu_seq_lens.dtype == torch.int32
    padded = torch.randn(3, 4, 5)
    torch.testing.assert_close(packed.unpack(packed.pack(padded)), padded * mask.unsqueeze(-1))


def test_attention_groups_sentences_by_length_and_puts_tokens_back(monkeypatch):
    monkeypatch.setattr(packing, "ATTENTION_CHUNK", 2)
    mask = torch.tensor([[1, 1, 0, 0], [1, 1, 1, 1], [1, 0, 0, 0], [1, 1, 1, 0], [1, 1, 0, 0]])
    layout = PackedBatch.from_mask(mask).attention_layout
    assert layout.shapes == [(2, 4), (2, 2), (1, 1)]  # longest first, each group padded to its own longest
    x = torch.randn(3, int(mask.sum()), 7)
    groups = layout.groups(x)
    assert [tuple(g.shape) for g in groups] == [(3, 2, 4, 7), (3, 2, 2, 7), (3, 1, 1, 7)]
    assert torch.equal(groups[0][:, 1, 3], torch.zeros(3, 7))  # the 3-token sentence's padding slot
    torch.testing.assert_close(layout.join(groups), x)


def test_the_flash_varlen_branch_shares_the_packing(families, monkeypatch):
    """Flash-attention's varlen kernel (GPU only) gets the packed q, k, v and cu_seq_lens: here a stand-in
    computing each sentence's attention on its own takes its place, and the step still equals the padded one."""
    calls = []

    def per_sentence(q, k, v, cu_q, cu_k, max_q, max_k, dropout_p, softmax_scale, causal):
        assert q.shape[1:] == (2, 16) and cu_q is cu_k and max_q == max_k and not causal
        calls.append(len(cu_q) - 1)
        out = torch.empty_like(q)
        for a, b in zip(cu_q[:-1].tolist(), cu_q[1:].tolist()):
            out[a:b] = torch.nn.functional.scaled_dot_product_attention(
                q[a:b].transpose(0, 1), k[a:b].transpose(0, 1), v[a:b].transpose(0, 1),
                scale=softmax_scale).transpose(0, 1)
        return out

    monkeypatch.setattr(packing, "flash_varlen", lambda: per_sentence)
    monkeypatch.setattr(packing, "_flash_applies", lambda query: True)
    padded = _run(*_step(families, "bert", "mean", padding_free=False))
    # cpu_kernels off: on a GPU, where flash applies, the CPU kernels (fused q/k/v, packed attention) step aside
    packed = _run(*_step(families, "bert", "mean", padding_free=True, cpu_kernels=False))
    # encoder x2 (tokens, model) and the discriminator; the generator's one layer is its last, which runs at
    # the masked rows alone (read_rows.py)
    assert len(calls) == 2 + 2 + 2 and set(calls) == {2 * len(SENTENCES)}
    torch.testing.assert_close(packed["loss"], padded["loss"], **TOL)
    for name, grad in padded["grads"].items():
        torch.testing.assert_close(packed["grads"][name], grad, **TOL)


@pytest.mark.parametrize("pooler", ["cls_before_pooler", "mean"])
@pytest.mark.parametrize("arch", ARCHS)
def test_encode_packs_on_cpu_and_gives_the_padded_vectors(families, arch, pooler):
    """SentenceEncoder.encode packs each sorted batch on CPU (the last layer at the CLS rows under CLS pooling):
    the vectors of stock transformers on padded batches, with the packed layout really taken."""
    from transformers import AutoModel

    from kodiffcse.inference import SentenceEncoder
    from kodiffcse.modeling.pooling import pool

    tokenizer = load_tokenizer(str(families / arch))
    encoder = SentenceEncoder(AutoModel.from_pretrained(families / arch), tokenizer, pooler, max_len=32)
    rows = []
    hook = encoder.model.encoder.layer[-1].intermediate.dense.register_forward_hook(
        lambda module, inputs, output: rows.append(inputs[0].shape[-2]))
    try:
        got = encoder.encode(SENTENCES, batch_size=4, normalize=False)
    finally:
        hook.remove()
    stock = AutoModel.from_pretrained(families / arch).eval()
    batch = tokenizer(SENTENCES, padding=True, return_tensors="pt")
    with torch.no_grad():
        want = pool(stock(**batch).last_hidden_state, batch["attention_mask"], pooler)
    torch.testing.assert_close(torch.from_numpy(got), want, **TOL)
    with torch.no_grad():  # the padded call GPUs take, through the same swapped classes
        on_gpus = encoder._vectors(batch["input_ids"], batch["attention_mask"], packs=False)
    torch.testing.assert_close(on_gpus, want, **TOL)
    longest_first = sorted(batch["attention_mask"].sum(1).tolist(), reverse=True)
    per_batch = [longest_first[:4], longest_first[4:]]  # encode sorts by length, then batches
    assert rows == ([len(b) for b in per_batch] if pooler == "cls_before_pooler" else [sum(b) for b in per_batch])


@pytest.mark.parametrize("switches_on", [True, False], ids=["defaults", "switched-off"])
def test_dev_evaluation_keeps_the_runs_switches(families, switches_on):
    """Dev evaluation wraps the model being trained: with the run's padding_free and cpu_kernels off, encoding
    leaves its stock transformers modules as they were (a later training step must not change path), and the
    vectors are the padded ones either way."""
    from types import SimpleNamespace

    from transformers import AutoModel

    from kodiffcse.config import TrainConfig
    from kodiffcse.modeling.fused_qkv import FusedQKVSelfAttention
    from kodiffcse.modeling.pooling import pool
    from kodiffcse.training.dev_eval import DevEvaluator

    cfg = TrainConfig()
    cfg.model.padding_free = cfg.model.cpu_kernels = switches_on
    cfg.model.max_len = 32
    tokenizer = load_tokenizer(str(families / "roberta"))
    model = AutoModel.from_pretrained(families / "roberta")
    run = SimpleNamespace(cfg=cfg, raw=SimpleNamespace(encoder=model), tokenizer=tokenizer)
    encoder = DevEvaluator(run, log=None, score=None).encoder
    assert any(isinstance(m, FusedQKVSelfAttention) for m in model.modules()) == switches_on
    assert (model.config._attn_implementation == "sdpa") != switches_on
    assert encoder._packs == switches_on
    got = encoder.encode(SENTENCES, batch_size=4, normalize=False)
    stock = AutoModel.from_pretrained(families / "roberta").eval()
    batch = tokenizer(SENTENCES, padding=True, return_tensors="pt")
    with torch.no_grad():
        want = pool(stock(**batch).last_hidden_state, batch["attention_mask"], "cls_before_pooler")
    torch.testing.assert_close(torch.from_numpy(got), want, **TOL)
