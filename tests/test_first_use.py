"""What a new user trips over (issue 14): stale indexes, permissions, run dirs, resume, messages, the model card."""
from __future__ import annotations

import json
import os
import shutil
import stat

import pytest

from conftest import CORPUS, KORSTS, needs_shared, one_line_error
from kodiffcse.cli import main


def modes(root: str) -> set[tuple[str, int]]:
    """(kind, permission bits) of a folder and everything under it."""
    found = {("dir", stat.S_IMODE(os.stat(root).st_mode))}
    for folder, dirs, files in os.walk(root):
        found |= {("dir", stat.S_IMODE(os.stat(os.path.join(folder, d)).st_mode)) for d in dirs}
        found |= {("file", stat.S_IMODE(os.stat(os.path.join(folder, f)).st_mode)) for f in files}
    return found


@pytest.fixture
def umask_022():
    old = os.umask(0o022)
    yield
    os.umask(old)


@pytest.fixture(scope="module")
def other_model(tiny, tmp_path_factory):
    """A second sentence-transformers dir: other weights, mean pooling, max_len 16."""
    from transformers import AutoModel, AutoTokenizer

    from kodiffcse.export.sentence_transformers import save_sentence_model

    out = tmp_path_factory.mktemp("other") / "best"
    save_sentence_model(AutoModel.from_pretrained(tiny["bert"]), AutoTokenizer.from_pretrained(tiny["bert"]),
                        str(out), "mean", 16)
    return str(out)


def search_argv(model: str, index, corpus: str, *extra: str) -> list[str]:
    return ["search", "--model", model, "--index", str(index), "--corpus", corpus, "--query", "기타를 치는 남자",
            "-k", "2", "--json", *extra]


def test_an_index_is_tied_to_the_model_content_not_its_path(model_dir, other_model, sample, tmp_path, capsys,
                                                              umask_022):
    run = tmp_path / "run"
    shutil.copytree(os.path.dirname(model_dir), run)
    index = tmp_path / "idx"
    assert main(search_argv(str(run / "best"), index, sample["corpus"])) == 0
    first = capsys.readouterr().out
    assert modes(str(index)) == {("dir", 0o755), ("file", 0o644)}  # readable by others, as a mkdir's would be

    # The same model through its run dir: the index is reused.
    assert main(search_argv(str(run), index, sample["corpus"])) == 0
    assert capsys.readouterr().out == first

    # Another model at the same path: refused, not silently stale.
    shutil.rmtree(run / "best")
    shutil.copytree(other_model, run / "best")
    err = one_line_error(capsys, search_argv(str(run / "best"), index, sample["corpus"]), "search")
    assert "another model" in err and "weights" in err and "--rebuild" in err
    assert main(search_argv(str(run / "best"), index, sample["corpus"], "--rebuild")) == 0
    capsys.readouterr()
    # The same weights with another pooler make other vectors too.
    err = one_line_error(capsys, search_argv(str(run / "best"), index, sample["corpus"], "--pooler", "cls"), "search")
    assert "pooler" in err and "weights" not in err


def test_a_run_dir_overwritten_resumed_and_published(tiny, sample, tmp_path, capsys, umask_022):
    """Overwrite leaves nothing of the old run; `--resume --output-dir DIR` alone continues the new one; what
    best/ publishes is complete and holds no private path."""
    import subprocess
    import sys

    from conftest import train_argv

    out = tmp_path / "run"
    first = train_argv(tiny, sample, out, dev_file=sample["dev"], test_file=sample["test"], max_steps=6,
                       eval_steps=3, batch_size=8, max_len=32, log_with="tensorboard")
    log = tmp_path / "train.log"
    with open(log, "w") as fh:  # a log file, not a terminal
        subprocess.run([sys.executable, "-m", "kodiffcse.cli", *first], stdout=fh, stderr=subprocess.STDOUT, check=True)
    text = log.read_text(encoding="utf-8")
    assert "\r" not in text and "" not in text.splitlines(), "progress redraws or blank lines in the log"
    assert "training diffcse: encoder" in text and "(600 sentences); 6 steps of 8 sentences" in text
    assert "step 3/6: dev cosine_spearman" in text

    best = out / "best"
    card = (best / "README.md").read_text(encoding="utf-8")
    assert "| test | sts-test.tsv |" in card, "the card has the test row without `export card`"
    assert "model trained with unsupervised DiffCSE (kodiffcse) on the unlabeled corpus `corpus.txt`. It maps" in card
    for key in ("@inproceedings{chuang2022diffcse", "@inproceedings{gao2021simcse", "@misc{kodiffcse",
                "@article{ham2020kornli"):
        assert key in card
    assert "- Datasets: \n" not in card
    leaks = [f for f in best.rglob("*") if f.is_file() and str(tmp_path).encode() in f.read_bytes()]
    assert not leaks, f"a local path in what gets published: {leaks}"
    assert json.loads((best / "dev_scores.json").read_text(encoding="utf-8"))["dev_file"] == "sts-dev.tsv"
    assert json.loads((best / "kodiffcse_config.json").read_text(encoding="utf-8"))["model"]["model"] == "roberta"
    assert modes(str(out)) == {("dir", 0o755), ("file", 0o644)}, "best/ and checkpoints readable by others"
    assert os.path.isdir(out / "kodiffcse") and (out / "test_scores.json").is_file()

    second = train_argv(tiny, sample, out, "--overwrite-output-dir", dev_file=sample["dev"], max_steps=2,
                        eval_steps=2, batch_size=8, max_len=32)
    assert main(second) == 0
    assert sorted(os.listdir(out / "checkpoints")) == ["checkpoint-2"]
    assert not (out / "kodiffcse").exists() and not (out / "test_scores.json").exists(), "the old run's events/scores"
    capsys.readouterr()

    assert main(["train", "--resume", "--output-dir", str(out), "--max-steps", "4"]) == 0  # the README's command
    printed = capsys.readouterr().out
    assert f"resumed from {out / 'checkpoints' / 'checkpoint-2'} at step 2" in printed
    assert "done: 4 steps" in printed
    assert sorted(os.listdir(out / "checkpoints")) == ["checkpoint-2", "checkpoint-4"]
    assert json.loads((best / "dev_scores.json").read_text(encoding="utf-8"))["step"] in (2, 4)


def test_a_failed_train_leaves_no_empty_output_dir(tiny, sample, tmp_path, capsys):
    from conftest import train_argv

    argv = train_argv(tiny, sample, tmp_path / "out", max_steps=1)
    argv[argv.index("--model") + 1] = str(tmp_path / "no-such-model")
    assert "no such directory" in one_line_error(capsys, argv, "train")
    assert not (tmp_path / "out").exists()


def test_a_hub_name_without_network_fails_in_seconds_and_a_cached_one_loads(tiny, tmp_path):
    """No Hub (HF_ENDPOINT on a closed local port, HF_HUB_OFFLINE unset): one line that says what to do, in
    seconds instead of huggingface_hub's ~50 s of retries; a model already in the cache loads from it."""
    import subprocess
    import sys
    import time

    snapshot = tmp_path / "hub" / "models--someone--tiny" / "snapshots" / ("0" * 40)
    shutil.copytree(tiny["roberta"], snapshot)
    (snapshot.parents[1] / "refs").mkdir()
    (snapshot.parents[1] / "refs" / "main").write_text("0" * 40)
    env = {k: v for k, v in os.environ.items() if k not in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")}
    env.update(HF_ENDPOINT="http://127.0.0.1:9", HF_HUB_CACHE=str(tmp_path / "hub"))

    def kodiffcse(*argv):
        start = time.monotonic()
        done = subprocess.run([sys.executable, "-m", "kodiffcse.cli", *argv], env=env, capture_output=True,
                              text=True, timeout=60)
        return done, time.monotonic() - start

    done, seconds = kodiffcse("similarity", "--model", "someone/not-downloaded", "가", "나")
    assert done.returncode == 2 and seconds < 20, (done.returncode, seconds)
    assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr, done.stderr
    assert "Hugging Face Hub is unreachable" in done.stderr and "HF_HUB_OFFLINE=1" in done.stderr
    assert "local model dir" in done.stderr

    done, seconds = kodiffcse("similarity", "--model", "someone/tiny", "가", "나")
    assert done.returncode == 0 and seconds < 20, (done.stderr, seconds)
    assert -1.0 <= float(done.stdout) <= 1.0


def test_evaluate_keeps_what_it_scored_when_a_model_fails_and_labels_and_sizes_models(model_dir, sample, tmp_path,
                                                                                         capsys):
    a, b = tmp_path / "a", tmp_path / "b"
    for run in (a, b):
        shutil.copytree(os.path.dirname(model_dir), run)
    (b / "checkpoints").mkdir()
    (b / "checkpoints" / "optimizer.bin").write_bytes(b"\0" * 3_000_000)  # not part of the model
    out = tmp_path / "scores.json"
    argv = ["evaluate", "--model", str(a / "best"), "--model", str(tmp_path / "missing"), "--model", str(b),
            "--data", sample["dev"], "--json", str(out)]
    err = one_line_error(capsys, argv, "evaluate")
    assert "missing" in err and "no such directory" in err
    records = json.loads(out.read_text(encoding="utf-8"))["results"]
    assert [r["model"] for r in records] == [str(a / "best"), str(b)]
    assert records[0]["size_on_disk_bytes"] == records[1]["size_on_disk_bytes"] < 3_000_000
    assert main(["evaluate", "--model", str(a / "best"), "--model", str(b / "best"), "--data", sample["dev"]]) == 0
    labels = [line.split("|")[1].strip() for line in capsys.readouterr().out.splitlines()
              if line.startswith("| ") and not line.startswith("| Model") and not line.startswith("|:")]
    assert len(labels) == 2 and labels[0] != labels[1], labels


def test_training_choices_and_trackers_are_checked_up_front(tiny, sample, tmp_path, capsys):
    import importlib.util

    from conftest import tiny_config, train_argv
    from kodiffcse.errors import UserError
    from kodiffcse.training.loop import train

    with pytest.raises(SystemExit):
        main(train_argv(tiny, sample, tmp_path / "out", metric="accuracy"))
    assert "invalid choice: 'accuracy'" in capsys.readouterr().err
    with pytest.raises(UserError, match="--metric 'accuracy' is not one of cosine_pearson"):
        train(tiny_config(tiny, sample, tmp_path / "api", metric="accuracy"))  # the Python API as well
    assert not (tmp_path / "api").exists()
    err = one_line_error(capsys, train_argv(tiny, sample, tmp_path / "out", log_with="tensorboard,mlfow"), "train")
    assert "'mlfow' is not a tracker Accelerate supports" in err and "mlflow" in err
    if importlib.util.find_spec("mlflow") is None:
        err = one_line_error(capsys, train_argv(tiny, sample, tmp_path / "out", log_with="mlflow"), "train")
        assert "pip install mlflow" in err
    assert not (tmp_path / "out").exists()
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    helptext = " ".join(capsys.readouterr().out.split())
    for allowed in ("one of diffcse, simcse", "one of cls_before_pooler, mean", "one of auto, no, fp16, bf16",
                    "one of cosine_pearson, cosine_spearman,"):
        assert allowed in helptext


@needs_shared
def test_tiny_models_from_ones_own_corpus_read_real_korean_and_train(tmp_path, capsys):
    from transformers import AutoTokenizer

    from kodiffcse.data.sts import read_sts

    out = tmp_path / "models"
    assert main(["tiny", "--corpus", str(CORPUS), "--out", str(out), "--layers", "2", "--hidden", "64",
                 "--heads", "2", "--generator-layers", "1"]) == 0
    printed = capsys.readouterr().out
    assert "25,374 sentences" in printed and f"--model {out / 'encoder'} --generator {out / 'generator'}" in printed
    tokenizer = AutoTokenizer.from_pretrained(out / "encoder")
    dev = read_sts(str(KORSTS / "sts-dev.tsv"))
    ids = [i for s in dev.sentences1 for i in tokenizer(s, add_special_tokens=False)["input_ids"]]
    ids += [i for s in dev.sentences2 for i in tokenizer(s, add_special_tokens=False)["input_ids"]]
    unknown = sum(i == tokenizer.unk_token_id for i in ids) / len(ids)
    with capsys.disabled():
        print(f"KorSTS dev tokens mapped to [UNK]: {100 * unknown:.2f}%")  # the README's figure
    assert unknown < 0.01, "KorSTS text should be mostly known"
    assert "exists; pass --overwrite" in one_line_error(capsys, ["tiny", "--corpus", str(CORPUS), "--out", str(out)],
                                                        "tiny")
    assert main(["train", "--model", str(out / "encoder"), "--generator", str(out / "generator"), "--train-file",
                 str(CORPUS), "--dev-file", str(KORSTS / "sts-dev.tsv"), "--output-dir", str(tmp_path / "run"),
                 "--max-steps", "2", "--batch-size", "8", "--max-len", "32", "--num-workers", "0",
                 "--log-with", "none"]) == 0


def test_demo_refuses_an_ambiguous_data_dir_up_front_and_leaves_no_temporary_folder(sample, tmp_path, capsys,
                                                                                     monkeypatch):
    import tempfile

    data = tmp_path / "data"
    data.mkdir()
    for name in ("dev", "test"):
        shutil.copy(sample[name], data / f"sts-{name}.tsv")
    (data / "a_notes.txt").write_text("메모 한 줄.\n", encoding="utf-8")
    shutil.copy(sample["corpus"], data / "b_corpus.txt")
    out = tmp_path / "demo"
    err = one_line_error(capsys, ["demo", "--data-dir", str(data), "--output-dir", str(out)], "demo")
    assert "2 possible corpora (a_notes.txt, b_corpus.txt); name one with --corpus" in err
    err = one_line_error(capsys, ["demo", "--data-dir", str(data), "--corpus", str(data / "a_notes.txt"),
                                  "--output-dir", str(out)], "demo")
    assert "a_notes.txt: the corpus has 1 sentence, fewer than one batch of 32" in err
    assert not (out / "models").exists(), "refused before any model is built"

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    assert main(["demo", "--data-dir", str(data), "--corpus", str(data / "b_corpus.txt"), "--steps", "2",
                 "--batch-size", "8"]) == 0
    assert "pass --output-dir DIR to keep them" in capsys.readouterr().out
    assert os.listdir(tmp_path / "tmp") == []


def test_onnx_export_needs_overwrite_and_publishes_no_local_path(model_dir, tmp_path, capsys, umask_022):
    pytest.importorskip("onnxscript")
    pytest.importorskip("onnxruntime")
    out = tmp_path / "onnx"
    assert main(["export", "onnx", "--model", model_dir, "--out", str(out)]) == 0
    assert modes(str(out)) == {("dir", 0o755), ("file", 0o644)}
    assert json.loads((out / "kodiffcse_onnx.json").read_text())["source"] == "best"
    before = (out / "model.onnx").stat().st_mtime_ns
    err = one_line_error(capsys, ["export", "onnx", "--model", model_dir, "--out", str(out)], "export")
    assert "output exists; pass --overwrite" in err and (out / "model.onnx").stat().st_mtime_ns == before
    assert main(["export", "onnx", "--model", model_dir, "--out", str(out), "--overwrite", "--no-check"]) == 0


def test_messages_a_new_user_meets(tiny, sample, tmp_path, capsys, monkeypatch):
    # --version
    with pytest.raises(SystemExit):
        main(["--version"])
    from kodiffcse import __version__

    assert capsys.readouterr().out.strip() == f"kodiffcse {__version__}"
    # a KorSTS header lacking a column is named as such, not as a 3-column file
    bad = tmp_path / "sts-dev.tsv"
    bad.write_text("genre\tfilename\tyear\tid\tsentence1\tsentence2\nx\ty\t2020\t1\t가\t나\n", encoding="utf-8")
    err = one_line_error(capsys, ["evaluate", "--model", tiny["roberta"], "--data", str(bad)], "evaluate")
    assert err.endswith("sts-dev.tsv:1: header lacks column(s) score")
    # encode into a folder
    text = tmp_path / "in.txt"
    text.write_text("가\n", encoding="utf-8")
    err = one_line_error(capsys, ["encode", "--model", tiny["roberta"], "--input", str(text), "--output",
                                  str(tmp_path)], "encode")
    assert "is a directory; name an output file" in err
    # KorSTS without network points at --from
    monkeypatch.setenv("KODIFFCSE_KORSTS_URL", "http://127.0.0.1:9")
    err = one_line_error(capsys, ["data", "korsts", "--out", str(tmp_path / "k"), "--cache", str(tmp_path / "c"),
                                  "--no-progress"], "data")
    assert "download failed" in err and "pass --from DIR" in err
    # singular counts
    one = tmp_path / "one.txt"
    one.write_text("한 문장.\n", encoding="utf-8")
    assert main(["search", "--model", tiny["roberta"], "--corpus", str(one), "--query", "문장", "--index",
                 str(tmp_path / "idx")]) == 0
    assert "saved the index (1 sentence) to" in capsys.readouterr().err


def test_multi_gpu_without_two_gpus_says_so(tiny, sample, tmp_path, capsys):
    import torch

    from conftest import train_argv

    if torch.cuda.device_count() >= 2:
        pytest.skip("relaunches under accelerate on this machine")
    assert main(train_argv(tiny, sample, tmp_path / "out", "--multi_gpu", "True", max_steps=1, batch_size=4,
                           max_len=16)) == 0
    err = capsys.readouterr().err
    assert f"--multi_gpu True: {torch.cuda.device_count()} GPU(s) visible, so this runs as one process" in err
