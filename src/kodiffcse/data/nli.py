"""NLI pairs -> (premise, entailment hypothesis, contradiction hypothesis) triplets, as supervised SimCSE uses.

Reads the KorNLI TSV layout (`sentence1 sentence2 gold_label`, with or without a header; a header may name
more columns, in any order, as the train files and the original SNLI/MNLI releases do) and a plain
three-column triplet TSV (anchor, positive, hard negative; optional header `sent0 sent1 hard_neg`, SimCSE's
names). Like the STS readers it splits on tabs only (no CSV quoting: translated text has unbalanced quotes)
and names file and line for every bad row.

Pairs are grouped by premise text over the whole file; a premise's k-th entailment hypothesis is paired with
its k-th contradiction hypothesis (KorNLI's premises have one of each label, so this is one triplet per
premise). Neutral pairs are not used; premises without both partners are dropped and counted, by reason.
"""
from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass, field

from ..errors import UserError
from .corpus import check_text_file

LABELS = ("entailment", "neutral", "contradiction")
UNLABELED = "-"  # SNLI's "no gold label" (annotators disagreed): skipped and counted, as SimCSE does
_DROPPED = ("without an entailment hypothesis", "without a contradiction hypothesis",
            "without an entailment or contradiction hypothesis")
_PAIR_COLUMNS = {"sentence1": ("sentence1", "premise"), "sentence2": ("sentence2", "hypothesis"),
                 "gold_label": ("gold_label", "label")}
_TRIPLET_COLUMNS = {"sent0": ("sent0", "anchor"), "sent1": ("sent1", "positive"),
                    "hard_neg": ("hard_neg", "negative", "hard_negative")}


@dataclass
class TripletData:
    """Triplets in file order: `triplets[i]` is (anchor, positive, hard negative)."""

    path: str
    layout: str  # "nli" (labelled pairs) or "triplets"
    triplets: list[tuple[str, str, str]] = field(default_factory=list)
    report: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.triplets)

    def __getitem__(self, i: int) -> tuple[str, str, str]:
        return self.triplets[i]

    def summary(self) -> str:
        """One line: what was kept and what was dropped, and why."""
        r = self.report
        if self.layout == "triplets":
            text = f"{len(self):,} triplets from {r['rows']:,} rows"
            if r.get("incomplete"):
                text += f"; dropped {r['incomplete']:,} rows with an empty field"
            return f"{self.path}: {text}"
        dropped = {k: v for k, v in r["dropped"].items() if v}
        text = (f"{len(self):,} triplets from {r['pairs']:,} pairs: kept {r['premises_kept']:,} of "
                f"{r['premises']:,} premises, dropped {sum(dropped.values()):,}")
        if dropped:
            text += " (" + ", ".join(f"{n:,} {why}" for why, n in dropped.items()) + ")"
        skipped = [(n, why) for why, n in (("neutral pairs unused", r["neutral"]),
                                           ("unlabeled '-' pairs", r["unlabeled"]),
                                           ("pairs with an empty sentence", r["empty"]),
                                           ("hypotheses without a partner of the other label", r["unpaired"])) if n]
        if skipped:
            text += "; " + ", ".join(f"{n:,} {why}" for n, why in skipped)
        return f"{self.path}: {text}"


def _lines(path: str):
    check_text_file(path, "an NLI or triplet TSV")
    try:
        with open(path, "rb") as fh:
            for number, raw in enumerate(fh, start=1):
                if number == 1 and raw.startswith(b"\xef\xbb\xbf"):
                    raw = raw[3:]
                raw = raw.rstrip(b"\r\n")
                if b"\0" in raw:
                    raise UserError("NUL byte: this does not look like a text file", path=path, line=number)
                try:
                    yield number, raw.decode("utf-8")
                except UnicodeDecodeError as exc:
                    raise UserError(f"invalid UTF-8 (byte 0x{raw[exc.start]:02x})", path=path, line=number) from None
    except OSError as exc:
        raise UserError(f"cannot read: {exc.strerror}", path=path) from None


def _header_columns(fields: list[str], names: dict[str, tuple[str, ...]]) -> dict[str, int] | None:
    """Column index of each wanted column if `fields` is a header naming at least one of them, else None."""
    low = [f.strip().lower() for f in fields]
    found = {key: next((low.index(a) for a in aliases if a in low), None) for key, aliases in names.items()}
    return found if any(v is not None for v in found.values()) else None


def read_triplets(path: str | os.PathLike) -> TripletData:
    """Read a KorNLI TSV or a triplet TSV (detected from the first line) into triplets, with a report."""
    path = os.fspath(path)
    lines = ((n, text) for n, text in _lines(path) if text.strip())
    first = next(lines, None)
    if first is None:
        raise UserError("the file is empty", path=path)
    number, text = first
    fields = text.split("\t")
    header = _header_columns(fields, _PAIR_COLUMNS)
    if header is not None:
        return _read_pairs(path, lines, header, number, len(fields))
    header = _header_columns(fields, _TRIPLET_COLUMNS)
    if header is not None:
        return _read_plain(path, lines, header, number, len(fields))
    if len(fields) < 3:
        hint = ("; this looks like an unlabeled corpus (one sentence per line): sup-simcse needs NLI pairs "
                "(sentence1, sentence2, gold_label) or triplets") if len(fields) == 1 else ""
        raise UserError(f"expected 3 tab-separated columns (sentence1, sentence2, gold_label, or anchor, positive, "
                        f"hard negative), got {len(fields)}{hint}", path=path, line=number)
    if fields[2].strip().lower() in (*LABELS, UNLABELED):  # headerless KorNLI: the third column is a label
        return _read_pairs(path, _chain(first, lines), {"sentence1": 0, "sentence2": 1, "gold_label": 2}, None, 3)
    return _read_plain(path, _chain(first, lines), {"sent0": 0, "sent1": 1, "hard_neg": 2}, None, 3)


def _chain(first, rest):
    yield first
    yield from rest


def _missing(path: str, header: dict[str, int | None], line: int) -> None:
    absent = [k for k, v in header.items() if v is None]
    if absent:
        raise UserError(f"the header lacks the {', '.join(absent)} column{'s' if len(absent) > 1 else ''}",
                        path=path, line=line)


def _read_pairs(path: str, lines, columns: dict[str, int | None], header_line: int | None,
                width: int) -> TripletData:
    """Rows must have `width` fields: the header's count, or 3 without a header."""
    if header_line is not None:
        _missing(path, columns, header_line)
    s1_at, s2_at, label_at = columns["sentence1"], columns["sentence2"], columns["gold_label"]
    premises: dict[str, dict] = {}  # premise -> {"line": first line, "entailment": [...], "contradiction": [...]}
    counts = Counter()
    for number, text in lines:
        fields = text.split("\t")
        if len(fields) != width:
            raise UserError(f"expected {width} tab-separated columns (sentence1, sentence2, gold_label), "
                            f"got {len(fields)}", path=path, line=number)
        premise, hypothesis = fields[s1_at].strip(), fields[s2_at].strip()
        label = fields[label_at].strip().lower()
        counts["pairs"] += 1
        if label not in LABELS and label != UNLABELED:
            raise UserError(f"gold_label {fields[label_at].strip()[:40]!r} is not one of {', '.join(LABELS)} "
                            f"(or '{UNLABELED}', no gold label)", path=path, line=number)
        if not premise or not hypothesis:
            counts["empty"] += 1
            continue
        group = premises.setdefault(premise, {"line": number, "entailment": [], "contradiction": []})
        if label in ("neutral", UNLABELED):
            counts["neutral" if label == "neutral" else "unlabeled"] += 1
            continue
        group[label].append(hypothesis)
    triplets, dropped, unpaired = [], Counter({reason: 0 for reason in _DROPPED}), 0
    first_incomplete = None
    for premise, group in premises.items():
        ent, con = group["entailment"], group["contradiction"]
        if ent and con:
            triplets.extend((premise, e, c) for e, c in zip(ent, con))
            unpaired += abs(len(ent) - len(con))
            continue
        missing = "contradiction" if ent else "entailment" if con else "entailment or contradiction"
        dropped[f"without {'an' if missing[0] == 'e' else 'a'} {missing} hypothesis"] += 1
        if first_incomplete is None:
            first_incomplete = (group["line"], missing)
    if not triplets:
        where = first_incomplete[0] if first_incomplete else None
        detail = (f"; the first premise, at line {first_incomplete[0]}, has no {first_incomplete[1]} hypothesis"
                  if first_incomplete else "")
        raise UserError(f"no complete triplet: none of the {len(premises):,} premises has both an entailment and a "
                        f"contradiction hypothesis ({counts['pairs']:,} pairs read){detail}", path=path, line=where)
    report = {"pairs": counts["pairs"], "premises": len(premises), "premises_kept": len(premises) - sum(dropped.values()),
              "dropped": dict(dropped),
              "neutral": counts["neutral"], "unlabeled": counts["unlabeled"], "empty": counts["empty"],
              "unpaired": unpaired, "triplets": len(triplets)}
    return TripletData(path, "nli", triplets, report)


def _read_plain(path: str, lines, columns: dict[str, int | None], header_line: int | None,
                width: int) -> TripletData:
    if header_line is not None:
        _missing(path, columns, header_line)
    at = (columns["sent0"], columns["sent1"], columns["hard_neg"])
    triplets, rows, incomplete, first_incomplete = [], 0, 0, None
    for number, text in lines:
        fields = text.split("\t")
        if len(fields) != width:
            raise UserError(f"expected {width} tab-separated columns (anchor, positive, hard negative), "
                            f"got {len(fields)}", path=path, line=number)
        rows += 1
        triplet = tuple(fields[i].strip() for i in at)
        if not all(triplet):
            incomplete += 1
            first_incomplete = first_incomplete or number
            continue
        triplets.append(triplet)
    if not triplets:
        raise UserError(f"no complete triplet: every one of the {rows:,} rows has an empty anchor, positive or hard "
                        "negative" if rows else "no complete triplet: the file has a header and no rows",
                        path=path, line=first_incomplete or header_line)
    return TripletData(path, "triplets", triplets, {"rows": rows, "incomplete": incomplete, "triplets": len(triplets)})


def write_triplets(path: str | os.PathLike, triplets) -> int:
    """Write a plain three-column triplet TSV (no header), atomically; returns the number of rows."""
    from ..atomic import atomic_file

    count = 0
    with atomic_file(path) as tmp, open(tmp, "w", encoding="utf-8", newline="\n") as fh:
        for triplet in triplets:
            if any("\t" in s or "\n" in s for s in triplet):
                raise ValueError("a sentence holds a tab or a newline")
            fh.write("\t".join(triplet) + "\n")
            count += 1
    return count
