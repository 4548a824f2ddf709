"""What a run reports while it trains: metrics.jsonl (which the curves and a resume read), Accelerate's trackers
(TensorBoard, W&B), and a progress bar on a terminal or a plain line in a log file. One place decides what a
logged number is (means over the micro-steps since the last line, read from the device only there) and where
it goes, so the loop only says when."""
from __future__ import annotations

import json
import os
import sys
import time

import torch

from ..atomic import atomic_write
from ..config import TrainConfig

METRICS_FILE = "metrics.jsonl"
LINE_INTERVAL_S = 30  # without a terminal (no progress bar), a progress line at most this often
TENSORBOARD_DIR = "kodiffcse"  # the project name given to init_trackers: Accelerate logs under it


class MetricsLog:
    """Metrics to JSONL (main process) and to the Accelerate trackers; the training losses summed on the device."""

    def __init__(self, accelerator, output_dir: str):
        self.accelerator = accelerator
        self.path = os.path.join(output_dir, METRICS_FILE)
        self._sums: dict[str, torch.Tensor] = {}
        self._micro = 0

    def log(self, values: dict, step: int) -> None:
        if not self.accelerator.is_main_process:
            return
        with open(self.path, "a", encoding="utf-8") as fh:
            fh.write(json.dumps({"step": step, "time": round(time.time(), 3), **values}) + "\n")
        self.accelerator.log(values, step=step)

    def add(self, losses: dict[str, torch.Tensor]) -> None:
        """One micro-step's losses, kept on the device until the next log line."""
        for key, value in losses.items():
            self._sums[key] = self._sums.get(key, 0) + value.detach().float()
        self._micro += 1

    def log_train(self, step: int, lr: float) -> dict[str, float]:
        """Log the mean losses since the last line and the learning rate; returns them for the progress display."""
        means = {k: (v / self._micro).item() for k, v in self._sums.items()}
        means["lr"] = lr
        self.log({f"train/{k}": v for k, v in means.items()}, step)
        self._sums, self._micro = {}, 0
        return means


def start_trackers(accelerator, cfg: TrainConfig) -> None:
    """TensorBoard/W&B get the whole configuration, flattened to the scalars they accept."""
    if not cfg.trackers():
        return
    flat = {}
    for section, values in cfg.to_dict().items():
        for key, value in values.items():
            flat[f"{section}/{key}"] = value if isinstance(value, (int, float, str, bool)) else str(value)
    accelerator.init_trackers(TENSORBOARD_DIR, config=flat)


def truncate_metrics(path: str, step: int) -> None:
    """Drop what the interrupted run logged after the checkpoint: the resumed run logs those steps again."""
    if not os.path.isfile(path):
        return
    kept = []
    with open(path, encoding="utf-8", errors="replace") as fh:
        for line in fh:
            try:
                if json.loads(line)["step"] <= step:
                    kept.append(line if line.endswith("\n") else line + "\n")
            except (ValueError, KeyError, TypeError):
                continue  # a line cut short by the kill
    atomic_write(path, "".join(kept))


def write_line(line: str) -> None:
    """A line on stderr that does not break the progress bar."""
    from tqdm.auto import tqdm

    tqdm.write(line, file=sys.stderr)


class Progress:
    """A bar only on a terminal: redirected to a log, its carriage-return redraws read as blank lines, so a log
    file gets a plain line at most every LINE_INTERVAL_S instead. The evaluation lines say how the run goes in both."""

    def __init__(self, accelerator, total_steps: int, initial: int):
        from tqdm.auto import tqdm

        self.total_steps = total_steps
        self.bar = tqdm(total=total_steps, initial=initial, desc="training", unit="step",
                        disable=not (accelerator.is_local_main_process and sys.stderr.isatty()), dynamic_ncols=True)
        self.plain = self.bar.disable and accelerator.is_local_main_process
        self.last_line = time.time()

    def update(self) -> None:
        self.bar.update(1)

    def show(self, step: int, means: dict[str, float], last_dev: float | None) -> None:
        postfix = {"loss": f"{means['loss']:.4f}"}
        if "rtd_accuracy" in means:
            postfix["rtd_acc"] = f"{means['rtd_accuracy']:.3f}"
        if last_dev is not None:
            postfix["dev"] = f"{100 * last_dev:.2f}"
        self.bar.set_postfix(postfix)
        if self.plain and (time.time() - self.last_line >= LINE_INTERVAL_S or step == self.total_steps):
            self.last_line = time.time()
            print(f"step {step}/{self.total_steps}: " + ", ".join(f"{k} {v}" for k, v in postfix.items())
                  + f", lr {means['lr']:.3g}", file=sys.stderr, flush=True)

    def close(self) -> None:
        self.bar.close()
