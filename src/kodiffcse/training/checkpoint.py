"""Resumable checkpoints, written atomically: a temporary directory, fsynced, then renamed into place.

Accelerate saves the model (safetensors), optimizer and RNG states of every process; the loop's own
state (step, data position, early stopping, scheduler) goes to JSON beside them, written last, so a
directory without it is never taken for a checkpoint. Accelerate 1.x loads optimizer and RNG files
with torch.load(weights_only=True) (accelerate.utils.other.load), and nothing of ours is pickled:
load_custom_state, which unpickles with weights_only=False, is never used.
A kill at any moment leaves the old or the new checkpoint, and `recover` tidies what it interrupted.
"""
from __future__ import annotations

import errno
import json
import os
import re
import shutil
from dataclasses import asdict, dataclass

from ..atomic import TMP_PREFIX, as_os_error, recover_dir, replace_dir
from ..errors import UserError

CHECKPOINTS = "checkpoints"
STATE_FILE = "trainer_state.json"
_NAME = re.compile(r"^checkpoint-(\d+)$")
# Settings that decide the data order and what a step is: resuming with others would not continue the run.
RUN_KEYS = ("seed", "batch_size", "world_size", "gradient_accumulation_steps", "group_by_length", "corpus_sentences")


@dataclass
class TrainState:
    step: int = 0  # optimizer steps done
    epoch: int = 0
    batch_in_epoch: int = 0  # this process's micro-batches consumed in `epoch`
    best_score: float | None = None
    best_step: int | None = None
    evals_without_improvement: int = 0
    nonfinite_skipped: int = 0
    last_dev: float | None = None


def recover(output_dir: str, best_name: str) -> None:
    """Undo what a kill interrupted: restore `X.old` where `X` is missing, drop unfinished `.tmp-*` dirs."""
    recover_dir(os.path.join(output_dir, best_name))
    for folder in (output_dir, os.path.join(output_dir, CHECKPOINTS)):
        if not os.path.isdir(folder):
            continue
        for name in os.listdir(folder):
            path = os.path.join(folder, name)
            if name.startswith(TMP_PREFIX) and os.path.isdir(path):
                shutil.rmtree(path, ignore_errors=True)
            elif folder != output_dir and name.endswith(".old"):
                recover_dir(path[: -len(".old")])


def list_checkpoints(output_dir: str) -> list[tuple[int, str]]:
    root = os.path.join(output_dir, CHECKPOINTS)
    if not os.path.isdir(root):
        return []
    found = []
    for name in os.listdir(root):
        match = _NAME.match(name)
        if match and os.path.isfile(os.path.join(root, name, STATE_FILE)):
            found.append((int(match.group(1)), os.path.join(root, name)))
    return sorted(found)


def latest_checkpoint(output_dir: str) -> str | None:
    found = list_checkpoints(output_dir)
    return found[-1][1] if found else None


def _disk_error(exc: OSError, path: str) -> UserError:
    reason = "disk full" if exc.errno in (errno.ENOSPC, errno.EDQUOT) else (exc.strerror or str(exc))
    return UserError(f"could not write a checkpoint ({reason}); the previous checkpoints and best/ are intact",
                     path=path)


def save_checkpoint(accelerator, output_dir: str, state: TrainState, scheduler, keep: int,
                    run: dict | None = None) -> str:
    """Collective: every process must call it. `run` (RUN_KEYS) is checked again on resume."""
    root = os.path.join(output_dir, CHECKPOINTS)
    final = os.path.join(root, f"checkpoint-{state.step}")
    tmp = os.path.join(root, f"{TMP_PREFIX}checkpoint-{state.step}")
    try:
        if accelerator.is_main_process:
            os.makedirs(root, exist_ok=True)
            shutil.rmtree(tmp, ignore_errors=True)
        accelerator.wait_for_everyone()
        accelerator.save_state(tmp, safe_serialization=True)
        accelerator.wait_for_everyone()
        if accelerator.is_main_process:
            payload = {"state": asdict(state), "scheduler": scheduler.state_dict(), "run": run or {}}
            with open(os.path.join(tmp, STATE_FILE), "w", encoding="utf-8") as fh:
                json.dump(payload, fh, indent=2)
            replace_dir(tmp, final)
            for step, stale in list_checkpoints(output_dir)[:-keep]:
                if step != state.step:  # rename first: a half-deleted dir must never look like a checkpoint
                    doomed = os.path.join(root, f"{TMP_PREFIX}delete-{step}")
                    os.replace(stale, doomed)
                    shutil.rmtree(doomed, ignore_errors=True)
    except Exception as exc:
        if as_os_error(exc) is None:
            raise
        if accelerator.is_main_process:
            shutil.rmtree(tmp, ignore_errors=True)
        raise _disk_error(as_os_error(exc), final) from None
    accelerator.wait_for_everyone()
    return final


def _required_files(process_index: int) -> list[str]:
    return ["model.safetensors", "optimizer.bin", f"random_states_{process_index}.pkl"]


def load_checkpoint(accelerator, path: str, scheduler, run: dict | None = None) -> TrainState:
    """Restore model, optimizer, RNG states (Accelerate), scheduler and loop state (JSON)."""
    state_file = os.path.join(path, STATE_FILE)
    if not os.path.isfile(state_file):
        raise UserError(f"not a kodiffcse checkpoint (no {STATE_FILE})", path=path)
    try:
        with open(state_file, encoding="utf-8") as fh:
            payload = json.load(fh)
        state = TrainState(**payload["state"])
        scheduler_state = payload["scheduler"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise UserError(f"unreadable checkpoint state: {exc}", path=state_file) from None
    missing = [n for n in _required_files(accelerator.process_index) if not os.path.isfile(os.path.join(path, n))]
    if missing:  # Accelerate would silently skip missing RNG states, and the resumed run would drift
        raise UserError(f"incomplete checkpoint: missing {', '.join(missing)}", path=path)
    saved_run = payload.get("run") or {}
    if run:
        changed = [f"{k} {saved_run[k]} -> {run[k]}" for k in RUN_KEYS if k in saved_run and k in run
                   and saved_run[k] != run[k]]
        if changed:
            raise UserError("cannot resume with settings that change the data order or the step: "
                            + "; ".join(changed), path=path)
    try:
        accelerator.load_state(path)
        scheduler.load_state_dict(scheduler_state)
    except (OSError, RuntimeError, ValueError, KeyError) as exc:
        raise UserError(f"cannot load checkpoint: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}",
                        path=path) from None
    return state


def checkpoint_to_resume(output_dir: str, resume: bool, resume_from: str | None) -> str | None:
    """The checkpoint --resume (the latest in output_dir) or --resume-from names; None for a fresh run."""
    path = resume_from
    if resume and not path:
        path = latest_checkpoint(output_dir)
        if path is None:
            raise UserError("--resume: no checkpoint to resume from", path=os.path.join(output_dir, CHECKPOINTS))
    if path and not os.path.isdir(path):
        raise UserError("no such checkpoint dir", path=path)
    return path


@dataclass
class Checkpoints:
    """One run's checkpoints, bound once: the loop saves with one call, and a resume is checked against the same
    run settings (RUN_KEYS) that every save records."""

    accelerator: object
    output_dir: str
    scheduler: object
    keep: int
    run: dict

    def save(self, state: TrainState) -> str:
        return save_checkpoint(self.accelerator, self.output_dir, state, self.scheduler, self.keep, self.run)

    def load(self, path: str) -> TrainState:
        return load_checkpoint(self.accelerator, path, self.scheduler, self.run)
