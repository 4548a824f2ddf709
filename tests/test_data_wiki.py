"""`kodiffcse data wiki`: markup cleaning, filters, dedup, resume, workers and one-line errors.

Uses small synthetic dumps written here (no network, no real dump)."""
from __future__ import annotations

import bz2
import importlib.util
import json
import os
from pathlib import Path

import pytest

from conftest import one_line_error
from kodiffcse.cli import main

pytest.importorskip("mwparserfromhell", reason="needs the wiki extra: pip install -e '.[wiki]'")
pytest.importorskip("kiwipiepy", reason="needs the wiki extra: pip install -e '.[wiki]'")

from kodiffcse.data.wiki.build import BuildOptions, build_corpus  # noqa: E402
from kodiffcse.data.wiki.synthetic import write_dump  # noqa: E402

PAGES = [
    {"title": "서울", "text": """{{다른 뜻|서울 (동음이의)}}
{{정보상자 도시
| 이름 = 서울특별시
| 인구 = 9,400,000
}}
'''서울특별시'''(서울特別市)는 [[대한민국]]의 [[수도]]이자 최대 도시이다.<ref>{{웹 인용|url=https://example.org|제목=통계}}</ref> 서울은 [[한강 (강)|한강]]을 끼고 발달하였다.<ref name="a" /> 서울에는 약 940만 명이 살고 있다.<!-- 숨은 주석은 버린다. -->
__TOC__
== 역사 ==
서울은 [[조선]]의 도읍으로 정해진 뒤 오랫동안 나라의 중심이었다.&nbsp;1945년 이후 서울은 급격히 성장하였다.
* 목록 항목은 문장이 아니므로 버려야 한다.
# 번호 목록도 버려야 하는 조각이다.
{| class="wikitable"
|-
! 구 !! 인구
|-
| 표 안의 내용은 버려야 하는 문장이다. || 100
|}
[[파일:Seoul.jpg|섬네일|사진 설명은 말뭉치에 들어가면 안 된다.]]
[https://seoul.go.kr 서울특별시 누리집]에서 더 많은 정보를 찾을 수 있다.
<math>E = mc^2</math>
[[분류:대한민국의 도시]]
[[en:Seoul]]"""},
    {"title": "부산", "text": """'''부산광역시'''는 대한민국 남동부에 있는 항구 도시이다.
서울은 [[한강 (강)|한강]]을 끼고 발달하였다. 서울은  한강을 끼고 발달하였다!
짧은 문장.
This sentence is written entirely in English words.
부산은 {{lang|en|Busan}}이라고도 쓰며 바다가 아름다운 도시이다."""},
    {"title": "서울특별시", "text": "#넘겨주기 [[서울]]", "redirect": "서울"},
    {"title": "서울시", "text": "#REDIRECT [[서울]]"},
    {"title": "틀:도시", "ns": 10, "text": "틀 이름공간의 문장은 말뭉치에 들어가면 안 된다."},
    {"title": "위키백과:사랑방", "ns": 4, "text": "프로젝트 문서의 문장도 들어가면 안 된다."},
]

EXPECTED = [
    "서울특별시(서울特別市)는 대한민국의 수도이자 최대 도시이다.",
    "서울은 한강을 끼고 발달하였다.",
    "서울에는 약 940만 명이 살고 있다.",
    "서울은 조선의 도읍으로 정해진 뒤 오랫동안 나라의 중심이었다.",
    "1945년 이후 서울은 급격히 성장하였다.",
    "서울특별시 누리집에서 더 많은 정보를 찾을 수 있다.",
    "부산광역시는 대한민국 남동부에 있는 항구 도시이다.",
    "부산은 Busan이라고도 쓰며 바다가 아름다운 도시이다.",
]


@pytest.fixture(scope="module")
def small_dump(tmp_path_factory) -> Path:
    return write_dump(tmp_path_factory.mktemp("dump") / "kowiki-test-pages-articles.xml.bz2", PAGES)


def big_pages(n: int = 45) -> list[dict]:
    """Unique sentences, a few repeats, redirects and other namespaces, in an order resume must keep."""
    pages = []
    for i in range(n):
        if i % 9 == 4:
            pages.append({"title": f"틀:{i}", "ns": 10, "text": f"틀 {i}번의 문장은 들어가면 안 된다."})
        elif i % 11 == 6:
            pages.append({"title": f"넘겨주기{i}", "text": f"#넘겨주기 [[문서{i - 1}]]", "redirect": f"문서{i - 1}"})
        else:
            body = " ".join(f"{i}번 문서의 {j}번째 문장은 [[합성]]된 한국어 문장이다." for j in range(4))
            repeat = "모든 문서에 되풀이되는 이 문장은 한 번만 남아야 한다."
            pages.append({"title": f"문서{i}", "text": f"== 개요 ==\n{body}\n{repeat}\n* 목록 조각 {i}번이다."})
    return pages


def test_synthetic_dump_yields_exactly_the_expected_sentences(small_dump, tmp_path, capsys):
    out = tmp_path / "wiki_corpus.txt"
    report_path = tmp_path / "report.json"
    assert main(["data", "wiki", "--dump", str(small_dump), "--out", str(out), "--workers", "1",
                 "--report", str(report_path)]) == 0
    assert out.read_text(encoding="utf-8").split("\n") == EXPECTED + [""]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report.json", "wiki_corpus.txt"]  # no work files left
    report = json.loads(report_path.read_text(encoding="utf-8"))
    assert report["pages"] == 6 and report["articles"] == 2 and report["kept"] == len(EXPECTED)
    assert report["skipped_namespace"] == 2 and report["skipped_redirect"] == 2
    assert report["dropped"] == {"heading": 1, "list_item": 2, "too_short": 1, "too_long": 0,
                                 "markup_leftover": 0, "low_hangul": 1, "duplicate_exact": 1,
                                 "duplicate_normalized": 1}
    stdout = capsys.readouterr().out
    assert "sentences kept" in stdout and "duplicates (exact)" in stdout


def test_output_is_nfc(tmp_path):
    import unicodedata

    decomposed = unicodedata.normalize("NFD", "한글 자모가 분해된 채로 적힌 문장이다.")
    dump = write_dump(tmp_path / "d.xml.bz2", [{"title": "가", "text": decomposed}])
    out = tmp_path / "o.txt"
    build_corpus(dump, out, BuildOptions(workers=1), progress=False)
    assert out.read_text(encoding="utf-8") == unicodedata.normalize("NFC", decomposed) + "\n"


def test_resume_after_interruption_matches_uninterrupted_run(tmp_path):
    dump = write_dump(tmp_path / "kowiki-big.xml.bz2", big_pages())
    options = BuildOptions(workers=1, checkpoint_every=4, pages_per_task=3)
    whole = tmp_path / "whole.txt"
    report_whole = build_corpus(dump, whole, options, progress=False)

    out = tmp_path / "resumed.txt"
    for stop in (10, 23):  # crash twice, each time after writing lines past the last checkpoint
        with pytest.raises(KeyboardInterrupt):
            build_corpus(dump, out, options, resume=stop != 10, progress=False, interrupt_after=stop)
        assert not out.exists()
        assert Path(str(out) + ".state.json").exists()
    report = build_corpus(dump, out, options, resume=True, progress=False)
    assert out.read_bytes() == whole.read_bytes()
    assert report == report_whole
    lines = out.read_text(encoding="utf-8").splitlines()
    assert len(lines) == len(set(lines)) and "모든 문서에 되풀이되는 이 문장은 한 번만 남아야 한다." in lines
    assert not Path(str(out) + ".state.json").exists() and not Path(str(out) + ".part").exists()


def test_resume_refuses_state_from_other_options(tmp_path, capsys):
    dump = write_dump(tmp_path / "kowiki-big.xml.bz2", big_pages(12))
    out = tmp_path / "o.txt"
    with pytest.raises(KeyboardInterrupt):
        build_corpus(dump, out, BuildOptions(workers=1, checkpoint_every=2, pages_per_task=2),
                     progress=False, interrupt_after=6)
    capsys.readouterr()
    err = one_line_error(capsys, ["data", "wiki", "--dump", str(dump), "--out", str(out), "--resume",
                                  "--min-chars", "20", "--workers", "1"], "data")
    assert "different dump or different options" in err


def test_workers_and_shuffle_are_deterministic(tmp_path):
    dump = write_dump(tmp_path / "kowiki-big.xml.bz2", big_pages(30))
    one, two = tmp_path / "one.txt", tmp_path / "two.txt"
    build_corpus(dump, one, BuildOptions(workers=1, pages_per_task=2), progress=False)
    build_corpus(dump, two, BuildOptions(workers=2, pages_per_task=2), progress=False)
    assert one.read_bytes() == two.read_bytes()
    s1, s2 = tmp_path / "s1.txt", tmp_path / "s2.txt"
    build_corpus(dump, s1, BuildOptions(workers=1, shuffle=True, seed=7), progress=False)
    build_corpus(dump, s2, BuildOptions(workers=1, shuffle=True, seed=7), progress=False)
    assert s1.read_bytes() == s2.read_bytes() != one.read_bytes()
    assert sorted(s1.read_text(encoding="utf-8").splitlines()) == sorted(one.read_text(encoding="utf-8").splitlines())


def test_shuffle_with_many_buckets_keeps_every_line(tmp_path):
    from kodiffcse.data.wiki.shuffle import shuffle_lines

    src = tmp_path / "src.txt"
    src.write_text("".join(f"문장 {i}\n" for i in range(5000)), encoding="utf-8")
    dst = tmp_path / "dst.txt"
    shuffle_lines(src, dst, seed=1, bucket_bytes=4096)
    assert sorted(dst.read_text(encoding="utf-8").splitlines()) == sorted(src.read_text(encoding="utf-8").splitlines())
    assert dst.read_bytes() != src.read_bytes()


# ---- one-line errors ---------------------------------------------------------------------------


def test_not_bz2(tmp_path, capsys):
    bad = tmp_path / "kowiki.xml.bz2"
    bad.write_text("<mediawiki></mediawiki>", encoding="utf-8")
    err = one_line_error(capsys, ["data", "wiki", "--dump", str(bad), "--out", str(tmp_path / "o.txt")], "data")
    assert "not a bz2 file" in err


def test_truncated_bz2_leaves_nothing(small_dump, tmp_path, capsys):
    data = small_dump.read_bytes()
    cut = tmp_path / "cut.xml.bz2"
    cut.write_bytes(data[: len(data) * 2 // 3])
    out = tmp_path / "o.txt"
    err = one_line_error(capsys, ["data", "wiki", "--dump", str(cut), "--out", str(out), "--workers", "1"], "data")
    assert "truncated" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cut.xml.bz2"]


def test_malformed_xml(tmp_path, capsys):
    bad = tmp_path / "bad.xml.bz2"
    bad.write_bytes(bz2.compress("<mediawiki><page><title>가</page></mediawiki>".encode()))
    err = one_line_error(capsys, ["data", "wiki", "--dump", str(bad), "--out", str(tmp_path / "o.txt"),
                                  "--workers", "1"], "data")
    assert "malformed dump XML" in err


def test_missing_dump(tmp_path, capsys):
    err = one_line_error(capsys, ["data", "wiki", "--dump", str(tmp_path / "nope.xml.bz2"),
                                  "--out", str(tmp_path / "o.txt")], "data")
    assert "not found" in err


def test_unwritable_output(small_dump, tmp_path, capsys):
    afile = tmp_path / "afile"
    afile.write_text("x")
    err = one_line_error(capsys, ["data", "wiki", "--dump", str(small_dump), "--out", str(afile / "o.txt")], "data")
    assert "output directory does not exist" in err
    err = one_line_error(capsys, ["data", "wiki", "--dump", str(small_dump), "--out", str(tmp_path)], "data")
    assert "is a directory" in err
    if os.geteuid() != 0:  # root may write anywhere
        locked = tmp_path / "locked"
        locked.mkdir(mode=0o500)
        err = one_line_error(capsys, ["data", "wiki", "--dump", str(small_dump), "--out", str(locked / "o.txt")], "data")
        assert "not writable" in err


def test_missing_extra_names_the_package(small_dump, tmp_path, capsys, monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "kiwipiepy" else real(name, *a))
    err = one_line_error(capsys, ["data", "wiki", "--dump", str(small_dump), "--out", str(tmp_path / "o.txt")], "data")
    assert "kiwipiepy" in err and "pip install" in err


def test_all_missing_extras_are_named_in_one_line(small_dump, tmp_path, capsys, monkeypatch):
    real = importlib.util.find_spec
    missing = {"kiwipiepy", "kiwipiepy_model", "mwparserfromhell"}
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name in missing else real(name, *a))
    err = one_line_error(capsys, ["data", "wiki", "--dump", str(small_dump), "--out", str(tmp_path / "o.txt")], "data")
    assert "packages 'mwparserfromhell', 'kiwipiepy', 'kiwipiepy_model' are required" in err
    assert "pip install mwparserfromhell kiwipiepy kiwipiepy_model" in err


def test_existing_output_and_nothing_to_resume_follow_the_train_rules(small_dump, tmp_path, capsys):
    out = tmp_path / "o.txt"
    argv = ["data", "wiki", "--dump", str(small_dump), "--out", str(out), "--workers", "1", "--no-progress"]
    assert "nothing to resume" in one_line_error(capsys, argv + ["--resume"], "data")
    assert not out.exists()
    assert main(argv) == 0
    first = out.read_bytes()
    assert "output exists; pass --overwrite" in one_line_error(capsys, argv, "data")
    assert main(argv + ["--overwrite"]) == 0 and out.read_bytes() == first


def test_download_latest_from_a_local_mirror(small_dump, tmp_path, monkeypatch, capsys):
    """The --download path against a stand-in for dumps.wikimedia.org (no network)."""
    import functools
    import hashlib
    import http.server
    import threading

    root = tmp_path / "mirror"
    for date, done in (("20990101", False), ("20981201", True)):
        d = root / "kowiki" / date
        d.mkdir(parents=True)
        name = f"kowiki-{date}-pages-articles.xml.bz2"
        (d / name).write_bytes(small_dump.read_bytes())
        status = {"jobs": {"articlesdump": {"status": "done" if done else "in-progress", "files": {name: {
            "url": f"/kowiki/{date}/{name}", "size": small_dump.stat().st_size,
            "sha1": hashlib.sha1(small_dump.read_bytes()).hexdigest()}}}}}
        (d / "dumpstatus.json").write_text(json.dumps(status))
    (root / "kowiki" / "index.html").write_text('<a href="20981201/">20981201/</a> <a href="20990101/">20990101/</a>')

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *a):
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(root)))
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    monkeypatch.setenv("KODIFFCSE_WIKI_MIRROR", f"http://127.0.0.1:{httpd.server_address[1]}")
    out = tmp_path / "wiki_corpus.txt"
    try:
        assert main(["data", "wiki", "--download", "--dump-dir", str(tmp_path / "dumps"), "--out", str(out),
                     "--workers", "1", "--no-progress"]) == 0
    finally:
        httpd.shutdown()
        httpd.server_close()
    assert [p.name for p in (tmp_path / "dumps").iterdir()] == ["kowiki-20981201-pages-articles.xml.bz2"]
    assert out.read_text(encoding="utf-8").split("\n") == EXPECTED + [""]
    # no mirror reachable now: a one-line error, not a traceback
    capsys.readouterr()
    monkeypatch.setenv("KODIFFCSE_WIKI_MIRROR", "http://127.0.0.1:9")
    err = one_line_error(capsys, ["data", "wiki", "--download", "--out", str(tmp_path / "other.txt")], "data")
    assert "cannot reach Wikimedia dumps" in err
