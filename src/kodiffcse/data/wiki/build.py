"""Orchestrate the corpus build: parse in the main process, clean and split in worker processes,
deduplicate and write in dump order, checkpoint so an interrupted run resumes exactly.

Output order depends only on the dump, never on the number of workers.
"""
from __future__ import annotations

import collections
import json
import multiprocessing
import os
import sys
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path

from ...atomic import atomic_write
from ...errors import UserError, count
from .dump import check_dump, iter_pages
from .filters import FilterOptions, drop_reason, exact_key, loose_key, normalize
from .shuffle import shuffle_lines

STATE_VERSION = 1


@dataclass(frozen=True)
class BuildOptions:
    filters: FilterOptions = field(default_factory=FilterOptions)
    splitter: str = "kiwi"
    workers: int = 0  # 0: all cores
    shuffle: bool = False
    seed: int = 42
    pages_per_task: int = 16
    checkpoint_every: int = 2000  # pages

    def identity(self) -> dict:
        """Settings that change which lines are written; a resume must match them."""
        return {"filters": asdict(self.filters), "splitter": self.splitter}


# ---- worker side -------------------------------------------------------------------------

_SPLITTER = None


def _worker_init(splitter: str) -> None:
    global _SPLITTER
    from .split import make_splitter

    if _SPLITTER is None or _SPLITTER.name != splitter:  # model loading takes seconds: reuse it
        _SPLITTER = make_splitter(splitter)


def process_pages(batch: list[tuple[str, str | None]], splitter: str | None = None) -> list[tuple[list[str], Counter]]:
    """Clean and split a batch of pages. A page given as (reason, None) was skipped by the parser."""
    from .markup import clean_wikitext

    if _SPLITTER is None:
        _worker_init(splitter or "kiwi")
    counts_per_page: list[Counter] = []
    paragraphs_per_page: list[list[str]] = []
    for kind, text in batch:
        counts: Counter = Counter()
        paragraphs: list[str] = []
        if text is None:
            counts[kind] += 1
        else:
            counts["articles"] += 1
            paragraphs, dropped = clean_wikitext(text)
            counts.update({f"dropped_{k}": v for k, v in dropped.items()})
            counts["paragraphs"] += len(paragraphs)
            if not paragraphs:
                counts["empty_articles"] += 1
        counts_per_page.append(counts)
        paragraphs_per_page.append(paragraphs)
    # One splitter call for the whole batch: Kiwi's per-call overhead is large for short pages.
    flat = [p for ps in paragraphs_per_page for p in ps]
    split = iter(_SPLITTER.split_many(flat))
    results = []
    for counts, paragraphs in zip(counts_per_page, paragraphs_per_page):
        sentences = [normalize(s) for _ in paragraphs for s in next(split)]
        results.append((sentences, counts))
    return results


# ---- main side ---------------------------------------------------------------------------


def _paths(out: Path) -> tuple[Path, Path]:
    return out.with_name(out.name + ".part"), out.with_name(out.name + ".state.json")


def _dump_identity(dump: Path) -> dict:
    st = dump.stat()
    return {"name": dump.name, "size": st.st_size, "mtime_ns": st.st_mtime_ns}


def _check_output(out: Path) -> None:
    if out.exists() and out.is_dir():
        raise UserError("output is a directory; give a file name such as wiki_corpus.txt", path=str(out))
    parent = out.parent
    if not parent.is_dir():
        raise UserError("output directory does not exist", path=str(parent))
    if not os.access(parent, os.W_OK | os.X_OK):
        raise UserError("output directory is not writable", path=str(parent))
    if out.exists() and not os.access(out, os.W_OK):
        raise UserError("output file is not writable", path=str(out))


class _Deduper:
    """Keeps 64-bit keys of written sentences, exact and loose (normalised)."""

    def __init__(self) -> None:
        self.exact: set[int] = set()
        self.loose: set[int] = set()

    def check_and_add(self, sentence: str) -> str | None:
        e = exact_key(sentence)
        if e in self.exact:
            return "duplicate_exact"
        lk = loose_key(sentence)
        if lk in self.loose:
            return "duplicate_normalized"
        self.exact.add(e)
        self.loose.add(lk)
        return None


def _restore(part: Path, state: dict, dedup: _Deduper) -> None:
    """Cut the partial output back to the last checkpoint and reload the dedup keys from it."""
    size = state["bytes"]
    if not part.exists() or part.stat().st_size < size:
        raise UserError("partial output is shorter than its checkpoint; rerun without --resume", path=str(part))
    with open(part, "r+b") as f:
        f.truncate(size)
    with open(part, encoding="utf-8") as f:
        for line in f:
            s = line.rstrip("\n")
            dedup.exact.add(exact_key(s))
            dedup.loose.add(loose_key(s))


def _tasks(dump: Path, skip: int, per_task: int, position: list[int]):
    """Batches of (kind, text) in dump order; namespace/redirect pages carry no text to the workers."""
    from .markup import is_redirect_text

    batch: list[tuple[str, str | None]] = []
    for i, page in enumerate(iter_pages(dump, position)):
        if i < skip:
            continue
        if page.ns != 0:
            batch.append(("skipped_namespace", None))
        elif page.redirect or is_redirect_text(page.text):
            batch.append(("skipped_redirect", None))
        else:
            batch.append(("article", page.text))
        if len(batch) >= per_task:
            yield batch
            batch = []
    if batch:
        yield batch


def _ordered_results(tasks, workers: int, splitter: str, pool_holder: list):
    """Map process_pages over tasks in order with a bounded number in flight (memory stays flat)."""
    if workers <= 1:
        _worker_init(splitter)
        for batch in tasks:
            yield process_pages(batch)
        return
    # spawn: workers inherit no threads or locks (Kiwi runs native threads), same on every OS.
    # ProcessPoolExecutor, unlike Pool, fails loudly (BrokenProcessPool) if a worker dies.
    from concurrent.futures import ProcessPoolExecutor

    pool = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"),
                               initializer=_worker_init, initargs=(splitter,))
    pool_holder.append(pool)
    window: collections.deque = collections.deque()
    for batch in tasks:
        window.append(pool.submit(process_pages, batch))
        if len(window) >= workers * 4:
            yield window.popleft().result()
    while window:
        yield window.popleft().result()
    pool.shutdown()


def build_corpus(dump, out, options: BuildOptions = BuildOptions(), *, resume: bool = False,
                 progress: bool | None = None, interrupt_after: int | None = None) -> dict:
    """Build the corpus and return the report. `interrupt_after` (pages) simulates a crash in tests."""
    from tqdm import tqdm

    from .split import check_splitter

    dump = check_dump(dump)
    out = Path(out)
    _check_output(out)
    check_splitter(options.splitter, "mwparserfromhell")  # fail fast: one line naming every missing package

    part, state_path = _paths(out)
    identity = {"version": STATE_VERSION, "dump": _dump_identity(dump), "options": options.identity()}
    dedup = _Deduper()
    counts: Counter = Counter()
    skip = 0
    if resume and state_path.exists():
        try:
            state = json.loads(state_path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            raise UserError("resume state is unreadable; rerun without --resume", path=str(state_path)) from None
        if state.get("identity") != identity:
            raise UserError("resume state belongs to a different dump or different options; "
                            "rerun without --resume", path=str(state_path))
        _restore(part, state, dedup)
        counts.update(state["counts"])
        skip = state["pages"]
        print(f"resuming after {count(skip, 'page')} ({count(counts['kept'], 'sentence')} kept)", file=sys.stderr)
    elif resume:  # as `train --resume`: a typo'd --out must not silently start over
        raise UserError("--resume: nothing to resume (no interrupted build of this output); rerun without --resume",
                        path=str(out))

    try:
        fh = open(part, "ab" if skip else "wb")
    except OSError as exc:
        raise UserError(f"cannot write output: {exc.strerror}", path=str(part)) from None

    def checkpoint(pages: int) -> None:
        fh.flush()
        os.fsync(fh.fileno())
        atomic_write(state_path, json.dumps({"identity": identity, "pages": pages, "bytes": fh.tell(),
                                             "counts": dict(counts)}, ensure_ascii=False, indent=1))

    workers = options.workers or os.cpu_count() or 1
    position = [0]
    pool_holder: list = []
    pages = skip
    bar = tqdm(total=dump.stat().st_size, unit="B", unit_scale=True, desc=dump.name[:30],
               disable=(None if progress is None else not progress), mininterval=1.0, file=sys.stderr)
    finished = False
    try:
        if skip == 0:
            checkpoint(0)
        tasks = _tasks(dump, skip, options.pages_per_task, position)
        for results in _ordered_results(tasks, workers, options.splitter, pool_holder):
            lines = []
            for sentences, page_counts in results:
                counts.update(page_counts)
                counts["pages"] += 1
                pages += 1
                for s in sentences:
                    counts["sentences"] += 1
                    reason = drop_reason(s, options.filters) or dedup.check_and_add(s)
                    if reason:
                        counts[f"dropped_{reason}"] += 1
                    else:
                        counts["kept"] += 1
                        lines.append(s)
            if lines:
                fh.write(("\n".join(lines) + "\n").encode("utf-8"))
            if interrupt_after is not None and pages >= interrupt_after:
                raise KeyboardInterrupt  # simulated crash: after writing, before the checkpoint
            if pages // options.checkpoint_every != (pages - len(results)) // options.checkpoint_every:
                checkpoint(pages)
            bar.update(position[0] - bar.n)
            bar.set_postfix(pages=f"{pages:,}", sentences=f"{counts['kept']:,}", refresh=False)
        checkpoint(pages)
        finished = True
    except UserError:
        # The dump itself is bad (truncated, corrupt): resuming cannot help, so leave nothing behind.
        fh.close()
        for p in (part, state_path):
            p.unlink(missing_ok=True)
        finished = True  # nothing to resume; the error line says what is wrong
        raise
    finally:
        for pool in pool_holder:
            pool.shutdown(wait=True, cancel_futures=True)
        bar.close()
        if not fh.closed:
            fh.close()
        if not finished:
            print("stopped; rerun with --resume to continue from the last checkpoint", file=sys.stderr)

    if options.shuffle:
        shuffle_lines(part, out, seed=options.seed)
        part.unlink()
    else:
        os.replace(part, out)
    state_path.unlink(missing_ok=True)
    return make_report(counts)


DROP_LABELS = {
    "dropped_heading": "headings (lines)",
    "dropped_list_item": "list items (lines)",
    "dropped_too_short": "too short",
    "dropped_too_long": "too long",
    "dropped_markup_leftover": "markup leftovers",
    "dropped_low_hangul": "low Hangul ratio",
    "dropped_duplicate_exact": "duplicates (exact)",
    "dropped_duplicate_normalized": "duplicates (after normalisation)",
}


def make_report(counts: Counter) -> dict:
    keys = ["pages", "articles", "skipped_namespace", "skipped_redirect", "empty_articles", "paragraphs",
            "sentences", "kept"]
    report = {k: int(counts.get(k, 0)) for k in keys}
    report["dropped"] = {k[len("dropped_"):]: int(counts.get(k, 0)) for k in DROP_LABELS}
    return report


def format_report(report: dict) -> str:
    rows = [
        ("pages in dump", report["pages"]),
        ("  articles (main namespace)", report["articles"]),
        ("  skipped: other namespaces", report["skipped_namespace"]),
        ("  skipped: redirects", report["skipped_redirect"]),
        ("  articles with no prose", report["empty_articles"]),
        ("paragraphs", report["paragraphs"]),
        ("sentences after splitting", report["sentences"]),
        ("sentences kept", report["kept"]),
    ]
    rows += [(f"  dropped: {DROP_LABELS['dropped_' + k]}", v) for k, v in report["dropped"].items()]
    width = max(len(r[0]) for r in rows)
    return "\n".join(f"{name.ljust(width)}  {value:>12,}" for name, value in rows)
