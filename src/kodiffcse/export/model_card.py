"""The model card (README.md) of a kodiffcse model dir, in the format sentence-transformers writes.

sentence-transformers generates the card (YAML metadata, model details, architecture, usage snippet run on
Korean examples); kodiffcse fills its metadata (language, tags, datasets, base model) and adds what only
kodiffcse knows: the training data and recipe, dev/test scores (whole-set KorSTS correlations) and the
intended use. The card is regenerated from files in the dir, so `kodiffcse export card` can refresh it after
a test run.
"""
from __future__ import annotations

import json
import os
import re

from ..atomic import atomic_write
from ..config import CONFIG_FILE
from ..errors import UserError

CARD = "README.md"
SCORES_FILE = "dev_scores.json"
TEST_SCORES_FILE = "test_scores.json"
EXAMPLES = ["한 소녀가 머리를 빗고 있다.", "한 소녀가 머리를 스타일링하고 있다.", "한 무리의 남자들이 해변에서 축구를 한다."]
_METRICS = ("cosine_pearson", "cosine_spearman")
_SECTION = "## Training Details"
# What the card cites, filled into sentence-transformers' "### BibTeX" section (it cites only its own losses).
CITATIONS = {
    "DiffCSE": r"""@inproceedings{chuang2022diffcse,
  title={{DiffCSE}: Difference-based Contrastive Learning for Sentence Embeddings},
  author={Chuang, Yung-Sung and Dangovski, Rumen and Luo, Hongyin and Zhang, Yang and Chang, Shiyu and Solja{\v{c}}i{\'c}, Marin and Li, Shang-Wen and Yih, Wen-tau and Kim, Yoon and Glass, James},
  booktitle={Annual Conference of the North American Chapter of the Association for Computational Linguistics (NAACL)},
  year={2022}
}""",
    "SimCSE": r"""@inproceedings{gao2021simcse,
  title={{SimCSE}: Simple Contrastive Learning of Sentence Embeddings},
  author={Gao, Tianyu and Yao, Xingcheng and Chen, Danqi},
  booktitle={Empirical Methods in Natural Language Processing (EMNLP)},
  year={2021}
}""",
    "KoDiffCSE": r"""@misc{kodiffcse,
  author={BM-K},
  title={{KoDiffCSE}: Difference-based Contrastive Learning for {K}orean Sentence Embeddings},
  howpublished={\url{https://github.com/BM-K/KoDiffCSE}},
  year={2022}
}""",
    "KorSTS": r"""@article{ham2020kornli,
  title={{KorNLI} and {KorSTS}: New Benchmark Datasets for {K}orean Natural Language Understanding},
  author={Ham, Jiyeon and Choe, Yo Joong and Park, Kyubyong and Choi, Ilji and Soh, Hyungjoon},
  journal={arXiv preprint arXiv:2004.03289},
  year={2020}
}""",
    "KLUE": r"""@misc{park2021klue,
  title={{KLUE}: {K}orean Language Understanding Evaluation},
  author={Sungjoon Park and Jihyung Moon and Sungdong Kim and Won Ik Cho and Jiyoon Han and Jangwon Park and Chisung Song and Junseong Kim and Yongsook Song and Taehwan Oh and Joohong Lee and Juhyun Oh and Sungwon Lyu and Younghoon Jeong and Inkwon Lee and Sangwoo Seo and Dongjun Lee and Hyunwoo Kim and Myeonghwa Lee and Seongbo Jang and Seungwon Do and Sunkyoung Kim and Kyungtae Lim and Jongwon Lee and Kyumin Park and Jamin Shin and Seonghyun Kim and Lucy Park and Alice Oh and Jungwoo Ha and Kyunghyun Cho},
  year={2021},
  eprint={2105.09680},
  archivePrefix={arXiv},
  primaryClass={cs.CL}
}""",
}
_METHOD = {"diffcse": "DiffCSE", "simcse": "SimCSE", "sup-simcse": "supervised SimCSE"}
_SUPERVISED = ("sup-simcse",)  # trained on labelled data: the card says so and does not claim "without labels"


def card_data(config: dict | None, model_id: str | None = None, license: str | None = None):
    """SentenceTransformerModelCardData for a kodiffcse run (no Hub look-ups).

    The corpus is described in kodiffcse's own section: the template's train_datasets need Hugging Face
    dataset statistics that a plain text file does not have."""
    from sentence_transformers import SentenceTransformerModelCardData

    config = config or {}
    objective = config.get("model", {}).get("objective", "diffcse")
    data = SentenceTransformerModelCardData(
        language="ko", license=license, model_id=model_id, local_files_only=True,
        model_name=f"Korean {_METHOD.get(objective, objective)} sentence encoder (kodiffcse)",
        generate_widget_examples=False)
    supervision = "supervised" if objective in _SUPERVISED else "unsupervised"
    data.add_tags(["kodiffcse", objective, "korean", supervision])  # after sentence-transformers' own tags
    base = config.get("model", {}).get("model")
    if base and not os.path.isabs(base) and base.count("/") == 1 and not base.startswith("."):
        data.base_model = base  # a Hub id; local paths are no use to a reader of the card
    data.usage_examples = list(EXAMPLES)
    cited = (["DiffCSE"] if objective == "diffcse" else []) + ["SimCSE", "KoDiffCSE", "KorSTS"]
    if str(base or "").startswith("klue/"):
        cited.append("KLUE")
    data.citations = {name: CITATIONS[name] for name in cited}
    return data


def _read_json(path: str) -> dict | None:
    if not os.path.isfile(path):
        return None
    with open(path, encoding="utf-8") as fh:
        return json.load(fh)


def _scores_table(rows: list[tuple[str, str, dict]]) -> str:
    metrics = [m for m in _METRICS if any(m in scores for _, _, scores in rows)] or \
        sorted({k for _, _, s in rows for k in s})
    lines = ["| split | file | " + " | ".join(metrics) + " |", "|---|---|" + "---:|" * len(metrics)]
    for split, source, scores in rows:
        cells = [f"{100 * scores[m]:.2f}" if isinstance(scores.get(m), (int, float)) else "" for m in metrics]
        lines.append(f"| {split} | {source} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def kodiffcse_sections(config: dict | None, dev: dict | None, test: dict | None) -> str:
    """Markdown for training data, recipe, scores and intended use."""
    config = config or {}
    m, d, t = config.get("model", {}), config.get("data", {}), config.get("training", {})
    out = ["## kodiffcse", ""]
    if config:
        train_data = (f"- **NLI triplets:** `{os.path.basename(d.get('train_file') or '?')}` (premise, entailment "
                      "hypothesis as positive, contradiction hypothesis as hard negative)"
                      if m.get("objective") in _SUPERVISED else
                      f"- **Unlabeled corpus:** `{os.path.basename(d.get('train_file') or '?')}` (one sentence per line)")
        out += ["### Training Data", "", train_data,
                f"- **Dev set (checkpoint selection):** `{os.path.basename(d.get('dev_file') or 'none')}`", "",
                "### Training Recipe", "",
                f"- **Objective:** {m.get('objective', '?')} (InfoNCE, temperature {m.get('temperature')}"
                + (f"; replaced-token detection, lambda {m.get('lambda_weight')}, masking {m.get('masking_ratio')}, "
                   f"generator `{m.get('generator')}`" if m.get("objective") == "diffcse" else "")
                + (f"; in-batch and hard negatives, hard-negative weight {m.get('hard_negative_weight', 0.0)}"
                   if m.get("objective") in _SUPERVISED else "") + ")",
                f"- **Encoder initialised from:** `{m.get('model')}`; pooling `{m.get('pooler')}` "
                "(the training MLP is not part of the model), max length " + str(m.get("max_len")),
                f"- **Batch size:** {t.get('batch_size')}, **lr:** {t.get('lr')}, **epochs:** {t.get('epochs')}, "
                f"**max steps:** {t.get('max_steps')}, **seed:** {t.get('seed')}", "",
                "<details><summary>Full configuration (kodiffcse_config.json)</summary>", "", "```json",
                json.dumps(config, ensure_ascii=False, indent=2), "```", "", "</details>", ""]
    rows = []
    if dev and dev.get("scores"):
        rows.append((f"dev (step {dev.get('step', '?')})", os.path.basename(dev.get("dev_file") or "?"), dev["scores"]))
    if test and test.get("scores"):
        rows.append(("test", os.path.basename(test.get("test_file") or "?"), test["scores"]))
    out += ["### Scores", ""]
    out += ["Whole-set correlations × 100 between cosine similarity and gold scores (not per-batch averages).", "",
            _scores_table(rows), ""] if rows else ["No dev or test scores were recorded with this model.", ""]
    out += ["### Intended Use", "",
            "Sentence embeddings for Korean: semantic textual similarity, semantic search, clustering and "
            "deduplication. " + ("Trained on translated NLI labels; check it on your own data before relying on "
                                 "it." if m.get("objective") in _SUPERVISED else
                                 "Trained without labels, so it scores below supervised STS models; check it on "
                                 "your own data before relying on it.")
            + " Texts longer than the maximum sequence length are truncated.", "",
            "```python", "from kodiffcse import SentenceEncoder", "",
            'encoder = SentenceEncoder.from_pretrained("MODEL_DIR_OR_HUB_ID")',
            f'print(encoder.similarity("{EXAMPLES[0]}", "{EXAMPLES[1]}"))', "```", ""]
    return "\n".join(out)


def add_kodiffcse_sections(card: str, config: dict | None, dev: dict | None, test: dict | None) -> str:
    extra = kodiffcse_sections(config, dev, test)
    at = card.find(_SECTION)
    return card.rstrip() + "\n\n" + extra if at < 0 else card[:at] + extra + "\n" + card[at:]


def render_card(st_model, config: dict | None, dev: dict | None, test: dict | None) -> str:
    from sentence_transformers.base.model_card import generate_model_card

    return add_kodiffcse_sections(_complete(generate_model_card(st_model), config), config, dev, test)


def _complete(card: str, config: dict | None) -> str:
    """Finish what the template leaves open for a model trained outside its trainer: the opening sentence
    ("... model trained.") says how and on what, and a framework version that is not installed is left out."""
    config = config or {}
    objective = config.get("model", {}).get("objective", "diffcse")
    corpus = config.get("data", {}).get("train_file")
    supervised = objective in _SUPERVISED
    how = f" with {'' if supervised else 'unsupervised '}{_METHOD.get(objective, objective)} (kodiffcse)" + \
        (f" on the {'NLI triplets' if supervised else 'unlabeled corpus'} `{os.path.basename(corpus)}`" if corpus else "")
    card = re.sub(r"(This is a \[sentence-transformers\]\([^)]*\) model(?: finetuned from \[[^\]]*\]\([^)]*\))?"
                  r"(?: trained)?)\. It maps", lambda match: match.group(1) + how + ". It maps", card, count=1)
    return re.sub(r"^- [A-Za-z ]+: *\n", "", card, flags=re.MULTILINE)  # e.g. "- Datasets: " without datasets


def write_model_card(model_dir: str, model_id: str | None = None, license: str | None = None,
                     test_scores: dict | None = None) -> str:
    """(Re)write model_dir/README.md from the dir's own files; test scores default to ../test_scores.json."""
    from sentence_transformers import SentenceTransformer

    from ..modeling.loading import quiet_transformers

    quiet_transformers()
    if not os.path.isfile(os.path.join(model_dir, "modules.json")):
        raise UserError("not a sentence-transformers model dir (no modules.json)", path=model_dir)
    config = _read_json(os.path.join(model_dir, CONFIG_FILE))
    dev = _read_json(os.path.join(model_dir, SCORES_FILE))
    test = test_scores or _read_json(os.path.join(model_dir, TEST_SCORES_FILE)) or \
        _read_json(os.path.join(os.path.dirname(os.path.abspath(model_dir)), TEST_SCORES_FILE))
    st_model = SentenceTransformer(model_dir, device="cpu", local_files_only=True,
                                   model_card_data=card_data(config, model_id, license))
    text = render_card(st_model, config, dev, test)
    path = os.path.join(model_dir, CARD)
    atomic_write(path, text)
    return path
