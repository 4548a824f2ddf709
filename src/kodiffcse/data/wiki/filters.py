"""Sentence normalisation, quality filters and deduplication keys."""
from __future__ import annotations

import hashlib
import re
import unicodedata
from dataclasses import dataclass

WHITESPACE = re.compile(r"\s+")
# Leftovers the parser could not resolve (broken markup in the source page).
MARKUP_LEFTOVER = re.compile(r"\[\[|\]\]|\{\{|\}\}|\{\||\|\}|==|<[a-zA-Z/][^>]*>|^[|!*#:;]|\|")
HANGUL = re.compile(r"[\uac00-\ud7a3]")


@dataclass(frozen=True)
class FilterOptions:
    min_chars: int = 10
    max_chars: int = 500
    min_hangul_ratio: float = 0.5


def normalize(sentence: str) -> str:
    """NFC with whitespace collapsed: the form written to the corpus."""
    return WHITESPACE.sub(" ", unicodedata.normalize("NFC", sentence)).strip()


def drop_reason(sentence: str, opts: FilterOptions) -> str | None:
    """Why a (normalised) sentence is not kept, or None to keep it."""
    n = len(sentence)
    if n < opts.min_chars:
        return "too_short"
    if n > opts.max_chars:
        return "too_long"
    if MARKUP_LEFTOVER.search(sentence):
        return "markup_leftover"
    letters = sum(1 for c in sentence if not c.isspace())
    if letters == 0 or len(HANGUL.findall(sentence)) / letters < opts.min_hangul_ratio:
        return "low_hangul"
    return None


def _digest(text: str) -> int:
    return int.from_bytes(hashlib.blake2b(text.encode("utf-8"), digest_size=8).digest(), "little")


def exact_key(sentence: str) -> int:
    """64-bit hash of the sentence as written (collisions at 1e7 lines: ~3e-6 expected)."""
    return _digest(sentence)


def loose_key(sentence: str) -> int:
    """64-bit hash after NFKC, casefolding and removing everything but letters and digits,
    so sentences differing only in spacing, punctuation, width or case count as duplicates."""
    folded = unicodedata.normalize("NFKC", sentence).casefold()
    kept = "".join(c for c in folded if unicodedata.category(c)[0] in "LN")
    return _digest(kept)
