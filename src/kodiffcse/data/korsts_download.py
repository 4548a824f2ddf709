"""Fetch KorSTS (kakaobrain/KorNLUDatasets), verify pinned SHA-256 sums, and write the
reference layout (valid_sts.tsv / test_sts.tsv: sentence1<TAB>sentence2<TAB>score, no header).

Every file is written to a temporary name and moved into place with os.replace, so an interrupted
or failed run never leaves a half-written file. Downloads are cached and reused.
"""
from __future__ import annotations

import hashlib
import os
import sys
import urllib.error
import urllib.request
from pathlib import Path

from ..atomic import atomic_write, temp_beside
from ..errors import UserError

BASE_URL = "https://raw.githubusercontent.com/kakaobrain/KorNLUDatasets/master/KorSTS"
SHA256 = {
    "sts-train.tsv": "b5aaa7f957d6ff46f4b6834a8b0f024a9234a6eefe9289aed66746b4533da3b8",
    "sts-dev.tsv": "d835b65b424401fbcce6be28a78159df8d61f5b19977ea7a0b83b8cb6105f393",
    "sts-test.tsv": "13f83a3440d9db52d134eb40303ce021b03264aa338fbf2871c8786ce04d2105",
}
REFERENCE_LAYOUT = {"valid_sts.tsv": "sts-dev.tsv", "test_sts.tsv": "sts-test.tsv"}
HEADER = ["genre", "filename", "year", "id", "score", "sentence1", "sentence2"]
LICENCE = (
    "KorSTS is licensed under CC BY-SA 4.0 (https://creativecommons.org/licenses/by-sa/4.0/).\n"
    "Attribution: Ham, Choe, Park, Choi, Oh, Kim and Kim, \"KorNLI and KorSTS: New Benchmark Datasets for\n"
    "Korean Natural Language Understanding\" (Findings of EMNLP 2020), Kakao Brain,\n"
    "https://github.com/kakaobrain/KorNLUDatasets. Derived from STS-B (SemEval STS 2012-2017).\n"
    "Keep this notice with any copy or derivative you share."
)
CHUNK = 1 << 16


def cache_dir() -> Path:
    """$KODIFFCSE_CACHE, else $XDG_CACHE_HOME/kodiffcse, else ~/.cache/kodiffcse."""
    if os.environ.get("KODIFFCSE_CACHE"):
        return Path(os.environ["KODIFFCSE_CACHE"])
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "kodiffcse"


def file_digest(path: Path, algorithm: str = "sha256") -> str:
    """Hex digest of a file; "git-blob" is git's blob id, SHA-1 of `blob <size>\\0` and the bytes, so a file
    can be checked against the id a repository lists for it."""
    if algorithm == "git-blob":
        h = hashlib.sha1(b"blob %d\0" % os.path.getsize(path))
    else:
        h = hashlib.new(algorithm)
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(CHUNK), b""):
            h.update(chunk)
    return h.hexdigest()


def download_file(url: str, dest: Path, *, digest: str, algorithm: str = "sha256",
                  resume_part: bool = False, progress: bool | None = None, timeout: float = 60) -> Path:
    """Download url to dest, checking length and digest; dest appears only when both are right.

    With resume_part, bytes already in dest.part are kept and the rest is requested with Range
    (large Wikipedia dumps); otherwise the download starts from zero in a fresh temp file.
    """
    from tqdm import tqdm

    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part") if resume_part else Path(temp_beside(dest, ".tmp"))
    have = part.stat().st_size if resume_part and part.exists() else 0
    request = urllib.request.Request(url, headers={"User-Agent": "kodiffcse (https://pypi.org/project/kodiffcse)"})
    if have:
        request.add_header("Range", f"bytes={have}-")
    try:
        try:
            response = urllib.request.urlopen(request, timeout=timeout)
        except urllib.error.HTTPError as exc:
            if exc.code == 416 and have:  # already complete
                response = None
            else:
                raise
        if response is not None:
            with response:
                if have and response.status != 206:
                    have = 0  # server ignored Range: start over
                length = response.headers.get("Content-Length")
                expected = have + int(length) if length is not None else None
                with open(part, "ab" if have else "wb") as f, tqdm(
                    total=expected, initial=have, unit="B", unit_scale=True, desc=dest.name[:30],
                    disable=(None if progress is None else not progress), file=sys.stderr,
                ) as bar:
                    for chunk in iter(lambda: response.read(CHUNK), b""):
                        f.write(chunk)
                        bar.update(len(chunk))
                size = part.stat().st_size
                if expected is not None and size != expected:
                    raise UserError(f"partial download: got {size:,} of {expected:,} bytes; run again", path=url)
    except urllib.error.URLError as exc:
        if not resume_part:
            part.unlink(missing_ok=True)
        raise UserError(f"download failed: {getattr(exc, 'reason', exc)}", path=url) from None
    except (OSError, ValueError) as exc:  # connection reset, timeouts, incomplete reads
        if not resume_part:
            part.unlink(missing_ok=True)
        raise UserError(f"download interrupted: {exc}; run again", path=url) from None
    except BaseException:
        if not resume_part:
            part.unlink(missing_ok=True)
        raise
    got = file_digest(part, algorithm)
    if got != digest:
        part.unlink(missing_ok=True)
        raise UserError(f"{algorithm} mismatch (got {got}, expected {digest}); nothing was kept", path=url)
    os.replace(part, dest)
    return dest


def _verify(path: Path, name: str) -> None:
    if not path.is_file():
        raise UserError(f"missing {name}", path=str(path))
    got = file_digest(path)
    if got != SHA256[name]:
        raise UserError(f"sha256 mismatch (got {got}, expected {SHA256[name]}); the file is altered or "
                        "incomplete, nothing was written", path=str(path))


def _cached(name: str, base_url: str, cache: Path, progress: bool | None) -> Path:
    target = cache / name
    if target.exists():
        if file_digest(target) == SHA256[name]:
            return target
        target.unlink()  # stale or damaged cache entry
    return download_file(f"{base_url}/{name}", target, digest=SHA256[name], progress=progress)


def prepare_output_dir(out: Path) -> Path:
    """Create the output directory (only once every input is verified), with one-line errors."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise UserError("output exists and is not a directory", path=str(out))
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(f"cannot create output directory: {exc.strerror}", path=str(out)) from None
    if not os.access(out, os.W_OK | os.X_OK):
        raise UserError("output directory is not writable", path=str(out))
    return out


def parse_rows(path: Path) -> list[tuple[str, str, str]]:
    """(sentence1, sentence2, score) rows. Split on tabs only: the data has unbalanced quotes."""
    rows = []
    with open(path, encoding="utf-8", newline="") as f:
        for lineno, line in enumerate(f, start=1):
            line = line.rstrip("\r\n")
            if not line:
                continue
            fields = line.split("\t")
            if lineno == 1:
                if fields != HEADER:
                    raise UserError(f"unexpected header {fields}", path=str(path), line=1)
                continue
            if len(fields) != 7:
                raise UserError(f"expected 7 tab-separated fields, got {len(fields)}", path=str(path), line=lineno)
            rows.append((fields[5], fields[6], fields[4]))
    return rows


def pinned_sources(names, from_dir: Path | None, verify, download) -> dict[str, Path]:
    """Each pinned file, from `--from DIR` (verified there) or from the cache, downloading what is missing."""
    if from_dir is None:
        return {name: download(name) for name in names}
    from_dir = Path(from_dir)
    if not from_dir.is_dir():
        raise UserError("--from directory not found", path=str(from_dir))
    for name in names:
        verify(from_dir / name, name)
    return {name: from_dir / name for name in names}


def fetch_korsts(out: Path, from_dir: Path | None = None, *, cache: Path | None = None,
                 progress: bool | None = None) -> dict[str, Path]:
    """Verify (and if needed download) all three files, then write them and the reference layout to out."""
    base_url = os.environ.get("KODIFFCSE_KORSTS_URL", BASE_URL).rstrip("/")
    cache = Path(cache) if cache else cache_dir() / "korsts"

    def download(name: str) -> Path:
        try:
            return _cached(name, base_url, cache, progress)
        except UserError as exc:
            if "download" not in str(exc):
                raise
            raise UserError(f"{exc}; without network, pass --from DIR holding local copies of "
                            f"{', '.join(SHA256)}") from None

    sources = pinned_sources(SHA256, from_dir, _verify, download)

    # All inputs verified: only now touch the output directory, each file written atomically.
    out = prepare_output_dir(out)
    written: dict[str, Path] = {}
    for name, src in sources.items():
        data = src.read_bytes()
        if hashlib.sha256(data).hexdigest() != SHA256[name]:  # changed since verification
            raise UserError("sha256 mismatch after verification; the file changed while reading", path=str(src))
        dest = out / name
        if not (dest.exists() and file_digest(dest) == SHA256[name]):
            atomic_write(dest, data)
        written[name] = dest
    for ref_name, name in REFERENCE_LAYOUT.items():
        rows = parse_rows(written[name])
        text = "".join(f"{s1}\t{s2}\t{score}\n" for s1, s2, score in rows)
        atomic_write(out / ref_name, text.encode("utf-8"))
        written[ref_name] = out / ref_name
    return written
