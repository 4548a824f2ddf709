"""Tiny tokenizers and models built offline, saved, and loaded back through `from_pretrained`.

The demo, the tests and the CPU benchmarks use them, because the real klue/* weights live on the Hub.
Each model dir holds an MLM checkpoint plus its tokenizer, so it serves as encoder (AutoModel) and as
generator (AutoModelForMaskedLM) exactly like klue/roberta-base and klue/roberta-small do.
"""
from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

SPECIAL_TOKENS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]


def build_tokenizer(sentences: Iterable[str], out_dir: str | Path, vocab_size: int = 2000, max_len: int = 512):
    """Train a KLUE-style WordPiece tokenizer ([CLS] ... [SEP]) and save it with save_pretrained."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tok.normalizer = normalizers.NFC()
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.train_from_iterator(sentences, trainers.WordPieceTrainer(vocab_size=vocab_size, special_tokens=SPECIAL_TOKENS))
    cls_id, sep_id = tok.token_to_id("[CLS]"), tok.token_to_id("[SEP]")
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B [SEP]", special_tokens=[("[CLS]", cls_id), ("[SEP]", sep_id)]
    )
    tok.decoder = decoders.WordPiece()
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, unk_token="[UNK]", pad_token="[PAD]", cls_token="[CLS]", sep_token="[SEP]",
        mask_token="[MASK]", model_max_length=max_len,
    )
    fast.save_pretrained(str(out_dir))
    return fast


def build_mlm(
    tokenizer_dir: str | Path,
    out_dir: str | Path,
    arch: str = "roberta",
    layers: int = 2,
    hidden: int = 64,
    heads: int = 2,
    intermediate: int | None = None,
    max_positions: int = 130,
    seed: int = 0,
    dropout: float = 0.1,
):
    """Random-init masked-LM of the given architecture, saved with the tokenizer next to it."""
    import torch
    from transformers import (AutoTokenizer, BertConfig, BertForMaskedLM, ElectraConfig, ElectraForMaskedLM,
                              RobertaConfig, RobertaForMaskedLM, XLMRobertaConfig, XLMRobertaForMaskedLM)

    tokenizer = AutoTokenizer.from_pretrained(str(tokenizer_dir))
    common = dict(
        vocab_size=len(tokenizer), hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=heads,
        intermediate_size=intermediate or 4 * hidden, pad_token_id=tokenizer.pad_token_id,
        hidden_dropout_prob=dropout, attention_probs_dropout_prob=dropout,
    )
    if arch in ("roberta", "xlm-roberta"):
        # RoBERTa counts positions from pad_token_id + 1, so leave room for them.
        config_cls, cls = (RobertaConfig, RobertaForMaskedLM) if arch == "roberta" else \
            (XLMRobertaConfig, XLMRobertaForMaskedLM)
        config = config_cls(**common, max_position_embeddings=max_positions + tokenizer.pad_token_id + 1,
                            bos_token_id=tokenizer.cls_token_id, eos_token_id=tokenizer.sep_token_id, type_vocab_size=1)
    elif arch == "bert":
        config = BertConfig(**common, max_position_embeddings=max_positions)
        cls = BertForMaskedLM
    elif arch == "electra":  # smaller embeddings projected up to the hidden size, as ELECTRA does
        config = ElectraConfig(**common, embedding_size=max(hidden // 2, 8), max_position_embeddings=max_positions)
        cls = ElectraForMaskedLM
    else:
        raise ValueError(f"unknown tiny architecture {arch!r}")
    torch.manual_seed(seed)
    model = cls(config)
    model.save_pretrained(str(out_dir))
    tokenizer.save_pretrained(str(out_dir))
    return model
