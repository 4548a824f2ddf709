"""`kodiffcse encode`: a text file (one sentence a line) to vectors in .npy or .jsonl, streamed.

Row i of the output is line i+1 of the input, blank lines included (they are encoded as empty strings), so
outputs line up with inputs. The input is read twice, never held whole: once to count and check lines (so
the .npy can be sized up front with open_memmap), then in chunks that are encoded and written. The output is
written to a temporary file beside it and renamed into place (atomic.atomic_file), so a kill never leaves half
a file.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys

from ..atomic import atomic_file
from ..data.corpus import check_text_block, check_text_file
from ..errors import UserError
from ._model import add_model_arguments, load_encoder

FORMATS = ("npy", "jsonl")
_READ = 1 << 24


def add_parser(sub):
    parser = sub.add_parser("encode", help="encode a text file (one sentence a line) to .npy or .jsonl vectors",
                            description="Encode every line of a UTF-8 text file. Row i of the output is line i+1.")
    add_model_arguments(parser)
    parser.add_argument("--input", required=True, help="UTF-8 text file, one sentence per line")
    parser.add_argument("--output", required=True, help="output file: .npy (float32 matrix) or .jsonl")
    parser.add_argument("--format", choices=FORMATS, default=None, help="default: from the output's extension")
    parser.add_argument("--no-normalize", dest="normalize", action="store_false",
                        help="write raw vectors instead of unit-length ones")
    parser.add_argument("--chunk-size", type=int, default=8192, help="sentences read and encoded at a time")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing output file")
    return parser


def count_lines(path: str) -> int:
    """Lines in the file (a last line without newline counts), checking UTF-8 and NUL bytes on the way."""
    check_text_file(path)
    lines, carry = 0, b""
    try:
        with open(path, "rb") as fh:
            while chunk := fh.read(_READ):
                data = carry + chunk
                cut = data.rfind(b"\n") + 1
                check_text_block(data[:cut], lines + 1, path)
                lines += data.count(b"\n", 0, cut)
                carry = data[cut:]
    except OSError as exc:
        raise UserError(f"cannot read: {exc.strerror}", path=path) from None
    if carry:
        check_text_block(carry, lines + 1, path)
        lines += 1
    return lines


def read_chunks(path: str, size: int):
    """Lists of at most `size` lines (split on \\n only, like count_lines), without line ends or a BOM."""
    chunk: list[str] = []
    with open(path, "rb") as fh:
        for i, raw in enumerate(fh):
            line = raw.decode("utf-8").rstrip("\n")
            line = line[:-1] if line.endswith("\r") else line
            chunk.append(line[1:] if i == 0 and line.startswith("\ufeff") else line)
            if len(chunk) == size:
                yield chunk
                chunk = []
    if chunk:
        yield chunk


def run(args: argparse.Namespace) -> int:
    import numpy as np
    from numpy.lib.format import open_memmap

    from ..errors import warn
    from ..token_ids import truncation_message
    from tqdm.auto import tqdm

    if os.path.isdir(args.output):
        raise UserError("is a directory; name an output file, e.g. emb.npy or emb.jsonl", path=args.output)
    fmt = args.format or os.path.splitext(args.output)[1].lstrip(".").lower()
    if fmt not in FORMATS:
        raise UserError(f"unknown output format {fmt!r}: name the output .npy or .jsonl, or pass --format",
                        path=args.output)
    if args.chunk_size < 1:
        raise UserError(f"--chunk-size must be at least 1, got {args.chunk_size}")
    if os.path.exists(args.output) and not args.overwrite:
        raise UserError("output exists; pass --overwrite to replace it", path=args.output)
    out_dir = os.path.dirname(os.path.abspath(args.output))
    if not os.path.isdir(out_dir):
        raise UserError("the output's folder does not exist", path=out_dir)
    total = count_lines(args.input)
    if total == 0:
        raise UserError("the input is empty", path=args.input)
    enc = load_encoder(args)
    dim = enc.model.config.hidden_size

    truncated, done = 0, 0
    with atomic_file(args.output, suffix=f".{fmt}") as tmp:  # a kill never leaves half a file
        matrix = open_memmap(tmp, mode="w+", dtype=np.float32, shape=(total, dim)) if fmt == "npy" else None
        with open(tmp, "w", encoding="utf-8") if fmt == "jsonl" else contextlib.nullcontext() as sink, \
                tqdm(total=total, desc="encoding", unit="sent", disable=None, file=sys.stderr) as bar:
            for chunk in read_chunks(args.input, args.chunk_size):
                vectors = enc.encode(chunk, batch_size=args.batch_size, normalize=args.normalize,
                                     show_progress=False, report_truncated=False)  # one total below
                truncated += enc.last_truncated
                if matrix is not None:
                    matrix[done:done + len(chunk)] = vectors
                else:
                    for text, vector in zip(chunk, vectors):
                        sink.write(json.dumps({"text": text, "embedding": [round(float(x), 7) for x in vector]},
                                              ensure_ascii=False) + "\n")
                done += len(chunk)
                bar.update(len(chunk))
        if done != total:
            raise UserError(f"the input changed while encoding ({total} lines counted, {done} read)", path=args.input)
        if matrix is not None:
            matrix.flush()
            del matrix
    if truncated:
        warn(truncation_message(truncated, total, enc.max_len))
    print(f"wrote {total} x {dim} {'unit ' if args.normalize else ''}vectors to {args.output}", file=sys.stderr)
    return 0
