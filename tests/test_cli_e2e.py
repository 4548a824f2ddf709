"""The CLI as users run it: a subprocess, default options, and a process that must exit by itself.

Each way a training run can end has a test here, with the default worker count (2) and the default tracker
(TensorBoard). Every run has a timeout: a process that has not exited by then is killed and the test fails,
so a hang fails the test instead of stalling the suite. Each test also bounds the time from the process's
last output to its exit, which is where the old hang sat (persistent data-loader workers that ignored the
SIGTERM multiprocessing sends its daemonic children at interpreter exit).

Only the options that make a run fit a test are given, each with its reason beside it. The model, corpus and
output dir are the test's own; everything else is the recipe's default unless named.
"""
from __future__ import annotations

import gc
import json
import multiprocessing
import os
import resource
import shutil
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from conftest import CORPUS, KORSTS, needs_shared

EXIT_BOUND = 10.0  # s from the last output to exit; the shutdown itself takes well under 1 s, CI can be loaded
TIMEOUT = 240  # s for a whole run, far above the 10-30 s these take; reaching it means a hang
CLI = [sys.executable, "-m", "kodiffcse.cli"]  # what the `kodiffcse` script runs, with this interpreter


@dataclass
class Run:
    code: int
    out: str
    err: str
    lag: float  # seconds from the last byte of output to the exit


def launch(argv, **popen) -> subprocess.Popen:
    return subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True, **popen)


def finish(proc: subprocess.Popen, *, during=None, timeout: float = TIMEOUT) -> Run:
    """Collect output until exit; `during(proc, elapsed)` is polled meanwhile (to send a signal, say)."""
    chunks = {"out": [], "err": []}
    last = [time.monotonic()]

    def pump(stream, key):
        for chunk in iter(lambda: os.read(stream.fileno(), 65536), b""):
            last[0] = time.monotonic()
            chunks[key].append(chunk)

    pumps = [threading.Thread(target=pump, args=(s, k), daemon=True)
             for s, k in ((proc.stdout, "out"), (proc.stderr, "err")) if s is not None and not s.closed]
    for thread in pumps:
        thread.start()
    start = time.monotonic()
    try:
        while proc.poll() is None:
            if time.monotonic() - start > timeout:
                raise subprocess.TimeoutExpired(proc.args, timeout)
            if during is not None:
                during(proc, time.monotonic() - start)
            time.sleep(0.05)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        tail = b"".join(chunks["err"])[-1500:].decode(errors="replace")
        pytest.fail(f"did not exit within {timeout} s (hung); stderr ends: {tail}")
    end = time.monotonic()
    for thread in pumps:
        thread.join(5)
    out, err = (b"".join(chunks[k]).decode(errors="replace") for k in ("out", "err"))
    return Run(proc.returncode, out, err, end - last[0])


def run(argv, **kw) -> Run:
    return finish(launch([*CLI, *argv]), **kw)


def train_cmd(tiny, sample, out, *extra) -> list[str]:
    return ["train", "--model", tiny["roberta"], "--generator", tiny["roberta-gen"], "--train-file", sample["corpus"],
            "--dev-file", sample["dev"], "--output-dir", str(out), *extra]


def exited_promptly(r: Run) -> None:
    assert r.lag < EXIT_BOUND, f"exited {r.lag:.1f} s after its last output"
    assert "Traceback" not in r.err, r.err[-3000:]


def metrics_steps(out: Path, key: str) -> list[int]:
    return [row["step"] for row in map(json.loads, (out / "metrics.jsonl").read_text().splitlines()) if key in row]


# --- every way a training run ends ------------------------------------------------------------------------

def test_defaults_complete_an_epoch_and_exit(tiny, sample, tmp_path):
    out = tmp_path / "run"
    r = run(train_cmd(tiny, sample, out))  # batch 128 on 600 sentences: 4 steps, one evaluation at the end
    assert r.code == 0, r.err[-3000:]
    exited_promptly(r)
    assert "done: 4 steps (completed)" in r.out
    assert "step 4/4: loss " in r.err  # no terminal, so no progress bar: a plain progress line instead
    saved = json.loads((out / "kodiffcse_config.json").read_text())
    assert saved["data"]["num_workers"] == 2 and saved["training"]["log_with"] == "tensorboard"
    assert list((out / "kodiffcse").rglob("events.out.tfevents.*")), "the default tracker wrote nothing"
    assert (out / "best" / "modules.json").is_file() and metrics_steps(out, "dev/cosine_spearman") == [0, 4]


def test_default_evaluation_interval_and_checkpoint_limit(tiny, sample, tmp_path):
    from kodiffcse.training.checkpoint import list_checkpoints

    out = tmp_path / "run"
    r = run(train_cmd(tiny, sample, out, "--batch-size", "4"))  # 150 steps: past the default 125-step interval
    assert r.code == 0, r.err[-3000:]
    exited_promptly(r)
    assert "done: 150 steps (completed)" in r.out
    assert metrics_steps(out, "dev/cosine_spearman") == [0, 125, 150]
    assert [step for step, _ in list_checkpoints(str(out))] == [125, 150]  # --save-total-limit 2, at evaluations


def test_max_steps_with_a_test_file_exits(tiny, sample, tmp_path):
    out = tmp_path / "run"
    r = run(train_cmd(tiny, sample, out, "--max-steps", "3", "--eval-steps", "2",  # a partial epoch, two evaluations
                      "--test-file", sample["test"]))
    assert r.code == 0, r.err[-3000:]
    exited_promptly(r)
    assert "done: 3 steps (max_steps)" in r.out and "| Cosine Pearson |" in r.out
    assert (out / "test_scores.json").is_file() and metrics_steps(out, "dev/cosine_spearman") == [0, 2, 3]


def test_early_stopping_exits(tiny, sample, tmp_path):
    # batch 8 for many steps; lr 1e-2 so that the dev score moves (and soon fails to improve)
    r = run(train_cmd(tiny, sample, tmp_path / "run", "--batch-size", "8", "--eval-steps", "1", "--patience", "1",
                      "--lr", "1e-2"))
    assert r.code == 0, r.err[-3000:]
    exited_promptly(r)
    assert "(early_stopping)" in r.out


def test_non_finite_stop_exits(tiny, sample, tmp_path):
    # lr 1e30 without warmup: step 1 makes the weights huge, so step 2's loss is not finite, as a bad lr would
    r = run(train_cmd(tiny, sample, tmp_path / "run", "--batch-size", "8", "--lr", "1e30", "--warmup-ratio", "0"))
    assert r.code == 1, r.err[-3000:]
    exited_promptly(r)
    assert "stopped: non-finite loss at step 2" in r.out


def _after_first_checkpoint(out: Path, action):
    def during(proc, _elapsed):
        if not during.done and list((out / "checkpoints").glob("checkpoint-*")):
            during.done = True
            action(proc)
    during.done = False
    return during


def test_sigterm_to_the_group_saves_and_exits(tiny, sample, tmp_path):
    """A scheduler's pre-emption: SIGTERM to the whole process group, data-loader workers included."""
    from kodiffcse.training.checkpoint import STATE_FILE, latest_checkpoint, list_checkpoints

    out = tmp_path / "run"
    argv = train_cmd(tiny, sample, out, "--batch-size", "8", "--save-steps", "2", "--eval-steps", "0")  # many steps
    with open(tmp_path / "stderr.log", "wb") as err:  # stderr to a file, stdout to a pipe
        proc = subprocess.Popen([*CLI, *argv], stdout=subprocess.PIPE, stderr=err, start_new_session=True)
        r = finish(proc, during=_after_first_checkpoint(out, lambda p: os.killpg(p.pid, signal.SIGTERM)))
    stderr = (tmp_path / "stderr.log").read_text(errors="replace")
    assert r.code == 143, stderr[-3000:]
    assert r.lag < EXIT_BOUND and "Traceback" not in stderr and "received SIGTERM" in stderr
    assert "checkpoint saved. Resume with: kodiffcse train --resume" in r.out
    stopped = list_checkpoints(str(out))[-1][0]
    assert 2 <= stopped < len(open(sample["corpus"]).readlines()) // 8
    assert json.load(open(os.path.join(latest_checkpoint(str(out)), STATE_FILE)))["state"]["step"] == stopped

    resumed = run([*argv, "--max-steps", str(stopped + 2), "--resume"])
    assert resumed.code == 0, resumed.err[-3000:]
    exited_promptly(resumed)
    assert f"resumed from {latest_checkpoint(str(out)).rsplit('-', 1)[0]}-{stopped}" in resumed.out
    assert list_checkpoints(str(out))[-1][0] == stopped + 2


def test_ctrl_c_with_a_dead_pipe_reader_saves_and_exits(tiny, sample, tmp_path):
    """`kodiffcse train ... 2>&1 | tee log`, then Ctrl-C: the group gets SIGINT and tee dies with it, so every
    later write of the run hits a broken pipe. The checkpoint must still be saved, and the process exit."""
    from kodiffcse.training.checkpoint import list_checkpoints

    out = tmp_path / "run"
    argv = train_cmd(tiny, sample, out, "--batch-size", "8", "--save-steps", "2", "--eval-steps", "0")
    proc = subprocess.Popen([*CLI, *argv], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    # nothing reads the pipe before the signal: the output up to the first checkpoint fits in its 64 KiB buffer
    deadline = time.monotonic() + TIMEOUT
    while not list((out / "checkpoints").glob("checkpoint-*")):
        assert proc.poll() is None and time.monotonic() < deadline, "ended or hung before the signal"
        time.sleep(0.05)
    before = list_checkpoints(str(out))[-1][0]
    os.close(proc.stdout.fileno())  # the reader (tee) is gone: no process holds the pipe's read end any more
    os.killpg(proc.pid, signal.SIGINT)
    sent = time.monotonic()
    try:
        code = proc.wait(timeout=TIMEOUT)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        pytest.fail("did not exit after Ctrl-C with a broken pipe (hung)")
    assert time.monotonic() - sent < 60
    assert code == 130
    assert list_checkpoints(str(out))[-1][0] > before  # saved at the signal, after the broken pipe


def test_output_dir_removed_mid_run_is_one_line_and_exits(tiny, sample, tmp_path):
    out = tmp_path / "run"
    argv = train_cmd(tiny, sample, out, "--batch-size", "8", "--save-steps", "2", "--eval-steps", "0")

    def remove(_proc):  # renamed away first: an rmtree racing the run's own writes can fail on a new file
        gone = out.with_name("removed")
        os.rename(out, gone)
        shutil.rmtree(gone, ignore_errors=True)

    r = finish(launch([*CLI, *argv]), during=_after_first_checkpoint(out, remove))
    # whichever write meets the missing dir first: a log line (OSError, exit 1) or a checkpoint (its error, exit 2)
    assert r.code in (1, 2), r.err[-3000:]
    exited_promptly(r)
    errors = [line for line in r.err.splitlines() if "error:" in line]
    assert len(errors) == 1 and errors[0].startswith("kodiffcse train: error: ") and str(out) in errors[0], r.err[-2000:]
    assert "No such file or directory" in errors[0]


def test_file_size_limit_during_a_checkpoint_is_one_line_and_exits(tiny, sample, tmp_path):
    """A real write failure from the kernel (EFBIG under RLIMIT_FSIZE, as a full disk gives ENOSPC): the first
    checkpoint's optimizer file is over the limit; the log lines and batches passed by workers are not."""
    limit = 256 * 1024

    def small_files():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # the write fails with EFBIG instead of killing the process
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    out = tmp_path / "run"
    argv = train_cmd(tiny, sample, out, "--batch-size", "8", "--save-steps", "2", "--eval-steps", "0",
                     "--max-steps", "6")
    r = finish(launch([*CLI, *argv], preexec_fn=small_files))
    assert r.code == 2, r.err[-3000:]
    exited_promptly(r)
    errors = [line for line in r.err.splitlines() if "error:" in line]
    assert len(errors) == 1 and "could not write a checkpoint (File too large)" in errors[0], r.err[-2000:]


def test_workers_are_shut_down_when_train_returns_or_raises(tiny, sample, tmp_path, monkeypatch):
    """Explicitly, not by garbage collection: with the collector off, no worker may outlive train()."""
    from conftest import tiny_config
    from kodiffcse.training.loop import train
    from kodiffcse.training.step import TrainingStep

    gc.collect()
    gc.disable()
    try:
        result = train(tiny_config(tiny, sample, tmp_path / "ok", num_workers=2))
        assert result.stopped_by == "max_steps" and multiprocessing.active_children() == []

        def crash(self, model, batch, edits=None):
            raise RuntimeError("a bug in the step")

        monkeypatch.setattr(TrainingStep, "__call__", crash)
        with pytest.raises(RuntimeError, match="a bug in the step"):
            train(tiny_config(tiny, sample, tmp_path / "crash", num_workers=2))
        assert multiprocessing.active_children() == []
    finally:
        gc.enable()


# --- every other command, with its defaults ---------------------------------------------------------------

@pytest.fixture(scope="module")
def trained(tiny, sample, tmp_path_factory):
    out = tmp_path_factory.mktemp("trained") / "run"
    r = run(train_cmd(tiny, sample, out))
    assert r.code == 0, r.err[-3000:]
    return out


def _commands(tmp: Path, sample, run_dir: Path):
    best, corpus = str(run_dir / "best"), sample["corpus"]
    return {
        "evaluate": ["evaluate", "--model", str(run_dir), "--data", sample["test"], "--json", str(tmp / "s.json")],
        "encode": ["encode", "--model", best, "--input", corpus, "--output", str(tmp / "e.npy")],
        "similarity": ["similarity", "--model", best, "고양이가 잔다.", "남자가 기타를 친다."],
        "search": ["search", "--model", best, "--corpus", corpus, "--query", "기타 치는 사람"],
        "export onnx": ["export", "onnx", "--model", best, "--out", str(tmp / "onnx")],
        "export card": ["export", "card", "--model", str(run_dir)],
    }


@pytest.mark.parametrize("command", ["evaluate", "encode", "similarity", "search", "export onnx", "export card"])
def test_every_use_command_runs_with_its_defaults_and_exits(command, trained, sample, tmp_path):
    r = run(_commands(tmp_path, sample, trained)[command])
    assert r.code == 0, r.err[-3000:]
    exited_promptly(r)


@needs_shared
def test_data_korsts_from_local_copies_exits(tmp_path):
    r = run(["data", "korsts", "--out", str(tmp_path / "korsts"), "--from", str(KORSTS)])  # offline: --from
    assert r.code == 0, r.err[-3000:]
    exited_promptly(r)
    assert (tmp_path / "korsts" / "sts-test.tsv").is_file()


def test_demo_exits(tmp_path):
    r = run(["demo", "--steps", "20", "--output-dir", str(tmp_path / "demo")])  # 20 of its 250 steps, for time
    assert r.code == 0, r.err[-3000:]
    exited_promptly(r)
    assert "tiny KoDiffCSE, 20 steps" in r.out


@needs_shared
def test_reference_training_command_with_default_workers_exits(tiny, tmp_path):
    """The README's "reference's commands work as written" block, with local tiny models for klue/*."""
    data = tmp_path / "Dataset"
    data.mkdir()
    (data / "wiki_corpus_examples.txt").write_text("".join(open(CORPUS, encoding="utf-8").readlines()[:640]))
    (data / "valid_sts.tsv").write_text((KORSTS / "sts-dev.tsv").read_text(encoding="utf-8"), encoding="utf-8")
    r = finish(launch([*CLI, "train", "--model", tiny["roberta"], "--generator_name", tiny["roberta-gen"],
                       "--multi_gpu", "True", "--train", "True", "--test", "False", "--max_len", "64",
                       "--batch_size", "32", "--epochs", "1", "--eval_steps", "10", "--lr", "0.00005",
                       "--masking_ratio", "0.15", "--lambda_weight", "0.005", "--warmup_ratio", "0.05",
                       "--temperature", "0.05", "--path_to_data", "Dataset/", "--train_data", "wiki_corpus_examples.txt",
                       "--valid_data", "valid_sts.tsv", "--ckpt", "best_checkpoint.pt"], cwd=tmp_path))
    assert r.code == 0, r.err[-3000:]
    exited_promptly(r)
    assert "done: 20 steps (completed)" in r.out and (tmp_path / "output" / "best_checkpoint" / "modules.json").is_file()
