"""The fast path (dynamic padding, one 2B-row pass, MLM head on chosen positions only) computes the
same loss and the same generator fills as a plain path padded to max_len."""
from __future__ import annotations

import pytest
import torch


@pytest.fixture(scope="module")
def parts(tiny, tmp_path_factory):
    from kodiffcse.config import ModelConfig
    from kodiffcse.modeling.diffcse import DiffCSEModel
    from kodiffcse.modeling.discriminator import ConditionalDiscriminator
    from kodiffcse.modeling.generator import load_generator
    from kodiffcse.modeling.heads import projection_for
    from kodiffcse.modeling.loading import load_encoder, load_tokenizer
    from kodiffcse.tiny import build_mlm
    from kodiffcse.training.step import TrainingStep

    root = tmp_path_factory.mktemp("nodrop")  # dropout 0 so two forward passes are comparable
    build_mlm(tiny["tokenizer"], root / "enc", layers=2, hidden=32, heads=2, seed=0, dropout=0.0)
    tok = load_tokenizer(str(root / "enc"))
    gen = load_generator(tiny["roberta-gen"], str(root / "enc"), tok)
    torch.manual_seed(0)
    enc = load_encoder(str(root / "enc"))
    model = DiffCSEModel(enc, projection_for("diffcse", 32), "cls_before_pooler",
                         ConditionalDiscriminator(load_encoder(str(root / "enc"))))
    cfg = ModelConfig()
    return tok, gen, model.train(), TrainingStep(cfg, tok, gen)


def _batches(tok, sample_sentences, max_len):
    from kodiffcse.data.batching import Collate

    return Collate(tok, max_len)(sample_sentences), Collate(tok, max_len, pad_to_max=True)(sample_sentences)


SENTENCES = ["한 남자가 공원에서 기타를 치고 있다.", "고양이", "아이들이 주말에 바닷가에서 사진을 찍고 있다 그리고 웃는다.",
             "두 사람이 시장에서 사과를 먹고 있다.", "의사가 책을 읽고 있다."]


def test_fast_and_padded_paths_give_the_same_loss(parts):
    tok, gen, model, step = parts
    fast, padded = _batches(tok, SENTENCES, 48)
    assert fast["input_ids"].shape[1] < padded["input_ids"].shape[1] == 48
    ids2 = torch.cat([fast["input_ids"]] * 2)
    att2 = torch.cat([fast["attention_mask"]] * 2)
    torch.manual_seed(3)
    edited, replaced = step.edits(ids2, att2)
    extra = padded["input_ids"].shape[1] - fast["input_ids"].shape[1]
    pad = lambda x, v: torch.nn.functional.pad(x, (0, extra), value=v)  # noqa: E731
    fast_losses = step(model, fast, edits=(edited, replaced))
    padded_losses = step(model, padded, edits=(pad(edited, tok.pad_token_id), pad(replaced, False)))
    for key in ("loss", "infonce", "rtd"):
        assert torch.allclose(fast_losses[key], padded_losses[key], atol=1e-5, rtol=0), key
    assert fast_losses["rtd"].item() > 0  # the discriminator really ran


def test_generator_fills_are_the_same_padded_or_not_and_head_only_on_chosen(parts):
    from kodiffcse.data.masking import mask_tokens

    tok, gen, _, _ = parts
    fast, padded = _batches(tok, SENTENCES, 48)
    special = torch.tensor(sorted(set(tok.all_special_ids)))
    torch.manual_seed(5)
    masked, chosen = mask_tokens(fast["input_ids"], fast["attention_mask"], special, 0.4, tok.mask_token_id, len(tok))
    extra = padded["input_ids"].shape[1] - fast["input_ids"].shape[1]
    masked_p = torch.nn.functional.pad(masked, (0, extra), value=tok.pad_token_id)
    chosen_p = torch.nn.functional.pad(chosen, (0, extra), value=False)
    assert chosen.sum() > 3
    fills = gen.fill(masked, fast["attention_mask"], chosen)
    assert torch.equal(fills, gen.fill(masked_p, padded["attention_mask"], chosen_p))
    with torch.no_grad():  # the full MLM over every position, as the reference runs it
        full = gen.model(input_ids=masked_p, attention_mask=padded["attention_mask"]).logits.argmax(-1)[chosen_p]
    assert torch.equal(fills, full)
