"""Stream pages out of a MediaWiki XML dump (bz2) without holding it in memory."""
from __future__ import annotations

import bz2
import os
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Iterator

from ...errors import UserError

BZ2_MAGIC = b"BZh"


@dataclass(frozen=True)
class Page:
    title: str
    ns: int
    text: str
    redirect: bool


def check_dump(path: str | os.PathLike) -> Path:
    """Fail early with one line for a missing, unreadable or non-bz2 dump."""
    p = Path(path)
    if not p.exists():
        raise UserError("dump file not found", path=str(p))
    if not p.is_file():
        raise UserError("dump is not a regular file", path=str(p))
    try:
        with open(p, "rb") as f:
            head = f.read(10)
    except OSError as exc:
        raise UserError(f"cannot read dump: {exc.strerror}", path=str(p)) from None
    if not head.startswith(BZ2_MAGIC):
        raise UserError("not a bz2 file (expected a pages-articles .xml.bz2 dump)", path=str(p))
    return p


class _CountingReader:
    """Wraps the compressed file so progress can be shown in compressed bytes (the size we know)."""

    def __init__(self, raw: BinaryIO):
        self.raw = raw
        self.pos = 0

    def read(self, n: int = -1) -> bytes:
        data = self.raw.read(n)
        self.pos += len(data)
        return data

    def readinto(self, b) -> int:  # bz2 uses readinto when available
        n = self.raw.readinto(b)
        self.pos += n or 0
        return n

    def readable(self) -> bool:
        return True

    def close(self) -> None:
        self.raw.close()

    @property
    def closed(self) -> bool:
        return self.raw.closed


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def iter_pages(path: str | os.PathLike, position: list[int] | None = None) -> Iterator[Page]:
    """Yield every <page> in order. `position`, if given, is updated with compressed bytes read.

    Truncated or corrupt input raises UserError, never a traceback.
    """
    p = check_dump(path)
    raw = open(p, "rb")
    counter = _CountingReader(raw)
    try:
        with bz2.open(counter, "rb") as stream:  # multi-stream dumps are handled by bz2 too
            context = ET.iterparse(stream, events=("start", "end"))
            root = None
            title, ns, text, redirect = "", 0, "", False
            for event, elem in context:
                if root is None:
                    root = elem
                    continue
                if event == "start":
                    continue
                tag = _local(elem.tag)
                if tag == "title":
                    title = elem.text or ""
                elif tag == "ns":
                    ns = int((elem.text or "0").strip() or 0)
                elif tag == "redirect":
                    redirect = True
                elif tag == "text":
                    text = elem.text or ""
                elif tag == "page":
                    if position is not None:
                        position[0] = counter.pos
                    yield Page(title=title, ns=ns, text=text, redirect=redirect)
                    title, ns, text, redirect = "", 0, "", False
                    root.clear()  # drop finished pages so memory stays flat
    except EOFError:
        raise UserError("truncated bz2 dump (compressed stream ended early); download it again",
                        path=str(p)) from None
    except OSError as exc:
        raise UserError(f"corrupt bz2 dump: {exc}", path=str(p)) from None
    except ET.ParseError as exc:
        line = exc.position[0] if getattr(exc, "position", None) else None
        raise UserError(f"malformed dump XML (decompressed line {line}): {exc.msg if hasattr(exc, 'msg') else exc}",
                        path=str(p)) from None
    finally:
        raw.close()
