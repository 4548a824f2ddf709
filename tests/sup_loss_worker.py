"""Run by tests/test_supervised_loss.py under torchrun (2 CPU processes, gloo): each rank takes its shard of the
same fixed triplet vectors, computes the supervised SimCSE loss with negatives gathered across processes, and
writes rank<N>.json with its loss, logits shape and labels, for the test to compare with a hand computation.
"""
from __future__ import annotations

import json
import os
import sys

import numpy as np
import torch
import torch.distributed as dist


def vectors(world: int, batch: int, width: int, seed: int = 0) -> np.ndarray:
    """(3, world x batch, width): anchors, positives, hard negatives of the whole (global) batch."""
    return np.random.default_rng(seed).standard_normal((3, world * batch, width))


def main(out_dir: str, batch: int, width: int, temperature: float, weights: list[float]) -> None:
    from kodiffcse.losses.supervised import sup_simcse_logits, sup_simcse_loss

    dist.init_process_group("gloo")
    rank, world = dist.get_rank(), dist.get_world_size()
    z = torch.tensor(vectors(world, batch, width)[:, rank * batch:(rank + 1) * batch], dtype=torch.float64)
    record = {"rank": rank, "world": world, "losses": {}, "anchor_grad_norm": {}}
    for w in weights:
        anchor, positive, negative = (t.clone().requires_grad_(True) for t in z)
        logits, labels = sup_simcse_logits(anchor, positive, negative, temperature, w)
        loss = sup_simcse_loss(anchor, positive, negative, temperature, w)
        loss.backward()
        record["losses"][str(w)] = loss.item()
        record["shape"], record["labels"] = list(logits.shape), labels.tolist()
        record["anchor_grad_norm"][str(w)] = float(anchor.grad.norm())
    with open(os.path.join(out_dir, f"rank{rank}.json"), "w", encoding="utf-8") as fh:
        json.dump(record, fh)
    dist.destroy_process_group()


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4]), [float(w) for w in sys.argv[5:]])
