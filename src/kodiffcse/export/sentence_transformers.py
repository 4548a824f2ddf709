"""Save the encoder as a sentence-transformers model dir that also loads with AutoModel/AutoTokenizer.

The pooling written is the evaluation pooling (CLS before the MLP, or mean); the MLP never leaves training.
README.md is the sentence-transformers model card plus kodiffcse's training data, recipe and dev scores.
The dir is built beside its destination and renamed into place, so a kill never leaves it half-written.
"""
from __future__ import annotations

import json
import os

from ..atomic import atomic_dir
from ..config import CONFIG_FILE
from .model_card import SCORES_FILE, card_data, render_card

_POOLING_MODE = {"cls_before_pooler": "cls", "mean": "mean"}


def save_sentence_model(encoder, tokenizer, out_dir: str, pooler: str, max_len: int,
                        config: dict | None = None, scores: dict | None = None) -> str:
    from sentence_transformers import SentenceTransformer

    try:  # sentence-transformers >= 6
        from sentence_transformers.sentence_transformer import modules as models
    except ImportError:
        from sentence_transformers import models

    with atomic_dir(out_dir) as tmp:
        encoder.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
        transformer = models.Transformer(tmp, max_seq_length=max_len)
        pooling = models.Pooling(encoder.config.hidden_size, pooling_mode=_POOLING_MODE[pooler])
        st_model = SentenceTransformer(modules=[transformer, pooling], device="cpu", model_card_data=card_data(config))
        st_model.save(tmp)
        for name, payload in ((CONFIG_FILE, config), (SCORES_FILE, scores)):
            if payload is not None:
                with open(os.path.join(tmp, name), "w", encoding="utf-8") as fh:
                    json.dump(payload, fh, ensure_ascii=False, indent=2)
        with open(os.path.join(tmp, "README.md"), "w", encoding="utf-8") as fh:  # the card, with kodiffcse's sections
            fh.write(render_card(st_model, config, scores, None))
    return out_dir
