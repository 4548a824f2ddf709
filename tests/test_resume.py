"""Resume is exact: a run SIGKILLed after step k and resumed ends with the parameters of an uninterrupted run.

Real subprocesses (`python -m kodiffcse.cli train`), CPU, tiny model, fixed seed, checkpoint every step.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import torch

from conftest import assert_same_params, checkpoint_params, train_argv
from kodiffcse.training.checkpoint import list_checkpoints

STEPS = 24


def argv(tiny, sample, out, *extra):
    return [sys.executable, "-m", "kodiffcse.cli",
            *train_argv(tiny, sample, out, *extra, dev_file=sample["dev"], max_steps=STEPS, eval_steps=5, patience=50,
                        batch_size=8, max_len=24, lr="1e-3", seed=7, save_steps=1, save_total_limit=2)]


def env():
    return {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false", "OMP_NUM_THREADS": "1",
            "PYTHONUNBUFFERED": "1"}


def final_params(out) -> dict[str, torch.Tensor]:
    found = list_checkpoints(str(out))
    assert found and found[-1][0] == STEPS, found
    return checkpoint_params(found[-1][1])


def assert_same(a: dict, b: dict) -> None:
    assert a.keys() == b.keys() and len(a) > 10
    names = set(a)
    # encoder, discriminator (with its head) and the MLP are all in the checkpoint
    assert any(n.startswith("encoder.") for n in names) and any("discriminator" in n for n in names)
    assert any(n.startswith("projection.") or "mlp" in n for n in names), sorted(names)[:20]
    assert_same_params(a, b)


def test_sigkill_then_resume_matches_an_uninterrupted_run(tiny, sample, tmp_path):
    straight_out, out = tmp_path / "straight", tmp_path / "killed"
    # Both runs start together (two cores); only the second one is killed.
    straight = subprocess.Popen(argv(tiny, sample, straight_out), env=env(), stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE, text=True)
    proc = subprocess.Popen(argv(tiny, sample, out), env=env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            text=True)
    deadline = time.time() + 240
    try:
        while time.time() < deadline and proc.poll() is None:
            found = list_checkpoints(str(out))
            if found and found[-1][0] >= 3:
                break
            time.sleep(0.02)
        assert proc.poll() is None, "the run ended before it could be killed:\n" + proc.stderr.read()[-3000:]
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == -signal.SIGKILL
    killed_at = list_checkpoints(str(out))[-1][0]
    assert 3 <= killed_at < STEPS

    resumed = subprocess.run(argv(tiny, sample, out, "--resume"), env=env(), capture_output=True, text=True,
                             timeout=300)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "resumed from" in resumed.stdout + resumed.stderr
    _, err = straight.communicate(timeout=300)
    assert straight.returncode == 0, err[-3000:]
    assert_same(final_params(out), final_params(straight_out))
    # nothing half-written is left behind, and only the last K checkpoints are kept
    leftovers = [n for n in os.listdir(out / "checkpoints") if not n.startswith("checkpoint-")]
    assert leftovers == [] and len(list_checkpoints(str(out))) == 2
