"""The pieces a run is built from before its first step: data, the Accelerator, the trained model, the optimizer,
the loader, the start state. Each is a function of its own so that loop.py's setup reads as their list, in the
order that matters: the data is read before any model loads, and every random initialisation follows set_seed
in a fixed order."""
from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass

import torch

from ..config import CONFIG_FILE, ModelConfig, TrainConfig
from ..data.batching import make_loader, shut_down_workers
from ..data.corpus import LineCorpus
from ..data.nli import TripletData, read_triplets
from ..data.sts import STSData, read_sts
from ..errors import UserError, count
from ..modeling.diffcse import DiffCSEModel
from ..modeling.discriminator import ConditionalDiscriminator
from ..modeling.heads import projection_for
from ..modeling.loading import load_encoder, load_tokenizer
from .checkpoint import Checkpoints, TrainState
from .memory import warn_if_too_big
from .metrics import METRICS_FILE, start_trackers, truncate_metrics
from .output_dir import check_free_space, clear_previous_run
from .step import TrainingStep


@dataclass
class Run:
    """What setup built and the steps, evaluation and checkpoints share: one explicit object, not a function's
    locals that closures reach into."""

    cfg: TrainConfig
    accelerator: object
    dev: STSData | None
    test: STSData | None
    tokenizer: object
    model: torch.nn.Module  # as prepared by Accelerate (DDP-wrapped under a launcher)
    raw: torch.nn.Module  # the same model unwrapped: its encoder is what best/ exports
    optimizer: object  # Accelerate's wrapper around build_optimizer's AdamW
    scheduler: object
    loader: torch.utils.data.DataLoader
    sampler: object  # the loader's ShardedBatchSampler: set_epoch(epoch, skip) places a resumed run
    step_fn: TrainingStep
    checkpoints: Checkpoints
    state: TrainState
    total_steps: int

    @property
    def best_dir(self) -> str:
        return os.path.join(self.cfg.training.output_dir, self.cfg.training.best_name)


def read_data(cfg: TrainConfig) -> tuple[LineCorpus | TripletData, STSData | None, STSData | None]:
    """Train corpus (sentences, or NLI triplets for sup-simcse), dev and test sets, each validated."""
    d = cfg.data
    corpus = read_triplets(d.train_file) if cfg.model.objective == "sup-simcse" else LineCorpus(d.train_file)
    dev = read_sts(d.dev_file) if d.dev_file else None
    test = read_sts(d.test_file) if d.test_file else None
    return corpus, dev, test


def _mixed_precision(choice: str) -> str:
    if choice != "auto":
        return choice
    return "bf16" if torch.cuda.is_available() and torch.cuda.is_bf16_supported() else "no"


def _distributed_launch_on_cpu() -> bool:
    """torchrun or `accelerate launch` on a machine without an accelerator: Accelerate then needs cpu=True to
    join the process group (gloo); without it each rank trains alone, as DistributedType.NO."""
    launched = int(os.environ.get("WORLD_SIZE", "1")) > 1 or os.environ.get("LOCAL_RANK") is not None
    has_accelerator = torch.accelerator.is_available() if hasattr(torch, "accelerator") else torch.cuda.is_available()
    return launched and not has_accelerator


def make_accelerator(cfg: TrainConfig):
    from accelerate import Accelerator

    t = cfg.training
    return Accelerator(
        mixed_precision=_mixed_precision(t.precision), gradient_accumulation_steps=t.gradient_accumulation_steps,
        log_with=cfg.trackers() or None, project_dir=t.output_dir, cpu=_distributed_launch_on_cpu(),
    )


def count_steps(cfg: TrainConfig, corpus, world: int) -> int:
    """Optimizer steps of the whole run; a corpus too small for one step is an error."""
    t = cfg.training
    batches_per_epoch = len(corpus) // t.batch_size // world
    if batches_per_epoch < t.gradient_accumulation_steps:
        what = "triplet" if isinstance(corpus, TripletData) else "sentence"
        raise UserError(f"the corpus has {count(len(corpus), what)}: fewer than one optimizer step of "
                        f"{t.batch_size} x {t.gradient_accumulation_steps} x {world} processes", path=cfg.data.train_file)
    total_steps = batches_per_epoch // t.gradient_accumulation_steps * t.epochs
    return min(total_steps, t.max_steps) if t.max_steps else total_steps


def run_keys(cfg: TrainConfig, corpus, world: int) -> dict:
    """The settings that fix the data order and what a step is (checkpoint.RUN_KEYS), as this run has them."""
    t = cfg.training
    return {"seed": t.seed, "batch_size": t.batch_size, "world_size": world, "corpus_sentences": len(corpus),
            "gradient_accumulation_steps": t.gradient_accumulation_steps, "group_by_length": cfg.data.group_by_length}


def load_checked_tokenizer(m: ModelConfig):
    tokenizer = load_tokenizer(m.model)
    if tokenizer.model_max_length and tokenizer.model_max_length < m.max_len:
        raise UserError(f"--max-len {m.max_len} exceeds the tokenizer's limit of {tokenizer.model_max_length}")
    return tokenizer


def build_model(m: ModelConfig, gradient_checkpointing: bool, compile: bool) -> DiffCSEModel:
    """Encoder, projection MLP and (diffcse) the conditional discriminator, a second copy of the encoder."""
    encoder = load_encoder(m.model)
    discriminator = ConditionalDiscriminator(load_encoder(m.model)) if m.objective == "diffcse" else None
    model = DiffCSEModel(encoder, projection_for(m.objective, encoder.config.hidden_size), m.pooler, discriminator,
                         m.before_mlp, m.padding_free, m.cpu_kernels)  # the CPU kernels' one switch
    if gradient_checkpointing:  # non-reentrant: checkpoint restores torch's RNG, so dropout masks are redrawn alike
        for backbone in (model.encoder, discriminator.backbone if discriminator is not None else None):
            if backbone is not None:
                enable = getattr(backbone, "activation_checkpointing_enable", None)  # its name since transformers 5.x
                if enable is not None:
                    enable({"use_reentrant": False})
                else:
                    backbone.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    if compile:  # in place: module names, state dicts and save_pretrained stay as they are
        model.encoder.compile(dynamic=True)
    return model


def check_resources(cfg: TrainConfig, accelerator, model: DiffCSEModel, generator) -> None:
    """Refuse a disk without room for the checkpoints; warn when a CPU step will not fit in memory."""
    m, t = cfg.model, cfg.training
    if accelerator.is_main_process:
        check_free_space(t.output_dir, sum(p.numel() for p in model.parameters()), t.save_total_limit)
    if accelerator.device.type == "cpu" and accelerator.is_local_main_process:
        frozen = sum(p.numel() for p in generator.model.parameters()) if generator is not None else 0
        warn_if_too_big(model, model.encoder.config, frozen, t.batch_size, m.max_len,
                        3 if m.objective == "sup-simcse" else 2, model.discriminator is not None,
                        t.gradient_checkpointing)


def build_optimizer(model: torch.nn.Module, lr: float, weight_decay: float) -> torch.optim.Optimizer:
    """AdamW, fused (one kernel over all parameters; CPU and CUDA), no decay on biases and norms.

    Fused also matters to the non-finite guard (nonfinite.py): its kernel reads `found_inf`."""
    params = [p for p in model.parameters() if p.requires_grad]
    groups = [{"params": [p for p in params if p.ndim >= 2], "weight_decay": weight_decay},
              {"params": [p for p in params if p.ndim < 2], "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=lr, fused=True)


def build_loader(cfg: TrainConfig, corpus, tokenizer, accelerator, cleanup: contextlib.ExitStack):
    """This process's shard of the batches; its workers are shut down however the run ends."""
    m, d, t = cfg.model, cfg.data, cfg.training
    loader, sampler = make_loader(corpus, tokenizer, t.batch_size, m.max_len, t.seed, d.group_by_length,
                                  d.num_workers, accelerator.process_index, accelerator.num_processes,
                                  pin_memory=accelerator.device.type == "cuda")
    cleanup.callback(shut_down_workers, loader)
    return loader, sampler


def _millions(n: int) -> str:
    return f"{n / 1e6:.1f}M" if n >= 100_000 else f"{n:,}"


def summary(cfg: TrainConfig, accelerator, raw: DiffCSEModel, generator, corpus, total_steps: int) -> str:
    """The start-up line: what trains on what, for how long, where."""
    m, d, t = cfg.model, cfg.data, cfg.training
    world = accelerator.num_processes
    accumulation = f" x {t.gradient_accumulation_steps} accumulated" if t.gradient_accumulation_steps > 1 else ""
    return (f"training {m.objective}: encoder {m.model} ({_millions(sum(p.numel() for p in raw.encoder.parameters()))} "
            "parameters)" + (f", generator {m.generator}" if generator is not None else "")
            + f"; corpus {d.train_file} ({count(len(corpus), 'sentence')}); {count(total_steps, 'step')} of "
            f"{t.batch_size * t.gradient_accumulation_steps * world} sentences ({t.batch_size}{accumulation} x "
            f"{count(world, 'process', 'processes')}); {accelerator.device}, "
            f"precision {'fp32' if accelerator.mixed_precision == 'no' else accelerator.mixed_precision}")


def start_or_resume(cfg: TrainConfig, accelerator, checkpoints: Checkpoints, resume_path: str | None) -> TrainState:
    """A resumed run continues the checkpoint's state and log; a fresh one clears what an old run left. Either
    saves its config (absolute paths: --resume works from any directory) and starts the trackers."""
    t = cfg.training
    state = TrainState()
    if resume_path:
        state = checkpoints.load(resume_path)
        accelerator.print(f"resumed from {resume_path} at step {state.step}")
        if accelerator.is_main_process:
            truncate_metrics(os.path.join(t.output_dir, METRICS_FILE), state.step)
    elif accelerator.is_main_process:
        clear_previous_run(t.output_dir, t.best_name)  # --overwrite-output-dir: nothing of the old run survives
    if accelerator.is_main_process:
        cfg.with_paths(os.path.abspath).save(os.path.join(t.output_dir, CONFIG_FILE))
    start_trackers(accelerator, cfg)
    return state
