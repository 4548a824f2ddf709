"""Wikitext to plain paragraphs with mwparserfromhell.

The parser does the structural work (templates, tags, tables, links, entities, comments); the few
regexes here only tidy what its output leaves behind (magic words, empty brackets, spacing).
Headings and list lines are dropped and counted, not returned: they are fragments, not sentences.
"""
from __future__ import annotations

import re
from collections import Counter

# Tags whose content is not running prose.
DROP_TAGS = {
    "ref", "references", "table", "gallery", "math", "chem", "ce", "timeline", "syntaxhighlight",
    "source", "pre", "code", "score", "graph", "imagemap", "mapframe", "maplink", "templatedata",
    "templatestyles", "poem", "hiero", "nowiki", "inputbox", "categorytree", "section", "style",
    "noinclude", "includeonly", "onlyinclude",
}
LIST_MARKUP = {"*", "#", ":", ";"}
# File, media and category links are not prose; ko and en names both occur in kowiki.
DROP_LINK_NAMESPACES = {"파일", "그림", "file", "image", "미디어", "media", "분류", "category"}
INTERLANGUAGE = re.compile(r"^[a-z]{2,3}(?:-[a-z0-9]+)*$")
# Templates that wrap visible prose text (language tags); their last positional argument is kept.
KEEP_TEXT_TEMPLATES = {"lang", "llang", "언어", "lang-en", "lang-ja", "lang-zh", "본문"}

HEADING, LIST = "\x01", "\x02"
MAGIC_WORD = re.compile(r"__[A-Z]+__")
EMPTY_BRACKETS = re.compile(r"\(\s*[,;·/]?\s*\)|\[\s*\]|（\s*）")
LEADING_PUNCT_IN_BRACKETS = re.compile(r"\(\s*[,;]\s*")
SPACES = re.compile(r"[ \t\u00a0\u200b\u3000]+")
SPACE_BEFORE_PUNCT = re.compile(r" +([,.!?)\]])")


def _require():
    try:
        import mwparserfromhell
    except ImportError:  # pragma: no cover - exercised through the CLI dependency check
        from .split import require

        require("mwparserfromhell")
        raise
    return mwparserfromhell


def _link_namespace(title: str) -> str | None:
    title = title.strip()
    if title.startswith(":") or ":" not in title:
        return None
    return title.split(":", 1)[0].strip().lower()


def _render(code) -> str:
    """Render a Wikicode as plain text, recursing into containers that hold visible prose."""
    out: list[str] = []
    for node in code.nodes:
        kind = type(node).__name__
        if kind == "Text":
            out.append(str(node.value))
        elif kind == "Heading":
            out.append(f"\n{HEADING}\n")
        elif kind == "Tag":
            tag = str(node.tag).strip().lower()
            markup = node.wiki_markup
            if markup in LIST_MARKUP:
                out.append(f"\n{LIST}")
            elif tag in ("br",):
                out.append(" ")
            elif tag in ("hr",):
                out.append("\n")
            elif tag in DROP_TAGS or markup == "{|":
                continue
            elif node.contents is not None:
                out.append(_render(node.contents))
        elif kind == "Wikilink":
            ns = _link_namespace(str(node.title))
            if ns is not None and (ns in DROP_LINK_NAMESPACES or INTERLANGUAGE.match(ns)):
                continue
            if node.text is not None:
                out.append(_render(node.text))
            else:
                title = str(node.title).strip().lstrip(":")
                out.append(title.split("#", 1)[0] if not title.startswith("#") else title[1:])
        elif kind == "ExternalLink":
            if node.title is not None:
                out.append(_render(node.title))
        elif kind == "HTMLEntity":
            out.append(node.normalize())
        elif kind == "Template":
            name = str(node.name).strip().lower()
            if name in KEEP_TEXT_TEMPLATES:
                positional = [p for p in node.params if not p.showkey]
                if positional:
                    out.append(_render(positional[-1].value))
            # every other template (infobox, citation, navbox, ...) is dropped
        # Comment, Argument ({{{x}}}) and anything else: dropped
    return "".join(out)


def clean_wikitext(text: str) -> tuple[list[str], Counter]:
    """Return the prose paragraphs of an article and counts of dropped headings / list lines."""
    mw = _require()
    code = mw.parse(text, skip_style_tags=False)
    rendered = MAGIC_WORD.sub("", _render(code))
    dropped: Counter = Counter()
    paragraphs: list[str] = []
    for line in rendered.split("\n"):
        if line.startswith(HEADING):
            dropped["heading"] += 1
            continue
        if line.startswith(LIST):
            if line[1:].strip():
                dropped["list_item"] += 1
            continue
        line = LEADING_PUNCT_IN_BRACKETS.sub("(", line)
        line = EMPTY_BRACKETS.sub("", line)
        line = SPACES.sub(" ", line)
        line = SPACE_BEFORE_PUNCT.sub(r"\1", line).strip()
        if line:
            paragraphs.append(line)
    return paragraphs, dropped


def is_redirect_text(text: str) -> bool:
    """Fallback for dumps without a <redirect/> element."""
    head = text.lstrip()[:20].lower()
    return head.startswith("#redirect") or head.startswith("#넘겨주기")
