"""Fetch the latest complete kowiki pages-articles dump from Wikimedia (users' machines only).

dumpstatus.json of each dated run lists the file, its size and SHA-1; we take the newest run whose
articles job is "done", download with HTTP Range resume into <name>.part, verify, then rename.
"""
from __future__ import annotations

import json
import os
import re
import sys
import urllib.error
import urllib.request
from pathlib import Path

from ...errors import UserError
from ..korsts_download import cache_dir, download_file, file_digest

MIRROR = "https://dumps.wikimedia.org"
WIKI = "kowiki"


def _get(url: str, timeout: float = 60) -> bytes:
    req = urllib.request.Request(url, headers={"User-Agent": "kodiffcse (https://pypi.org/project/kodiffcse)"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.read()
    except (urllib.error.URLError, OSError) as exc:
        raise UserError(f"cannot reach Wikimedia dumps: {getattr(exc, 'reason', exc)}", path=url) from None


def latest_dump(mirror: str | None = None, tries: int = 4) -> tuple[str, str, int]:
    """(url, sha1, size) of the newest finished pages-articles dump."""
    mirror = (mirror or os.environ.get("KODIFFCSE_WIKI_MIRROR") or MIRROR).rstrip("/")
    index = _get(f"{mirror}/{WIKI}/").decode("utf-8", "replace")
    dates = sorted(set(re.findall(r'href="(\d{8})/"', index)), reverse=True)
    if not dates:
        raise UserError("no dated dump directories found", path=f"{mirror}/{WIKI}/")
    for date in dates[:tries]:
        try:
            status = json.loads(_get(f"{mirror}/{WIKI}/{date}/dumpstatus.json"))
        except (UserError, ValueError):
            continue
        job = status.get("jobs", {}).get("articlesdump", {})
        name = f"{WIKI}-{date}-pages-articles.xml.bz2"
        info = job.get("files", {}).get(name)
        if job.get("status") == "done" and info and info.get("sha1"):
            url = info.get("url") or f"/{WIKI}/{date}/{name}"
            return (mirror + url if url.startswith("/") else url), info["sha1"], int(info.get("size", 0))
    raise UserError(f"no finished pages-articles dump among the latest {tries} runs", path=f"{mirror}/{WIKI}/")


def download_latest(dest_dir: Path | None = None, progress: bool | None = None) -> Path:
    """Download (or reuse) the latest dump; returns its local path."""
    dest_dir = Path(dest_dir) if dest_dir else cache_dir() / "wiki"
    url, sha1, size = latest_dump()
    dest = dest_dir / url.rsplit("/", 1)[-1]
    if dest.exists() and dest.stat().st_size == size and file_digest(dest, "sha1") == sha1:
        print(f"using cached {dest}", file=sys.stderr)
        return dest
    print(f"downloading {url} ({size / 1e6:,.0f} MB)", file=sys.stderr)
    return download_file(url, dest, digest=sha1, algorithm="sha1", resume_part=True, progress=progress)
