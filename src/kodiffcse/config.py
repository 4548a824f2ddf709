"""Typed training configuration: the single source of truth for the CLI, the saved config and the Python API.

The defaults are the reference KoDiffCSE recipe (klue/roberta-base + klue/roberta-small, max_len 64,
batch 128, 1 epoch, eval every 125 steps, lr 5e-5, masking 0.15, lambda 0.005, warmup 0.05, temperature 0.05).
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
from dataclasses import dataclass, field, fields
from typing import Any, get_args, get_origin

from .errors import UserError

SIMILARITIES = ("cosine", "euclidean", "manhattan", "dot")
# The scores every STS evaluation reports (x 100 in tables), and so the values --metric may name.
METRICS = tuple(f"{s}_{c}" for s in SIMILARITIES for c in ("pearson", "spearman"))
CONFIG_FILE = "kodiffcse_config.json"  # in the output dir (absolute paths, for --resume) and in best/ (basenames)


def _opt(default: Any, help: str, *, choices: tuple | None = None, aliases: tuple[str, ...] = ()) -> Any:
    return field(default=default, metadata={"help": help, "choices": choices, "aliases": aliases})


@dataclass
class ModelConfig:
    model: str = _opt("klue/roberta-base", "encoder: Hugging Face name or local dir")
    generator: str = _opt(
        "klue/roberta-small",
        "frozen MLM generator: name/dir sharing the encoder's vocabulary, or 'layers:N' to derive one "
        "from the encoder's own MLM checkpoint by keeping its first N layers",
        aliases=("--generator_name",),
    )
    objective: str = _opt("diffcse", "training objective; simcse is the baseline; sup-simcse is supervised SimCSE "
                                     "on NLI triplets (--train-file: a KorNLI or triplet TSV)",
                          choices=("diffcse", "simcse", "sup-simcse"))
    pooler: str = _opt(
        "cls_before_pooler",
        "sentence vector: CLS state (the MLP is added in training only) or mean of token states",
        choices=("cls_before_pooler", "mean"),
    )
    before_mlp: bool = _opt(False, "condition the discriminator on the vector before the MLP (official --before_mlp)")
    generator_sampling: bool = _opt(False, "sample the generator's fills instead of argmax (official: argmax)")
    max_len: int = _opt(64, "maximum tokens per sentence", aliases=("--max_len",))
    masking_ratio: float = _opt(0.15, "share of tokens the generator edits", aliases=("--masking_ratio",))
    lambda_weight: float = _opt(0.005, "weight of the replaced-token-detection loss", aliases=("--lambda_weight",))
    temperature: float = _opt(0.05, "InfoNCE temperature")
    padding_free: bool = _opt(True, "run encoder, generator and discriminator on each batch's real tokens only "
                                    "(packed, exact; the batches and their negatives stay random); false: padded")
    cpu_kernels: bool = _opt(True, "this project's CPU kernels: cheap dropout masks and one q/k/v product (exact; "
                                   "unused on GPUs); false: stock transformers modules, to debug or compare")
    hard_negative_weight: float = _opt(0.0, "sup-simcse: added to the logit of each anchor's own hard negative "
                                            "(official hard_negative_weight; 0 leaves it an ordinary negative)")


@dataclass
class DataConfig:
    train_file: str | None = _opt(None, "unlabeled corpus: UTF-8 text, one sentence per line (sup-simcse: a KorNLI "
                                        "TSV or an anchor/positive/hard-negative TSV)", aliases=("--train_data",))
    dev_file: str | None = _opt(None, "STS dev file (KorSTS TSV or sentence1<TAB>sentence2<TAB>score)",
                                aliases=("--valid_data",))
    test_file: str | None = _opt(None, "STS test file scored with the best model after training", aliases=("--test_data",))
    group_by_length: bool = _opt(False, "batch sentences of similar token count together (about 2.6x less "
                                        "padding; in-batch negatives then have similar lengths)")
    num_workers: int = _opt(2, "data loader worker processes")


@dataclass
class TrainingConfig:
    output_dir: str = _opt("output", "where checkpoints, logs and best/ go")
    overwrite_output_dir: bool = _opt(False, "start a new run in a used output dir: the old run's checkpoints, "
                                             "best model, logs and scores are deleted first")
    best_name: str = _opt("best", "name of the best-model folder inside output_dir", aliases=("--ckpt",))
    batch_size: int = _opt(128, "sentences per step per process", aliases=("--batch_size",))
    epochs: int = _opt(1, "passes over the corpus")
    max_steps: int = _opt(0, "stop after this many optimizer steps (0: run all epochs)")
    eval_steps: int = _opt(125, "dev evaluation every N optimizer steps (0: only at the end)", aliases=("--eval_steps",))
    eval_batch_size: int = _opt(256, "sentences per batch when encoding for evaluation")
    lr: float = _opt(5e-5, "peak learning rate (AdamW, linear warmup and decay)")
    warmup_ratio: float = _opt(0.05, "share of steps spent warming up", aliases=("--warmup_ratio",))
    weight_decay: float = _opt(0.0, "AdamW weight decay")
    gradient_accumulation_steps: int = _opt(1, "micro-batches per optimizer step")
    max_grad_norm: float = _opt(0.0, "clip gradients to this norm (0: off)")
    precision: str = _opt("auto", "mixed precision (auto: bf16 on a GPU that supports it, else fp32)",
                          choices=("auto", "no", "fp16", "bf16"))
    seed: int = _opt(42, "random seed for init, masks and data order")
    metric: str = _opt("cosine_spearman", "dev metric that selects the best checkpoint",
                       choices=(*METRICS, "average"))
    patience: int = _opt(0, "stop after N evaluations without improvement (0: never)")
    save_steps: int = _opt(0, "resumable checkpoint every N steps (0: at evaluations only)")
    save_total_limit: int = _opt(2, "keep the last K resumable checkpoints")
    resume: bool = _opt(False, "resume from the newest checkpoint in output_dir")
    resume_from: str | None = _opt(None, "resume from this checkpoint dir")
    skip_nonfinite: int = _opt(0, "skip up to N steps with a non-finite loss instead of stopping")
    log_with: str = _opt("tensorboard", "trackers, comma-separated: none, or any that Accelerate supports "
                                        "(tensorboard, wandb, mlflow, comet_ml, aim, clearml, dvclive, ...) and "
                                        "whose package is installed")
    compile: bool = _opt(False, "torch.compile the encoder (in place)")
    gradient_checkpointing: bool = _opt(
        False, "recompute each layer's activations in the backward pass (transformers' gradient checkpointing, "
               "encoder and discriminator): about a third more compute for a small part of the activation memory; "
               "the reference recipe needs it on a 24 GiB CPU machine")


@dataclass
class TrainConfig:
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    training: TrainingConfig = field(default_factory=TrainingConfig)

    def validate(self) -> None:
        """Refuse impossible settings before anything heavy is loaded."""
        m, d, t = self.model, self.data, self.training
        checks = [
            (t.batch_size >= 2, f"--batch-size must be at least 2 for in-batch negatives, got {t.batch_size}"),
            (m.max_len >= 4, f"--max-len must be at least 4, got {m.max_len}"),
            (0.0 < m.masking_ratio < 1.0, f"--masking-ratio must be in (0, 1), got {m.masking_ratio}"),
            (m.lambda_weight >= 0.0, f"--lambda-weight must be >= 0, got {m.lambda_weight}"),
            (m.temperature > 0.0, f"--temperature must be > 0, got {m.temperature}"),
            (t.lr > 0.0, f"--lr must be > 0, got {t.lr}"),
            (0.0 <= t.warmup_ratio < 1.0, f"--warmup-ratio must be in [0, 1), got {t.warmup_ratio}"),
            (t.epochs >= 1, f"--epochs must be at least 1, got {t.epochs}"),
            (t.max_steps >= 0, f"--max-steps must be >= 0, got {t.max_steps}"),
            (t.eval_steps >= 0, f"--eval-steps must be >= 0, got {t.eval_steps}"),
            (t.gradient_accumulation_steps >= 1, "--gradient-accumulation-steps must be at least 1"),
            (t.save_total_limit >= 1, "--save-total-limit must be at least 1"),
            (d.num_workers >= 0, "--num-workers must be >= 0"),
            (d.train_file is not None, "--train-file is required"),
            (m.objective == "sup-simcse" or m.hard_negative_weight == 0.0,
             "--hard-negative-weight applies to --objective sup-simcse only"),
            (math.isfinite(m.hard_negative_weight), "--hard-negative-weight must be finite"),
            (t.best_name and "/" not in t.best_name and t.best_name not in (".", ".."),
             f"--best-name must be a plain folder name, got {t.best_name!r}"),
        ]
        for ok, message in checks:
            if not ok:
                raise UserError(message)
        for choice in fields(ModelConfig) + fields(TrainingConfig):  # the Python API gets the CLI's choices
            allowed = choice.metadata.get("choices")
            value = getattr(m if choice in fields(ModelConfig) else t, choice.name)
            if allowed and value not in allowed:
                raise UserError(f"--{choice.name.replace('_', '-')} {value!r} is not one of {', '.join(allowed)}")
        check_trackers(self.trackers())

    def trackers(self) -> list[str]:
        return [x.strip() for x in self.training.log_with.split(",") if x.strip() and x.strip() != "none"]

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "TrainConfig":
        return cls(**{name: tp(**data.get(name, {})) for name, tp in _SECTION_TYPES.items()})

    def with_paths(self, rename) -> "TrainConfig":
        """A copy whose file and local model paths went through `rename` (Hub ids and layers:N stay): absolute
        in the run's own config, so `--resume` works from any directory; basenames in what is published."""
        copy = TrainConfig.from_dict(self.to_dict())
        for section, attr in (("model", "model"), ("model", "generator"), ("data", "train_file"),
                              ("data", "dev_file"), ("data", "test_file"), ("training", "output_dir"),
                              ("training", "resume_from")):
            value = getattr(getattr(copy, section), attr)
            if value and os.path.exists(value):
                setattr(getattr(copy, section), attr, rename(value))
        return copy

    def save(self, path: str) -> None:
        from .atomic import atomic_write

        atomic_write(path, json.dumps(self.to_dict(), ensure_ascii=False, indent=2))

    @classmethod
    def load(cls, path: str) -> "TrainConfig":
        with open(path, encoding="utf-8") as fh:
            return cls.from_dict(json.load(fh))


_SECTION_TYPES = {"model": ModelConfig, "data": DataConfig, "training": TrainingConfig}


def check_trackers(names: list[str]) -> None:
    """Accelerate only warns about a tracker it does not know or cannot import, and trains without it."""
    if not names:
        return
    import importlib.util

    from accelerate.tracking import LOGGER_TYPE_TO_CLASS

    for name in names:
        if name not in LOGGER_TYPE_TO_CLASS:
            raise UserError(f"--log-with {name!r} is not a tracker Accelerate supports; choose from "
                            f"{', '.join(sorted(LOGGER_TYPE_TO_CLASS))}, or none")
        if importlib.util.find_spec(name) is None:
            raise UserError(f"--log-with {name} needs the {name} package: pip install {name.replace('_', '-')}")


def _str2bool(value: str) -> bool:
    low = value.lower()
    if low in ("true", "1", "yes", "y"):
        return True
    if low in ("false", "0", "no", "n"):
        return False
    raise argparse.ArgumentTypeError(f"expected True or False, got {value!r}")


def _scalar_type(tp: Any) -> type:
    if isinstance(tp, str):  # postponed annotations
        tp = {"str": str, "int": int, "float": float, "bool": bool, "str | None": str}.get(tp, str)
    if get_origin(tp) is not None:
        args = [a for a in get_args(tp) if a is not type(None)]
        return args[0]
    return tp


def add_config_arguments(parser: argparse.ArgumentParser, sections: tuple[type, ...] = tuple(_SECTION_TYPES.values())) -> None:
    """Generate one option per config field, with '--kebab-case' names and the reference's aliases."""
    for section in sections:
        group = parser.add_argument_group(section.__name__)
        for f in fields(section):
            meta = f.metadata
            names = [f"--{f.name.replace('_', '-')}", *meta.get("aliases", ())]
            tp = _scalar_type(f.type)
            if tp is bool:
                group.add_argument(*names, dest=f.name, nargs="?", const=True, default=argparse.SUPPRESS,
                                   type=_str2bool, help=f"{meta['help']} (flag)")
            else:
                choices = meta.get("choices")
                allowed = f"one of {', '.join(choices)}; " if choices else ""
                group.add_argument(*names, dest=f.name, type=tp, default=argparse.SUPPRESS, choices=choices,
                                   metavar=f.name.upper(), help=f"{meta['help']} ({allowed}default: {f.default})")


def config_from_args(args: argparse.Namespace, base: TrainConfig | None = None) -> TrainConfig:
    """Overlay the options the user gave on the defaults (or on a loaded config)."""
    cfg = base or TrainConfig()
    given = vars(args)
    for section_name, section_type in _SECTION_TYPES.items():
        section = getattr(cfg, section_name)
        for f in fields(section_type):
            if f.name in given:
                setattr(section, f.name, given[f.name])
    return cfg


def resolve_reference_paths(cfg: TrainConfig, path_to_data: str | None) -> None:
    """The reference passes --path_to_data DIR plus bare file names, and --ckpt NAME.pt; map them."""
    if cfg.training.best_name.endswith(".pt"):
        cfg.training.best_name = cfg.training.best_name[: -len(".pt")]
    if not path_to_data:
        return
    for attr in ("train_file", "dev_file", "test_file"):
        value = getattr(cfg.data, attr)
        if value and not os.path.isabs(value):
            setattr(cfg.data, attr, os.path.join(path_to_data, value))
