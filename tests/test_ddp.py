"""Two CPU processes under torchrun (gloo): negatives gathered across ranks, parameters kept identical."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import tiny_config

WORKER = Path(__file__).with_name("ddp_worker.py")


@pytest.mark.skipif(sys.platform == "win32", reason="torch.distributed.run with gloo needs POSIX here")
def test_two_process_cpu_training_gathers_negatives_and_stays_in_sync(tiny, sample, tmp_path):
    batch = 8
    cfg = tiny_config(tiny, sample, tmp_path / "run", batch_size=batch, max_steps=3, eval_steps=0)
    cfg.save(str(tmp_path / "cfg.json"))
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false",
           "KODIFFCSE_CACHE": str(tmp_path / "cache")}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--standalone",
           str(WORKER), str(tmp_path), str(tmp_path / "cfg.json")]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr[-3000:]
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]
    for r, rec in enumerate(ranks):
        assert rec["world"] == 2 and rec["steps"] == 3
        assert len(rec["shapes"]) == 3
        for z1_shape, logits_shape, labels, backend in rec["shapes"]:
            assert backend == "gloo"
            assert z1_shape[0] == batch and logits_shape == [batch, 2 * batch]  # (B, world x B)
            assert labels == list(range(r * batch, (r + 1) * batch))  # positives are this rank's own columns
    a, b = ranks[0]["checksums"], ranks[1]["checksums"]
    assert a.keys() == b.keys() and len(a) > 10
    assert all(a[k] == b[k] for k in a), [k for k in a if a[k] != b[k]][:5]
    assert ranks[0]["best_dir"] is not None  # the main process exported; the other waited for it
    assert (tmp_path / "run" / "best" / "modules.json").is_file()
