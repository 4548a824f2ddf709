"""What a new user trips over (issue 14): stale indexes, permissions, run dirs, resume, messages, the model card."""
from __future__ import annotations

import json
import os
import shutil
import stat

import pytest

from conftest import one_line_error
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
