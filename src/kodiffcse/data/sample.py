"""A built-in Korean sample, generated from this project's own templates (no dataset is copied).

It feeds the offline demo and the tests: an unlabeled corpus, and STS pairs whose gold score is the
weighted share of template slots two sentences have in common, so a model can learn something real.
"""
from __future__ import annotations

import random
from dataclasses import dataclass

SUBJECTS = [
    "한 남자가", "한 여자가", "아이들이", "소년이", "소녀가", "할머니가", "학생들이", "요리사가",
    "경찰관이", "의사가", "가수가", "농부가", "선생님이", "강아지가", "고양이가", "두 사람이",
]
ACTIONS = [
    ("기타를", "치고 있다"), ("피아노를", "연주하고 있다"), ("공을", "차고 있다"), ("음식을", "만들고 있다"),
    ("책을", "읽고 있다"), ("자전거를", "타고 있다"), ("편지를", "쓰고 있다"), ("사과를", "먹고 있다"),
    ("노래를", "부르고 있다"), ("그림을", "그리고 있다"), ("물을", "마시고 있다"), ("차를", "운전하고 있다"),
    ("춤을", "추고 있다"), ("나무를", "심고 있다"), ("빨래를", "널고 있다"), ("사진을", "찍고 있다"),
]
PLACES = [
    "공원에서", "부엌에서", "거리에서", "무대 위에서", "학교에서", "바닷가에서", "집 앞에서", "시장에서",
    "도서관에서", "강가에서", "산 위에서", "교실에서",
]
# Filler: few values, and no bearing on meaning similarity. Overlap in these fools a model that counts
# shared tokens; training on the corpus teaches it that they tell sentences apart poorly.
TIMES = ["비가 조금 내리던 어느 날 아침에", "해가 질 무렵의 조용한 저녁에", "바람이 부는 주말 오후에"]
MANNERS = ["아무 말도 하지 않고 아주 즐겁게", "누구의 도움도 받지 않고 혼자서", "오랜 친구들과 함께 웃으며"]

# Slot weights for the gold similarity: who, doing what, where. Time and manner do not count.
_WEIGHTS = {"subject": 1.5, "object": 1.5, "verb": 1.0, "place": 0.7}


@dataclass(frozen=True)
class Frame:
    subject: str
    object: str
    verb: str
    place: str
    time: str
    manner: str

    def text(self) -> str:
        parts = [self.time, self.place, self.subject, self.manner, self.object, self.verb]
        return " ".join(p for p in parts if p) + "."


def _random_frame(rng: random.Random) -> Frame:
    obj, verb = rng.choice(ACTIONS)
    return Frame(rng.choice(SUBJECTS), obj, verb, rng.choice(PLACES), rng.choice(TIMES), rng.choice(MANNERS))


def _gold(a: Frame, b: Frame) -> float:
    total = sum(_WEIGHTS.values())
    same = sum(w for slot, w in _WEIGHTS.items() if getattr(a, slot) == getattr(b, slot))
    return round(5.0 * same / total, 3)


def _perturb(frame: Frame, rng: random.Random) -> Frame:
    """Change a random number of slots so that gold scores cover the whole 0-5 range."""
    fields = dict(frame.__dict__)
    fields["time"], fields["manner"] = rng.choice(TIMES), rng.choice(MANNERS)
    for slot in rng.sample(list(_WEIGHTS), k=rng.randint(0, len(_WEIGHTS))):
        if slot in ("object", "verb"):
            obj, verb = rng.choice(ACTIONS)
            fields[slot] = obj if slot == "object" else verb
        else:
            pool = {"subject": SUBJECTS, "place": PLACES}[slot]
            fields[slot] = rng.choice(pool)
    return Frame(**fields)


def sample_corpus(n: int, seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    return [_random_frame(rng).text() for _ in range(n)]


def sample_sts(n: int, seed: int = 1) -> list[tuple[str, str, float]]:
    """(sentence1, sentence2, score 0-5) pairs."""
    rng = random.Random(seed)
    pairs = []
    for _ in range(n):
        a = _random_frame(rng)
        b = _perturb(a, rng)
        pairs.append((a.text(), b.text(), _gold(a, b)))
    return pairs


def write_sample(directory, corpus_size: int = 4000, dev_size: int = 400, test_size: int = 400) -> dict[str, str]:
    """Write corpus.txt, sts-dev.tsv and sts-test.tsv (KorSTS layout) and return their paths."""
    from pathlib import Path

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    paths = {"corpus": directory / "corpus.txt", "dev": directory / "sts-dev.tsv", "test": directory / "sts-test.tsv"}
    paths["corpus"].write_text("\n".join(sample_corpus(corpus_size, seed=0)) + "\n", encoding="utf-8")
    for name, size, seed in (("dev", dev_size, 1), ("test", test_size, 2)):
        rows = ["genre\tfilename\tyear\tid\tscore\tsentence1\tsentence2"]
        for i, (s1, s2, score) in enumerate(sample_sts(size, seed=seed)):
            rows.append(f"sample\tkodiffcse\t2026\t{i:04d}\t{score:.3f}\t{s1}\t{s2}")
        paths[name].write_text("\n".join(rows) + "\n", encoding="utf-8")
    return {k: str(v) for k, v in paths.items()}
