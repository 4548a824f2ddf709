"""The offline model builders: the KLUE tokenizer layout that benchmarks/rehearsal.py and the reproduction's
smoke mode stand klue/* in with, and what the package does with it (special ids, RoBERTa's position offset)."""
from __future__ import annotations

import json
import os
from pathlib import Path

import torch


def test_klue_tokenizer_has_klues_layout_and_exact_size(tmp_path, sample):
    from transformers import AutoTokenizer

    from kodiffcse.tiny import build_klue_tokenizer

    sentences = Path(sample["corpus"]).read_text(encoding="utf-8").splitlines()
    built = build_klue_tokenizer(sentences, tmp_path, vocab_size=3000)
    # as klue/roberta-small ships it: vocab.txt and the two JSON files, no tokenizer.json
    assert sorted(os.listdir(tmp_path)) == ["special_tokens_map.json", "tokenizer_config.json", "vocab.txt"]
    config = json.loads((tmp_path / "tokenizer_config.json").read_text())
    assert config["tokenizer_class"] == "BertTokenizer" and config["do_lower_case"] is False
    assert config["model_max_length"] == 512
    tok = AutoTokenizer.from_pretrained(str(tmp_path))
    assert tok.get_vocab() == built.get_vocab()
    assert len(tok) == 3000  # the sample gives fewer tokens: the rest are fillers
    ids = {t: tok.convert_tokens_to_ids(t) for t in ("[CLS]", "[PAD]", "[SEP]", "[UNK]", "[MASK]")}
    assert ids == {"[CLS]": 0, "[PAD]": 1, "[SEP]": 2, "[UNK]": 3, "[MASK]": 4}
    assert [tok.cls_token_id, tok.pad_token_id, tok.sep_token_id, tok.unk_token_id, tok.mask_token_id] == [0, 1, 2, 3, 4]
    assert (tok.bos_token, tok.eos_token) == ("[CLS]", "[SEP]")
    vocab = (tmp_path / "vocab.txt").read_text(encoding="utf-8").splitlines()
    assert len(vocab) == 3000 and vocab[:5] == ["[CLS]", "[PAD]", "[SEP]", "[UNK]", "[MASK]"]
    fillers = {i for i, t in enumerate(vocab) if t.startswith("[unused")}
    assert fillers and min(fillers) > 4
    encoded = tok(sentences[:50])["input_ids"]
    assert all(row[0] == 0 and row[-1] == 2 for row in encoded)
    assert not fillers & {i for row in encoded for i in row}
    assert tok.decode(encoded[0], skip_special_tokens=True).replace(" ", "") == sentences[0].replace(" ", "")


def test_klue_layout_roberta_masks_no_special_token_and_counts_512_positions(tmp_path, sample):
    """pad_token_id 1 and [CLS]=0 (not the tiny tokenizer's [PAD]=0): masking still skips every special token and
    padding, and the encoder's usable length is 514 - (pad + 1) = 512, as for klue/roberta-base."""
    from transformers import RobertaConfig, RobertaForMaskedLM

    from kodiffcse.config import ModelConfig
    from kodiffcse.data.batching import Collate
    from kodiffcse.inference import SentenceEncoder
    from kodiffcse.modeling.generator import load_generator
    from kodiffcse.tiny import build_klue_tokenizer
    from kodiffcse.training.step import TrainingStep

    sentences = Path(sample["corpus"]).read_text(encoding="utf-8").splitlines()
    tok = build_klue_tokenizer(sentences, tmp_path / "enc", vocab_size=2000)
    config = RobertaConfig(vocab_size=2000, hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                           intermediate_size=64, max_position_embeddings=514, type_vocab_size=1, pad_token_id=1,
                           bos_token_id=0, eos_token_id=2)
    torch.manual_seed(0)
    RobertaForMaskedLM(config).save_pretrained(str(tmp_path / "enc"))
    cfg = ModelConfig()
    cfg.masking_ratio = 0.5
    step = TrainingStep(cfg, tok, load_generator(str(tmp_path / "enc"), str(tmp_path / "enc"), tok))
    batch = Collate(tok, 64)(sentences[:64])
    assert (batch["input_ids"][batch["attention_mask"] == 0] == 1).all()  # padded with [PAD]=1
    _, chosen = step.edits(batch["input_ids"], batch["attention_mask"])
    picked = batch["input_ids"][chosen]
    assert picked.numel() > 0 and not torch.isin(picked, torch.tensor([0, 1, 2, 3, 4])).any()
    assert SentenceEncoder.from_pretrained(str(tmp_path / "enc"), device="cpu").max_len == 512
