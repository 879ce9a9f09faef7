"""Local mirrors of the hub repositories in ``xlt.tasks.sources``: a handful of rows per split, laid out and typed
like each repository (parquet with ClassLabel features, SQuAD's answers struct, nested SQuAD JSON, CSV), so that
``materialize(..., data_dir=...)`` runs the same ``load_dataset`` -> features -> conversion path as on the hub."""

from __future__ import annotations

import csv
import json
import random
from pathlib import Path

from datasets import ClassLabel, Dataset, Features, List, Value

from xlt.tasks.sources import NLI_LABELS, WIKIANN_TAGS, HubSource

GROUPS = 12  # paragraphs (or premises) per split: enough for every derived split to get some
PER_GROUP = 2  # questions (or hypotheses) per paragraph


def _ner(split: str, language: str) -> tuple[dict, Features]:
    tokens, tags = [], []
    for i in range(GROUPS):
        tokens.append([f"{language}{split}{i}", "Smith", "visited", "Paris"])
        tags.append([1, 2, 0, 5])  # B-PER I-PER O B-LOC
    data = {"tokens": tokens, "ner_tags": tags, "langs": [[language] * 4] * GROUPS, "spans": [["PER: x"]] * GROUPS}
    features = Features(
        {
            "tokens": List(Value("string")),
            "ner_tags": List(ClassLabel(names=list(WIKIANN_TAGS))),
            "langs": List(Value("string")),
            "spans": List(Value("string")),
        }
    )
    return data, features


def _nli(split: str, language: str, *, string_labels: bool = False, unlabelled: bool = False) -> tuple[dict, Features]:
    premises, hypotheses, labels = [], [], []
    for i in range(GROUPS):
        for j in range(PER_GROUP + 1):
            premises.append(f"{language} {split} premise {i}")
            hypotheses.append(f"hypothesis {j}")
            labels.append(j % 3)
    labels[-1] = -1  # XNLI-style unlabelled row: dropped
    if string_labels:
        data_labels = ["" if unlabelled or label == -1 else NLI_LABELS[label] for label in labels]
        data = {"pair_id": [f"p{i}" for i in range(len(labels))], "premise": premises, "hypothesis": hypotheses}
        data["label"] = data_labels
        features = Features({k: Value("string") for k in data})
        return data, features
    data = {"premise": premises, "hypothesis": hypotheses, "label": labels}
    features = Features(
        {"premise": Value("string"), "hypothesis": Value("string"), "label": ClassLabel(names=list(NLI_LABELS))}
    )
    return data, features


def _qa_rows(split: str, language: str, *, faulty: bool = False) -> list[dict]:
    """``faulty``: the first answer's start one character late and the third row's answer not in its context, as
    national QA sets have them."""
    rows = []
    for i in range(GROUPS):
        context = f"Paragraph {i} of {language} {split}: the answer is word{i} here."
        start = context.index(f"word{i}")
        for j in range(PER_GROUP):
            rows.append(
                {
                    "id": f"{language}-{split}-{i}-{j}",
                    "title": f"Article {i}",
                    "context": context,
                    "question": f"Question {j} about {i}?",
                    "answers": {"text": [f"word{i}"], "answer_start": [start]},
                }
            )
    rows[-1]["answers"] = {"text": [], "answer_start": []}  # unanswerable: dropped
    if faulty:
        rows[0]["answers"] = {"text": ["word0"], "answer_start": [rows[0]["answers"]["answer_start"][0] + 1]}
        rows[2]["answers"] = {"text": ["elsewhere"], "answer_start": [3]}
    return rows


def _qa(
    split: str, language: str, *, struct: bool = False, int_ids: bool = False, faulty: bool = False
) -> tuple[dict, Features]:
    rows = _qa_rows(split, language, faulty=faulty)
    data = {k: [row[k] for row in rows] for k in rows[0]}
    if int_ids:
        data["id"] = list(range(len(rows)))
    # SQuAD's answers (a Sequence of {text, answer_start}) are stored as a struct of two lists
    answers = (
        {"answer_start": List(Value("int64")), "text": List(Value("string"))}
        if struct
        else {"text": List(Value("string")), "answer_start": List(Value("int32"))}
    )
    features = Features(
        {
            "id": Value("int32") if int_ids else Value("string"),
            "title": Value("string"),
            "context": Value("string"),
            "question": Value("string"),
            "answers": answers,
        }
    )
    return data, features


def _squad_json(split: str, language: str, *, faulty: bool = False) -> dict:
    articles: dict[str, dict] = {}
    for row in _qa_rows(split, language, faulty=faulty):
        article = articles.setdefault(row["title"], {"title": row["title"], "paragraphs": []})
        if not article["paragraphs"] or article["paragraphs"][-1]["context"] != row["context"]:
            article["paragraphs"].append({"context": row["context"], "qas": []})
        answers = [{"text": t, "answer_start": s} for t, s in zip(*row["answers"].values(), strict=True)]
        qa = {"id": row["id"], "question": row["question"], "answers": answers, "is_impossible": not answers}
        article["paragraphs"][-1]["qas"].append(qa)
    return {"version": "1.1", "data": list(articles.values())}


def table(
    source: HubSource, split: str, *, drop: str | None = None, shuffle: int | None = None, faulty: bool = False
) -> Dataset:
    """The hub split ``split`` of ``source`` as a typed ``Dataset`` (``drop``: a column left out, ``faulty``: QA
    answers off their context)."""
    language = source.language
    if source.schema == "ner":
        data, features = _ner(split, language)
    elif source.schema == "nli":
        strings = source.path == "cjvt/si_nli"
        data, features = _nli(split, language, string_labels=strings, unlabelled=strings and split == "test")
    else:
        data, features = _qa(
            split,
            language,
            struct=source.path == "Pehy/cs_sqad-3.0",
            int_ids="sberquad" in source.path,
            faulty=faulty,
        )
    dataset = Dataset.from_dict(data, features=features)
    if drop is not None:
        dataset = dataset.remove_columns(drop)
    if shuffle is not None:
        dataset = dataset.select(random.Random(shuffle).sample(range(len(dataset)), len(dataset)))
    return dataset


def _card(root: Path, configs: dict[str | None, list[str]]) -> None:
    """The card's ``configs:`` block, as the hub's parquet repos carry it (with the configs of the mirror's
    earlier languages kept: one repository holds them all)."""
    for config_dir in root.iterdir():
        if config_dir.is_dir() and config_dir.name not in {c or "data" for c in configs}:
            splits = sorted({p.name.split("-")[0] for p in config_dir.glob("*-00000-of-00001.parquet")})
            if splits:
                configs = {**configs, (None if config_dir.name == "data" else config_dir.name): splits}
    lines = ["---", "configs:"]
    for config, splits in sorted(configs.items(), key=lambda kv: kv[0] or ""):
        lines += [f"- config_name: {config or 'default'}", "  data_files:"]
        for split in splits:
            lines += [f"  - split: {split}", f"    path: {config or 'data'}/{split}-*"]
    (root / "README.md").write_text("\n".join([*lines, "---", ""]), encoding="utf-8")


def write_mirror(
    source: HubSource,
    data_dir: Path,
    *,
    skip: tuple[str, ...] = (),
    drop: str | None = None,
    shuffle: int | None = None,
    faulty: bool = False,
) -> Path:
    """Write the local mirror of ``source`` under ``data_dir / source.path``; ``skip``: hub splits left out,
    ``drop``: a column left out, ``shuffle``: a seed reordering the rows (a derived split must not care),
    ``faulty``: QA answers off their context (one a character late, one not in it)."""
    root = Path(data_dir) / source.path
    root.mkdir(parents=True, exist_ok=True)
    card: dict[str | None, list[str]] = {}
    for config, split in source.reads():
        if split in skip:
            continue
        if source.layout == "files":
            target = root / source.files[split]
            target.parent.mkdir(parents=True, exist_ok=True)
            if source.file_format == "json":
                target.write_text(
                    json.dumps(_squad_json(split, source.language, faulty=faulty), ensure_ascii=False), "utf-8"
                )
            else:
                rows = table(source, split, drop=drop, shuffle=shuffle, faulty=faulty).to_list()
                with target.open("w", encoding="utf-8", newline="") as handle:
                    writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
                    writer.writeheader()
                    writer.writerows(rows)
            continue
        dataset = table(source, split, drop=drop, shuffle=shuffle, faulty=faulty)
        if source.layout == "export":
            target = root / str(config) / split / "0000.parquet"
        else:
            target = root / (config or "data") / f"{split}-00000-of-00001.parquet"
            card.setdefault(config, []).append(split)
        target.parent.mkdir(parents=True, exist_ok=True)
        dataset.to_parquet(str(target))
    if card:
        _card(root, card)
    return root
