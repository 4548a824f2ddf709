"""Batch order: every sentence once per epoch, deterministic per (seed, epoch), identical across processes."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kodiffcse.data.batching import GROUP_WINDOW, ShardedBatchSampler, epoch_batches


@settings(max_examples=40, deadline=None)
@given(n=st.integers(0, 900), batch=st.integers(2, 17), seed=st.integers(0, 5), epoch=st.integers(0, 3),
       group=st.booleans())
def test_every_sentence_once_per_epoch(n, batch, seed, epoch, group):
    lengths = np.random.default_rng(n).integers(3, 64, size=n)
    batches = list(epoch_batches(n, batch, seed, epoch, lengths.__getitem__ if group else None))
    flat = np.concatenate(batches) if batches else np.zeros(0, dtype=np.int64)
    assert len(batches) == n // batch and all(len(b) == batch for b in batches)
    assert len(np.unique(flat)) == len(flat) == (n // batch) * batch  # no repeats; only the last partial batch dropped


def test_length_grouping_covers_the_whole_epoch_and_pads_less():
    lengths = np.random.default_rng(0).integers(3, 64, size=64 * GROUP_WINDOW * 2)
    grouped = np.stack(list(epoch_batches(len(lengths), 64, 1, 0, lengths.__getitem__)))
    plain = np.stack(list(epoch_batches(len(lengths), 64, 1, 0)))
    assert np.array_equal(np.sort(grouped.ravel()), np.arange(len(lengths)))
    assert lengths[grouped].max(1).mean() < 0.6 * lengths[plain].max(1).mean()  # ~34 vs ~63
    # batches are shuffled after sorting: not in increasing length order
    assert not np.all(np.diff(lengths[grouped].max(1)) >= 0)


def test_order_depends_only_on_seed_and_epoch():
    lengths = np.arange(500) % 37
    a, b = (list(epoch_batches(500, 8, 3, 1, lengths.__getitem__)) for _ in range(2))
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    c = list(epoch_batches(500, 8, 3, 2, lengths.__getitem__))
    assert not all(np.array_equal(x, y) for x, y in zip(a, c))


@pytest.mark.parametrize("world", [1, 2, 3])
def test_shards_partition_the_epoch_across_processes(world):
    lengths = np.random.default_rng(1).integers(3, 64, size=1000)
    shards = [list(ShardedBatchSampler(1000, 10, 7, rank, world, lengths.__getitem__)) for rank in range(world)]
    assert all(len(s) == 100 // world for s in shards)
    flat = [i for s in shards for b in s for i in b]
    assert len(set(flat)) == len(flat)
    sampler = ShardedBatchSampler(1000, 10, 7, 0, world, lengths.__getitem__)
    sampler.set_epoch(0, skip=2)
    assert list(sampler) == shards[0][2:]  # resuming skips what was consumed




def test_resuming_skips_whole_windows_without_measuring_them():
    lengths = np.random.default_rng(2).integers(3, 64, size=10 * GROUP_WINDOW * 4)
    asked = []

    def lengths_of(indices):
        asked.append(len(indices))
        return lengths[indices]

    full = list(epoch_batches(len(lengths), 10, 5, 0, lengths.__getitem__))
    start = 2 * GROUP_WINDOW + 7
    resumed = list(epoch_batches(len(lengths), 10, 5, 0, lengths_of, start=start))
    assert all(np.array_equal(x, y) for x, y in zip(full[start:], resumed)) and len(resumed) == len(full) - start
    assert asked == [10 * GROUP_WINDOW, 10 * GROUP_WINDOW]  # only the window resumed in, and the last one


def test_token_counter_matches_the_collate(tiny, sample):
    from transformers import AutoTokenizer

    from kodiffcse.data.batching import Collate, TokenCounter
    from kodiffcse.data.corpus import LineCorpus

    corpus = LineCorpus(sample["corpus"])
    tok = AutoTokenizer.from_pretrained(tiny["tokenizer"])
    counts = TokenCounter(corpus, tok, 16)(np.arange(len(corpus)))
    batch = Collate(tok, 16)([corpus[i] for i in range(len(corpus))])
    assert np.array_equal(counts, batch["attention_mask"].sum(1).numpy())


def test_grouping_by_token_count_removes_padding_on_the_korean_corpus(tmp_path):
    from conftest import CORPUS

    if not CORPUS.exists():
        pytest.skip(f"shared corpus absent at {CORPUS}")
    from kodiffcse.data.batching import TokenCounter
    from kodiffcse.data.corpus import LineCorpus
    from kodiffcse.tiny import build_tokenizer

    corpus = LineCorpus(CORPUS)
    counter = TokenCounter(corpus, build_tokenizer((corpus[i] for i in range(len(corpus))), tmp_path / "tok",
                                                   vocab_size=2000), 64)
    lengths = counter(np.arange(len(corpus)))

    def real_token_share(lengths_of) -> float:
        batches = np.stack(list(epoch_batches(len(corpus), 64, 0, 0, lengths_of)))
        return lengths[batches].sum() / (lengths[batches].max(1).sum() * 64)

    assert real_token_share(lengths.__getitem__) >= 0.95
    assert real_token_share(None) < 0.6  # random batches: around half of a padded batch is padding
