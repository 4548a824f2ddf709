"""Faults injected into training: signals, kills during writes, non-finite losses, bad output dirs, full disks.

Every row of docs/reliability.md's faults table names a test here (or in test_resume.py / test_readers_fuzz.py).
"""
from __future__ import annotations

import errno
import hashlib
import json
import os
import shutil
import signal

import pytest
import torch

from conftest import assert_same_params, tiny_config, train_argv
from conftest import checkpoint_params as params
from kodiffcse.cli import main
from kodiffcse.training import checkpoint as ckpt
from kodiffcse.training.checkpoint import STATE_FILE, latest_checkpoint, list_checkpoints, recover
from kodiffcse.training.loop import train

STEPS = 6


def cfg_for(tiny, sample, out, **overrides):
    base = dict(max_steps=STEPS, eval_steps=3, save_steps=1, save_total_limit=10, seed=3)
    return tiny_config(tiny, sample, out, **{**base, **overrides})


def error_line(capsys) -> str:
    """The CLI's error: one line, no traceback (progress bars may precede it on stderr)."""
    err = capsys.readouterr().err
    assert "Traceback" not in err
    errors = [line for line in err.splitlines() if "error:" in line]
    assert len(errors) == 1 and errors[0].startswith("kodiffcse train: error: "), err[-2000:]
    return errors[0]


def digest(path: str) -> str:
    return hashlib.sha256(open(path, "rb").read()).hexdigest()


def assert_loads(best: str) -> None:
    """Both ways users load best/: sentence-transformers and plain transformers."""
    from sentence_transformers import SentenceTransformer
    from transformers import AutoModel

    vectors = SentenceTransformer(best, device="cpu").encode(["고양이가 잔다.", "한 남자가 기타를 친다."])
    assert vectors.shape[0] == 2 and torch.isfinite(torch.as_tensor(vectors)).all()
    assert AutoModel.from_pretrained(best) is not None


@pytest.fixture(scope="module")
def reference(tiny, sample, tmp_path_factory):
    """An uninterrupted in-process run, a checkpoint after every step."""
    out = tmp_path_factory.mktemp("reference")
    result = train(cfg_for(tiny, sample, out))
    assert result.steps == STEPS and result.best_dir
    return out


def nan_at(monkeypatch, steps: set[int]) -> None:
    """Make the loss NaN on the given (1-based) micro-steps; the NaN reaches every gradient if applied."""
    from kodiffcse.training.step import TrainingStep

    original, calls = TrainingStep.__call__, [0]

    def patched(self, model, batch, edits=None):
        out = original(self, model, batch, edits)
        calls[0] += 1
        if calls[0] in steps:
            out["loss"] = out["loss"] * float("nan")
        return out

    monkeypatch.setattr(TrainingStep, "__call__", patched)


# --- signals -------------------------------------------------------------------------------------------

def test_sigint_saves_a_checkpoint_and_resume_is_exact(tiny, sample, tmp_path, monkeypatch, capsys, reference):
    from kodiffcse.training.step import TrainingStep

    original, calls = TrainingStep.__call__, [0]

    def interrupted(self, model, batch, edits=None):
        calls[0] += 1
        if calls[0] == 3:
            os.kill(os.getpid(), signal.SIGINT)  # a real signal, delivered mid-step
        return original(self, model, batch, edits)

    monkeypatch.setattr(TrainingStep, "__call__", interrupted)
    out = tmp_path / "run"
    result = train(cfg_for(tiny, sample, out))
    assert result.stopped_by == "signal" and result.steps == 3
    assert "Resume with: kodiffcse train --resume" in capsys.readouterr().out
    monkeypatch.setattr(TrainingStep, "__call__", original)

    resumed = train(cfg_for(tiny, sample, out, resume=True))
    assert resumed.steps == STEPS and resumed.stopped_by == "max_steps"
    assert_same_params(params(latest_checkpoint(str(out))), params(latest_checkpoint(str(reference))))
    assert resumed.best_score == pytest.approx(json.load(open(reference / "best" / "dev_scores.json"))["scores"]
                                               ["cosine_spearman"])
    steps = [json.loads(line)["step"] for line in open(out / "metrics.jsonl") if "dev/cosine_spearman" in line]
    assert steps == [0, 3, 6], "the resumed run's log continues the old one without repeats"


def test_a_second_signal_stops_at_once():
    from kodiffcse.training.loop import _SignalGuard

    with _SignalGuard() as guard:
        os.kill(os.getpid(), signal.SIGTERM)
        assert guard.received == signal.SIGTERM
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGTERM)
    assert signal.getsignal(signal.SIGTERM) == signal.SIG_DFL


# --- non-finite loss -----------------------------------------------------------------------------------

def test_nan_loss_stops_naming_the_step_and_keeps_the_last_good_checkpoint(tiny, sample, tmp_path, monkeypatch,
                                                                           capsys, reference):
    nan_at(monkeypatch, {4})
    out = tmp_path / "run"
    result = train(cfg_for(tiny, sample, out))
    assert result.stopped_by == "nonfinite" and result.steps == 3
    assert "non-finite loss at step 4" in capsys.readouterr().out
    assert list_checkpoints(str(out))[-1][0] == 3  # nothing was saved after the bad step
    assert_same_params(params(latest_checkpoint(str(out))), params(str(reference / "checkpoints" / "checkpoint-3")))
    assert_loads(str(out / "best"))


def test_nan_loss_is_skipped_with_the_flag_and_never_reaches_the_weights(tiny, sample, tmp_path, monkeypatch, capsys):
    nan_at(monkeypatch, {2, 5})
    out = tmp_path / "run"
    result = train(cfg_for(tiny, sample, out, skip_nonfinite=2))
    assert result.stopped_by == "max_steps" and result.steps == STEPS
    assert "skipped (2 of 2 allowed)" in capsys.readouterr().out
    state = json.load(open(os.path.join(latest_checkpoint(str(out)), STATE_FILE)))["state"]
    assert state["nonfinite_skipped"] == 2
    assert all(torch.isfinite(v).all() for v in params(latest_checkpoint(str(out))).values())
    # the skipped step changed nothing: step 2's weights equal step 1's
    assert_same_params(params(str(out / "checkpoints" / "checkpoint-2")), params(str(out / "checkpoints" / "checkpoint-1")),
                       tol=0.0)


def test_nan_micro_step_skips_its_whole_accumulation_window(tiny, sample, tmp_path, monkeypatch, capsys):
    nan_at(monkeypatch, {3})  # the first micro-step of optimizer step 2
    out = tmp_path / "run"
    result = train(cfg_for(tiny, sample, out, skip_nonfinite=1, gradient_accumulation_steps=2))
    assert result.stopped_by == "max_steps" and result.steps == STEPS
    assert "non-finite loss at step 2: skipped (1 of 1 allowed)" in capsys.readouterr().out

    def weights(step):  # the window's finite micro-step still moved the BatchNorm statistics, as any forward does
        return {k: v for k, v in params(str(out / "checkpoints" / f"checkpoint-{step}")).items()
                if "running_" not in k and "num_batches_tracked" not in k}

    assert_same_params(weights(2), weights(1), tol=0.0)
    assert not torch.equal(params(str(out / "checkpoints" / "checkpoint-3"))["encoder.embeddings.word_embeddings.weight"],
                           params(str(out / "checkpoints" / "checkpoint-2"))["encoder.embeddings.word_embeddings.weight"])


# --- kills and faults during writes --------------------------------------------------------------------

def _killed_child(action) -> None:
    """Run `action` in a forked child that SIGKILLs itself where the action says; wait for it."""
    pid = os.fork()
    if pid == 0:  # child: never returns into pytest
        try:
            action()
        finally:
            os._exit(3)
    _, status = os.waitpid(pid, 0)
    assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL, status


def _die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


@pytest.mark.parametrize("where", ["while writing files", "between the two renames"])
def test_kill_while_writing_best_leaves_the_previous_best_loadable(reference, tmp_path, monkeypatch, where):
    from transformers import AutoModel, AutoTokenizer

    from kodiffcse.export import sentence_transformers as export

    out = tmp_path / "run"
    shutil.copytree(reference / "best", out / "best")
    before = digest(out / "best" / "model.safetensors")
    encoder = AutoModel.from_pretrained(str(out / "best"))
    with torch.no_grad():
        for p in encoder.parameters():
            p.add_(1.0)  # a different model, so a mix-up would show
    tokenizer = AutoTokenizer.from_pretrained(str(out / "best"))

    def action():
        if where == "while writing files":
            monkeypatch.setattr(tokenizer, "save_pretrained", lambda *a, **k: _die())  # after the weights
        else:
            real, calls = os.replace, [0]

            def replace(src, dst):
                calls[0] += 1
                real(src, dst)
                if calls[0] == 1:  # best -> best.old done, tmp -> best not yet
                    _die()

            monkeypatch.setattr(ckpt.os, "replace", replace)
        export.save_sentence_model(encoder, tokenizer, str(out / "best"), "cls_before_pooler", 32)

    _killed_child(action)
    assert any(n.startswith(".tmp-best") or n == "best.old" for n in os.listdir(out)), "the kill hit mid-save"
    recover(str(out), "best")  # what the next `kodiffcse train` does first
    assert sorted(os.listdir(out)) == ["best"]
    assert digest(out / "best" / "model.safetensors") == before
    assert_loads(str(out / "best"))


def test_kill_while_writing_a_checkpoint_keeps_the_previous_one(tmp_path, monkeypatch):
    import accelerate.checkpointing as acc_ckpt
    from accelerate import Accelerator
    from torch.optim.lr_scheduler import LambdaLR

    accelerator = Accelerator(cpu=True)
    model = torch.nn.Linear(4, 4)
    optimizer = torch.optim.AdamW(model.parameters())
    model, optimizer = accelerator.prepare(model, optimizer)
    scheduler = LambdaLR(optimizer, lambda s: 1.0)
    out = str(tmp_path)
    ckpt.save_checkpoint(accelerator, out, ckpt.TrainState(step=1), scheduler, keep=2)
    ckpt.save_checkpoint(accelerator, out, ckpt.TrainState(step=2), scheduler, keep=2)

    def action():
        real = acc_ckpt.save

        def save(obj, path, *a, **k):
            real(obj, path, *a, **k)
            _die()  # the model file is written, optimizer and RNG states are not

        acc_ckpt.save = save
        ckpt.save_checkpoint(accelerator, out, ckpt.TrainState(step=3), scheduler, keep=2)

    _killed_child(action)
    assert latest_checkpoint(out).endswith("checkpoint-2")
    recover(out, "best")
    assert sorted(os.listdir(os.path.join(out, "checkpoints"))) == ["checkpoint-1", "checkpoint-2"]
    with torch.no_grad():
        model.weight.zero_()
    real_load, unpickled = torch.load, []

    def load(*args, **kwargs):
        unpickled.append((os.path.basename(str(args[0])), kwargs.get("weights_only")))
        return real_load(*args, **kwargs)

    monkeypatch.setattr(torch, "load", load)
    state = ckpt.load_checkpoint(accelerator, latest_checkpoint(out), scheduler)
    monkeypatch.undo()
    assert state.step == 2 and model.weight.abs().sum() > 0
    # weights are safetensors; the optimizer and RNG pickles are loaded with weights_only=True
    assert {name for name, _ in unpickled} == {"optimizer.bin", "random_states_0.pkl"}, unpickled
    assert all(flag is True for _, flag in unpickled), unpickled


def test_disk_full_during_a_checkpoint_is_one_line_and_keeps_the_previous_ones(tiny, sample, tmp_path, monkeypatch,
                                                                              capsys):
    import accelerate

    real, calls = accelerate.Accelerator.save_state, [0]

    def save_state(self, output_dir=None, **kwargs):
        calls[0] += 1
        if calls[0] == 3:
            os.makedirs(output_dir, exist_ok=True)
            open(os.path.join(output_dir, "model.safetensors"), "wb").write(b"half")
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(self, output_dir, **kwargs)

    monkeypatch.setattr(accelerate.Accelerator, "save_state", save_state)
    out = tmp_path / "run"
    argv = train_argv(tiny, sample, out, max_steps=5, eval_steps=0, save_steps=1, batch_size=8, max_len=24)
    assert main(argv) == 2
    err = error_line(capsys)
    assert "disk full" in err and "checkpoint-3" in err and "intact" in err
    assert [s for s, _ in list_checkpoints(str(out))] == [1, 2]
    assert not [n for n in os.listdir(out / "checkpoints") if n.startswith(".tmp")]
    monkeypatch.setattr(accelerate.Accelerator, "save_state", real)
    assert main([*argv, "--resume"]) == 0
    assert list_checkpoints(str(out))[-1][0] == 5


# --- output dir ----------------------------------------------------------------------------------------

def _argv(tiny, sample, out):
    return train_argv(tiny, sample, out, max_steps=1, batch_size=4, max_len=16)


def test_output_dir_under_a_regular_file_is_a_clear_error(tiny, sample, tmp_path, capsys):
    (tmp_path / "afile").write_text("x")
    assert main(_argv(tiny, sample, tmp_path / "afile" / "out")) == 2
    err = error_line(capsys)
    assert "output dir is not writable" in err and "afile/out" in err


def test_unwritable_output_dir_is_a_clear_error(tiny, sample, tmp_path, capsys, monkeypatch):
    """Tests run as root in CI, where chmod 0o500 changes nothing, so the refusal is simulated."""
    import builtins

    real_open = builtins.open

    def open_(file, mode="r", *a, **k):
        if ".kodiffcse-write-test" in str(file) and "w" in mode:
            raise PermissionError(errno.EACCES, "Permission denied", str(file))
        return real_open(file, mode, *a, **k)

    monkeypatch.setattr(builtins, "open", open_)
    assert main(_argv(tiny, sample, tmp_path / "out")) == 2
    err = error_line(capsys)
    assert "output dir is not writable: Permission denied" in err


def test_full_disk_is_refused_before_training(tiny, sample, tmp_path, capsys, monkeypatch):
    import collections

    usage = collections.namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda path: usage(10 << 20, 10 << 20, 1 << 10))
    out = tmp_path / "out"
    assert main(_argv(tiny, sample, out)) == 2
    err = error_line(capsys)
    assert "not enough free disk space" in err and "--save-total-limit" in err
    assert not (out / "checkpoints").exists()


# --- resume refuses what it cannot continue exactly ------------------------------------------------------

def test_resume_refuses_incomplete_checkpoints_and_changed_data_settings(tiny, sample, tmp_path, reference, capsys):
    out = tmp_path / "run"
    shutil.copytree(reference, out)
    base = train_argv(tiny, sample, out, "--resume", max_steps=8, batch_size=8, max_len=32, seed=3)
    assert main([*base, "--batch-size", "16"]) == 2
    assert "batch_size 8 -> 16" in error_line(capsys)
    os.remove(os.path.join(latest_checkpoint(str(out)), "random_states_0.pkl"))
    assert main(base) == 2
    assert "incomplete checkpoint: missing random_states_0.pkl" in error_line(capsys)
    with open(os.path.join(latest_checkpoint(str(out)), STATE_FILE), "w") as fh:
        fh.write("{not json")
    assert main(base) == 2
    err = error_line(capsys)
    assert "unreadable checkpoint state" in err


def test_resume_without_a_checkpoint_is_one_line(tiny, sample, tmp_path, capsys):
    out = tmp_path / "out"
    out.mkdir()
    assert main([*_argv(tiny, sample, out), "--resume"]) == 2
    assert "--resume: no checkpoint to resume from" in error_line(capsys)
    assert main([*_argv(tiny, sample, out), "--resume-from", str(tmp_path / "nope")]) == 2
    assert "no such checkpoint dir" in error_line(capsys)
    (out / "empty").mkdir()
    assert main([*_argv(tiny, sample, out), "--resume-from", str(out / "empty")]) == 2
    assert "not a kodiffcse checkpoint (no trainer_state.json)" in error_line(capsys)
