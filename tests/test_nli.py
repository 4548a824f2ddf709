"""The triplet builder: KorNLI TSV (with and without a header, the train files' columns, other column orders),
plain triplet TSVs, its kept/dropped report, and one-line errors naming file and line."""
from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import pytest

from conftest import SHARED, one_line_error, train_argv
from kodiffcse.data.nli import read_triplets

XNLI = SHARED / "kornli"
needs_xnli = pytest.mark.skipif(not (XNLI / "xnli.dev.ko.tsv").exists(),
                                reason=f"shared KorNLI files not found at {XNLI} (CI has them; a fresh clone may not)")


def labelled_pairs(path: Path) -> dict[str, dict[str, list[str]]]:
    """Premise -> label -> hypotheses, read independently of the builder (a plain split of each line)."""
    out: dict[str, dict[str, list[str]]] = defaultdict(lambda: defaultdict(list))
    lines = path.read_text(encoding="utf-8").splitlines()
    for line in lines[1:]:
        s1, s2, label = (field.strip() for field in line.split("\t"))  # the builder strips outer spaces too
        out[s1][label].append(s2)
    return out


@needs_xnli
@pytest.mark.parametrize("name, pairs, premises", [("xnli.dev.ko.tsv", 2490, 830), ("xnli.test.ko.tsv", 5010, 1670)])
def test_shared_xnli_files_give_one_triplet_per_premise(name, pairs, premises):
    data = read_triplets(XNLI / name)
    assert data.layout == "nli" and len(data) == premises
    r = data.report
    assert (r["pairs"], r["premises"], r["premises_kept"], r["neutral"]) == (pairs, premises, premises, premises)
    assert sum(r["dropped"].values()) == 0 and r["unlabeled"] == r["empty"] == r["unpaired"] == 0
    truth = labelled_pairs(XNLI / name)
    anchors = [a for a, _, _ in data.triplets]
    assert len(set(anchors)) == len(anchors) == len(truth)  # every premise once
    for anchor, positive, negative in data.triplets:  # each with both of its own partners
        assert truth[anchor]["entailment"] == [positive] and truth[anchor]["contradiction"] == [negative]
    assert f"{premises:,} triplets from {pairs:,} pairs: kept {premises:,} of {premises:,} premises, dropped 0" \
        in data.summary()


ROWS = [("전제 하나.", "함의 하나.", "entailment"), ("전제 하나.", "중립 하나.", "neutral"),
        ("전제 하나.", "모순 하나.", "contradiction"), ("전제 둘.", "함의 둘.", "entailment"),
        ("전제 셋.", "모순 셋.", "contradiction"), ("전제 넷.", "중립 넷.", "neutral"), ("전제 다섯.", "무엇.", "-")]


def write(tmp_path, name, lines) -> Path:
    path = tmp_path / name
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return path


@pytest.mark.parametrize("header", [None, "sentence1\tsentence2\tgold_label", "Sentence1\tSentence2\tGold_Label"])
def test_kornli_layout_with_and_without_header(tmp_path, header):
    lines = ([header] if header else []) + ["\t".join(r) for r in ROWS]
    data = read_triplets(write(tmp_path, "nli.tsv", lines))
    assert data.triplets == [("전제 하나.", "함의 하나.", "모순 하나.")]
    r = data.report
    assert (r["premises"], r["premises_kept"], r["neutral"], r["unlabeled"]) == (5, 1, 2, 1)
    assert r["dropped"] == {"without an entailment hypothesis": 1, "without a contradiction hypothesis": 1,
                            "without an entailment or contradiction hypothesis": 2}
    assert "kept 1 of 5 premises, dropped 4 (1 without an entailment hypothesis, 1 without a contradiction " \
           "hypothesis, 2 without an entailment or contradiction hypothesis)" in data.summary()


def test_columns_found_by_name_in_any_order(tmp_path):
    """The original SNLI/MNLI releases put gold_label first and carry parse columns: columns go by name."""
    header = "gold_label\tsentence1_binary_parse\tsentence1\tsentence2\tpairID"
    lines = [header] + [f"{label}\t( x )\t{s1}\t{s2}\t{i}" for i, (s1, s2, label) in enumerate(ROWS)]
    assert read_triplets(write(tmp_path, "snli.tsv", lines)).triplets == [("전제 하나.", "함의 하나.", "모순 하나.")]


def test_several_hypotheses_per_label_pair_in_order(tmp_path):
    rows = [("P", "e1", "entailment"), ("P", "c1", "contradiction"), ("P", "e2", "entailment"),
            ("P", "c2", "contradiction"), ("P", "e3", "entailment")]
    data = read_triplets(write(tmp_path, "nli.tsv", ["\t".join(r) for r in rows]))
    assert data.triplets == [("P", "e1", "c1"), ("P", "e2", "c2")] and data.report["unpaired"] == 1


@pytest.mark.parametrize("header", [None, "sent0\tsent1\thard_neg"])
def test_plain_triplet_tsv(tmp_path, header):
    lines = ([header] if header else []) + ["앵커 하나.\t양성 하나.\t음성 하나.", "앵커 둘.\t양성 둘.\t음성 둘.",
                                            "앵커 셋.\t\t음성 셋."]
    data = read_triplets(write(tmp_path, "triplets.tsv", lines))
    assert data.layout == "triplets"
    assert data.triplets == [("앵커 하나.", "양성 하나.", "음성 하나."), ("앵커 둘.", "양성 둘.", "음성 둘.")]
    assert "2 triplets from 3 rows; dropped 1 rows with an empty field" in data.summary()


@pytest.mark.parametrize("name, lines, message", [
    ("label.tsv", ["sentence1\tsentence2\tgold_label", "가.\t나.\tentailment", "가.\t다.\tcontradict"],
     "label.tsv:3: gold_label 'contradict' is not one of entailment, neutral, contradiction"),
    ("short.tsv", ["sentence1\tsentence2\tgold_label", "가.\t나.\tentailment", "가.\tcontradiction"],
     "short.tsv:3: expected 3 tab-separated columns (sentence1, sentence2, gold_label), got 2"),
    ("header.tsv", ["sentence1\tgold_label", "가.\tentailment"], "header.tsv:1: the header lacks the sentence2 column"),
    ("two.tsv", ["가.\t나."], "two.tsv:1: expected 3 tab-separated columns"),
    ("none.tsv", ["가.\t나.\tentailment", "다.\t라.\tneutral", "가.\t마.\tentailment"],
     "none.tsv:1: no complete triplet: none of the 2 premises has both an entailment and a contradiction hypothesis"),
    ("empty_triplets.tsv", ["sent0\tsent1\thard_neg", "가.\t나.\t", "다.\t\t라."],
     "empty_triplets.tsv:2: no complete triplet: every one of the 2 rows has an empty"),
    ("corpus.txt", ["한 문장이 한 줄에 있다.", "둘째 문장."],
     "corpus.txt:1: expected 3 tab-separated columns (sentence1, sentence2, gold_label, or anchor, positive, hard "
     "negative), got 1; this looks like an unlabeled corpus"),
])
def test_bad_files_are_one_line_errors_naming_file_and_line(tiny, sample, tmp_path, capsys, name, lines, message):
    path = write(tmp_path, name, lines)
    argv = train_argv(tiny, sample, tmp_path / "out", "--objective", "sup-simcse", max_steps=1, batch_size=2)
    argv[argv.index("--train-file") + 1] = str(path)
    assert message in one_line_error(capsys, argv, "train")


def test_sup_simcse_on_the_unlabeled_sample_corpus_is_refused(tiny, sample, tmp_path, capsys):
    argv = train_argv(tiny, sample, tmp_path / "out", "--objective", "sup-simcse", max_steps=1)
    err = one_line_error(capsys, argv, "train")
    assert f"{sample['corpus']}:1: " in err and "unlabeled corpus" in err and "sup-simcse needs NLI pairs" in err


def test_hard_negative_weight_only_with_sup_simcse(tiny, sample, tmp_path, capsys):
    argv = train_argv(tiny, sample, tmp_path / "out", "--hard-negative-weight", "1", max_steps=1)
    assert "--hard-negative-weight applies to --objective sup-simcse only" in one_line_error(capsys, argv, "train")
