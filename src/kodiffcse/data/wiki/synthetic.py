"""Write small or large synthetic MediaWiki dumps: test fixtures and benchmark input, no network."""
from __future__ import annotations

import bz2
import random
from pathlib import Path
from typing import Iterable
from xml.sax.saxutils import escape

HEADER = (
    '<mediawiki xmlns="http://www.mediawiki.org/xml/export-0.11/" version="0.11" xml:lang="ko">\n'
    "  <siteinfo>\n    <sitename>위키백과</sitename>\n    <dbname>kowiki</dbname>\n"
    '    <namespaces>\n      <namespace key="0" case="first-letter" />\n'
    '      <namespace key="10" case="first-letter">틀</namespace>\n    </namespaces>\n  </siteinfo>\n'
)
FOOTER = "</mediawiki>\n"


def page_xml(page_id: int, title: str, text: str, ns: int = 0, redirect: str | None = None) -> str:
    redirect_xml = f'    <redirect title="{escape(redirect, {chr(34): "&quot;"})}" />\n' if redirect else ""
    return (
        f"  <page>\n    <title>{escape(title)}</title>\n    <ns>{ns}</ns>\n    <id>{page_id}</id>\n"
        f"{redirect_xml}    <revision>\n      <id>{page_id * 10}</id>\n"
        f'      <model>wikitext</model>\n      <format>text/x-wiki</format>\n'
        f'      <text bytes="{len(text.encode())}" xml:space="preserve">{escape(text)}</text>\n'
        f"    </revision>\n  </page>\n"
    )


def write_dump(path: Path, pages: Iterable[dict]) -> Path:
    """pages: dicts with title, text and optional ns, redirect."""
    with bz2.open(path, "wt", encoding="utf-8") as f:
        f.write(HEADER)
        for i, p in enumerate(pages, start=1):
            f.write(page_xml(i, p["title"], p["text"], p.get("ns", 0), p.get("redirect")))
        f.write(FOOTER)
    return path


FALLBACK = [
    "서울은 대한민국의 수도이며 가장 큰 도시이다.", "한강은 서울을 가로질러 흐르는 강이다.",
    "이 작품은 많은 독자들에게 사랑을 받았다.", "그는 대학에서 물리학을 전공하였다.",
    "이 지역의 기후는 여름에 덥고 습하다.", "회사는 새로운 제품을 시장에 내놓았다.",
]


def _article(rng: random.Random, title: str, sentences: list[str]) -> str:
    """An article with the markup kowiki uses: infobox, refs, links, headings, lists, tables, files."""
    def para(k: int) -> str:
        out = []
        for _ in range(k):
            s = rng.choice(sentences)
            words = s.split(" ")
            if len(words) > 2 and rng.random() < 0.5:
                j = rng.randrange(len(words) - 1)
                words[j] = f"[[{words[j]}]]"
            s = " ".join(words)
            if rng.random() < 0.3:
                s += f'<ref>{{{{웹 인용|url=https://example.org/{rng.randrange(10**6)}|제목=자료}}}}</ref>'
            out.append(s)
        return " ".join(out)

    parts = [f"{{{{정보상자 문서\n| 이름 = {title}\n| 설명 = 합성\n}}}}",
             f"'''{title}'''는 합성 문서이다. " + para(rng.randint(2, 5))]
    for h in range(rng.randint(1, 4)):
        parts.append(f"== 절 {h} ==")
        parts.append(para(rng.randint(3, 8)))
        if rng.random() < 0.4:
            parts.append("* " + rng.choice(sentences) + "\n* " + rng.choice(sentences))
        if rng.random() < 0.3:
            parts.append('{| class="wikitable"\n|-\n! 항목 !! 값\n|-\n| 가 || 1\n|}')
        if rng.random() < 0.3:
            parts.append(f"[[파일:그림{rng.randrange(999)}.jpg|섬네일|{rng.choice(sentences)}]]")
    parts.append("[[분류:합성 문서]]")
    return "\n".join(parts)


def write_synthetic_dump(path: Path, target_bytes: int, sentences: list[str] | None = None,
                         seed: int = 0) -> Path:
    """Write a dump of generated articles until the compressed file reaches target_bytes."""
    rng = random.Random(seed)
    sentences = sentences or FALLBACK
    with open(path, "wb") as raw, bz2.BZ2File(raw, "wb", compresslevel=9) as f:
        f.write(HEADER.encode())
        i = 0
        while raw.tell() < target_bytes:
            i += 1
            if i % 17 == 0:
                f.write(page_xml(i, f"틀:합성{i}", "{{틀 내용}}", ns=10).encode())
            elif i % 13 == 0:
                f.write(page_xml(i, f"넘겨주기 {i}", f"#넘겨주기 [[문서 {i - 1}]]", redirect=f"문서 {i - 1}").encode())
            else:
                f.write(page_xml(i, f"문서 {i}", _article(rng, f"문서 {i}", sentences)).encode())
        f.write(FOOTER.encode())
    return path
