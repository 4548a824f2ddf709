"""Fetch KorNLI (kakaobrain/KorNLUDatasets), verify every file against pinned digests, and write it with the
supervised-SimCSE triplets built from the two train files.

The machine-translated train files (SNLI, MultiNLI) are pinned by their git blob ids in the KorNLUDatasets
repository (SHA-1 of `blob <size>\\0` + bytes), the human-translated XNLI dev/test files by their blob ids and
SHA-256 sums. Download, cache, verification and atomic writes are those of `data korsts`
(korsts_download.py): every input is verified before the output directory is touched, every output is written
under a temporary name, checked again and renamed, so a tampered or cut-short file leaves nothing behind.
"""
from __future__ import annotations

import os
import shutil
from pathlib import Path

from ..atomic import atomic_file
from ..errors import UserError
from .korsts_download import cache_dir, download_file, file_digest, pinned_sources, prepare_output_dir
from .nli import read_triplets, write_triplets

BASE_URL = "https://raw.githubusercontent.com/kakaobrain/KorNLUDatasets/master/KorNLI"
PINS = {  # file -> {algorithm: digest}; the blob ids are those of the repository's tree (commit 0df0fe7)
    "snli_1.0_train.ko.tsv": {"git-blob": "c91761e52fca2a7420104589811346986ce94073"},
    "multinli.train.ko.tsv": {"git-blob": "94d26a9d0dd045928148ef8691a256bd0e7d45c3"},
    "xnli.dev.ko.tsv": {"git-blob": "21305150d466aa35d42b14e1890b7dcd58084634",
                        "sha256": "821fb1c1c2e538ac2724a6132da36ffa379eb9a542ceb89243b3cf711377382c"},
    "xnli.test.ko.tsv": {"git-blob": "89a0b11bffa775fafd88178b3980a1fe2d8aee52",
                         "sha256": "0db53cf8e182283a0d0404ec3fe1b15d1e29236d23d22082dc20d43067254b3e"},
}
TRAIN_FILES = ("snli_1.0_train.ko.tsv", "multinli.train.ko.tsv")
TRIPLETS = "train_triplets.tsv"  # anchor, positive, hard negative: `kodiffcse train --objective sup-simcse` reads it
LICENCE = (
    "KorNLI is licensed under CC BY-SA 4.0 (https://creativecommons.org/licenses/by-sa/4.0/).\n"
    "Attribution: Ham, Choe, Park, Choi, Oh, Kim and Kim, \"KorNLI and KorSTS: New Benchmark Datasets for\n"
    "Korean Natural Language Understanding\" (Findings of EMNLP 2020), Kakao Brain,\n"
    "https://github.com/kakaobrain/KorNLUDatasets. Translated from SNLI, MultiNLI and XNLI.\n"
    "Keep this notice with any copy or derivative you share (train_triplets.tsv is one)."
)


def check_pinned(path: Path, name: str, shown: str | None = None) -> None:
    """Refuse a file whose digests differ from the pins: altered, cut short, or another version."""
    if not Path(path).is_file():
        raise UserError(f"missing {name}", path=str(path))
    for algorithm, expected in PINS[name].items():
        got = file_digest(Path(path), algorithm)
        if got != expected:
            raise UserError(f"{algorithm} mismatch (got {got}, expected {expected}); the file is altered or "
                            "incomplete, nothing was written", path=shown or str(path))


def _cached(name: str, base_url: str, cache: Path, progress: bool | None) -> Path:
    target = cache / name
    if target.exists():
        try:
            check_pinned(target, name)
            return target
        except UserError:
            target.unlink()  # stale or damaged cache entry
    url = f"{base_url}/{name}"
    download_file(url, target, digest=PINS[name]["git-blob"], algorithm="git-blob", progress=progress)
    try:
        check_pinned(target, name, shown=url)
    except UserError:
        target.unlink(missing_ok=True)
        raise
    return target


def _copy_verified(src: Path, dest: Path, name: str) -> None:
    """Copy under a temporary name, check the copy against the pins, then rename it into place."""
    if dest.exists():
        try:
            check_pinned(dest, name)
            return  # already there
        except UserError:
            pass
    with atomic_file(dest) as tmp:
        shutil.copyfile(src, tmp)
        check_pinned(Path(tmp), name, shown=str(src))  # the source changed after it was verified


def fetch_kornli(out: Path, from_dir: Path | None = None, *, cache: Path | None = None,
                 progress: bool | None = None) -> tuple[dict[str, Path], list[str]]:
    """Verify (downloading if needed) the four files, write them to `out` with the train triplets.

    Returns the written paths and the triplet builder's one-line reports for the two train files."""
    base_url = os.environ.get("KODIFFCSE_KORNLI_URL", BASE_URL).rstrip("/")
    cache = Path(cache) if cache else cache_dir() / "kornli"
    sources = pinned_sources(PINS, from_dir, check_pinned, lambda name: _cached(name, base_url, cache, progress))
    datasets = [read_triplets(sources[name]) for name in TRAIN_FILES]  # bad rows fail before anything is written

    out = prepare_output_dir(out)
    written: dict[str, Path] = {}
    for name, src in sources.items():
        _copy_verified(src, out / name, name)
        written[name] = out / name
    write_triplets(out / TRIPLETS, (t for data in datasets for t in data.triplets))
    written[TRIPLETS] = out / TRIPLETS
    return written, [data.summary() for data in datasets]
