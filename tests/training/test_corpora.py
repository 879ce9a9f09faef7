"""Corpora: local .txt / .jsonl and Hugging Face datasets (offline, from a local directory shaped like the hub's
wikimedia/wikipedia), the seeded validation split, packing, and the deterministic batch streams."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import numpy as np
import pytest
import torch
import training_helpers as th

from tiny_models import WORDS
from xlt.training.corpora import CorpusConfig, CorpusError, check_corpus, documents, pack, tokenized
from xlt.training.data import SegmentSource, fixed_batches, micro_batches
from xlt.training.lm_batches import CausalLM


def texts(n: int, prefix: str = "doc") -> list[str]:
    return [f"{prefix} {i} w{i % 50} w{(i * 7) % 50}" for i in range(n)]


def txt(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join(lines) + "\n")
    return path


def one_line_error(excinfo: pytest.ExceptionInfo, *parts: str) -> str:
    message = str(excinfo.value)
    assert "\n" not in message
    for part in parts:
        assert part in message, (part, message)
    return message


# ---- local files ----------------------------------------------------------------------------------------


def test_txt_documents_and_a_seeded_disjoint_split(tmp_path):
    docs = texts(2000)
    path = txt(tmp_path / "c.txt", [docs[0], "", "   ", *docs[1:]])  # blank lines are no documents
    config = CorpusConfig(files=[str(path)], validation_fraction=0.05)
    train, validation = list(documents(config, "train")), list(documents(config, "validation"))
    assert not set(train) & set(validation)
    assert sorted(train + validation) == sorted(docs)
    assert 0.03 < len(validation) / len(docs) < 0.07
    # stable across runs (a hash of each text, not an RNG stream) and in corpus order
    assert list(documents(config, "validation")) == validation
    assert [d for d in docs if d in set(validation)] == validation
    other = CorpusConfig(files=[str(path)], validation_fraction=0.05, seed=7)
    assert list(documents(other, "validation")) != validation
    # the split of a document does not depend on its position or on the rest of the corpus
    shuffled = txt(tmp_path / "s.txt", list(reversed(docs)))
    moved = CorpusConfig(files=[str(shuffled)], validation_fraction=0.05)
    assert set(documents(moved, "validation")) == set(validation)


def test_validation_is_capped_and_copies_of_its_documents_never_train(tmp_path):
    docs = texts(1000)
    uncapped = CorpusConfig(files=[str(txt(tmp_path / "a.txt", docs))], validation_fraction=0.2)
    all_validation = list(documents(uncapped, "validation"))
    assert len(all_validation) > 100
    path = txt(tmp_path / "c.txt", docs + all_validation[:5])  # later copies of validation documents
    capped = CorpusConfig(files=[str(path)], validation_fraction=0.2, max_validation_documents=10)
    validation = list(documents(capped, "validation"))
    train = list(documents(capped, "train"))
    assert validation == all_validation[:10]
    assert not set(train) & set(validation)
    # validation-hashed documents beyond the cap go to training rather than being lost
    assert set(train) == set(docs) - set(validation)


def test_jsonl_documents(tmp_path):
    rows = [{"body": t, "id": i} for i, t in enumerate(texts(50))] + [{"body": "  "}]
    path = tmp_path / "c.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n\n")
    config = CorpusConfig(files=[str(path)], text_field="body", validation_fraction=0.1)
    found = list(documents(config, "train")) + list(documents(config, "validation"))
    assert sorted(found) == sorted(texts(50))


@pytest.mark.parametrize(
    ("name", "content", "parts", "at_start"),
    [
        ("c.csv", "text\nhello\n", ["c.csv", "neither .txt nor .jsonl", "convert it"], True),
        (
            "c.jsonl",
            '{"text": "a"}\n{"text": "b"}\n{"text": broken\n',
            ["c.jsonl:3", "not a JSON line", "one JSON"],
            False,
        ),
        ("c.jsonl", '{"text": broken\n', ["c.jsonl:1", "not a JSON line"], True),
        ("c.jsonl", '{"text": "a"}\n{"body": "b"}\n', ["c.jsonl:2", "no string field 'text'", "text_field="], False),
        ("c.jsonl", '{"text": "a"}\n["a list"]\n', ["c.jsonl:2", "no string field 'text'"], False),
        ("c.jsonl", '{"text": 5}\n', ["c.jsonl:1", "no string field 'text'"], True),
        ("c.txt", "\n  \n\n", ["c.txt", "holds no text", "check the path"], True),
        ("c.jsonl", '{"text": ""}\n{"text": " "}\n', ["c.jsonl", "holds no text"], True),
    ],
)
def test_local_corpus_errors(tmp_path, name, content, parts, at_start):
    path = tmp_path / name
    path.write_text(content)
    config = CorpusConfig(files=[str(path)])
    for split in ("train", "validation"):
        with pytest.raises(CorpusError) as excinfo:
            list(documents(config, split))
        one_line_error(excinfo, *parts)
    if at_start:  # what the runs check before they claim an output directory
        with pytest.raises(CorpusError):
            check_corpus(config)


def test_missing_file_and_bad_configs(tmp_path):
    with pytest.raises(CorpusError) as excinfo:
        check_corpus(CorpusConfig(files=[str(tmp_path / "nope.txt")]))
    one_line_error(excinfo, "nope.txt", "does not exist", ".txt or .jsonl")
    with pytest.raises(CorpusError, match="exactly one of"):
        CorpusConfig()
    with pytest.raises(CorpusError, match="exactly one of"):
        CorpusConfig(dataset="x", files=["a.txt"])
    for fraction in (0.0, 1.0, 1.5):
        with pytest.raises(CorpusError, match="validation_fraction"):
            CorpusConfig(files=["a.txt"], validation_fraction=fraction)


# ---- Hugging Face datasets, offline -----------------------------------------------------------------------


@pytest.fixture
def wikipedia(tmp_path, monkeypatch):
    """A local directory laid out like the hub repo wikimedia/wikipedia: a README whose YAML lists one config
    per dump (data_files ``20231101.xx/train-*.parquet``) and parquet shards with a ``text`` column."""
    datasets = pytest.importorskip("datasets")
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", str(tmp_path / "hf-cache"))
    root = tmp_path / "wikimedia" / "wikipedia"
    configs = []
    docs: dict[str, list[str]] = {}
    for lang in ("cs", "sk"):
        name = f"20231101.{lang}"
        configs.append(f"- config_name: {name}\n  data_files:\n  - split: train\n    path: {name}/train-*.parquet\n")
        (root / name).mkdir(parents=True)
        docs[lang] = []
        for shard in range(2):
            rows = [
                f"{lang} article {shard}-{i} " + " ".join(WORDS[(i + j) % 20] for j in range(12)) for i in range(60)
            ]
            if shard == 1:
                rows[3] = ""  # an empty article is skipped
            docs[lang].extend(r for r in rows if r)
            table = pa.table(
                {
                    "id": [f"{shard}-{i}" for i in range(60)],
                    "url": [f"https://{lang}.wikipedia.org/wiki/{i}" for i in range(60)],
                    "title": [f"T{i}" for i in range(60)],
                    "text": rows,
                }
            )
            pq.write_table(table, root / name / f"train-{shard:05d}-of-00002.parquet")
    (root / "README.md").write_text(
        "---\nlanguage:\n- cs\n- sk\nlicense: cc-by-sa-3.0\nconfigs:\n" + "".join(configs) + "---\n# Wikipedia\n"
    )
    return root, docs


@pytest.mark.parametrize("streaming", [False, True])
def test_hub_dataset_by_name_and_subset(wikipedia, streaming):
    root, docs = wikipedia
    config = CorpusConfig(dataset=str(root), subset="20231101.sk", streaming=streaming, validation_fraction=0.1)
    train, validation = list(documents(config, "train")), list(documents(config, "validation"))
    assert sorted(train + validation) == sorted(docs["sk"])  # the sk dump only, empty article dropped
    assert validation and not set(train) & set(validation)
    assert [d for d in docs["sk"] if d in set(train)] == train  # corpus order
    # the same split streamed or not (a hash of each document)
    other = CorpusConfig(dataset=str(root), subset="20231101.sk", streaming=not streaming, validation_fraction=0.1)
    assert list(documents(other, "validation")) == validation
    source = SegmentSource(config, th.tokenizer(), length=16, separator=1, seed=0)
    segment = next(source.train())
    assert len(segment) == 16


def test_hub_dataset_errors(wikipedia, tmp_path):
    root, _ = wikipedia
    with pytest.raises(CorpusError) as excinfo:
        check_corpus(CorpusConfig(dataset=str(root), subset="20231101.xx"))
    one_line_error(excinfo, "20231101.xx", "cannot load dataset", "20231101.sk")
    with pytest.raises(CorpusError) as excinfo:
        check_corpus(CorpusConfig(dataset=str(tmp_path / "missing"), streaming=True))
    one_line_error(excinfo, "missing", "cannot load dataset")
    with pytest.raises(CorpusError) as excinfo:
        check_corpus(CorpusConfig(dataset=str(root), subset="20231101.sk", text_field="body"))
    one_line_error(excinfo, "no string field 'body'", "text_field=")


# ---- packing and streams --------------------------------------------------------------------------------


def test_pack_yields_full_segments():
    streams = [[1, 2, 3], [4, 5], [], [6, 7, 8, 9, 10, 11, 12]]
    segments = list(pack(iter(streams), 4, separator=0))
    flat = [1, 2, 3, 0, 4, 5, 0, 0, 6, 7, 8, 9, 10, 11, 12, 0]
    assert segments == [flat[i : i + 4] for i in range(0, 16, 4)]
    segments = list(pack(iter(streams), 5, separator=None))
    assert segments == [[1, 2, 3, 4, 5], [6, 7, 8, 9, 10]]  # the short remainder [11, 12] is dropped
    assert all(len(s) == 5 for s in segments)
    with pytest.raises(CorpusError, match=">= 2"):
        list(pack(iter(streams), 1, None))


@pytest.mark.parametrize("chunk", [1, 3, 256])
def test_tokenized_in_chunks_equals_one_call_per_text(chunk):
    tok = th.tokenizer()
    docs = [*texts(7), "", "ünïcode and   spaces", *texts(3, "tail")]
    expected = [tok(t, add_special_tokens=False)["input_ids"] for t in docs]
    assert list(tokenized(iter(docs), tok, chunk)) == expected
    assert list(tokenized(iter([]), tok, chunk)) == []


def test_segment_source_epochs_and_validation(tmp_path):
    path = txt(tmp_path / "c.txt", texts(200))
    config = CorpusConfig(files=[str(path)], validation_fraction=0.1)
    source = SegmentSource(config, th.tokenizer(), length=7, separator=1, seed=3)
    per_epoch = len(list(pack((th.tokenizer()(t)["input_ids"] for t in documents(config, "train")), 7, 1)))
    first = list(itertools.islice(source.train(), 2 * per_epoch))
    assert all(len(s) == 7 for s in first)
    epoch0, epoch1 = first[:per_epoch], first[per_epoch:]
    assert sorted(epoch0) == sorted(epoch1) and epoch0 != epoch1  # the same segments, reshuffled
    assert list(itertools.islice(source.train(), 2 * per_epoch)) == first  # seeded
    validation = source.validation(limit=3)
    assert len(validation) == 3 and all(len(s) == 7 for s in validation)
    small = SegmentSource(config, th.tokenizer(), length=10_000, separator=1, seed=3)
    with pytest.raises(CorpusError, match="less than one segment"):
        next(small.train())


def test_micro_batches_give_each_process_its_rows_of_the_same_global_batch():
    def examples():
        return ([i] * (1 + i % 3) for i in itertools.count())

    stream = micro_batches(examples, CausalLM(pad_id=0), micro=4, seed=0)
    whole = list(itertools.islice(stream(0, 0, 1), 6))
    rank0 = list(itertools.islice(stream(0, 0, 2), 6))
    rank1 = list(itertools.islice(stream(0, 1, 2), 6))
    for full, a, b in zip(whole, rank0, rank1, strict=True):
        assert torch.equal(full["input_ids"][0::2], a["input_ids"])
        assert torch.equal(full["input_ids"][1::2], b["input_ids"])
        assert a["input_ids"].shape[1] == full["input_ids"].shape[1]  # padded as the global batch
    resumed = list(itertools.islice(stream(2, 0, 1), 4))
    for a, b in zip(whole[2:], resumed, strict=True):
        assert all(torch.equal(a[k], b[k]) for k in a)
    seen: list[int] = []

    def collate(rows, rng):
        seen.append(rng.integers(1 << 30))
        return CausalLM(pad_id=0)(rows, rng)

    list(itertools.islice(micro_batches(examples, collate, 2, seed=5)(3, 0, 1), 1))
    expected = np.random.default_rng([5, 3]).integers(1 << 30)
    assert seen == [expected]  # micro-batch 3 is collated with rng (seed, 3), whatever came before


def test_fixed_batches_are_the_same_every_time():
    rows = [[i, i + 1, i + 2] for i in range(10)]
    a = fixed_batches(rows, CausalLM(pad_id=0), 4, seed=1)
    b = fixed_batches(rows, CausalLM(pad_id=0), 4, seed=1)
    assert [x["input_ids"].shape[0] for x in a] == [4, 4, 2]
    assert all(torch.equal(x[k], y[k]) for x, y in zip(a, b, strict=True) for k in x)
