"""training_curves.png: loss and dev score against step, for people who would rather look than read."""
from __future__ import annotations

import json
import os


def plot_training_curves(metrics_file: str, out_file: str, metric: str = "cosine_spearman") -> str | None:
    if not os.path.isfile(metrics_file):
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    train, dev = [], []
    with open(metrics_file, encoding="utf-8") as fh:
        for line in fh:
            row = json.loads(line)
            if "train/loss" in row:
                train.append((row["step"], row["train/loss"], row.get("train/infonce"), row.get("train/rtd")))
            if f"dev/{metric}" in row:
                dev.append((row["step"], 100 * row[f"dev/{metric}"]))
    fig, (ax_loss, ax_dev) = plt.subplots(1, 2, figsize=(11, 4))
    if train:
        steps = [r[0] for r in train]
        ax_loss.plot(steps, [r[1] for r in train], label="loss")
        if train[0][2] is not None:
            ax_loss.plot(steps, [r[2] for r in train], label="InfoNCE", alpha=0.7)
        if train[0][3] is not None:
            ax_loss.plot(steps, [r[3] for r in train], label="RTD", alpha=0.7)
        ax_loss.legend()
    ax_loss.set(title="training loss", xlabel="step")
    if dev:
        ax_dev.plot([r[0] for r in dev], [r[1] for r in dev], marker="o")
    ax_dev.set(title=f"dev {metric.replace('_', ' ')} x 100", xlabel="step")
    fig.tight_layout()
    fig.savefig(out_file, dpi=100)
    plt.close(fig)
    return out_file
