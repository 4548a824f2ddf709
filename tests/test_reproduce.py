"""recipes/reproduce.sh --smoke: the one-command reproduction, end to end on tiny offline models.

The same script a GPU user runs, with local KorSTS, a small synthetic kowiki dump and tiny klue-layout models in
place of the downloads; default data loader workers. Run as a subprocess with a timeout, so a hang fails here.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import CORPUS, KORSTS, needs_shared

REPO = Path(__file__).resolve().parents[1]


@needs_shared
@pytest.mark.slow
def test_smoke_mode_trains_every_row_and_writes_the_reference_table(tmp_path):
    pytest.importorskip("mwparserfromhell", reason="kodiffcse data wiki needs the [wiki] extra")
    pytest.importorskip("kiwipiepy", reason="kodiffcse data wiki needs the [wiki] extra")
    out = tmp_path / "repro"
    env = {**os.environ, "KODIFFCSE": f"{sys.executable} -m kodiffcse.cli", "PYTHON": sys.executable,
           "KORSTS_FROM": str(KORSTS), "SMOKE_SENTENCES": str(CORPUS), "HF_HUB_OFFLINE": "1"}
    start = time.monotonic()
    proc = subprocess.run(["bash", str(REPO / "recipes" / "reproduce.sh"), "--smoke", str(out)], env=env,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert time.monotonic() - start < 600

    result = json.loads((out / "results" / "results.json").read_text(encoding="utf-8"))
    assert result["smoke"] is True
    rows = {r["row"]: r for r in result["rows"]}
    assert list(rows) == ["simcse-bert", "simcse-roberta", "diffcse-roberta", "diffcse-bert"]
    for name, row in rows.items():
        assert row["pairs"] == 1379 and row["model"] == str(out / "runs" / name / "best")
        assert row["per_batch_protocol"] == "per-batch-average 128 seed 0"
        for scores in (row["whole_set_x100"], row["per_batch_x100"]):
            assert len(scores) == 9 and all(-100 <= v <= 100 for v in scores.values())
        assert row["whole_set_x100"] != row["per_batch_x100"]  # two protocols, two sets of numbers
        assert (out / "runs" / name / "best" / "modules.json").is_file()  # a sentence-transformers dir
    assert rows["diffcse-roberta"]["reference_per_batch_x100"]["cosine_spearman"] == 75.42
    assert rows["simcse-bert"]["reference_per_batch_x100"]["average"] == 71.97
    assert rows["diffcse-bert"]["reference_per_batch_x100"] is None

    # the commands that produced the table, in order, each as run
    commands = (out / "commands.sh").read_text(encoding="utf-8").splitlines()
    assert commands == result["commands"]
    trains = [c for c in commands if " train " in c]
    assert len(trains) == 4
    assert "--objective simcse" in trains[0] and "models/bert-base" in trains[0]
    assert "--objective simcse" in trains[1] and "models/roberta-base" in trains[1]
    assert "--generator" in trains[2] and "models/roberta-small" in trains[2] and "--objective" not in trains[2]
    assert "--generator layers:1" in trains[3] and "models/bert-base" in trains[3]
    assert all("--num-workers" not in c for c in trains)  # the default worker count
    assert any(" data korsts " in c for c in commands) and any(" data wiki --dump " in c for c in commands)
    assert sum("evaluate" in c and "--per-batch-average 128" in c for c in commands) == 1

    md = (out / "results" / "results.md").read_text(encoding="utf-8")
    assert "SMOKE RUN" in md and "| Model | Average | Cosine Pearson |" in md
    assert "| KoDiffCSE-RoBERTa (reference, per-batch) | 75.65 |" in md
    average = rows["diffcse-roberta"]["whole_set_x100"]["average"]
    assert f"| KoDiffCSE-RoBERTa (kodiffcse, whole set) | {average:.2f} |" in md
