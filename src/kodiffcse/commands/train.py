"""`kodiffcse train`: the reference recipe by default; the reference's own option names are accepted."""
from __future__ import annotations

import argparse
import os
import sys

from ..config import (CONFIG_FILE, TrainConfig, TrainingConfig, _str2bool, add_config_arguments, config_from_args,
                      resolve_reference_paths)
from ..errors import UserError


def add_parser(sub):
    parser = sub.add_parser("train", help="train DiffCSE or SimCSE on an unlabeled corpus",
                            description="Train DiffCSE (default) or SimCSE. Defaults are the reference KoDiffCSE "
                                        "recipe. Multi-GPU: accelerate launch -m kodiffcse.cli train ... or torchrun.")
    add_config_arguments(parser)
    legacy = parser.add_argument_group("reference (KoDiffCSE main.py) options, accepted as aliases")
    legacy.add_argument("--multi_gpu", type=_str2bool, default=False, metavar="BOOL",
                        help="True: relaunch under `accelerate launch` on all visible GPUs")
    legacy.add_argument("--train", dest="legacy_train", type=_str2bool, default=True, metavar="BOOL",
                        help="must be True here (use `kodiffcse evaluate` to only test)")
    legacy.add_argument("--test", dest="legacy_test", type=_str2bool, default=None, metavar="BOOL",
                        help="True: score the best model on --test_data after training")
    legacy.add_argument("--path_to_data", default=None, metavar="DIR", help="folder that the data file names are in")
    return parser


def _relaunch_multi_gpu() -> None:
    """The reference's --multi_gpu True, mapped onto Accelerate's launcher (DDP over all visible GPUs)."""
    import shutil

    import torch

    if os.environ.get("WORLD_SIZE"):
        return
    if torch.cuda.device_count() < 2:
        print(f"--multi_gpu True: {torch.cuda.device_count()} GPU(s) visible, so this runs as one process",
              file=sys.stderr)
        return
    launcher = shutil.which("accelerate")
    if launcher is None:
        raise UserError("--multi_gpu True needs the `accelerate` command on PATH")
    argv = [launcher, "launch", "--multi_gpu", "--num_processes", str(torch.cuda.device_count()),
            "-m", "kodiffcse.cli", *sys.argv[1:]]
    os.execv(launcher, argv)


def _resumed_config(args: argparse.Namespace) -> TrainConfig | None:
    """`--resume --output-dir DIR` alone continues the run saved in DIR: its config is the base, options given
    on the command line override it, and the checkpoint refuses those that would change the data order."""
    if not (getattr(args, "resume", False) or getattr(args, "resume_from", None)):
        return None
    path = os.path.join(getattr(args, "output_dir", TrainingConfig.output_dir), CONFIG_FILE)
    if not os.path.isfile(path):
        return None
    try:
        cfg = TrainConfig.load(path)
    except (OSError, ValueError, TypeError) as exc:
        raise UserError(f"unreadable run config ({exc}); give the run's options instead", path=path) from None
    cfg.training.overwrite_output_dir = False
    return cfg


def run(args: argparse.Namespace) -> int:
    if not args.legacy_train:
        raise UserError("--train False: nothing to do here; use `kodiffcse evaluate` to test a model")
    cfg = config_from_args(args, _resumed_config(args))
    resolve_reference_paths(cfg, args.path_to_data)
    if args.legacy_test is False:
        cfg.data.test_file = None
    if args.legacy_test and not cfg.data.test_file:
        raise UserError("--test True needs --test_data (or --test-file)")
    cfg.validate()
    if args.multi_gpu:
        _relaunch_multi_gpu()
    from ..training.loop import train

    result = train(cfg)
    if result.stopped_by == "signal":
        return 128 + result.signal  # as a shell reports a process the signal ended
    if result.stopped_by == "nonfinite":
        return 1
    from accelerate import PartialState

    if PartialState().is_main_process:  # one line for a DDP run, not one per rank
        where = result.best_dir or result.output_dir
        score = f", best dev {100 * result.best_score:.2f}" if result.best_score is not None else ""
        print(f"done: {result.steps} steps ({result.stopped_by}){score}; model in {where}")
    return 0
