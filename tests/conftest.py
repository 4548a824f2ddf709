"""Shared fixtures: tiny tokenizers and models built offline, saved, and loaded through from_pretrained."""
from __future__ import annotations

import os

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from pathlib import Path

import pytest

SHARED = (Path(__file__).resolve().parents[1] / ".." / "shared" / "data").resolve()
KORSTS = SHARED / "korsts"
CORPUS = SHARED / "corpus" / "ko-sentences.txt"
needs_shared = pytest.mark.skipif(not (KORSTS / "sts-dev.tsv").exists() or not CORPUS.exists(),
                                  reason=f"shared data not found at {SHARED} (CI has it; a fresh clone may not)")


@pytest.fixture(scope="session")
def sample(tmp_path_factory):
    from kodiffcse.data.sample import write_sample

    return write_sample(tmp_path_factory.mktemp("sample"), corpus_size=600, dev_size=80, test_size=80)


@pytest.fixture(scope="session")
def tiny(tmp_path_factory, sample):
    """Paths of a tiny tokenizer, RoBERTa and BERT encoders, generators, and a mismatched generator."""
    from kodiffcse.data.sample import sample_corpus
    from kodiffcse.modeling.loading import quiet_transformers
    from kodiffcse.tiny import build_mlm, build_tokenizer

    quiet_transformers()
    root = tmp_path_factory.mktemp("tiny")
    sentences = Path(sample["corpus"]).read_text(encoding="utf-8").splitlines()
    build_tokenizer(sentences, root / "tok", vocab_size=400)
    paths = {"tokenizer": str(root / "tok")}
    for arch in ("roberta", "bert"):
        build_mlm(root / "tok", root / arch, arch=arch, layers=2, hidden=32, heads=2, seed=0)
        build_mlm(root / "tok", root / f"{arch}-gen", arch=arch, layers=1, hidden=32, heads=2, seed=1)
        paths[arch], paths[f"{arch}-gen"] = str(root / arch), str(root / f"{arch}-gen")
    # A generator trained with another vocabulary: the case the reference never checked.
    build_tokenizer([s[::-1] for s in sample_corpus(300, seed=9)], root / "othertok", vocab_size=300)
    build_mlm(root / "othertok", root / "other-gen", layers=1, hidden=32, heads=2)
    paths["other-gen"] = str(root / "other-gen")
    return paths


IN_PROCESS = [
    "--num-workers", "0",  # forking 2 workers out of the pytest process costs about a second per run
    "--log-with", "none",  # TensorBoard's event files are not what these tests check
]


def train_argv(tiny, sample, out, *extra, **options):
    """`kodiffcse train` arguments for the tiny models and the sample corpus; `max_steps=4` adds
    `--max-steps 4`, and a later repeat of an option overrides an earlier one, as argparse reads it.

    For in-process runs (`main(argv)` inside pytest) only: IN_PROCESS overrides two defaults, with reasons.
    The defaults themselves run end to end, in subprocesses, in test_cli_e2e.py and test_ddp.py.
    """
    argv = ["train", "--model", tiny["roberta"], "--generator", tiny["roberta-gen"], "--train-file", sample["corpus"],
            "--output-dir", str(out), *IN_PROCESS]
    for key, value in options.items():
        argv += [f"--{key.replace('_', '-')}", str(value)]
    return argv + list(extra)


def checkpoint_params(path: str) -> dict:
    """The trained parameters saved in a checkpoint directory."""
    from safetensors.torch import load_file

    return load_file(os.path.join(path, "model.safetensors"))


def assert_same_params(a: dict, b: dict, tol: float = 1e-6) -> None:
    assert a.keys() == b.keys()
    worst = max((a[k].float() - b[k].float()).abs().max().item() for k in a)
    assert worst <= tol, f"largest parameter difference {worst:g}"


def tiny_config(tiny, sample, out_dir, **overrides):
    from kodiffcse.config import TrainConfig

    cfg = TrainConfig()
    cfg.model.model, cfg.model.generator, cfg.model.max_len = tiny["roberta"], tiny["roberta-gen"], 32
    cfg.data.train_file, cfg.data.dev_file = sample["corpus"], sample["dev"]
    t = cfg.training
    t.output_dir, t.batch_size, t.max_steps, t.eval_steps, t.lr = str(out_dir), 8, 4, 2, 1e-3  # tiny and short
    cfg.data.num_workers, t.log_with = 0, "none"  # in-process: as IN_PROCESS, for the same reasons
    for key, value in overrides.items():
        section = next(s for s in (cfg.model, cfg.data, cfg.training) if hasattr(s, key))
        setattr(section, key, value)
    return cfg


@pytest.fixture(scope="session")
def model_dir(tiny, sample, tmp_path_factory):
    """A training-style best/ dir (sentence-transformers layout, config, dev scores) of the tiny encoder."""
    from transformers import AutoModel, AutoTokenizer

    from kodiffcse.export.sentence_transformers import save_sentence_model

    out = tmp_path_factory.mktemp("export") / "run" / "best"
    cfg = tiny_config(tiny, sample, out.parent)
    scores = {"step": 2, "dev_file": sample["dev"], "scores": {"cosine_spearman": 0.4321, "cosine_pearson": 0.1234}}
    save_sentence_model(AutoModel.from_pretrained(tiny["roberta"]), AutoTokenizer.from_pretrained(tiny["roberta"]),
                        str(out), "cls_before_pooler", 32, cfg.to_dict(), scores)
    return str(out)


def one_line_error(capsys, argv, command: str) -> str:
    """Run the CLI expecting a user error: exit 2 and one stderr line, without a traceback."""
    from kodiffcse.cli import main

    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert "Traceback" not in err
    assert len(err.splitlines()) == 1, err
    assert err.startswith(f"kodiffcse {command}: error: ")
    return err
