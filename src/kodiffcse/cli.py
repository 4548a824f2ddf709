"""`kodiffcse` console entry point: one subcommand per module in kodiffcse.commands."""
from __future__ import annotations

import argparse
import importlib
import sys

from . import __version__
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


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        result = args._run(args)
    except UserError as exc:
        print(f"kodiffcse {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"kodiffcse {args.command}: interrupted", file=sys.stderr)
        return 130
    return int(result or 0)


if __name__ == "__main__":
    sys.exit(main())
