"""Unsupervised SimCSE step: kodiffcse `--objective simcse` against sentence-transformers' recipe (not a test).

  python benchmarks/simcse_peer.py                       # CPU: 4x256 encoder, batch 64, max_len 64
  python benchmarks/simcse_peer.py --size base --precision bf16 --batch-size 128   # GPU

The peer is what a user would pick instead: a SentenceTransformer (Transformer + CLS Pooling) trained with
MultipleNegativesRankingLoss on (s, s) pairs, scale 20 (= 1 / temperature 0.05), as sentence-transformers'
SimCSE example does, with the fused AdamW its trainer defaults to. Both sides start from the same random-init
encoder weights and see the same random batches of the same sentences, on their defaults (kodiffcse: the
default training configuration; sentence-transformers: its own tokenizer call and padding, and its own
flattening where it applies, i.e. flash attention on a GPU). They alternate step by step in one process;
tokenisation is outside the timed region on both sides, and the medians are reported.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))

from train_step import _sync, add_common_arguments, prepare  # noqa: E402


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_common_arguments(p, steps=10)
    p.add_argument("--json", dest="json_out")
    args = p.parse_args(argv)
    if not os.path.exists(args.corpus):
        print(f"corpus not found: {args.corpus}", file=sys.stderr)
        return 2
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.losses import MultipleNegativesRankingLoss
    from sentence_transformers.sentence_transformer.modules import Pooling, Transformer

    from report import emit, machine, peak_rss_gib
    from kodiffcse.config import ModelConfig
    from kodiffcse.data.batching import Collate, epoch_batches
    from kodiffcse.modeling.diffcse import DiffCSEModel
    from kodiffcse.modeling.heads import projection_for
    from kodiffcse.modeling.loading import load_encoder
    from kodiffcse.training.loop import build_optimizer
    from kodiffcse.training.step import TrainingStep

    device, amp, (enc_dir, _), tokenizer, corpus = prepare(args, "kodiffcse-peer-")
    n = args.warmup + args.steps
    epoch = list(epoch_batches(len(corpus), args.batch_size, 0, 0, None))  # random batches, as both train
    texts = [[corpus[int(j)] for j in epoch[int(i)]] for i in np.linspace(0, len(epoch) - 1, n)]

    cfg = ModelConfig(objective="simcse", max_len=args.max_len)
    encoder = load_encoder(enc_dir)
    ours = DiffCSEModel(encoder, projection_for("simcse", encoder.config.hidden_size), cfg.pooler,
                        padding_free=cfg.padding_free, cpu_kernels=cfg.cpu_kernels).to(device).train()
    step = TrainingStep(cfg, tokenizer, None)
    ours_opt = build_optimizer(ours, 5e-5, 0.0)
    collate = Collate(tokenizer, args.max_len)
    ours_batches = [{k: v.to(device) for k, v in collate(t).items()} for t in texts]

    peer = SentenceTransformer(modules=[Transformer(enc_dir, max_seq_length=args.max_len),
                                        Pooling(encoder.config.hidden_size, pooling_mode="cls")], device=str(device))
    peer.train()
    loss_fn = MultipleNegativesRankingLoss(peer, scale=1 / cfg.temperature)
    peer_opt = torch.optim.AdamW(peer.parameters(), lr=5e-5, fused=True)  # the HF trainer's default optim
    flattening = bool(getattr(peer[0], "can_flatten_inputs", False))
    peer_batches = []
    for t in texts:
        features = {k: v.to(device) if torch.is_tensor(v) else v for k, v in peer.preprocess(t).items()}
        peer_batches.append([features, dict(features)])  # the (s, s) pair's two columns
    labels = torch.zeros(args.batch_size, device=device)

    def run_ours(i):
        with torch.autocast(device.type, dtype=amp or torch.bfloat16, enabled=amp is not None):
            loss = step(ours, ours_batches[i])["loss"]
        loss.backward()
        ours_opt.step()
        ours_opt.zero_grad(set_to_none=True)

    def run_peer(i):
        with torch.autocast(device.type, dtype=amp or torch.bfloat16, enabled=amp is not None):
            loss = loss_fn([dict(f) for f in peer_batches[i]], labels)
        loss.backward()
        peer_opt.step()
        peer_opt.zero_grad(set_to_none=True)

    sides = {"sentence-transformers": run_peer, "kodiffcse": run_ours}
    times = {s: [] for s in sides}
    from tqdm.auto import tqdm

    for i in tqdm(range(n), desc="steps", file=sys.stderr):
        for side, fn in sides.items():
            _sync(device)
            start = time.perf_counter()
            fn(i)
            _sync(device)
            if i >= args.warmup:
                times[side].append(time.perf_counter() - start)
    non_pad = float(sum(b["attention_mask"].sum() for b in ours_batches) / sum(b["attention_mask"].numel()
                                                                                 for b in ours_batches))
    rows = {s: {"sentences_per_s": args.batch_size / statistics.median(t), "median_step_s": statistics.median(t)}
            for s, t in times.items()}
    result = {"machine": machine(device), "torch": torch.__version__, "threads": torch.get_num_threads(),
              "size": args.size, "batch_size": args.batch_size, "max_len": args.max_len, "precision": args.precision,
              "steps": args.steps, "kodiffcse_batching": f"random batches, padding-free {cfg.padding_free}, "
                                                         f"CPU kernels {cfg.cpu_kernels}",
              "peer_flattening": flattening, "non_pad_share": non_pad, "peak_rss_gib": peak_rss_gib(), **rows,
              "ratio": rows["kodiffcse"]["sentences_per_s"] / rows["sentence-transformers"]["sentences_per_s"]}
    print("| side | sentences/s | median step s |")
    print("|---|---|---|")
    for side, r in rows.items():
        print(f"| {side} | {r['sentences_per_s']:.1f} | {r['median_step_s']:.3f} |")
    print(f"kodiffcse: {result['kodiffcse_batching']}; sentence-transformers flattening: {flattening}; "
          f"non-pad share {non_pad:.2f}; ratio kodiffcse/sentence-transformers {result['ratio']:.2f}x")
    emit(result, args.json_out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
