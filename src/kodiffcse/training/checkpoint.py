"""Resumable checkpoints, written atomically: a temporary directory renamed into place.

Accelerate saves the model (safetensors), optimizer and RNG states of every process; the loop's own
state (step, data position, early stopping, scheduler) goes to JSON beside them, so nothing
kodiffcse writes needs unpickling. A kill at any moment leaves either the old or the new checkpoint.
"""
from __future__ import annotations

import json
import os
import re
import shutil
from dataclasses import asdict, dataclass

from ..errors import UserError

CHECKPOINTS = "checkpoints"
STATE_FILE = "trainer_state.json"
_NAME = re.compile(r"^checkpoint-(\d+)$")


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


def replace_dir(tmp: str, final: str) -> None:
    """Move a finished directory into place; the previous one survives as `final.old` until then."""
    old = final + ".old"
    if os.path.exists(final):
        if os.path.exists(old):
            shutil.rmtree(old)
        os.replace(final, old)
    os.replace(tmp, final)
    shutil.rmtree(old, ignore_errors=True)


def recover_dir(final: str) -> None:
    """After a kill between the two renames of replace_dir, bring the previous directory back."""
    old = final + ".old"
    if not os.path.exists(final) and os.path.exists(old):
        os.replace(old, final)


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


def save_checkpoint(accelerator, output_dir: str, state: TrainState, scheduler, keep: int) -> str:
    """Collective: every process must call it."""
    root = os.path.join(output_dir, CHECKPOINTS)
    final = os.path.join(root, f"checkpoint-{state.step}")
    tmp = os.path.join(root, f".tmp-checkpoint-{state.step}")
    if accelerator.is_main_process:
        os.makedirs(root, exist_ok=True)
        shutil.rmtree(tmp, ignore_errors=True)
    accelerator.wait_for_everyone()
    accelerator.save_state(tmp, safe_serialization=True)
    if accelerator.is_main_process:
        payload = {"state": asdict(state), "scheduler": scheduler.state_dict()}
        with open(os.path.join(tmp, STATE_FILE), "w", encoding="utf-8") as fh:
            json.dump(payload, fh, indent=2)
        replace_dir(tmp, final)
        for _, stale in list_checkpoints(output_dir)[:-keep]:
            shutil.rmtree(stale, ignore_errors=True)
    accelerator.wait_for_everyone()
    return final


def load_checkpoint(accelerator, path: str, scheduler) -> TrainState:
    state_file = os.path.join(path, STATE_FILE)
    if not os.path.isfile(state_file):
        raise UserError(f"not a kodiffcse checkpoint (no {STATE_FILE})", path=path)
    with open(state_file, encoding="utf-8") as fh:
        payload = json.load(fh)
    accelerator.load_state(path)
    scheduler.load_state_dict(payload["scheduler"])
    return TrainState(**payload["state"])
