"""The README's CPU multi-process commands: `torchrun --standalone --nproc_per_node 2 -m kodiffcse.cli train ...`
and `accelerate launch --multi_gpu --num_processes 2 -m kodiffcse.cli train ...`.

One DDP run with gloo: one process group of world size 2, negatives gathered across ranks, parameters kept
identical, one metrics log, one best/, and a launcher that exits by itself. The ranks run ddp_worker.py,
which calls the same `kodiffcse.cli.main` as `-m kodiffcse.cli` does and records what each rank saw.
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

WORKER = Path(__file__).with_name("ddp_worker.py")


LAUNCHERS = {
    "torchrun": [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"],
    # accelerate's DDP launcher is its --multi_gpu one; on a machine without GPUs the ranks run on CPU with gloo
    "accelerate": [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
                   "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no"],
}


@pytest.mark.skipif(sys.platform == "win32", reason="torch.distributed.run with gloo needs POSIX here")
@pytest.mark.parametrize("launcher", LAUNCHERS)
def test_launched_cli_training_is_one_ddp_run(launcher, tiny, sample, tmp_path):
    batch, out = 8, tmp_path / "run"
    argv = ["train", "--model", tiny["roberta"], "--generator", tiny["roberta-gen"], "--train-file", sample["corpus"],
            "--dev-file", sample["dev"], "--output-dir", str(out),
            "--batch-size", str(batch), "--max-steps", "4", "--eval-steps", "2"]  # a few small steps, for time
    cmd = [*LAUNCHERS[launcher], str(WORKER), str(tmp_path), *argv]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    except subprocess.TimeoutExpired:
        pytest.fail(f"{launcher} did not exit within 300 s (hung)")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr and proc.stdout.count("done: 4 steps (max_steps)") == 1, proc.stdout
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]
    for r, rec in enumerate(ranks):
        assert rec["code"] == 0 and rec["rank"] == r
        assert rec["world"] == rec["group_size"] == 2 and rec["backend"] == "gloo"
        assert rec["distributed_type"] == "DistributedType.MULTI_CPU"
        assert len(rec["shapes"]) == 4
        for z1_shape, logits_shape, labels in rec["shapes"]:
            assert z1_shape[0] == batch and logits_shape == [batch, 2 * batch]  # (B, world x B): both ranks' rows
            assert labels == list(range(r * batch, (r + 1) * batch))  # positives are this rank's own columns
    a, b = ranks[0]["checksums"], ranks[1]["checksums"]
    assert a.keys() == b.keys() and len(a) > 10
    assert all(a[k] == b[k] for k in a), [k for k in a if a[k] != b[k]][:5]
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows if "dev/cosine_spearman" in r] == [0, 2, 4]  # logged once, by rank 0
    assert [r["step"] for r in rows if "train/loss" in r] == [4]
    # one writer: rank 0's events file, plus the hparams subdir that TensorBoard's add_hparams makes beside it
    writers = {p.name.split(".")[-2] for p in out.rglob("events.out.tfevents.*")}  # NAME.<host>.<pid>.<n>
    assert len(writers) == 1, writers
    assert (out / "best" / "modules.json").is_file()
    assert not [p for p in out.rglob(".tmp-*")]
    state = json.loads(next((out / "checkpoints").glob("checkpoint-4/*.json")).read_text())
    assert state["run"]["world_size"] == 2


def test_only_the_first_rank_judges_the_output_dir(tiny, sample, tmp_path, monkeypatch):
    """Another rank's write probe must not make the first rank refuse the dir, nor the first rank's files the
    others (both races failed test_launched_cli_training_is_one_ddp_run now and then): only rank 0 checks."""
    from kodiffcse.errors import UserError
    from kodiffcse.training.loop import _check_output_dir

    from conftest import tiny_config

    out = tmp_path / "run"
    out.mkdir()
    (out / "kodiffcse_config.json").write_text("{}")
    cfg = tiny_config(tiny, sample, out)
    monkeypatch.setenv("RANK", "1")
    _check_output_dir(cfg, resuming=False)
    assert sorted(p.name for p in out.iterdir()) == ["kodiffcse_config.json"]  # no probe file from rank 1
    monkeypatch.setenv("RANK", "0")
    with pytest.raises(UserError, match="not empty"):
        _check_output_dir(cfg, resuming=False)

