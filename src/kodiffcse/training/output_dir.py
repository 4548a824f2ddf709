"""The run's output dir, judged before anything is trained: a used dir is refused rather than mixed with a new
run, --overwrite-output-dir leaves nothing of the old run behind, and a disk without room for the checkpoints
fails at the start instead of at the first save."""
from __future__ import annotations

import os
import shutil
import tempfile

from ..atomic import TMP_PREFIX
from ..config import CONFIG_FILE, TrainConfig
from ..errors import UserError
from ..export.model_card import TEST_SCORES_FILE
from .checkpoint import CHECKPOINTS
from .metrics import METRICS_FILE, TENSORBOARD_DIR


def check_output_dir(cfg: TrainConfig, resuming: bool) -> None:
    out = cfg.training.output_dir
    if os.path.exists(out) and not os.path.isdir(out):
        raise UserError("output dir is a file", path=out)
    # Under a launcher only the first rank checks (and probes): another rank's probe file would make the dir
    # look used to it. All ranks get the same options, so its refusal holds for them and the launcher stops
    # the group; the others only meet the dir after the process group forms, which the first rank joins later.
    if int(os.environ.get("RANK", "0")) != 0:
        return
    if os.path.isdir(out) and os.listdir(out) and not (cfg.training.overwrite_output_dir or resuming):
        raise UserError("output dir exists and is not empty; pass --overwrite-output-dir, or --resume to continue it",
                        path=out)
    try:
        os.makedirs(out, exist_ok=True)
        probe = os.path.join(out, f".kodiffcse-write-test-{os.getpid()}")
        with open(probe, "w") as fh:
            fh.write("ok")
        os.remove(probe)
    except OSError as exc:
        raise UserError(f"output dir is not writable: {exc.strerror or exc}", path=out) from None


def clear_previous_run(out: str, best_name: str) -> None:
    """Take away everything an earlier run wrote (checkpoints, best model, logs, scores), and nothing else.

    Each piece is renamed into one hidden folder first and that folder is deleted: `--resume` can never
    find the old run's checkpoints beside the new ones, and a kill half-way leaves only a `.tmp-*` folder
    that the next start removes."""
    previous = os.path.join(out, CONFIG_FILE)
    names = {CHECKPOINTS, best_name, METRICS_FILE, CONFIG_FILE, TEST_SCORES_FILE, "training_curves.png",
             TENSORBOARD_DIR}
    if os.path.isfile(previous):
        try:
            names.add(TrainConfig.load(previous).training.best_name)  # the old run's --best-name
        except (OSError, ValueError, TypeError):
            pass
    doomed = [os.path.join(out, n) for n in sorted(names) if os.path.lexists(os.path.join(out, n))]
    if not doomed:
        return
    trash = tempfile.mkdtemp(prefix=f"{TMP_PREFIX}previous-run-", dir=out)
    for path in doomed:
        os.replace(path, os.path.join(trash, os.path.basename(path)))
    shutil.rmtree(trash, ignore_errors=True)


def check_free_space(out: str, n_params: int, keep: int) -> None:
    """Weights + two AdamW moments per checkpoint, plus best/, with a 20% margin."""
    need = int(n_params * 4 * (3 * (keep + 1) + 1) * 1.2)
    free = shutil.disk_usage(out).free
    if free < need:
        raise UserError(f"not enough free disk space: {free / 2**20:.0f} MiB free, about {need / 2**20:.0f} MiB "
                        f"needed for {keep} checkpoints and best/ (lower --save-total-limit or free space)", path=out)
