"""A full-size rehearsal of the reference recipe through the real CLI, on random-init klue-shaped models.

  python benchmarks/rehearsal.py --json rehearsal.json               # klue/roberta-base + roberta-small shapes
  python benchmarks/rehearsal.py --size tiny --json tiny.json        # same tokenizer, same commands, tiny models

The klue weights cannot be downloaded here, but their shapes can be built. This script builds random-init
models with klue/roberta-base's and klue/roberta-small's configurations and tokenizer layout (below), then runs,
each as its own `kodiffcse` process, what a user of the README runs:

1. the reference's training command ("The reference's commands work as written"), with the local model dirs
   in place of klue/*, the shared corpus and KorSTS dev, the default recipe (batch 128, max_len 64, masking
   0.15, lambda 0.005, default workers and trackers), `--max-steps` and `--eval_steps` set so that it stops
   after a handful of steps with one dev evaluation besides step 0's;
2. the same command with `--resume` and a higher `--max-steps`: a few more steps and a final evaluation;
3. the reference's evaluation command on KorSTS test (`--path_to_saved_model output/best_checkpoint.pt`);
4. `kodiffcse export onnx` of best/ (with its onnxruntime-against-PyTorch check);
5. `SentenceTransformer(best)` encoding test sentences, compared with kodiffcse's own SentenceEncoder.

Each process runs in its own process group with its output read as it comes: the script records its exit code,
its peak RSS (wait4's ru_maxrss: the process and its reaped children), and whether it exited by itself within
`--exit-grace` seconds of its last line of output. One that does not is killed (its whole group) and reported,
and the rehearsal goes on. Step times are the moments each step appears in the progress bar (tqdm, told by its
TQDM_MININTERVAL/TQDM_MINITERS environment overrides to print every step): their median excludes each process's
first step and the steps that followed an evaluation. Dev evaluation time is the time between the progress bar's
evaluation step and the dev scores' entry in metrics.jsonl. On a GPU the script also samples nvidia-smi's
memory use of the training process group once a second (peak of those samples: includes the CUDA context and
the allocator's cache). Figures from the tiny size check the plumbing, not speed.
"""
from __future__ import annotations

import argparse
import json
import math
import fcntl
import os
import pty
import re
import shutil
import signal
import statistics
import struct
import subprocess
import sys
import tempfile
import termios
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))
SHARED = REPO / ".." / "shared" / "data"

# klue/roberta-base's config.json (huggingface.co/klue/roberta-base; KLUE paper, arXiv:2105.09680, table 21):
# RobertaForMaskedLM, 12 layers x 768, 12 heads, FFN 3072, GELU, dropout 0.1, layer_norm_eps 1e-5,
# max_position_embeddings 514 (512 positions after RoBERTa's pad_token_id + 1 offset), type_vocab_size 1,
# vocab_size 32000, pad_token_id 1, bos_token_id 0, eos_token_id 2, "tokenizer_class": "BertTokenizer".
# klue/roberta-small's config.json (huggingface.co/klue/roberta-small) differs only in num_hidden_layers: 6.
# The same values appear in the config.json of every fine-tune of them on the Hub ("_name_or_path":
# "klue/roberta-base", e.g. Huffon/klue-roberta-base-nli; ddobokki/unsup-simcse-klue-roberta-small for small).
KLUE_ROBERTA = dict(
    vocab_size=32000, hidden_size=768, num_hidden_layers=12, num_attention_heads=12, intermediate_size=3072,
    hidden_act="gelu", hidden_dropout_prob=0.1, attention_probs_dropout_prob=0.1, max_position_embeddings=514,
    type_vocab_size=1, initializer_range=0.02, layer_norm_eps=1e-5, pad_token_id=1, bos_token_id=0, eos_token_id=2,
    position_embedding_type="absolute", tokenizer_class="BertTokenizer",
)
SIZES = {  # what differs from KLUE_ROBERTA: (encoder, generator)
    "base": ({}, {"num_hidden_layers": 6}),  # klue/roberta-base, klue/roberta-small
    "tiny": ({"hidden_size": 128, "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 512},
             {"hidden_size": 128, "num_hidden_layers": 1, "num_attention_heads": 2, "intermediate_size": 512}),
}
# The tokenizer: klue's tokenizer_config.json names BertTokenizer (WordPiece, do_lower_case false), its vocab.txt
# has 32,000 entries with [CLS]=0, [PAD]=1, [SEP]=2, [UNK]=3, [MASK]=4: kodiffcse.tiny.build_klue_tokenizer.

PROGRESS = re.compile(r"training:\s+\d+%\|.*?\|\s*(\d+)/(\d+)")


def build_models(corpus: str, size: str, work: Path, max_len: int) -> tuple[str, str]:
    """Encoder and generator dirs as klue ships them: config.json + weights + vocab.txt tokenizer files."""
    import torch
    from transformers import RobertaConfig, RobertaForMaskedLM

    from kodiffcse.tiny import build_klue_tokenizer

    with open(corpus, encoding="utf-8") as fh:
        sentences = [line.strip() for line in fh if line.strip()]
    tok_dir = work / "tokenizer"
    tokenizer = build_klue_tokenizer(sentences, tok_dir, vocab_size=KLUE_ROBERTA["vocab_size"], max_len=512)
    assert (tokenizer.cls_token_id, tokenizer.pad_token_id, tokenizer.sep_token_id, tokenizer.unk_token_id,
            tokenizer.mask_token_id, len(tokenizer)) == (0, 1, 2, 3, 4, 32000), "not klue's tokenizer layout"
    dirs = []
    for name, overrides, seed in (("encoder", SIZES[size][0], 0), ("generator", SIZES[size][1], 1)):
        torch.manual_seed(seed)
        model = RobertaForMaskedLM(RobertaConfig(**{**KLUE_ROBERTA, **overrides}))
        out = work / f"{size}-{name}"
        model.save_pretrained(str(out), safe_serialization=True)
        for f in os.listdir(tok_dir):
            shutil.copy(tok_dir / f, out / f)
        dirs.append(str(out))
        del model
    return dirs[0], dirs[1]


def dir_bytes(path: str | Path) -> int:
    return sum(os.path.getsize(os.path.join(r, f)) for r, _, fs in os.walk(path) for f in fs)


def _gpu_mib(pgid: int) -> float | None:
    """Memory nvidia-smi shows for the processes of this group, MiB (None without nvidia-smi)."""
    try:
        out = subprocess.run(["nvidia-smi", "--query-compute-apps=pid,used_memory", "--format=csv,noheader,nounits"],
                             capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.TimeoutExpired):
        return None
    total = 0.0
    for line in out.strip().splitlines():
        try:
            pid, mib = (x.strip() for x in line.split(","))
            if os.getpgid(int(pid)) == pgid:
                total += float(mib)
        except (ValueError, ProcessLookupError, PermissionError):
            continue
    return total


class Step:
    """One CLI process: its timestamped output pieces, exit status and peak memory."""

    def __init__(self, name: str, argv: list[str], cwd: Path, log: Path, done: str, timeout: float, grace: float,
                 env: dict, gpu: bool, echo: bool):
        self.name, self.argv, self.cwd, self.log, self.done = name, argv, cwd, log, re.compile(done)
        self.timeout, self.grace, self.env, self.gpu, self.echo = timeout, grace, env, gpu, echo
        self.pieces: list[tuple[float, str]] = []  # (time.time(), text between \r/\n)
        self.result: dict = {}

    def _read(self, fd: int, sink) -> None:
        """Pieces are stamped when their first byte arrives: tqdm writes "\\r" + bar, so a bar's text is complete
        only when the next write begins, which may be a whole step later."""
        buffer, since = b"", 0.0
        while True:
            try:
                chunk = os.read(fd, 65536)
            except OSError:
                break
            if not chunk:
                break
            now = time.time()
            sink.write(chunk)
            sink.flush()
            if self.echo:
                sys.stderr.buffer.write(chunk)
                sys.stderr.flush()
            if not buffer:
                since = now
            *done, rest = re.split(rb"[\r\n]", buffer + chunk)
            for i, piece in enumerate(done):
                if piece.strip():
                    self.pieces.append((since if i == 0 else now, piece.decode("utf-8", "replace")))
            buffer, since = rest, (since if not done else now)
        if buffer.strip():
            self.pieces.append((since, buffer.decode("utf-8", "replace")))

    def run(self) -> dict:
        print(f"\n[rehearsal] {self.name}: {' '.join(self.argv)}", file=sys.stderr, flush=True)
        # A pseudo-terminal, as for a user at a terminal: the training progress bar is drawn only on a TTY
        # (to a pipe or file it prints plain lines instead), and the step times are read from the bar.
        read_fd, write_fd = pty.openpty()
        fcntl.ioctl(write_fd, termios.TIOCSWINSZ, struct.pack("HHHH", 50, 200, 0, 0))  # 0 columns: tqdm draws nothing
        start = time.time()
        with open(self.log, "wb") as sink:
            proc = subprocess.Popen(self.argv, cwd=self.cwd, env=self.env, stdin=subprocess.DEVNULL, stdout=write_fd,
                                    stderr=write_fd, start_new_session=True)
            os.close(write_fd)
            reader = threading.Thread(target=self._read, args=(read_fd, sink), daemon=True)
            reader.start()
            killed, status, usage, gpu_peak, next_gpu = None, None, None, None, 0.0
            while True:
                pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
                if pid:
                    break
                now = time.time()
                if self.gpu and now >= next_gpu:
                    mib = _gpu_mib(proc.pid)
                    gpu_peak = mib if gpu_peak is None else max(gpu_peak, mib or 0.0)
                    next_gpu = now + 1.0
                finished = next((t for t, p in self.pieces if self.done.search(p)), None)
                if finished is not None and now - max(finished, self.pieces[-1][0]) > self.grace:
                    killed = f"still running {self.grace:.0f} s after its last output"
                elif now - start > self.timeout:
                    killed = f"timed out after {self.timeout:.0f} s"
                if killed:
                    status, usage = _kill(proc.pid)
                    break
                time.sleep(0.2)
            end = time.time()
            proc.returncode = os.waitstatus_to_exitcode(status)  # reaped here: Popen must not wait again
            survivors = _group_alive(proc.pid)
            if survivors:  # the main process exited, something it started did not (e.g. data loader workers)
                _kill_group(proc.pid)
            reader.join(timeout=10)
        last = self.pieces[-1][0] if self.pieces else start
        self.result = {
            "argv": self.argv, "exit_code": proc.returncode, "exited_by_itself": killed is None,
            "killed": killed, "left_processes_behind": survivors, "wall_s": end - start,
            "exit_after_last_output_s": end - last if killed is None else None,
            "peak_rss_gib": usage.ru_maxrss / 2 ** 20, "log": str(self.log),
        }
        if gpu_peak is not None:
            self.result["peak_gpu_mem_gib_nvidia_smi"] = gpu_peak / 1024
        self.start = start
        state = "exited by itself" if killed is None else f"KILLED: {killed}"
        print(f"[rehearsal] {self.name}: exit {proc.returncode}, {state}, {end - start:.1f} s", file=sys.stderr,
              flush=True)
        return self.result

    def step_times(self) -> dict[int, float]:
        """Optimizer step -> when the progress bar first showed it."""
        seen: dict[int, float] = {}
        for t, piece in self.pieces:
            m = PROGRESS.search(piece)
            if m:
                seen.setdefault(int(m.group(1)), t)
        return seen


def _kill(pid: int):
    """SIGTERM to the process group, SIGKILL 5 s later if its leader is still there; (wait status, rusage)."""
    os.killpg(pid, signal.SIGTERM)
    deadline = time.time() + 5.0
    while time.time() < deadline:
        reaped, status, usage = os.wait4(pid, os.WNOHANG)
        if reaped:
            return status, usage
        time.sleep(0.1)
    os.killpg(pid, signal.SIGKILL)
    _, status, usage = os.wait4(pid, 0)
    return status, usage


def _kill_group(pgid: int) -> None:
    """What is left of a group whose leader is gone: SIGTERM, then SIGKILL."""
    for sig, wait in ((signal.SIGTERM, 5.0), (signal.SIGKILL, 0.0)):
        try:
            os.killpg(pgid, sig)
        except ProcessLookupError:
            return
        deadline = time.time() + wait
        while time.time() < deadline and _group_alive(pgid):
            time.sleep(0.1)


def _group_alive(pgid: int) -> bool:
    """Whether any process of the group is left (zombies count until their new parent reaps them)."""
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _free_space_check(out_dir: Path) -> int | None:
    """What training/output_dir.check_free_space asks for (weights and two AdamW moments per kept checkpoint, plus
    best/, +20%), from the parameter count in the newest checkpoint and the default --save-total-limit 2."""
    from safetensors import safe_open

    ckpts = sorted((out_dir / "checkpoints").glob("checkpoint-*/model.safetensors"))
    if not ckpts:
        return None
    with safe_open(str(ckpts[-1]), "pt") as fh:
        n_params = sum(math.prod(fh.get_slice(k).get_shape()) for k in fh.keys())
    keep = 2
    return int(n_params * 4 * (3 * (keep + 1) + 1) * 1.2)


def train_timing(step: Step, metrics: list[dict], eval_steps: int, first: int) -> dict:
    """Per-step seconds (from the progress bar), time to the first step, and dev evaluation seconds."""
    seen = step.step_times()
    steps = sorted(s for s in seen if s > first)
    out: dict = {"steps": steps}
    if not steps:
        return out
    out["time_to_first_step_s"] = seen[steps[0]] - step.start
    dev_at = {r["step"]: r["time"] for r in metrics if "dev/cosine_spearman" in r}
    evals = {s for s in dev_at if s >= first}
    durations, span_s, span_steps = [], 0.0, 0
    for prev, cur in zip([first] + steps, steps):
        if prev not in seen or prev == first or prev in evals:
            continue  # the process's first step (start-up, first batch) and a step after an evaluation
        durations.append((seen[cur] - seen[prev]) / (cur - prev))
        span_s, span_steps = span_s + seen[cur] - seen[prev], span_steps + cur - prev
    out["step_s"] = durations  # per step; a line read late shifts time from one step to the next,
    out["span"] = (span_s, span_steps)  # which the sum over the same steps does not see
    out["dev_eval_s"] = {s: dev_at[s] - seen[s] for s in sorted(evals) if s in seen and s > first}
    return out


ST_SCRIPT = r"""
import json, sys, time
import numpy as np
from sentence_transformers import SentenceTransformer
from kodiffcse.data.sts import read_sts
from kodiffcse.inference import SentenceEncoder
best, data, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
test = read_sts(data)
sentences = (test.sentences1 + test.sentences2)[:n]
model = SentenceTransformer(best)
model.encode(sentences[:8])
start = time.perf_counter()
st = model.encode(sentences, batch_size=128, convert_to_numpy=True, normalize_embeddings=True)
seconds = time.perf_counter() - start
ours = SentenceEncoder.from_pretrained(best).encode(sentences)
print(json.dumps({"sentences": len(sentences), "dim": int(st.shape[1]), "encode_s": seconds,
                  "sentences_per_s": len(sentences) / seconds, "device": str(model.device),
                  "min_cosine_vs_kodiffcse": float((st * ours).sum(1).min())}))
"""


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--size", choices=tuple(SIZES), default="base", help="base: klue's shapes; tiny: a quick check")
    p.add_argument("--corpus", default=str(SHARED / "corpus" / "ko-sentences.txt"))
    p.add_argument("--korsts", default=str(SHARED / "korsts"), help="folder with sts-dev.tsv and sts-test.tsv")
    p.add_argument("--steps", type=int, default=5, help="steps of the first run, which end with a dev evaluation")
    p.add_argument("--resume-steps", type=int, default=3, help="steps of the resumed run")
    p.add_argument("--encode", type=int, default=512, help="test sentences SentenceTransformer(best) encodes")
    p.add_argument("--work", default=None, help="working folder (default: a new temporary one, removed at the end)")
    p.add_argument("--keep", action="store_true", help="keep the working folder")
    p.add_argument("--timeout", type=float, default=3600, help="seconds any one process may run")
    p.add_argument("--exit-grace", type=float, default=60, help="seconds a process may run after its final line")
    p.add_argument("--quiet", action="store_true", help="do not echo the processes' output")
    p.add_argument("--logs", default=None, help="copy every process's output log into this folder")
    p.add_argument("--train-arg", dest="train_args", action="append", default=[],
                   help="an extra option for both training runs, once per word (e.g. --train-arg=--gradient-checkpointing)")
    p.add_argument("--json", dest="json_out")
    args = p.parse_args(argv)
    dev, test = os.path.join(args.korsts, "sts-dev.tsv"), os.path.join(args.korsts, "sts-test.tsv")
    for path in (args.corpus, dev, test):
        if not os.path.exists(path):
            print(f"not found: {path}", file=sys.stderr)
            return 2
    if args.steps < 2 or args.resume_steps < 1:
        print("need --steps >= 2 and --resume-steps >= 1", file=sys.stderr)
        return 2

    from report import emit, machine

    work = Path(args.work or tempfile.mkdtemp(prefix="kodiffcse-rehearsal-")).resolve()
    work.mkdir(parents=True, exist_ok=True)
    gpu = shutil.which("nvidia-smi") is not None
    # every step on the progress bar; stdout unbuffered as at a terminal, so that lines come when printed
    env = {**os.environ, "TQDM_MININTERVAL": "0", "TQDM_MINITERS": "1", "PYTHONUNBUFFERED": "1"}
    cli = [sys.executable, "-m", "kodiffcse.cli"]
    print(f"[rehearsal] building {args.size} models in {work} ...", file=sys.stderr, flush=True)
    t0 = time.time()
    enc_dir, gen_dir = build_models(args.corpus, args.size, work, 64)
    build_s = time.time() - t0
    (work / "run").mkdir(exist_ok=True)
    run_dir = work / "run"  # the processes' working directory: the reference's output/ lands here
    total = args.steps + args.resume_steps
    # The README's "reference's commands work as written" training command; only the paths, --eval_steps (125
    # there) and --max-steps differ, so that a handful of steps includes one evaluation.
    reference_train = [
        "train", "--model", enc_dir, "--generator_name", gen_dir, "--multi_gpu", "True", "--train", "True",
        "--test", "False", "--max_len", "64", "--batch_size", "128", "--epochs", "1", "--eval_steps", str(args.steps),
        "--lr", "0.00005", "--masking_ratio", "0.15", "--lambda_weight", "0.005", "--warmup_ratio", "0.05",
        "--temperature", "0.05", "--path_to_data", args.korsts, "--train_data", os.path.abspath(args.corpus),
        "--valid_data", "sts-dev.tsv", "--ckpt", "best_checkpoint.pt", *args.train_args,
    ]
    common = dict(cwd=run_dir, timeout=args.timeout, grace=args.exit_grace, env=env, echo=not args.quiet)
    done_train = r"^done: \d+ steps"
    plan = [
        ("train", cli + reference_train + ["--max-steps", str(args.steps)], done_train, gpu),
        ("resume", cli + reference_train + ["--resume", "--max-steps", str(total)], done_train, gpu),
        ("evaluate", cli + ["evaluate", "--model", enc_dir, "--generator", gen_dir, "--train", "False", "--test",
                            "True", "--max_len", "64", "--batch_size", "128", "--path_to_data", args.korsts,
                            "--test_data", "sts-test.tsv", "--path_to_saved_model", "output/best_checkpoint.pt",
                            "--json", "test_scores.json"], r"^wrote test_scores\.json", False),
        ("export_onnx", cli + ["export", "onnx", "--model", "output/best_checkpoint", "--out", "onnx"],
         r"^wrote .*model\.onnx", False),
        ("sentence_transformers", [sys.executable, "-c", ST_SCRIPT, "output/best_checkpoint", test, str(args.encode)],
         r'^\{"sentences"', False),
    ]
    processes, steps = {}, {}
    snapshots = {}
    for name, cmd, done, poll_gpu in plan:
        step = Step(name, cmd, log=work / f"{name}.log", done=done, gpu=poll_gpu, **common)
        processes[name] = step.run()
        steps[name] = step
        ckpt_root = run_dir / "output" / "checkpoints"
        if name in ("train", "resume") and ckpt_root.is_dir():
            snapshots[name] = {d: dir_bytes(ckpt_root / d) for d in sorted(os.listdir(ckpt_root))}

    out_dir = run_dir / "output"
    metrics_path = out_dir / "metrics.jsonl"
    metrics = [json.loads(line) for line in open(metrics_path, encoding="utf-8")] if metrics_path.exists() else []
    timing = {"train": train_timing(steps["train"], metrics, args.steps, 0),
              "resume": train_timing(steps["resume"], metrics, args.steps, args.steps)}
    step_s = timing["train"].get("step_s", []) + timing["resume"].get("step_s", [])
    dev_eval_s = [*timing["train"].get("dev_eval_s", {}).values(), *timing["resume"].get("dev_eval_s", {}).values()]
    best = out_dir / "best_checkpoint"
    result: dict = {
        "machine": machine("cuda" if gpu else None), "size": args.size, "batch_size": 128, "max_len": 64,
        "steps": [args.steps, args.resume_steps], "train_args": args.train_args, "models_build_s": build_s,
        "encoder_bytes": dir_bytes(enc_dir), "generator_bytes": dir_bytes(gen_dir),
        "median_step_s": statistics.median(step_s) if step_s else None, "step_s": step_s,
        "mean_step_s": (sum(timing[k]["span"][0] for k in timing if "span" in timing[k])
                        / max(1, sum(timing[k]["span"][1] for k in timing if "span" in timing[k]))) if step_s else None,
        "sentences_per_s": 128 / statistics.median(step_s) if step_s else None,
        "time_to_first_step_s": timing["train"].get("time_to_first_step_s"),
        "time_to_first_step_resumed_s": timing["resume"].get("time_to_first_step_s"),
        "dev_eval_s": dev_eval_s, "dev_pairs": 1500,
        "checkpoint_bytes": snapshots.get("resume") or snapshots.get("train"),
        "best_bytes": dir_bytes(best) if best.is_dir() else None,
        "output_dir_bytes": dir_bytes(out_dir) if out_dir.is_dir() else None,
        "free_space_check_bytes": _free_space_check(out_dir),
        "onnx_bytes": dir_bytes(run_dir / "onnx") if (run_dir / "onnx").is_dir() else None,
        "logged_steps": sorted({r["step"] for r in metrics}),
        "processes": processes,
    }
    scores_file = run_dir / "test_scores.json"
    if scores_file.exists():
        scores = json.load(open(scores_file, encoding="utf-8"))["results"][0]
        result["test"] = {"pairs": scores["pairs"], "note": "random-init model: plumbing, not quality",
                          "cosine_spearman_x100": scores["scores_x100"]["cosine_spearman"]}
    st_pieces = steps["sentence_transformers"].pieces
    st_line = next((p for _, p in reversed(st_pieces) if p.startswith('{"sentences"')), None)
    if st_line:
        result["sentence_transformers"] = json.loads(st_line)
    if gpu:
        result["peak_gpu_mem_gib"] = max((processes[n].get("peak_gpu_mem_gib_nvidia_smi") or 0.0)
                                         for n in ("train", "resume"))

    print(f"\nrehearsal at {args.size} size on {result['machine']}: batch 128, max_len 64, "
          f"{args.steps} + {args.resume_steps} steps\n")
    print("| process | exit code | exited by itself | exit after last output s | wall s | peak RSS GiB |"
          + (" peak GPU GiB |" if gpu else ""))
    print("|---|---|---|---|---|---|" + ("---|" if gpu else ""))
    for name, r in processes.items():
        lag = r["exit_after_last_output_s"]
        print(f"| {name} | {r['exit_code']} | {'yes' if r['exited_by_itself'] else 'NO: ' + r['killed']}"
              f"{' (left processes behind)' if r['left_processes_behind'] else ''} | "
              f"{'-' if lag is None else f'{lag:.1f}'} | {r['wall_s']:.1f} | {r['peak_rss_gib']:.2f} |"
              + (f" {r.get('peak_gpu_mem_gib_nvidia_smi', 0):.1f} |" if gpu else ""))
    fmt = lambda v, f=".2f": "-" if v is None else format(v, f)  # noqa: E731
    mib = lambda key: fmt(result[key] and result[key] / 2 ** 20, ".0f")  # noqa: E731
    ckpt = result["checkpoint_bytes"] or {}
    print(f"\nmedian step {fmt(result['median_step_s'])} s ({fmt(result['sentences_per_s'], '.1f')} sentences/s, "
          f"{len(step_s)} steps; mean {fmt(result['mean_step_s'])} s); "
          f"time to first step {fmt(result['time_to_first_step_s'], '.1f')} s "
          f"(resumed: {fmt(result['time_to_first_step_resumed_s'], '.1f')} s); dev evaluation "
          f"{', '.join(f'{s:.1f}' for s in dev_eval_s) or '-'} s ({result['dev_pairs']} pairs)")
    print(f"on disk: checkpoints {', '.join(f'{k} {v / 2**20:.0f} MiB' for k, v in ckpt.items()) or '-'}; "
          f"best/ {mib('best_bytes')} MiB; onnx/ {mib('onnx_bytes')} MiB; output/ in all {mib('output_dir_bytes')} "
          f"MiB, the free-space check asks for {mib('free_space_check_bytes')} MiB")
    if "sentence_transformers" in result:
        st = result["sentence_transformers"]
        print(f"SentenceTransformer(best): {st['sentences']} sentences, dim {st['dim']}, "
              f"{st['sentences_per_s']:.1f} sentences/s on {st['device']}, min cosine to kodiffcse's vectors "
              f"{st['min_cosine_vs_kodiffcse']:.6f}")
    if gpu:
        print(f"peak GPU memory (nvidia-smi, training processes): {result['peak_gpu_mem_gib']:.1f} GiB")
    emit(result, args.json_out)
    if args.logs:
        os.makedirs(args.logs, exist_ok=True)
        for name in processes:
            shutil.copy(work / f"{name}.log", os.path.join(args.logs, f"{name}.log"))
    if not (args.keep or args.work):
        shutil.rmtree(work, ignore_errors=True)
    ok = all(r["exit_code"] == 0 and r["exited_by_itself"] and not r["left_processes_behind"]
             for r in processes.values())
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
