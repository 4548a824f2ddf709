"""Large corpora: time to the first optimizer step and peak RSS on a generated multi-million-line corpus.

  python benchmarks/large_corpus.py                    # 5M lines in /tmp, tiny model, both phases
  python benchmarks/large_corpus.py --lines 1000000 --json out.json

Each phase is a fresh process (cold: nothing cached) running `kodiffcse.training.loop.train` for one
optimizer step on the corpus: line index (UTF-8 check, starts, byte and character counts) + sampler +
first batch + first step. Phase `random` uses random batches, phase `grouped` --group-by-length (which
needs nothing beyond the index's character counts). Each phase runs in its own process so its peak RSS (ru_maxrss, workers included) is its own.
The corpus is built from the shared Korean sentences with shuffled word order, in /tmp, never the repo.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from report import emit, machine, peak_rss_gib

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO / ".." / "shared" / "data" / "corpus" / "ko-sentences.txt"


def generate(path: Path, lines: int, seed: int = 0) -> None:
    from tqdm.auto import tqdm

    base = [s.split() for s in SHARED.read_text(encoding="utf-8").splitlines() if s.strip()]
    rng = random.Random(seed)
    with open(path, "w", encoding="utf-8") as fh:
        for start in tqdm(range(0, lines, 100_000), desc="generating corpus", unit="100k lines"):
            out = []
            for _ in range(min(100_000, lines - start)):
                words = list(rng.choice(base))
                rng.shuffle(words)
                out.append(" ".join(words))
            fh.write("\n".join(out) + "\n")


def child(phase: str, corpus: str, model: str, out_dir: str) -> None:
    """One phase in this (fresh) process; prints a JSON line. The clock starts before kodiffcse is imported."""
    t0 = time.perf_counter()
    import torch

    from kodiffcse.config import TrainConfig
    from kodiffcse.training.loop import train

    first = {}
    original = torch.optim.AdamW.step

    def timed_step(self, *a, **k):
        first.setdefault("t", time.perf_counter() - t0)
        return original(self, *a, **k)

    torch.optim.AdamW.step = timed_step
    cfg = TrainConfig()
    cfg.model.model, cfg.model.generator, cfg.model.max_len = model, model, 64
    cfg.data.train_file, cfg.data.num_workers, cfg.data.group_by_length = corpus, 2, phase == "grouped"
    t = cfg.training
    t.output_dir, t.overwrite_output_dir, t.batch_size, t.max_steps, t.eval_steps = out_dir, True, 64, 1, 0
    t.log_with = "none"
    train(cfg)
    print("RESULT " + json.dumps({"phase": phase, "first_step_s": first["t"], "peak_rss_gib": peak_rss_gib(),
                                  "peak_worker_rss_gib": peak_rss_gib(children=True)}))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--lines", type=int, default=5_000_000)
    p.add_argument("--corpus", help="use this corpus instead of generating one")
    p.add_argument("--phases", default="random,grouped")
    p.add_argument("--json", dest="json_out")
    p.add_argument("--child", nargs=4, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        child(*args.child)
        return 0
    work = Path(tempfile.mkdtemp(prefix="kodiffcse-large-"))
    corpus = Path(args.corpus) if args.corpus else work / "ko-5m.txt"
    if not args.corpus:
        generate(corpus, args.lines)
    from kodiffcse.tiny import build_mlm, build_tokenizer

    sentences = SHARED.read_text(encoding="utf-8").splitlines()
    build_tokenizer(sentences, work / "tok", vocab_size=8000)
    build_mlm(work / "tok", work / "model", layers=2, hidden=64, heads=2, seed=0)
    results = {"corpus_bytes": corpus.stat().st_size, "machine": machine()}
    for phase in args.phases.split(","):
        start = time.perf_counter()
        proc = subprocess.run([sys.executable, __file__, "--child", phase, str(corpus), str(work / "model"),
                               str(work / f"run-{phase}")],
                              capture_output=True, text=True, env={**os.environ, "HF_HUB_OFFLINE": "1"})
        line = next((x for x in proc.stdout.splitlines() if x.startswith("RESULT ")), None)
        if proc.returncode or line is None:
            print(proc.stderr[-2000:], file=sys.stderr)
            return 1
        results[phase] = {**json.loads(line[7:]), "process_wall_s": time.perf_counter() - start}
    print("| phase | first step s (cold process) | peak RSS GiB (main) | peak RSS GiB (largest worker) |")
    print("|---|---|---|---|")
    for phase in args.phases.split(","):
        r = results[phase]
        print(f"| {phase} | {r['first_step_s']:.1f} | {r['peak_rss_gib']:.2f} | {r['peak_worker_rss_gib']:.2f} |")
    emit(results, args.json_out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
