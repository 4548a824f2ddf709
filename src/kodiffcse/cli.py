"""`kodiffcse` console entry point: one subcommand per module in kodiffcse.commands."""
from __future__ import annotations

import argparse
import importlib
import os
import sys
import threading

from . import __version__
from .atomic import as_os_error
from .console import pipe_safe_output
from .errors import UserError

# Each module defines add_parser(subparsers) and run(args); heavy imports happen inside run().
COMMANDS = ("train", "demo", "tiny", "evaluate", "data", "encode", "similarity", "search", "export")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="kodiffcse", description="Korean sentence embeddings with DiffCSE.")
    parser.add_argument("--version", action="version", version=f"kodiffcse {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMANDS:
        try:
            module = importlib.import_module(f"kodiffcse.commands.{name}")
        except ModuleNotFoundError as exc:
            if exc.name == f"kodiffcse.commands.{name}":
                continue
            raise
        module.add_parser(sub).set_defaults(_run=module.run)
    return parser


def _os_error(exc: OSError) -> str:
    where = f"{os.fsdecode(exc.filename)}: " if exc.filename else ""
    return f"{where}{exc.strerror or exc}"


def _thread_os_errors(command: str):
    """A library thread (TensorBoard's event writer) that hits the same removed dir or full disk as the main
    thread says so in one line, not a traceback; the main thread then stops with its own error line."""
    default = threading.excepthook

    def hook(args):
        if as_os_error(args.exc_value) is not None:
            print(f"kodiffcse {command}: warning: in thread {args.thread.name}: {_os_error(as_os_error(args.exc_value))}",
                  file=sys.stderr)
        else:
            default(args)
    return hook


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    threading.excepthook = _thread_os_errors(args.command)
    with pipe_safe_output():
        try:
            result = args._run(args)
        except UserError as exc:
            print(f"kodiffcse {args.command}: error: {exc}", file=sys.stderr)
            return 2
        except KeyboardInterrupt:
            print(f"kodiffcse {args.command}: interrupted", file=sys.stderr)
            return 130
        except Exception as exc:  # the system's fault, not the input's: a removed output dir, a full disk
            if as_os_error(exc) is None:
                raise
            print(f"kodiffcse {args.command}: error: {_os_error(as_os_error(exc))}", file=sys.stderr)
            return 1
        return int(result or 0)


if __name__ == "__main__":
    sys.exit(main())
