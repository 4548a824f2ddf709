"""`kodiffcse data korsts`: pinned sums, reference layout, atomic writes, cache, offline download."""
from __future__ import annotations

import functools
import hashlib
import http.server
import shutil
import threading
from pathlib import Path

import pytest

from conftest import one_line_error
from kodiffcse.cli import main
from kodiffcse.data.korsts_download import SHA256, fetch_korsts

SHARED_KORSTS = Path(__file__).parents[1] / ".." / "shared" / "data" / "korsts"
needs_korsts = pytest.mark.skipif(not (SHARED_KORSTS / "sts-dev.tsv").exists(),
                                  reason="../shared/data/korsts is absent (shared data not mounted beside the repo)")


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def leftovers(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.rglob("*")) if directory.exists() else []


@needs_korsts
def test_from_local_copies_gives_pinned_sums_and_reference_layout(tmp_path, capsys):
    out = tmp_path / "korsts"
    assert main(["data", "korsts", "--out", str(out), "--from", str(SHARED_KORSTS)]) == 0
    stdout = capsys.readouterr().out
    assert "CC BY-SA 4.0" in stdout and "kakaobrain/KorNLUDatasets" in stdout
    for name, digest in SHA256.items():
        assert sha(out / name) == digest
    assert leftovers(out) == sorted([*SHA256, "valid_sts.tsv", "test_sts.tsv"])
    for ref, src, n in (("valid_sts.tsv", "sts-dev.tsv", 1500), ("test_sts.tsv", "sts-test.tsv", 1379)):
        lines = (out / ref).read_text(encoding="utf-8").split("\n")
        assert lines[-1] == "" and len(lines) - 1 == n  # no header, newline-terminated
        rows = [line.split("\t") for line in lines[:-1]]
        assert all(len(r) == 3 for r in rows)
        original = (SHARED_KORSTS / src).read_text(encoding="utf-8").rstrip("\n").split("\n")[1:]
        for row, orig in zip(rows, original):
            f = orig.split("\t")
            assert row == [f[5], f[6], f[4]]
        assert all(0.0 <= float(r[2]) <= 5.0 for r in rows)
    # a re-run is a no-op that still succeeds
    assert main(["data", "korsts", "--out", str(out), "--from", str(SHARED_KORSTS)]) == 0


@needs_korsts
def test_tampered_file_fails_and_leaves_nothing(tmp_path, capsys):
    src = tmp_path / "src"
    shutil.copytree(SHARED_KORSTS, src)
    data = bytearray((src / "sts-dev.tsv").read_bytes())
    data[200] ^= 0x01
    (src / "sts-dev.tsv").write_bytes(bytes(data))
    out = tmp_path / "out"
    err = one_line_error(capsys, ["data", "korsts", "--out", str(out), "--from", str(src)], "data")
    assert "sts-dev.tsv" in err and "sha256 mismatch" in err
    assert leftovers(out) == []
    # an existing output directory keeps only what it had
    out.mkdir()
    (out / "keep.txt").write_text("x")
    one_line_error(capsys, ["data", "korsts", "--out", str(out), "--from", str(src)], "data")
    assert leftovers(out) == ["keep.txt"]


def test_missing_from_dir_and_missing_file(tmp_path, capsys):
    err = one_line_error(capsys, ["data", "korsts", "--out", str(tmp_path / "o"), "--from", str(tmp_path / "nope")], "data")
    assert "not found" in err
    (tmp_path / "partial").mkdir()
    err = one_line_error(capsys, ["data", "korsts", "--out", str(tmp_path / "o"), "--from", str(tmp_path / "partial")], "data")
    assert "missing sts-train.tsv" in err
    assert not (tmp_path / "o").exists()


class _Server:
    """A local HTTP server for the download path (no network in tests)."""

    def __init__(self, root: Path, truncate: set[str] = frozenset()):
        truncate_names = truncate

        class Handler(http.server.SimpleHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def do_GET(self):
                name = self.path.rsplit("/", 1)[-1]
                if name in truncate_names:  # announce the full length, send half: a partial download
                    body = (root / name).read_bytes()
                    self.send_response(200)
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body[: len(body) // 2])
                    self.wfile.flush()
                    self.close_connection = True
                    return
                super().do_GET()

        handler = functools.partial(Handler, directory=str(root))
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@needs_korsts
def test_download_verifies_caches_and_reuses(tmp_path, monkeypatch, capsys):
    server = _Server(SHARED_KORSTS)
    monkeypatch.setenv("KODIFFCSE_KORSTS_URL", server.url)
    cache = tmp_path / "cache"
    try:
        fetch_korsts(tmp_path / "a", cache=cache, progress=False)
    finally:
        server.close()
    assert sorted(p.name for p in cache.iterdir()) == sorted(SHA256)
    # server gone: the cache serves the re-run
    written = fetch_korsts(tmp_path / "b", cache=cache, progress=False)
    assert sha(written["sts-train.tsv"]) == SHA256["sts-train.tsv"]


@needs_korsts
def test_partial_or_wrong_download_is_an_error_and_leaves_nothing(tmp_path, monkeypatch, capsys):
    server = _Server(SHARED_KORSTS, truncate={"sts-dev.tsv"})
    monkeypatch.setenv("KODIFFCSE_KORSTS_URL", server.url)
    cache, out = tmp_path / "cache", tmp_path / "out"
    try:
        err = one_line_error(capsys, ["data", "korsts", "--out", str(out), "--cache", str(cache), "--no-progress"], "data")
    finally:
        server.close()
    assert "sts-dev.tsv" in err and ("partial download" in err or "interrupted" in err)
    assert "sts-dev.tsv" not in leftovers(cache) and not any(n.endswith(".tmp") for n in leftovers(cache))
    assert leftovers(out) == []

    bad = tmp_path / "bad"
    shutil.copytree(SHARED_KORSTS, bad)
    (bad / "sts-test.tsv").write_bytes((bad / "sts-test.tsv").read_bytes() + b"x")
    server = _Server(bad)
    monkeypatch.setenv("KODIFFCSE_KORSTS_URL", server.url)
    try:
        err = one_line_error(capsys, ["data", "korsts", "--out", str(out), "--cache", str(cache), "--no-progress"], "data")
    finally:
        server.close()
    assert "sha256 mismatch" in err and "sts-test.tsv" in err
    assert "sts-test.tsv" not in leftovers(cache) and leftovers(out) == []
