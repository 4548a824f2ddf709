"""Korean sentence splitting behind one small interface, so the build and the benchmark share it.

Kiwi (kiwipiepy) is the default: its model ships in the `kiwipiepy_model` wheel, so it works
offline, and it was faster than kss on our measurements (docs/design.md).
kss is kept as an alternative for comparison only; it is not a dependency.
"""
from __future__ import annotations

import importlib.util
from typing import Callable, Iterable

from ...errors import UserError

SPLITTERS = ("kiwi", "kss")

# Splitters call their own C++ code with long paragraphs; cap the input so a pathological page
# (a single 1 MB line) cannot stall a worker.
MAX_PARAGRAPH_CHARS = 20_000


def require(*packages: str) -> None:
    """Fail with one line naming every missing optional package (the module names are the pip names)."""
    missing = [p for p in packages if importlib.util.find_spec(p) is None]
    if missing:
        names = ", ".join(f"'{p}'" for p in missing)
        raise UserError(f"the {'package' if len(missing) == 1 else 'packages'} {names} "
                        f"{'is' if len(missing) == 1 else 'are'} required for this command; install with: "
                        f"pip install \"kodiffcse[wiki]\" (or pip install {' '.join(missing)})")


def splitter_packages(name: str) -> tuple[str, ...]:
    if name == "kiwi":
        return ("kiwipiepy", "kiwipiepy_model")
    if name == "kss" or name.startswith("kss-"):
        return ("kss",)
    raise UserError(f"unknown sentence splitter {name!r}; choose one of {', '.join(SPLITTERS)}")


class KiwiSplitter:
    """kiwipiepy's split_into_sents; batching many paragraphs at once amortises the call overhead."""

    name = "kiwi"

    def __init__(self) -> None:
        require("kiwipiepy")
        from kiwipiepy import Kiwi

        # One helper thread: batch calls need Kiwi's async mode, and our own worker processes
        # already use every core.
        self._kiwi = Kiwi(num_workers=1)

    def split_many(self, paragraphs: list[str]) -> list[list[str]]:
        if not paragraphs:
            return []
        paragraphs = [p[:MAX_PARAGRAPH_CHARS] for p in paragraphs]
        out = []
        for sents in self._kiwi.split_into_sents(paragraphs, return_sub_sents=False):
            out.append([s.text.strip() for s in sents if s.text.strip()])
        return out


class KssSplitter:
    """kss with its pure-Python 'pecab' backend (the one that installs everywhere without mecab)."""

    def __init__(self, backend: str = "pecab") -> None:
        self.name = f"kss-{backend}"
        require("kss")
        import kss

        self._split: Callable = kss.split_sentences
        self._backend = backend

    def split_many(self, paragraphs: list[str]) -> list[list[str]]:
        if not paragraphs:
            return []
        paragraphs = [p[:MAX_PARAGRAPH_CHARS] for p in paragraphs]
        result = self._split(paragraphs, backend=self._backend, num_workers=1)
        return [[s.strip() for s in sents if s.strip()] for sents in result]


def make_splitter(name: str = "kiwi"):
    """Build a splitter by name ("kss" or "kss-<backend>"); UserError for unknown names or missing packages."""
    if name == "kiwi":
        return KiwiSplitter()
    if name == "kss" or name.startswith("kss-"):
        return KssSplitter(name.partition("-")[2] or "pecab")
    raise UserError(f"unknown sentence splitter {name!r}; choose one of {', '.join(SPLITTERS)}")


def check_splitter(name: str, *also: str) -> None:
    """Check a splitter's packages (and `also`) are installed without loading its model (cheap, safe before
    fork); all that are missing are named in one line."""
    require(*also, *splitter_packages(name))


def split_all(splitter, paragraphs: Iterable[str], batch: int = 256) -> Iterable[list[str]]:
    """Split an iterable of paragraphs in batches, yielding one sentence list per paragraph."""
    buf: list[str] = []
    for p in paragraphs:
        buf.append(p)
        if len(buf) >= batch:
            yield from splitter.split_many(buf)
            buf = []
    if buf:
        yield from splitter.split_many(buf)
