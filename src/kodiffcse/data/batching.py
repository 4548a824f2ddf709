"""Batches: a deterministic, resumable, process-sharded batch order and a dynamic-padding collate.

The order depends only on (seed, epoch), so every process computes the same global order and takes
every world_size-th batch; resuming skips the batches already consumed.
Length grouping sorts sentences by length inside shuffled windows of 50 batches, then shuffles the
batches. Every sentence still appears once per epoch. Its effect on the objective: in-batch negatives
have similar lengths, so length stops being a cue the contrastive loss could use (docs/design-speed.md).
Grouping uses the line index's character counts: free (no tokenisation up front, so a corpus of millions
of lines starts at once), and on the shared Korean corpus 83% of padded positions are then real tokens,
against 73% when grouping by bytes, 38% unsorted and 36% when padding to max_len as the reference did.
"""
from __future__ import annotations

import signal

import numpy as np
import torch

from .corpus import LineCorpus

GROUP_WINDOW = 50  # batches per length-sorted window


def epoch_batches(lengths: np.ndarray, batch_size: int, seed: int, epoch: int, group_by_length: bool) -> list[np.ndarray]:
    """All full batches of one epoch, in order. The last incomplete batch is dropped."""
    rng = np.random.default_rng([seed, epoch])
    order = rng.permutation(len(lengths))
    n_batches = len(order) // batch_size
    order = order[: n_batches * batch_size]
    if group_by_length and n_batches:
        window = np.arange(len(order)) // (batch_size * GROUP_WINDOW)
        order = order[np.lexsort((lengths[order], window))]  # stable: by window, then by length
    batches = order.reshape(n_batches, batch_size) if n_batches else np.zeros((0, batch_size), dtype=np.int64)
    if group_by_length:
        batches = batches[rng.permutation(n_batches)]
    return list(batches)


class ShardedBatchSampler(torch.utils.data.Sampler):
    """This process's share of an epoch's batches, starting after `skip` of its own batches."""

    def __init__(self, lengths: np.ndarray, batch_size: int, seed: int, group_by_length: bool,
                 rank: int = 0, world_size: int = 1):
        self.lengths, self.batch_size, self.seed = lengths, batch_size, seed
        self.group_by_length, self.rank, self.world_size = group_by_length, rank, world_size
        self.epoch, self.skip = 0, 0

    def set_epoch(self, epoch: int, skip: int = 0) -> None:
        self.epoch, self.skip = epoch, skip

    def __len__(self) -> int:
        return (len(self.lengths) // self.batch_size) // self.world_size

    def __iter__(self):
        batches = epoch_batches(self.lengths, self.batch_size, self.seed, self.epoch, self.group_by_length)
        mine = batches[self.rank: len(self) * self.world_size: self.world_size]
        for batch in mine[self.skip:]:
            yield batch.tolist()


class CorpusDataset(torch.utils.data.Dataset):
    def __init__(self, corpus: LineCorpus):
        self.corpus = corpus

    def __len__(self) -> int:
        return len(self.corpus)

    def __getitem__(self, i: int) -> str:
        return self.corpus[i]


class Collate:
    """Tokenise a list of sentences, padding only to the longest one in the batch."""

    def __init__(self, tokenizer, max_len: int, pad_to_max: bool = False):
        self.tokenizer, self.max_len, self.pad_to_max = tokenizer, max_len, pad_to_max

    def __call__(self, sentences: list[str]) -> dict[str, torch.Tensor]:
        enc = self.tokenizer(
            sentences, padding="max_length" if self.pad_to_max else "longest", truncation=True,
            max_length=self.max_len, return_tensors="pt",
        )
        return {"input_ids": enc["input_ids"], "attention_mask": enc["attention_mask"]}


def _ignore_stop_signals(_worker_id: int) -> None:
    """Workers ignore SIGTERM/SIGINT sent to the whole process group (Ctrl-C, SLURM, Kubernetes): the main
    process then saves a checkpoint and shuts them down, instead of failing on a dead worker."""
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def make_loader(corpus: LineCorpus, tokenizer, batch_size: int, max_len: int, seed: int, group_by_length: bool,
                num_workers: int, rank: int = 0, world_size: int = 1, pin_memory: bool = False):
    sampler = ShardedBatchSampler(corpus.chars, batch_size, seed, group_by_length, rank, world_size)
    # Its own generator: otherwise every iter(loader) draws a base seed from the global torch RNG, so a
    # resumed run (RNG restored mid-epoch, then a new iterator) would see different masks and dropout.
    loader = torch.utils.data.DataLoader(
        CorpusDataset(corpus), batch_sampler=sampler, collate_fn=Collate(tokenizer, max_len),
        num_workers=num_workers, pin_memory=pin_memory, persistent_workers=False,
        prefetch_factor=4 if num_workers else None,
        generator=torch.Generator().manual_seed(seed + rank),
        worker_init_fn=_ignore_stop_signals if num_workers else None,
    )
    return loader, sampler
