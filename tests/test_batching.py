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
    batches = epoch_batches(lengths, batch, seed, epoch, group)
    flat = np.concatenate(batches) if batches else np.zeros(0, dtype=np.int64)
    assert len(batches) == n // batch and all(len(b) == batch for b in batches)
    assert len(np.unique(flat)) == len(flat) == (n // batch) * batch  # no repeats; only the last partial batch dropped


def test_length_grouping_covers_the_whole_epoch_and_pads_less():
    lengths = np.random.default_rng(0).integers(3, 64, size=64 * GROUP_WINDOW * 2)
    grouped = np.stack(epoch_batches(lengths, 64, 1, 0, True))
    plain = np.stack(epoch_batches(lengths, 64, 1, 0, False))
    assert np.array_equal(np.sort(grouped.ravel()), np.arange(len(lengths)))
    assert lengths[grouped].max(1).mean() < 0.6 * lengths[plain].max(1).mean()  # ~34 vs ~63
    # batches are shuffled after sorting: not in increasing length order
    assert not np.all(np.diff(lengths[grouped].max(1)) >= 0)


def test_order_depends_only_on_seed_and_epoch():
    lengths = np.arange(500) % 37
    a, b = epoch_batches(lengths, 8, 3, 1, True), epoch_batches(lengths, 8, 3, 1, True)
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    c = epoch_batches(lengths, 8, 3, 2, True)
    assert not all(np.array_equal(x, y) for x, y in zip(a, c))


@pytest.mark.parametrize("world", [1, 2, 3])
def test_shards_partition_the_epoch_across_processes(world):
    lengths = np.random.default_rng(1).integers(3, 64, size=1000)
    shards = [list(ShardedBatchSampler(lengths, 10, 7, True, rank, world)) for rank in range(world)]
    assert all(len(s) == 100 // world for s in shards)
    flat = [i for s in shards for b in s for i in b]
    assert len(set(flat)) == len(flat)
    sampler = ShardedBatchSampler(lengths, 10, 7, True, 0, world)
    sampler.set_epoch(0, skip=2)
    assert list(sampler) == shards[0][2:]  # resuming skips what was consumed


