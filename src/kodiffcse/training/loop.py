"""The training loop on Hugging Face Accelerate: CPU, one GPU, or DDP over many (torchrun/accelerate launch).

text -> LineCorpus -> sharded batches -> TrainingStep (generator edits, one 2B-row encoder pass, losses)
(sup-simcse: NLI pairs -> TripletData -> the same sharded batches of triplets -> one 3B-row encoder pass)
-> AdamW + linear warmup/decay -> dev evaluation every eval_steps -> best/ and resumable checkpoints.
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
from ..config import CONFIG_FILE, TrainConfig
from ..data.batching import make_loader, shut_down_workers
from ..data.corpus import LineCorpus
from ..data.nli import TripletData, read_triplets
from ..data.sts import STSData, read_sts
from ..errors import UserError, count
from ..evaluation import evaluate_encoder, markdown_table
from ..export.model_card import TEST_SCORES_FILE, write_model_card
from ..export.sentence_transformers import save_sentence_model
from ..inference import SentenceEncoder
from ..modeling.diffcse import DiffCSEModel
from ..modeling.discriminator import ConditionalDiscriminator
from ..modeling.generator import load_generator
from ..modeling.heads import projection_for
from ..modeling.loading import load_encoder, load_tokenizer, quiet_transformers
from .checkpoint import TrainState, latest_checkpoint, load_checkpoint, recover, save_checkpoint
from .curves import plot_training_curves
from .memory import warn_if_too_big
from .metrics import LINE_INTERVAL_S, METRICS_FILE, TENSORBOARD_DIR, MetricsLog, Progress  # noqa: F401 (API)
from .metrics import start_trackers, truncate_metrics, write_line
from .output_dir import check_free_space, check_output_dir, clear_previous_run
from .nonfinite import NonFiniteGuard
from .signals import SignalGuard
from .stop import Stop

_SignalGuard, _check_output_dir = SignalGuard, check_output_dir  # the names tests import from here


@dataclass
class TrainResult:
    output_dir: str
    best_dir: str | None
    best_score: float | None
    steps: int
    stopped_by: str  # "completed", "max_steps", "early_stopping", "signal", "nonfinite"
    test_scores: dict | None = None
    signal: int | None = None  # the signal that stopped the run, when stopped_by is "signal"


def _millions(n: int) -> str:
    return f"{n / 1e6:.1f}M" if n >= 100_000 else f"{n:,}"


def _published(path: str | None) -> str | None:
    """A local path as it may appear in a shared model: its last component."""
    return os.path.basename(os.path.normpath(path)) if path and os.path.exists(path) else path


def _mixed_precision(choice: str) -> str:
    if choice != "auto":
        return choice
    return "bf16" if torch.cuda.is_available() and torch.cuda.is_bf16_supported() else "no"


def build_optimizer(model: torch.nn.Module, lr: float, weight_decay: float) -> torch.optim.Optimizer:
    """AdamW, fused (one kernel over all parameters; CPU and CUDA), no decay on biases and norms."""
    params = [p for p in model.parameters() if p.requires_grad]
    groups = [{"params": [p for p in params if p.ndim >= 2], "weight_decay": weight_decay},
              {"params": [p for p in params if p.ndim < 2], "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=lr, fused=True)


def train(cfg: TrainConfig, accelerator=None) -> TrainResult:
    """Train DiffCSE (or SimCSE) as configured; returns where the best model went and how it scored.

    However the run ends (done, a signal, an exception), what it started is stopped before this returns:
    a process must never wait at exit on data-loader workers left to garbage collection.
    """
    cfg.validate()
    t = cfg.training
    resume_path = t.resume_from
    if t.resume and not resume_path:
        resume_path = latest_checkpoint(t.output_dir)
        if resume_path is None:
            raise UserError("--resume: no checkpoint to resume from", path=os.path.join(t.output_dir, "checkpoints"))
    if resume_path and not os.path.isdir(resume_path):
        raise UserError("no such checkpoint dir", path=resume_path)
    created = not os.path.exists(t.output_dir)
    check_output_dir(cfg, resuming=resume_path is not None)
    try:
        with contextlib.ExitStack() as cleanup:
            return _train(cfg, accelerator, resume_path, cleanup)
    except BaseException:
        if created and os.path.isdir(t.output_dir) and not os.listdir(t.output_dir):
            os.rmdir(t.output_dir)  # a run that failed before writing anything leaves nothing behind
        raise


def _distributed_launch_on_cpu() -> bool:
    """torchrun or `accelerate launch` on a machine without an accelerator: Accelerate then needs cpu=True to
    join the process group (gloo); without it each rank trains alone, as DistributedType.NO."""
    launched = int(os.environ.get("WORLD_SIZE", "1")) > 1 or os.environ.get("LOCAL_RANK") is not None
    has_accelerator = torch.accelerator.is_available() if hasattr(torch, "accelerator") else torch.cuda.is_available()
    return launched and not has_accelerator


def _train(cfg: TrainConfig, accelerator, resume_path: str | None, cleanup: contextlib.ExitStack) -> TrainResult:
    from accelerate import Accelerator
    from accelerate.utils import broadcast_object_list, set_seed
    from transformers import get_linear_schedule_with_warmup

    m, d, t = cfg.model, cfg.data, cfg.training
    # Read and validate the data before any model is loaded.
    corpus = read_triplets(d.train_file) if m.objective == "sup-simcse" else LineCorpus(d.train_file)
    dev: STSData | None = read_sts(d.dev_file) if d.dev_file else None
    test: STSData | None = read_sts(d.test_file) if d.test_file else None

    trackers = cfg.trackers()
    accelerator = accelerator or Accelerator(
        mixed_precision=_mixed_precision(t.precision), gradient_accumulation_steps=t.gradient_accumulation_steps,
        log_with=trackers or None, project_dir=t.output_dir, cpu=_distributed_launch_on_cpu(),
    )
    if accelerator.is_main_process:
        if isinstance(corpus, TripletData):
            print(corpus.summary())  # what the triplet builder kept and dropped, and why
        recover(t.output_dir, t.best_name)  # what a kill interrupted: a best/ swap, unfinished .tmp-* dirs
    accelerator.wait_for_everyone()
    quiet_transformers()
    set_seed(t.seed)
    world = accelerator.num_processes
    batches_per_epoch = len(corpus) // t.batch_size // world
    if batches_per_epoch < t.gradient_accumulation_steps:
        what = "triplet" if isinstance(corpus, TripletData) else "sentence"
        raise UserError(f"the corpus has {count(len(corpus), what)}: fewer than one optimizer step of "
                        f"{t.batch_size} x {t.gradient_accumulation_steps} x {world} processes", path=d.train_file)
    steps_per_epoch = batches_per_epoch // t.gradient_accumulation_steps
    run_keys = {"seed": t.seed, "batch_size": t.batch_size, "world_size": world, "corpus_sentences": len(corpus),
                "gradient_accumulation_steps": t.gradient_accumulation_steps, "group_by_length": d.group_by_length}
    total_steps = steps_per_epoch * t.epochs
    if t.max_steps:
        total_steps = min(total_steps, t.max_steps)

    tokenizer = load_tokenizer(m.model)
    if tokenizer.model_max_length and tokenizer.model_max_length < m.max_len:
        raise UserError(f"--max-len {m.max_len} exceeds the tokenizer's limit of {tokenizer.model_max_length}")
    generator = None
    if m.objective == "diffcse":
        generator = load_generator(m.generator, m.model, tokenizer, m.generator_sampling)  # vocab checked first
    encoder = load_encoder(m.model)
    hidden = encoder.config.hidden_size
    discriminator = ConditionalDiscriminator(load_encoder(m.model)) if m.objective == "diffcse" else None
    model = DiffCSEModel(encoder, projection_for(m.objective, hidden), m.pooler, discriminator, m.before_mlp)
    if t.gradient_checkpointing:  # non-reentrant: checkpoint restores torch's RNG, so dropout masks are redrawn alike
        for backbone in (model.encoder, discriminator.backbone if discriminator is not None else None):
            if backbone is not None:
                enable = getattr(backbone, "activation_checkpointing_enable", None)  # its name since transformers 5.x
                if enable is not None:
                    enable({"use_reentrant": False})
                else:
                    backbone.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    if t.compile:  # in place: module names, state dicts and save_pretrained stay as they are
        model.encoder.compile(dynamic=True)
    if accelerator.is_main_process:
        check_free_space(t.output_dir, sum(p.numel() for p in model.parameters()), t.save_total_limit)
    if accelerator.device.type == "cpu" and accelerator.is_local_main_process:
        frozen = sum(p.numel() for p in generator.model.parameters()) if generator is not None else 0
        warn_if_too_big(model, encoder.config, frozen, t.batch_size, m.max_len, 3 if m.objective == "sup-simcse" else 2,
                        discriminator is not None, t.gradient_checkpointing)

    optimizer = build_optimizer(model, t.lr, t.weight_decay)
    scheduler = get_linear_schedule_with_warmup(optimizer, math.ceil(t.warmup_ratio * total_steps), total_steps)
    loader, sampler = make_loader(corpus, tokenizer, t.batch_size, m.max_len, t.seed, d.group_by_length,
                                  d.num_workers, accelerator.process_index, world,
                                  pin_memory=accelerator.device.type == "cuda")
    cleanup.callback(shut_down_workers, loader)
    # Not prepared by Accelerate: the sampler already shards deterministically, and the scheduler
    # already counts per-process optimizer steps.
    model, optimizer = accelerator.prepare(model, optimizer)
    if generator is not None:
        generator.to(accelerator.device)

    accumulation = f" x {t.gradient_accumulation_steps} accumulated" if t.gradient_accumulation_steps > 1 else ""
    accelerator.print(
        f"training {m.objective}: encoder {m.model} ({_millions(sum(p.numel() for p in encoder.parameters()))} "
        "parameters)" + (f", generator {m.generator}" if generator is not None else "")
        + f"; corpus {d.train_file} ({count(len(corpus), 'sentence')}); {count(total_steps, 'step')} of "
        f"{t.batch_size * t.gradient_accumulation_steps * world} sentences ({t.batch_size}{accumulation} x "
        f"{count(world, 'process', 'processes')}); {accelerator.device}, "
        f"precision {'fp32' if accelerator.mixed_precision == 'no' else accelerator.mixed_precision}")
    state = TrainState()
    if resume_path:
        state = load_checkpoint(accelerator, resume_path, scheduler, run_keys)
        accelerator.print(f"resumed from {resume_path} at step {state.step}")
        if accelerator.is_main_process:
            truncate_metrics(os.path.join(t.output_dir, METRICS_FILE), state.step)
    elif accelerator.is_main_process:
        clear_previous_run(t.output_dir, t.best_name)  # --overwrite-output-dir: nothing of the old run survives
    if accelerator.is_main_process:
        cfg.with_paths(os.path.abspath).save(os.path.join(t.output_dir, CONFIG_FILE))
    start_trackers(accelerator, cfg)
    logger = MetricsLog(accelerator, t.output_dir)

    from .step import TrainingStep

    step_fn = TrainingStep(m, tokenizer, generator)
    raw = accelerator.unwrap_model(model)
    best_dir = os.path.join(t.output_dir, t.best_name)
    published_config = cfg.with_paths(_published).to_dict()  # best/ is what gets shared: no private paths

    dev_encoder = SentenceEncoder(raw.encoder, tokenizer, m.pooler, m.max_len)  # one: says truncation once

    def evaluate_dev() -> dict | None:
        """Main process scores the dev set; every process learns the score."""
        scores = None
        if accelerator.is_main_process and dev is not None:
            scores = evaluate_encoder(dev_encoder, dev, t.eval_batch_size)
        box = [scores]
        if world > 1:
            broadcast_object_list(box)
        return box[0]

    def export_best(scores: dict | None) -> None:
        if accelerator.is_main_process:
            payload = {"step": state.step, "dev_file": _published(d.dev_file), "scores": scores}
            save_sentence_model(raw.encoder, tokenizer, best_dir, m.pooler, m.max_len, published_config, payload)
        accelerator.wait_for_everyone()

    def run_evaluation() -> None:
        scores = evaluate_dev()
        if scores is None:
            return
        value = scores[t.metric]  # validate() checked the name
        state.last_dev = value
        logger.log({f"dev/{k}": v for k, v in scores.items()}, state.step)
        if state.best_score is None or value > state.best_score:
            state.best_score, state.best_step, state.evals_without_improvement = value, state.step, 0
            export_best(scores)
        else:
            state.evals_without_improvement += 1
        if accelerator.is_main_process:
            write_line(f"step {state.step}/{total_steps}: dev {t.metric} {100 * value:.2f} "
                       f"(best {100 * state.best_score:.2f} at step {state.best_step})")
        if t.patience and state.evals_without_improvement >= t.patience:
            raise Stop("early_stopping")

    if state.step == 0 and dev is not None:
        step0 = evaluate_dev()
        logger.log({f"dev/{k}": v for k, v in step0.items()}, 0)
        state.last_dev = step0[t.metric] if step0 else None

    stopped_by = "completed"
    progress = Progress(accelerator, total_steps, state.step)
    model.train()
    nonfinite = NonFiniteGuard(accelerator, raw, state, t.skip_nonfinite)

    try:
        with SignalGuard() as guard:
            while state.step < total_steps and state.epoch < t.epochs:
                sampler.set_epoch(state.epoch, skip=state.batch_in_epoch)
                for batch in loader:
                    batch = {k: v.to(accelerator.device, non_blocking=True) for k, v in batch.items()}
                    with accelerator.accumulate(model):
                        nonfinite.before_forward()
                        losses = step_fn(model, batch)
                        accelerator.backward(losses["loss"])
                        nonfinite.after_backward(losses["loss"])
                        if t.max_grad_norm and accelerator.sync_gradients:
                            accelerator.clip_grad_norm_(model.parameters(), t.max_grad_norm)
                        nonfinite.before_optimizer_step(optimizer)
                        optimizer.step()
                        optimizer.zero_grad(set_to_none=True)
                        if accelerator.sync_gradients:
                            nonfinite.after_sync()
                    state.batch_in_epoch += 1
                    logger.add(losses)
                    if not accelerator.sync_gradients:
                        continue
                    scheduler.step()
                    state.step += 1
                    progress.update()
                    if state.step % 10 == 0 or state.step == total_steps:
                        nonfinite.check()
                        means = logger.log_train(state.step, scheduler.get_last_lr()[0])
                        progress.show(state.step, means, state.last_dev)
                    if t.eval_steps and state.step % t.eval_steps == 0:
                        nonfinite.check()
                        run_evaluation()
                        if not t.save_steps:
                            save_checkpoint(accelerator, t.output_dir, state, scheduler, t.save_total_limit, run_keys)
                    if t.save_steps and state.step % t.save_steps == 0:
                        nonfinite.check()
                        save_checkpoint(accelerator, t.output_dir, state, scheduler, t.save_total_limit, run_keys)
                    if guard.received is not None:
                        nonfinite.check()
                        raise Stop("signal")
                    if state.step >= total_steps:
                        break
                else:
                    state.epoch, state.batch_in_epoch = state.epoch + 1, 0
                    continue
                break
            nonfinite.check()
            if t.max_steps and state.step >= t.max_steps:
                stopped_by = "max_steps"
            if not t.eval_steps or state.step % t.eval_steps:
                run_evaluation()
            if dev is None:
                export_best(None)  # without a dev set the final model is the one to keep
    except Stop as stop:
        stopped_by = stop.reason
    finally:
        progress.close()

    if stopped_by == "signal":
        save_checkpoint(accelerator, t.output_dir, state, scheduler, t.save_total_limit, run_keys)
        accelerator.print(f"interrupted at step {state.step}: checkpoint saved. Resume with: "
                          f"kodiffcse train --resume --output-dir {t.output_dir}")
    elif stopped_by == "nonfinite":
        accelerator.print(f"stopped: non-finite loss at step {state.step + 1}; the last good checkpoint and "
                          f"{t.best_name}/ are kept (pass --skip-nonfinite N to skip such steps)")
    else:
        save_checkpoint(accelerator, t.output_dir, state, scheduler, t.save_total_limit, run_keys)

    test_scores = None
    if accelerator.is_main_process:
        plot_training_curves(os.path.join(t.output_dir, METRICS_FILE), os.path.join(t.output_dir, "training_curves.png"),
                             t.metric)
        if test is not None and os.path.isdir(best_dir) and stopped_by not in ("signal", "nonfinite"):
            enc = SentenceEncoder.from_pretrained(best_dir, device=str(accelerator.device))
            test_scores = evaluate_encoder(enc, test, t.eval_batch_size)
            atomic_write(os.path.join(t.output_dir, TEST_SCORES_FILE),
                         json.dumps({"test_file": _published(d.test_file), "scores": test_scores}, indent=2))
            write_model_card(best_dir)  # the card gains the test row
            print(markdown_table([(f"{os.path.basename(os.path.normpath(t.output_dir))} ({m.objective})", test_scores)]))
    accelerator.end_training()
    return TrainResult(t.output_dir, best_dir if os.path.isdir(best_dir) else None, state.best_score, state.step,
                       stopped_by, test_scores, guard.received if stopped_by == "signal" else None)


