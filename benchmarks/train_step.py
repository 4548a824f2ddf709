"""Training-step speed: kodiffcse's real step against a reference-faithful baseline (not a test).

  python benchmarks/train_step.py                         # CPU, the default training path: 4x256 encoder, 2x256 generator
  python benchmarks/train_step.py --size base --precision bf16 --batch-size 128   # GPU (benchmarks/gpu.sh)
  python benchmarks/train_step.py --only baseline --json base.json                # one side alone

Both sides get random-init models of the same sizes over a WordPiece vocabulary trained on the corpus,
the same corpus, batch size and max_len, and an AdamW step. They alternate step by step in one process
(so machine noise hits both alike) and the medians are reported. Tokenisation is outside the timed
region on both sides (kodiffcse tokenises in DataLoader workers, the reference before training).
Useful FLOPs count non-pad tokens only: encoder and discriminator forward+backward, generator forward,
MLM head on the edited positions, and the last layers of encoder and generator at the rows read from them
(CLS rows, edited positions) besides their keys and values. They are compared with a dense matmul peak measured in this run in two
ways: against the better of two long matmul measurements, before and after the steps; and paired, each
step against a short matmul burst run right after it, so that a shared machine's drifting speed hits both
alike (the median of those per-step fractions).
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))
CORPUS = REPO / ".." / "shared" / "data" / "corpus" / "ko-sentences.txt"

SIZES = {  # (encoder layers, generator layers, hidden, heads, vocab)
    "small": (4, 2, 256, 4, 8000),
    "base": (12, 6, 768, 12, 32000),  # klue/roberta-base and klue/roberta-small shapes
}


def build_models(corpus_path: str, size: str, work: Path, max_len: int):
    from kodiffcse.tiny import build_mlm, build_tokenizer

    enc_layers, gen_layers, hidden, heads, vocab = SIZES[size]
    with open(corpus_path, encoding="utf-8") as fh:
        sentences = [line.strip() for line in fh if line.strip()]
    build_tokenizer(sentences, work / "tok", vocab_size=vocab, max_len=max(512, max_len))
    build_mlm(work / "tok", work / "enc", layers=enc_layers, hidden=hidden, heads=heads, max_positions=512, seed=0)
    build_mlm(work / "tok", work / "gen", layers=gen_layers, hidden=hidden, heads=heads, max_positions=512, seed=1)
    return str(work / "enc"), str(work / "gen")


def matmul_peak(device, dtype, reps: int | None = None) -> float:
    """Best dense matmul FLOP/s over a few square sizes (the denominator of the utilisation figure)."""
    best = 0.0
    for n in ((1024, 2048) if device.type == "cpu" else (4096, 8192)):
        a = torch.randn(n, n, device=device, dtype=dtype)
        b = torch.randn(n, n, device=device, dtype=dtype)
        for _ in range(2):
            a @ b
        k = reps or (10 if device.type == "cpu" else 50)
        _sync(device)
        start = time.perf_counter()
        for _ in range(k):
            a @ b
        _sync(device)
        best = max(best, 2 * n ** 3 * k / (time.perf_counter() - start))
    return best


def _sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def layer_flops(tokens: float, attn_pairs: float, hidden: int, ff: int, read_rows: float | None = None) -> float:
    """Forward FLOPs of one transformer layer: projections + FFN per token, scores + mixing per pair. With
    `read_rows`, a last layer whose output is read at those rows only: keys and values at every token, the
    query, attention output and FFN at the read rows, `attn_pairs` the read rows' (query, key) pairs."""
    if read_rows is None:
        return 2 * tokens * (4 * hidden * hidden + 2 * hidden * ff) + 4 * attn_pairs * hidden
    return 2 * tokens * 2 * hidden * hidden + 2 * read_rows * (2 * hidden * hidden + 2 * hidden * ff) + 4 * attn_pairs * hidden


def useful_flops(att: torch.Tensor, ratio: float, cfg_enc, cfg_gen, vocab: int, pooler: str) -> float:
    """FLOPs the DiffCSE objective needs for one step over these 2B rows (non-pad tokens only), alike for both
    sides. The MLM head and the generator's last layer count the edited positions, `ratio` of the non-special
    tokens; under CLS pooling the encoder's last layer counts the CLS rows (read_rows.py: nothing else of its
    output is read). Encoder and discriminator forward + backward, generator forward only."""
    lengths = att.sum(1).double()
    chosen = ratio * (lengths - 2).clamp(min=0)
    n_chosen = float(chosen.sum())
    tokens, pairs = float(lengths.sum()), float((lengths ** 2).sum())
    h = cfg_enc.hidden_size

    def stack(cfg, read_rows=None, read_pairs=None):
        full = layer_flops(tokens, pairs, h, cfg.intermediate_size)
        if read_rows is None:
            return cfg.num_hidden_layers * full
        return (cfg.num_hidden_layers - 1) * full + layer_flops(tokens, read_pairs, h, cfg.intermediate_size, read_rows)

    enc = stack(cfg_enc, float(len(lengths)), float(lengths.sum())) if pooler == "cls_before_pooler" else stack(cfg_enc)
    disc = stack(cfg_enc)  # RTD reads every token
    gen = stack(cfg_gen, n_chosen, float((chosen * lengths).sum()))
    head = 2 * n_chosen * (h * h + h * vocab)
    return 3 * enc + 3 * disc + gen + head


def prepare(args, prefix: str):
    """(device, autocast dtype or None, (encoder dir, generator dir), tokenizer, corpus) for a step benchmark:
    random-init models and a vocabulary built on the corpus in a fresh temporary folder."""
    from kodiffcse.data.corpus import LineCorpus
    from kodiffcse.modeling.loading import load_tokenizer, quiet_transformers

    quiet_transformers()
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    amp = torch.bfloat16 if args.precision == "bf16" else None
    torch.manual_seed(0)
    work = Path(tempfile.mkdtemp(prefix=prefix))
    print(f"building {args.size} models and a vocabulary on {args.corpus} ...", file=sys.stderr)
    dirs = build_models(args.corpus, args.size, work, args.max_len)
    return device, amp, dirs, load_tokenizer(dirs[0]), LineCorpus(args.corpus)


def add_common_arguments(p: argparse.ArgumentParser, steps: int) -> None:
    """The options every step benchmark shares: steps, sizes, data and precision."""
    p.add_argument("--steps", type=int, default=steps, help="timed steps per side (after --warmup), spread over an epoch")
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--size", choices=tuple(SIZES), default="small")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--max-len", type=int, default=64)
    p.add_argument("--corpus", default=str(CORPUS))
    p.add_argument("--precision", choices=("no", "bf16"), default="no")


def _bool(value: str) -> bool:
    return value.lower() in ("1", "true", "yes")


def main(argv=None) -> int:
    from kodiffcse.config import DataConfig, ModelConfig

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--only", choices=("baseline", "kodiffcse"))
    add_common_arguments(p, steps=20)
    defaults = ModelConfig(), DataConfig()
    p.add_argument("--group-by-length", action="store_true", default=defaults[1].group_by_length,
                   help="kodiffcse side on length-grouped batches (opt-in: changes the in-batch negatives)")
    p.add_argument("--padding-free", type=_bool, default=defaults[0].padding_free,
                   help="kodiffcse side packs each batch's real tokens (default: %(default)s, as training)")
    p.add_argument("--cpu-kernels", type=_bool, default=defaults[0].cpu_kernels,
                   help="kodiffcse side with its CPU kernels (default: %(default)s, as training)")
    p.add_argument("--compile", action="store_true", help="torch.compile kodiffcse's encoder")
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: default)")
    p.add_argument("--json", dest="json_out")
    args = p.parse_args(argv)
    if not os.path.exists(args.corpus):
        print(f"corpus not found: {args.corpus}", file=sys.stderr)
        return 2
    if args.threads:
        torch.set_num_threads(args.threads)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

    from transformers import AutoModel, AutoModelForMaskedLM

    from baseline_step import BaselineModel, baseline_loss, premask
    from report import emit, machine, peak_rss_gib
    from kodiffcse.data.batching import Collate, TokenCounter, epoch_batches
    from kodiffcse.modeling.diffcse import DiffCSEModel
    from kodiffcse.modeling.discriminator import ConditionalDiscriminator
    from kodiffcse.modeling.generator import load_generator
    from kodiffcse.modeling.heads import projection_for
    from kodiffcse.modeling.loading import load_config, load_encoder
    from kodiffcse.training.loop import build_optimizer
    from kodiffcse.training.step import TrainingStep

    sides = [args.only] if args.only else ["baseline", "kodiffcse"]
    device, amp, (enc_dir, gen_dir), tokenizer, corpus = prepare(args, "kodiffcse-bench-")
    n_batches = args.warmup + args.steps
    cfg = ModelConfig(max_len=args.max_len, padding_free=args.padding_free, cpu_kernels=args.cpu_kernels)
    batching = (f"{'length-grouped' if args.group_by_length else 'random'} batches, "
                f"{'padding-free' if args.padding_free else 'padded'}, "
                f"CPU kernels {'on' if args.cpu_kernels else 'off'}")
    print(f"kodiffcse side: {batching}", file=sys.stderr)

    lengths_of = TokenCounter(corpus, tokenizer, args.max_len) if args.group_by_length else None
    epoch = list(epoch_batches(len(corpus), args.batch_size, 0, 0, lengths_of))  # both sides: same sentences
    order = [epoch[int(i)] for i in np.linspace(0, len(epoch) - 1, n_batches)]  # spread over the whole epoch
    state = {}
    if "baseline" in sides:
        encoder = AutoModel.from_pretrained(enc_dir)  # with its pooler: the reference's sentence vector
        disc = ConditionalDiscriminator(AutoModel.from_pretrained(enc_dir, add_pooling_layer=False))
        model = BaselineModel(encoder, disc).to(device).train()
        generator = AutoModelForMaskedLM.from_pretrained(gen_dir).to(device).eval()
        collate = Collate(tokenizer, args.max_len, pad_to_max=True)
        batches = []
        for i in range(n_batches):
            b = collate([corpus[int(j)] for j in order[i]])
            b["masked_ids"], _ = premask(tokenizer, b["input_ids"], b["attention_mask"], cfg.masking_ratio)
            batches.append({k: v.to(device) for k, v in b.items()})
        opt = torch.optim.AdamW([q for q in model.parameters() if q.requires_grad], lr=5e-5)

        def run_baseline(batch, model=model, generator=generator, opt=opt):
            loss = baseline_loss(model, generator, batch, cfg.temperature, cfg.lambda_weight, amp)
            loss.backward()
            opt.step()
            opt.zero_grad(set_to_none=True)
            return torch.cat([batch["attention_mask"]] * 2)  # two views

        state["baseline"] = (run_baseline, batches, model)
    if "kodiffcse" in sides:
        generator = load_generator(gen_dir, enc_dir, tokenizer, cpu_kernels=cfg.cpu_kernels).to(device)
        encoder = load_encoder(enc_dir)
        model = DiffCSEModel(encoder, projection_for("diffcse", encoder.config.hidden_size), cfg.pooler,
                             ConditionalDiscriminator(load_encoder(enc_dir)), cfg.before_mlp, cfg.padding_free,
                             cfg.cpu_kernels).to(device).train()
        if args.compile:  # as the loop's --compile does
            model.encoder.compile(dynamic=True)
        step = TrainingStep(cfg, tokenizer, generator)
        collate = Collate(tokenizer, args.max_len)
        batches = [{k: v.to(device) for k, v in collate([corpus[int(j)] for j in order[i]]).items()}
                   for i in range(n_batches)]
        opt = build_optimizer(model, 5e-5, 0.0)  # the loop's own optimizer

        def run_kodiffcse(batch, model=model, opt=opt):
            with torch.autocast(device.type, dtype=amp or torch.bfloat16, enabled=amp is not None):
                loss = step(model, batch)["loss"]
            loss.backward()
            opt.step()
            opt.zero_grad(set_to_none=True)
            return torch.cat([batch["attention_mask"]] * 2)  # the 2B rows of one encoder pass

        state["kodiffcse"] = (run_kodiffcse, batches, model)

    dtype = amp or torch.float32
    cfg_enc, cfg_gen = load_config(enc_dir), load_config(gen_dir)
    long_runs = [matmul_peak(device, dtype)]  # and again after the steps: the better one is the peak
    bursts, paired = [], {s: [] for s in sides}  # a short burst after every timed step, for the paired figure
    times = {s: [] for s in sides}
    flops = {s: [] for s in sides}
    tokens = {s: [0, 0] for s in sides}
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    peaks = {}
    from tqdm.auto import tqdm

    for i in tqdm(range(n_batches), desc="steps", file=sys.stderr):
        for side in sides:
            fn, batches, _ = state[side]
            _sync(device)
            start = time.perf_counter()
            att = fn(batches[i])  # the step's 2B rows
            _sync(device)
            elapsed = time.perf_counter() - start
            if i < args.warmup:
                continue
            times[side].append(elapsed)
            flops[side].append(useful_flops(att, cfg.masking_ratio, cfg_enc, cfg_gen, len(tokenizer), cfg.pooler))
            tokens[side][0] += int(att.sum())
            tokens[side][1] += att.numel()
            if device.type == "cuda":
                peaks[side] = max(peaks.get(side, 0), torch.cuda.max_memory_allocated())
                torch.cuda.reset_peak_memory_stats()
        if i >= args.warmup:
            bursts.append(matmul_peak(device, dtype, reps=3 if device.type == "cpu" else 10))
            for side in sides:
                paired[side].append(flops[side][-1] / times[side][-1] / bursts[-1])
    long_runs.append(matmul_peak(device, dtype))
    peak = max(long_runs)
    rows = {}
    for side in sides:
        med = statistics.median(times[side])
        rows[side] = {
            "sentences_per_s": args.batch_size / med,
            "median_step_s": med,
            "useful_flops_per_s": statistics.median(f / t for f, t in zip(flops[side], times[side])),
            "non_pad_share": tokens[side][0] / tokens[side][1],
            "padded_len": tokens[side][1] / (2 * args.batch_size * len(times[side])),
        }
        rows[side]["mfu_vs_matmul_peak"] = rows[side]["useful_flops_per_s"] / peak
        rows[side]["mfu_paired"] = statistics.median(paired[side])
        if device.type == "cuda":
            rows[side]["peak_gpu_mem_gib"] = peaks[side] / 2 ** 30
    result = {
        "machine": machine(device), "torch": torch.__version__, "threads": torch.get_num_threads(),
        "size": args.size, "batch_size": args.batch_size, "max_len": args.max_len, "precision": args.precision,
        "group_by_length": args.group_by_length, "padding_free": args.padding_free,
        "cpu_kernels": args.cpu_kernels, "batching": batching, "compile": args.compile, "steps": args.steps,
        "matmul_peak_flops_per_s": peak, "matmul_burst_median_flops_per_s": statistics.median(bursts),
        "peak_rss_gib": peak_rss_gib(),
        **rows,
    }
    if len(sides) == 2:
        result["ratio"] = rows["kodiffcse"]["sentences_per_s"] / rows["baseline"]["sentences_per_s"]
    print("| side | sentences/s | median step s | non-pad share | padded len | useful GFLOP/s | of matmul peak "
          "| of paired burst |" + (" peak GPU GiB |" if device.type == "cuda" else ""))
    print("|---|---|---|---|---|---|---|---|" + ("---|" if device.type == "cuda" else ""))
    for side, r in rows.items():
        print(f"| {side} | {r['sentences_per_s']:.1f} | {r['median_step_s']:.3f} | {r['non_pad_share']:.2f} | "
              f"{r['padded_len']:.1f} | {r['useful_flops_per_s'] / 1e9:.1f} | {100 * r['mfu_vs_matmul_peak']:.0f}% | "
              f"{100 * r['mfu_paired']:.0f}% |"
              + (f" {r['peak_gpu_mem_gib']:.1f} |" if device.type == "cuda" else ""))
    print(f"kodiffcse side: {batching}")
    print(f"matmul peak {peak / 1e9:.1f} GFLOP/s, median paired burst "
          f"{result['matmul_burst_median_flops_per_s'] / 1e9:.1f}; peak RSS {result['peak_rss_gib']:.2f} GiB"
          + (f"; ratio kodiffcse/baseline {result['ratio']:.2f}x" if "ratio" in result else ""))
    emit(result, args.json_out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
