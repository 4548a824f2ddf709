"""Tiny tokenizers and models built offline, saved, and loaded back through `from_pretrained`.

The demo, the tests and the CPU benchmarks use them, because the real klue/* weights live on the Hub.
Each model dir holds an MLM checkpoint plus its tokenizer, so it serves as encoder (AutoModel) and as
generator (AutoModelForMaskedLM) exactly like klue/roberta-base and klue/roberta-small do.
"""
from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

SPECIAL_TOKENS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]


def wordpiece_vocab(sentences: Iterable[str], vocab_size: int, special_tokens: list[str] = SPECIAL_TOKENS) -> list[str]:
    """`special_tokens` (ids 0, 1, ...), then up to `vocab_size` tokens counted from the sentences.

    The vocabulary is counted here, in a fixed order (characters, their '##' forms, then whole words, each by
    frequency), rather than by the tokenizers trainer, whose ties fall out differently from run to run: the
    same sentences must give the same tokenizer, so that tiny-model tests and benchmarks are reproducible.
    """
    from collections import Counter

    from tokenizers import normalizers, pre_tokenizers

    normalizer, pre_tokenizer = normalizers.NFC(), pre_tokenizers.BertPreTokenizer()
    words: Counter = Counter()
    for sentence in sentences:
        words.update(w for w, _ in pre_tokenizer.pre_tokenize_str(normalizer.normalize_str(sentence)))
    firsts, rests = Counter(), Counter()
    for word, n in words.items():
        firsts[word[0]] += n
        for ch in word[1:]:
            rests["##" + ch] += n
    ranked = lambda counter: [t for t, _ in sorted(counter.items(), key=lambda kv: (-kv[1], kv[0]))]  # noqa: E731
    vocab = dict.fromkeys(special_tokens)  # insertion-ordered, with set-speed membership
    for token in ranked(firsts) + ranked(rests) + ranked(words):
        if len(vocab) >= vocab_size:
            break
        vocab.setdefault(token)
    return list(vocab)


def build_tokenizer(sentences: Iterable[str], out_dir: str | Path, vocab_size: int = 2000, max_len: int = 512):
    """A KLUE-style WordPiece tokenizer ([CLS] ... [SEP]) saved with save_pretrained (see `wordpiece_vocab`)."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    vocab = wordpiece_vocab(sentences, vocab_size)
    tok = Tokenizer(models.WordPiece({t: i for i, t in enumerate(vocab)}, unk_token="[UNK]"))
    tok.normalizer, tok.pre_tokenizer = normalizers.NFC(), pre_tokenizers.BertPreTokenizer()
    cls_id, sep_id = vocab.index("[CLS]"), vocab.index("[SEP]")
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


# klue/roberta-base's and klue/roberta-small's special tokens, in their vocab.txt order: [CLS]=0, [PAD]=1,
# [SEP]=2, [UNK]=3, [MASK]=4 (bos/eos_token_id 0/2 and pad_token_id 1 in their config.json).
KLUE_SPECIAL_TOKENS = ["[CLS]", "[PAD]", "[SEP]", "[UNK]", "[MASK]"]


def build_klue_tokenizer(sentences: Iterable[str], out_dir: str | Path, vocab_size: int = 32000, max_len: int = 512):
    """A tokenizer laid out as klue/roberta-small ships its own: `vocab.txt` with KLUE's special-token ids,
    `special_tokens_map.json`, and a `tokenizer_config.json` naming `BertTokenizer` (do_lower_case false,
    bos [CLS], eos [SEP], model_max_length 512), and no tokenizer.json, so that AutoTokenizer builds it from
    vocab.txt as it does for the real model. Returns it loaded through AutoTokenizer.

    The vocabulary has exactly `vocab_size` entries: what the sentences give (`wordpiece_vocab`), then
    `[unusedN]` fillers that the tokenizer never produces, so that embedding matrices have the real shapes.
    """
    import json
    import os

    from transformers import AutoTokenizer

    vocab = wordpiece_vocab(sentences, vocab_size, KLUE_SPECIAL_TOKENS)
    vocab += [f"[unused{i}]" for i in range(vocab_size - len(vocab))]
    special = {"bos_token": "[CLS]", "eos_token": "[SEP]", "unk_token": "[UNK]", "sep_token": "[SEP]",
               "pad_token": "[PAD]", "cls_token": "[CLS]", "mask_token": "[MASK]"}
    config = {"do_lower_case": False, "do_basic_tokenize": True, "never_split": None, **special,
              "tokenize_chinese_chars": True, "strip_accents": None, "model_max_length": max_len,
              "tokenizer_class": "BertTokenizer"}
    os.makedirs(out_dir, exist_ok=True)
    with open(os.path.join(out_dir, "vocab.txt"), "w", encoding="utf-8") as fh:
        fh.write("".join(t + "\n" for t in vocab))
    for name, content in (("special_tokens_map.json", special), ("tokenizer_config.json", config)):
        with open(os.path.join(out_dir, name), "w", encoding="utf-8") as fh:
            json.dump(content, fh, indent=2)
    return AutoTokenizer.from_pretrained(str(out_dir))


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


def build_models(sentences: Iterable[str], out_dir: str | Path, vocab_size: int = 8000, layers: int = 4,
                 hidden: int = 128, heads: int = 4, generator_layers: int = 2, arch: str = "roberta",
                 seed: int = 0) -> dict[str, str]:
    """A tokenizer counted from `sentences`, and a random-init encoder and generator sharing it, in
    out_dir/encoder and out_dir/generator: models for `kodiffcse train` whose vocabulary fits one's own text
    (the demo's sample vocabulary maps most real Korean to [UNK]). Written atomically."""
    import os

    from .atomic import atomic_dir

    out_dir = os.path.abspath(out_dir)
    with atomic_dir(out_dir) as tmp:
        build_tokenizer(sentences, os.path.join(tmp, "tokenizer"), vocab_size=vocab_size)
        for name, n_layers, offset in (("encoder", layers, 0), ("generator", generator_layers, 1)):
            build_mlm(os.path.join(tmp, "tokenizer"), os.path.join(tmp, name), arch=arch, layers=n_layers,
                      hidden=hidden, heads=heads, seed=seed + offset)
    return {name: os.path.join(out_dir, name) for name in ("tokenizer", "encoder", "generator")}
