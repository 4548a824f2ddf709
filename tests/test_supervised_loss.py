"""Supervised SimCSE's loss equals a hand computation of the official sup-simcse InfoNCE (plain loops over the
rows, numpy, float64), with and without hard_negative_weight, in one process and across two gloo processes."""
from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from kodiffcse.losses.supervised import sup_simcse_loss, supervised_loss
from sup_loss_worker import vectors

WORKER = Path(__file__).with_name("sup_loss_worker.py")
TEMPERATURE = 0.05


def hand_row_losses(anchors, positives, negatives, temperature, weight) -> list[float]:
    """Official cl_forward, written out: row i's logits are cos(a_i, p_j)/t for every j, then cos(a_i, n_j)/t
    for every j, plus `weight` on n_i; its loss is -log softmax at p_i."""
    def cos(u, v):
        return sum(x * y for x, y in zip(u, v)) / math.sqrt(sum(x * x for x in u)) / math.sqrt(sum(y * y for y in v))

    out = []
    n = len(anchors)
    for i in range(n):
        logits = [cos(anchors[i], positives[j]) / temperature for j in range(n)]
        logits += [cos(anchors[i], negatives[j]) / temperature + (weight if j == i else 0.0) for j in range(n)]
        top = max(logits)
        log_sum = top + math.log(sum(math.exp(x - top) for x in logits))
        out.append(log_sum - logits[i])
    return out


@pytest.mark.parametrize("weight", [0.0, 1.0, -2.5])
def test_loss_matches_hand_computation(weight):
    a, p, n = vectors(1, 8, 16, seed=3)
    expected = float(np.mean(hand_row_losses(a.tolist(), p.tolist(), n.tolist(), TEMPERATURE, weight)))
    got = sup_simcse_loss(*(torch.tensor(x, dtype=torch.float32) for x in (a, p, n)), TEMPERATURE, weight).item()
    assert abs(got - expected) <= 1e-5, (got, expected)


def test_hard_negative_weight_changes_the_loss_and_zero_is_the_default():
    a, p, n = (torch.tensor(x, dtype=torch.float32) for x in vectors(1, 4, 8, seed=1))
    assert sup_simcse_loss(a, p, n, TEMPERATURE) == sup_simcse_loss(a, p, n, TEMPERATURE, 0.0)
    assert sup_simcse_loss(a, p, n, TEMPERATURE, 1.0) > sup_simcse_loss(a, p, n, TEMPERATURE, 0.0)


def test_step_outputs_are_sliced_as_anchors_positives_negatives():
    """The collate lays a batch out as [anchors; positives; hard negatives]: supervised_loss reads it so."""
    a, p, n = vectors(1, 5, 8, seed=2)
    z = torch.tensor(np.concatenate([a, p, n]), dtype=torch.float32)
    expected = float(np.mean(hand_row_losses(a.tolist(), p.tolist(), n.tolist(), TEMPERATURE, 0.5)))
    assert abs(supervised_loss({"z": z}, TEMPERATURE, 0.5)["loss"].item() - expected) <= 1e-5


@pytest.mark.skipif(sys.platform == "win32", reason="torch.distributed.run with gloo needs POSIX here")
def test_cross_process_layout_under_two_gloo_processes(tmp_path):
    """Each rank scores its own anchors against both ranks' positives and hard negatives: its loss is the hand
    loss of its rows over the global batch, and the ranks' mean is the official (all-gathered) loss."""
    world, batch, width, weights = 2, 4, 12, [0.0, 1.0]
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(world),
           str(WORKER), str(tmp_path), str(batch), str(width), str(TEMPERATURE), *map(str, weights)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=240,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert proc.returncode == 0, proc.stderr[-3000:]
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in range(world)]
    a, p, n = vectors(world, batch, width)
    for w in weights:
        rows = hand_row_losses(a.tolist(), p.tolist(), n.tolist(), TEMPERATURE, w)
        for r, rec in enumerate(ranks):
            assert rec["world"] == world
            assert rec["shape"] == [batch, world * 2 * batch]  # every positive and hard negative of both ranks
            assert rec["labels"] == [r * 2 * batch + i for i in range(batch)]  # own positives, in own block
            assert rec["anchor_grad_norm"][str(w)] > 0
            own = float(np.mean(rows[r * batch:(r + 1) * batch]))
            assert abs(rec["losses"][str(w)] - own) <= 1e-5, (r, w, rec["losses"][str(w)], own)
        mean = sum(rec["losses"][str(w)] for rec in ranks) / world
        assert abs(mean - float(np.mean(rows))) <= 1e-5
