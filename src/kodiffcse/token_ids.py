"""Token ids for encoding sentences, shared by SentenceEncoder (torch) and OnnxEncoder (onnxruntime), so both
check, truncate and order their input alike. Imports neither torch nor onnxruntime."""
from __future__ import annotations

import numpy as np

from .errors import UserError, count


def sentence_token_ids(tokenizer, sentences: list, max_len: int, prefix: str = "") -> tuple[list[list[int]], int]:
    """Ids with special tokens, cut to max_len keeping the end token, and how many texts had to be cut."""
    for i, s in enumerate(sentences):
        if not isinstance(s, str):
            raise UserError(f"item {i} is {type(s).__name__}, not a string")
    if not sentences:
        return [], 0
    texts = [prefix + s for s in sentences] if prefix else list(sentences)
    ids = tokenizer(texts, truncation=False, padding=False, add_special_tokens=True)["input_ids"]
    too_long = sum(len(x) > max_len for x in ids)
    return [x if len(x) <= max_len else x[: max_len - 1] + x[-1:] for x in ids], too_long


def longest_first(ids: list[list[int]]) -> np.ndarray:
    """Row order that batches similar lengths together (little padding); stable, so ties keep input order."""
    return np.argsort([-len(x) for x in ids], kind="stable")


def truncation_message(truncated: int, total: int, max_len: int) -> str:
    """'624 of 2,888 texts are longer than 32 tokens and were truncated'."""
    were = "was" if truncated == 1 else "were"
    return (f"{truncated:,} of {count(total, 'text')} {'is' if truncated == 1 else 'are'} longer than "
            f"{max_len} tokens and {were} truncated")
