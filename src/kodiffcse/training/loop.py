"""A training run, as the list of what it does, on Hugging Face Accelerate (CPU, one GPU, or DDP over many
processes under torchrun/accelerate launch): set up; then a plain loop of optimizer steps, with a log line, a
dev evaluation and a checkpoint at their intervals and a stop at a signal; then finish.

How a run flows, file by file (docs/design.md, "How a run flows"):
  setup.py       text -> LineCorpus (or NLI triplets -> TripletData) -> sharded batches; models, AdamW + linear
                 warmup/decay, the start state (fresh, or a checkpoint's)
  step.py        batch -> generator edits, one 2B-row encoder pass (3B for triplets) -> losses
  nonfinite.py   a non-finite loss -> its update skipped on the device; the host checks at log/eval/save/signal
  metrics.py     losses -> metrics.jsonl, trackers, progress
  checkpoint.py  resumable checkpoints every save_steps (at evaluations by default), at a signal, at the end
  dev_eval.py    dev scores every eval_steps -> best/, early stopping
  signals.py     SIGTERM/SIGINT -> a checkpoint after the step in flight
  output_dir.py  the output dir judged and cleared before anything trains
Evaluation and exports run on the main process; the others wait.
"""
from __future__ import annotations

import contextlib
import json
import math
import os
from dataclasses import dataclass

import torch

from ..atomic import atomic_write
from ..config import TrainConfig
from ..data.nli import TripletData
from ..evaluation import evaluate_encoder, markdown_table
from ..export.model_card import TEST_SCORES_FILE, write_model_card
from ..inference import SentenceEncoder
from ..modeling.generator import load_generator
from ..modeling.loading import quiet_transformers
from .checkpoint import Checkpoints, checkpoint_to_resume, recover
from .curves import plot_training_curves
from .dev_eval import DevEvaluator, published
from .metrics import LINE_INTERVAL_S, METRICS_FILE, TENSORBOARD_DIR, MetricsLog, Progress  # noqa: F401 (API)
from .nonfinite import NonFiniteGuard
from .output_dir import check_output_dir, clear_previous_run  # noqa: F401 (API)
from .setup import (Run, build_loader, build_model, build_optimizer, check_resources, count_steps,
                    load_checked_tokenizer, make_accelerator, read_data, run_keys, start_or_resume, summary)
from .signals import SignalGuard
from .step import TrainingStep
from .stop import Stop

_SignalGuard, _check_output_dir = SignalGuard, check_output_dir  # the names tests import from here
LOG_EVERY = 10  # optimizer steps between log lines; the host reads device scalars only then


@dataclass
class TrainResult:
    output_dir: str
    best_dir: str | None
    best_score: float | None
    steps: int
    stopped_by: str  # "completed", "max_steps", "early_stopping", "signal", "nonfinite"
    test_scores: dict | None = None
    signal: int | None = None  # the signal that stopped the run, when stopped_by is "signal"


def train(cfg: TrainConfig, accelerator=None) -> TrainResult:
    """Train DiffCSE (or SimCSE) as configured; returns where the best model went and how it scored.

    However the run ends (done, a signal, an exception), what it started is stopped before this returns:
    a process must never wait at exit on data-loader workers left to garbage collection.
    """
    cfg.validate()
    t = cfg.training
    resume_path = checkpoint_to_resume(t.output_dir, t.resume, t.resume_from)
    created = not os.path.exists(t.output_dir)
    check_output_dir(cfg, resuming=resume_path is not None)
    try:
        with contextlib.ExitStack() as cleanup:
            run = _setup(cfg, accelerator, resume_path, cleanup)
            stopped_by, signal = _train_steps(run)
            return _finish(run, stopped_by, signal)
    except BaseException:
        if created and os.path.isdir(t.output_dir) and not os.listdir(t.output_dir):
            os.rmdir(t.output_dir)  # a run that failed before writing anything leaves nothing behind
        raise


def _setup(cfg: TrainConfig, accelerator, resume_path: str | None, cleanup: contextlib.ExitStack) -> Run:
    """Everything before the first step, in this order: the data is read and validated before any model is
    loaded, and the models' random initialisations follow set_seed always alike (exact resume depends on it)."""
    from accelerate.utils import set_seed
    from transformers import get_linear_schedule_with_warmup

    m, t = cfg.model, cfg.training
    corpus, dev, test = read_data(cfg)
    accelerator = accelerator or make_accelerator(cfg)
    if accelerator.is_main_process:
        if isinstance(corpus, TripletData):
            print(corpus.summary())  # what the triplet builder kept and dropped, and why
        recover(t.output_dir, t.best_name)  # what a kill interrupted: a best/ swap, unfinished .tmp-* dirs
    accelerator.wait_for_everyone()
    quiet_transformers()
    set_seed(t.seed)
    total_steps = count_steps(cfg, corpus, accelerator.num_processes)
    tokenizer = load_checked_tokenizer(m)
    generator = None
    if m.objective == "diffcse":
        # the vocabulary is checked first
        generator = load_generator(m.generator, m.model, tokenizer, m.generator_sampling, m.cpu_kernels)
    model = build_model(m, t.gradient_checkpointing, t.compile)
    check_resources(cfg, accelerator, model, generator)
    optimizer = build_optimizer(model, t.lr, t.weight_decay)
    scheduler = get_linear_schedule_with_warmup(optimizer, math.ceil(t.warmup_ratio * total_steps), total_steps)
    loader, sampler = build_loader(cfg, corpus, tokenizer, accelerator, cleanup)
    # Not prepared by Accelerate: the sampler already shards deterministically, and the scheduler
    # already counts per-process optimizer steps.
    model, optimizer = accelerator.prepare(model, optimizer)
    if generator is not None:
        generator.to(accelerator.device)
    raw = accelerator.unwrap_model(model)
    accelerator.print(summary(cfg, accelerator, raw, generator, corpus, total_steps))
    checkpoints = Checkpoints(accelerator, t.output_dir, scheduler, t.save_total_limit,
                              run_keys(cfg, corpus, accelerator.num_processes))
    state = start_or_resume(cfg, accelerator, checkpoints, resume_path)
    return Run(cfg, accelerator, dev, test, tokenizer, model, raw, optimizer, scheduler, loader, sampler,
               TrainingStep(m, tokenizer, generator), checkpoints, state, total_steps)


def _train_steps(run: Run) -> tuple[str, int | None]:
    """The loop: a step; then, at their intervals, a log line, a dev evaluation, a checkpoint; a stop at a signal.
    Returns how the run stopped and the signal that stopped it, if one did."""
    t, state = run.cfg.training, run.state
    log = MetricsLog(run.accelerator, t.output_dir)
    dev = DevEvaluator(run, log, evaluate_encoder)
    guard = NonFiniteGuard(run.accelerator, run.raw, state, t.skip_nonfinite)
    dev.at_start()
    progress = Progress(run.accelerator, run.total_steps, state.step)
    run.model.train()
    try:
        with SignalGuard() as signals:
            for step in _optimizer_steps(run, guard, log):
                progress.update()
                if step % LOG_EVERY == 0 or step == run.total_steps:
                    guard.check()
                    progress.show(step, log.log_train(step, run.scheduler.get_last_lr()[0]), state.last_dev)
                if t.eval_steps and step % t.eval_steps == 0:
                    guard.check()
                    dev.evaluate()
                    if not t.save_steps:
                        run.checkpoints.save(state)
                if t.save_steps and step % t.save_steps == 0:
                    guard.check()
                    run.checkpoints.save(state)
                if signals.received is not None:
                    guard.check()
                    raise Stop("signal")
            guard.check()
            stopped_by = "max_steps" if t.max_steps and state.step >= t.max_steps else "completed"
            dev.at_end()
    except Stop as stop:
        stopped_by = stop.reason
    finally:
        progress.close()
    return stopped_by, signals.received if stopped_by == "signal" else None


def _optimizer_steps(run: Run, guard: NonFiniteGuard, log: MetricsLog):
    """Yields the step number after each optimizer step, until the last. Epochs, gradient accumulation and
    the data position a checkpoint records (epoch, batches consumed) stay in here."""
    state, epochs = run.state, run.cfg.training.epochs
    while state.step < run.total_steps and state.epoch < epochs:
        run.sampler.set_epoch(state.epoch, skip=state.batch_in_epoch)
        for batch in run.loader:
            # kept until the next step's losses replace them, as the loop always did: freed at once instead,
            # what is left of the step's graph changes how glibc reuses freed activation memory, and a
            # small model's step took 6% longer (docs/performance.md, "Training loop")
            losses = _micro_step(run, guard, batch)
            log.add(losses)
            state.batch_in_epoch += 1
            if not run.accelerator.sync_gradients:
                continue
            run.scheduler.step()
            state.step += 1
            yield state.step
            if state.step >= run.total_steps:
                return
        state.epoch, state.batch_in_epoch = state.epoch + 1, 0


def _micro_step(run: Run, guard: NonFiniteGuard, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Forward and backward of one micro-batch; Accelerate lets the optimizer step only when the accumulation
    window closes (sync_gradients)."""
    accelerator, max_grad_norm = run.accelerator, run.cfg.training.max_grad_norm
    batch = {k: v.to(accelerator.device, non_blocking=True) for k, v in batch.items()}
    with accelerator.accumulate(run.model):
        guard.before_forward()
        losses = run.step_fn(run.model, batch)
        accelerator.backward(losses["loss"])
        guard.after_backward(losses["loss"])
        if max_grad_norm and accelerator.sync_gradients:
            accelerator.clip_grad_norm_(run.model.parameters(), max_grad_norm)
        guard.before_optimizer_step(run.optimizer)
        run.optimizer.step()
        run.optimizer.zero_grad(set_to_none=True)
        if accelerator.sync_gradients:
            guard.after_sync()
    return losses


def _finish(run: Run, stopped_by: str, signal: int | None) -> TrainResult:
    """The last checkpoint (none after a non-finite stop: the last good one stays the latest), the curves,
    best/'s test scores when the run ended on its own, and what the caller learns."""
    accelerator, t, state = run.accelerator, run.cfg.training, run.state
    if stopped_by == "signal":
        run.checkpoints.save(state)
        accelerator.print(f"interrupted at step {state.step}: checkpoint saved. Resume with: "
                          f"kodiffcse train --resume --output-dir {t.output_dir}")
    elif stopped_by == "nonfinite":
        accelerator.print(f"stopped: non-finite loss at step {state.step + 1}; the last good checkpoint and "
                          f"{t.best_name}/ are kept (pass --skip-nonfinite N to skip such steps)")
    else:
        run.checkpoints.save(state)
    test_scores = None
    if accelerator.is_main_process:
        plot_training_curves(os.path.join(t.output_dir, METRICS_FILE), os.path.join(t.output_dir, "training_curves.png"),
                             t.metric)
        if run.test is not None and os.path.isdir(run.best_dir) and stopped_by not in ("signal", "nonfinite"):
            test_scores = _score_test(run)
    accelerator.end_training()
    best_dir = run.best_dir if os.path.isdir(run.best_dir) else None
    return TrainResult(t.output_dir, best_dir, state.best_score, state.step, stopped_by, test_scores, signal)


def _score_test(run: Run) -> dict:
    """best/ as users load it, on the test set: test_scores.json, the model card's test row, a table."""
    t = run.cfg.training
    encoder = SentenceEncoder.from_pretrained(run.best_dir, device=str(run.accelerator.device))
    scores = evaluate_encoder(encoder, run.test, t.eval_batch_size)
    atomic_write(os.path.join(t.output_dir, TEST_SCORES_FILE),
                 json.dumps({"test_file": published(run.cfg.data.test_file), "scores": scores}, indent=2))
    write_model_card(run.best_dir)  # the card gains the test row
    name = os.path.basename(os.path.normpath(t.output_dir))
    print(markdown_table([(f"{name} ({run.cfg.model.objective})", scores)]))
    return scores
