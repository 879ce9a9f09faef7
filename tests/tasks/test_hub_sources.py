"""The registry of the paper's task data on the hub, and its materialisation into xlt's local JSONL files, on local
mirrors laid out and typed like each hub repository (nothing touches the network)."""

import os

os.environ["HF_DATASETS_OFFLINE"] = "1"
os.environ["HF_HUB_OFFLINE"] = "1"

import json
from pathlib import Path

import datasets
import pytest
from hub_fixtures import write_mirror

from xlt.errors import XLTError
from xlt.tasks import hub
from xlt.tasks.hub import cached, downloads, materialize, split_rows
from xlt.tasks.sources import (
    LANGUAGES,
    NLI_LABELS,
    SOURCES,
    SPLITS,
    UNAVAILABLE,
    WIKIANN_TAGS,
    HubSource,
    resolve,
    sources_for,
)

pytestmark = pytest.mark.no_model  # no model, no transformers: run once, under transformers 5.x


@pytest.fixture(autouse=True)
def _offline_and_private_cache(tmp_path, monkeypatch):
    """``datasets`` offline, and its Arrow cache in the test's directory rather than the user's."""
    monkeypatch.setattr(datasets.config, "HF_DATASETS_OFFLINE", True, raising=False)
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True, raising=False)
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path / "hf-cache")


def _rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def _check_schema(source: HubSource, rows: list[dict]) -> None:
    for row in rows:
        if source.schema == "ner":
            assert set(row) == {"tokens", "ner_tags"}
            assert len(row["tokens"]) == len(row["ner_tags"])
            assert set(row["ner_tags"]) <= set(WIKIANN_TAGS)
        elif source.schema == "nli":
            assert set(row) == {"premise", "hypothesis", "label"}
            assert row["label"] in NLI_LABELS
        else:
            assert set(row) == {"id", "question", "context", "answers"}
            assert isinstance(row["id"], str)
            answers = row["answers"]
            assert answers["text"] and len(answers["text"]) == len(answers["answer_start"])
            for text, start in zip(answers["text"], answers["answer_start"], strict=True):
                assert row["context"][start : start + len(text)] == text


# ---- the registry -------------------------------------------------------------------------------------------------


def test_every_pair_the_paper_names_is_a_source_or_unavailable_with_a_reason():
    for task in ("ner", "nli", "qa", "classification"):
        for language in LANGUAGES:
            if (task, language) == ("qa", "bg"):  # the paper names no QA data for Bulgarian
                assert ("qa", "bg") not in SOURCES and ("qa", "bg") not in UNAVAILABLE
                continue
            assert ((task, language) in SOURCES) != ((task, language) in UNAVAILABLE), (task, language)
    assert {s.language for s in sources_for("ner")} == set(LANGUAGES)
    assert all(s.path == "unimelb-nlp/wikiann" and s.name == s.language for s in sources_for("ner"))
    xnli = {s.language for s in sources_for("nli") if s.path == "facebook/xnli"}
    assert xnli == {"ar", "bg", "de", "el", "en", "es", "ru", "sw", "ur", "zh"}
    assert resolve("qa", "de").name == "mlqa-translate-train.de" and resolve("qa", "de").configs["test"] == "mlqa.de.de"
    assert resolve("qa", "el").name == "xquad.el" and resolve("qa", "el").derive is not None
    assert not sources_for("classification")


def test_resolve_errors_are_one_line_and_name_the_fix():
    with pytest.raises(XLTError, match=r"unknown task 'pos'; the paper's tasks are ner, nli, qa, classification"):
        resolve("pos", "en")
    with pytest.raises(XLTError, match=r"no source for language 'fr'; covered: ar, bg, cs, de,") as error:
        resolve("ner", "fr")
    assert "\n" not in str(error.value)
    with pytest.raises(XLTError, match=r"nli in 'ro' has no public hub source: RoNLI .* bring it as local files"):
        resolve("nli", "ro")
    with pytest.raises(XLTError, match=r"bring any binary claim dataset as local files \(type: checkworthiness"):
        resolve("checkworthiness", "en")


# ---- materialising every entry --------------------------------------------------------------------------------


@pytest.mark.parametrize("key", sorted(SOURCES), ids=lambda key: f"{key[0]}-{key[1]}")
def test_every_entry_materializes_from_a_hub_shaped_mirror(key, tmp_path):
    source = SOURCES[key]
    write_mirror(source, tmp_path / "mirror")
    paths = materialize(source, tmp_path / "cache", data_dir=tmp_path / "mirror")
    assert set(paths) == set(SPLITS)
    assert paths["train"] == tmp_path / "cache" / source.task / source.language / "train.jsonl"
    everything = []
    for split in SPLITS:
        rows = _rows(paths[split])
        assert rows, split
        _check_schema(source, rows)
        everything += [json.dumps(row, sort_keys=True) for row in rows]
    if source.derive:  # derived splits are disjoint
        assert len(everything) == len(set(everything))
    manifest = json.loads((paths["train"].parent / "manifest.json").read_text())
    assert manifest["source"]["path"] == source.path
    assert manifest["rows"] == {split: len(_rows(paths[split])) for split in SPLITS}
    assert cached(source, tmp_path / "cache")


def test_wikiann_class_label_ids_become_iob2_names(tmp_path):
    source = resolve("ner", "sk")
    write_mirror(source, tmp_path / "mirror")
    assert (tmp_path / "mirror/unimelb-nlp/wikiann/sk/train-00000-of-00001.parquet").is_file()
    paths = materialize(source, tmp_path / "cache", data_dir=tmp_path / "mirror")
    assert _rows(paths["train"])[0] == {"tokens": ["sktrain0", "Smith", "visited", "Paris"],
                                        "ner_tags": ["B-PER", "I-PER", "O", "B-LOC"]}  # fmt: skip


def test_xnli_labels_are_named_and_unlabelled_rows_dropped(tmp_path):
    source = resolve("nli", "de")
    write_mirror(source, tmp_path / "mirror")
    paths = materialize(source, tmp_path / "cache", data_dir=tmp_path / "mirror")
    rows = _rows(paths["test"])
    assert [row["label"] for row in rows[:3]] == ["entailment", "neutral", "contradiction"]
    manifest = json.loads((paths["test"].parent / "manifest.json").read_text())
    assert manifest["rows"]["test"] == len(rows) == 35  # 36 written, one labelled -1
    assert manifest["dropped"]["test"] == 1


def test_streaming_reads_the_same_rows(tmp_path):
    source = resolve("qa", "en")
    write_mirror(source, tmp_path / "mirror")
    plain = materialize(source, tmp_path / "a", data_dir=tmp_path / "mirror")
    streamed = materialize(source, tmp_path / "b", data_dir=tmp_path / "mirror", streaming=True)
    for split in SPLITS:
        assert plain[split].read_bytes() == streamed[split].read_bytes()


def test_derived_splits_are_seeded_deterministic_and_keep_paragraphs_whole(tmp_path):
    source = resolve("qa", "el")  # XQuAD: all three splits cut from validation
    write_mirror(source, tmp_path / "m1")
    write_mirror(source, tmp_path / "m2", shuffle=7)  # the same rows in another order
    first = materialize(source, tmp_path / "c1", data_dir=tmp_path / "m1")
    second = materialize(source, tmp_path / "c2", data_dir=tmp_path / "m2")
    contexts = {}
    for split in SPLITS:
        rows = _rows(first[split])
        assert sorted(map(json.dumps, rows)) == sorted(map(json.dumps, _rows(second[split])))
        contexts[split] = {row["context"] for row in rows}
    assert not (contexts["train"] & contexts["dev"] or contexts["train"] & contexts["test"]
                or contexts["dev"] & contexts["test"])  # fmt: skip
    manifest = json.loads((first["train"].parent / "manifest.json").read_text())
    assert manifest["seed"] == 42


def test_split_rows_depends_on_seed_not_order():
    rows = [{"k": str(i)} for i in range(100)]
    a = split_rows(rows, {"train": 0.6, "dev": 0.1, "test": 0.3}, 42, "k")
    b = split_rows(rows[::-1], {"train": 0.6, "dev": 0.1, "test": 0.3}, 42, "k")
    assert {k: sorted(map(str, v)) for k, v in a.items()} == {k: sorted(map(str, v)) for k, v in b.items()}
    assert [len(a[s]) for s in ("train", "dev", "test", "")] == [60, 10, 30, 0]
    assert split_rows(rows, {"dev": 0.1}, 43, "k")["dev"] != split_rows(rows, {"dev": 0.1}, 42, "k")["dev"]


def test_a_directly_mapped_split_keeps_what_deriving_left(tmp_path):
    source = resolve("qa", "ar")  # ARCD: dev is 10% of train's paragraphs, left out of train
    write_mirror(source, tmp_path / "mirror")
    paths = materialize(source, tmp_path / "cache", data_dir=tmp_path / "mirror")
    train, dev = ({r["context"] for r in _rows(paths[s])} for s in ("train", "dev"))
    assert dev and train and not train & dev
    assert all("validation" in r["context"] for r in _rows(paths["test"]))


def test_a_second_call_loads_nothing(tmp_path, monkeypatch):
    source = resolve("nli", "sl")
    write_mirror(source, tmp_path / "mirror")
    first = materialize(source, tmp_path / "cache", data_dir=tmp_path / "mirror")
    before = {split: path.stat().st_mtime_ns for split, path in first.items()}

    def refuse(*args, **kwargs):
        raise AssertionError("load_dataset called for a cached source")

    monkeypatch.setattr(datasets, "load_dataset", refuse)
    again = materialize(source, tmp_path / "cache", data_dir=tmp_path / "mirror")
    assert again == first and {s: p.stat().st_mtime_ns for s, p in again.items()} == before
    assert downloads("nli", ["sl"], cache_dir=tmp_path / "cache") == []


def test_downloads_lists_what_the_cache_lacks(tmp_path):
    cache = tmp_path / "cache"
    assert downloads("qa", ["en", "de"], cache_dir=cache) == [
        "rajpurkar/squad (plain_text)",
        "facebook/mlqa (mlqa-translate-train.de) @ refs/convert/parquet",
        "facebook/mlqa (mlqa.de.de) @ refs/convert/parquet",
    ]
    write_mirror(resolve("qa", "en"), tmp_path / "mirror")
    materialize(resolve("qa", "en"), cache, data_dir=tmp_path / "mirror")
    assert downloads("qa", ["en", "de"], cache_dir=cache) == [
        "facebook/mlqa (mlqa-translate-train.de) @ refs/convert/parquet",
        "facebook/mlqa (mlqa.de.de) @ refs/convert/parquet",
    ]
    with pytest.raises(XLTError, match="no public hub source"):
        downloads("qa", ["ur"], cache_dir=cache)


# ---- errors -----------------------------------------------------------------------------------------------------


def test_a_missing_split_in_the_mirror_is_one_line(tmp_path):
    source = resolve("ner", "sk")
    write_mirror(source, tmp_path / "mirror", skip=("test",))
    with pytest.raises(XLTError, match=r"cannot load split 'test' of unimelb-nlp/wikiann \(sk\) from ") as error:
        materialize(source, tmp_path / "cache", data_dir=tmp_path / "mirror")
    assert "\n" not in str(error.value)
    assert not (tmp_path / "cache/ner/sk/manifest.json").exists()


def test_a_missing_column_names_the_dataset_the_column_and_what_is_there(tmp_path):
    source = resolve("nli", "en")
    write_mirror(source, tmp_path / "mirror", drop="hypothesis")
    message = r"facebook/xnli \(en\) split '\w+' has no column 'hypothesis' \(it has: premise, label\)"
    with pytest.raises(XLTError, match=message):
        materialize(source, tmp_path / "cache", data_dir=tmp_path / "mirror")


def test_a_missing_mirror_says_where_it_was_looked_for(tmp_path):
    with pytest.raises(XLTError, match=r"no local mirror of google/xquad at .*; download the hub repository there"):
        materialize(resolve("qa", "ro"), tmp_path / "cache", data_dir=tmp_path / "nowhere")


def test_a_mirror_of_another_config_is_an_error_not_a_silent_mix(tmp_path):
    write_mirror(resolve("ner", "sk"), tmp_path / "mirror")
    with pytest.raises(XLTError, match=r"cannot load split '\w+' of unimelb-nlp/wikiann \(cs\)"):
        materialize(resolve("ner", "cs"), tmp_path / "cache", data_dir=tmp_path / "mirror")


def test_hub_module_imports_datasets_lazily():
    assert "datasets" not in hub.__dict__


@pytest.mark.parametrize("task, language", [("ner", "sk"), ("nli", "sl"), ("qa", "te")])
def test_the_files_read_back_with_xlt_s_schema_readers(task, language, tmp_path):
    schemas = pytest.importorskip("xlt.tasks.schemas")
    source = resolve(task, language)
    write_mirror(source, tmp_path / "mirror")
    paths = materialize(source, tmp_path / "cache", data_dir=tmp_path / "mirror")
    for split in SPLITS:
        assert len(schemas.load_task_examples(paths[split], source.schema)) == len(_rows(paths[split]))


# ---- QA answers off their context -------------------------------------------------------------------------------


def test_an_answer_moves_to_its_occurrence_nearest_the_given_start():
    context = "cat sat; the cat ran; a cat hid"
    kept, changed = hub.repair_answers(context, {"text": ["cat", "cat"], "answer_start": [13, 23]})
    assert kept == {"text": ["cat", "cat"], "answer_start": [13, 24]} and changed == 1  # 23 -> the cat at 24
    kept, changed = hub.repair_answers(context, {"text": ["cat", "dog", ""], "answer_start": [0, 4, 0]})
    assert kept == {"text": ["cat"], "answer_start": [0]} and changed == 2  # not in the context, empty: dropped


@pytest.mark.parametrize("task, language", [("qa", "ru"), ("qa", "cs"), ("qa", "te")])
def test_qa_answers_off_their_context_are_repaired_or_their_rows_dropped(task, language, tmp_path):
    source = resolve(task, language)
    write_mirror(source, tmp_path / "mirror", faulty=True)
    paths = materialize(source, tmp_path / "cache", data_dir=tmp_path / "mirror")
    schemas = pytest.importorskip("xlt.tasks.schemas")
    for split in SPLITS:
        rows = _rows(paths[split])
        _check_schema(source, rows)  # every answer_start points at its answer
        assert "elsewhere" not in {text for row in rows for text in row["answers"]["text"]}
        assert len(schemas.load_task_examples(paths[split], source.schema)) == len(rows)
    manifest = json.loads((paths["train"].parent / "manifest.json").read_text())
    if source.derive is None:
        rows = _rows(paths["test"])
        assert len(rows) == 22  # 24 written: one unanswerable, one whose answer is not in its context
        assert rows[0]["answers"]["answer_start"] == [rows[0]["context"].index("word0")]  # one character late
        assert manifest["dropped"]["test"] == 2 and manifest["repaired"]["test"] == 1
    else:
        before = f"{source.derive.source} (before deriving)"
        assert manifest["dropped"][before] == 2 and manifest["repaired"][before] == 1


# ---- big sources are streamed ---------------------------------------------------------------------------------


def test_the_big_sources_are_streamed_and_read_the_same_rows(tmp_path):
    big = {key for key, source in SOURCES.items() if hub.streams(source)}
    assert ("nli", "de") in big and ("qa", "en") in big and ("qa", "de") in big
    assert ("ner", "de") not in big and ("qa", "el") not in big
    for key in [("nli", "de"), ("qa", "de")]:
        source = SOURCES[key]
        write_mirror(source, tmp_path / "mirror")
        plain = materialize(source, tmp_path / "a", data_dir=tmp_path / "mirror")
        streamed = materialize(source, tmp_path / "b", data_dir=tmp_path / "mirror", streaming=True)
        for split in SPLITS:
            assert plain[split].read_bytes() == streamed[split].read_bytes(), (key, split)


# ---- a hub task's prepare -------------------------------------------------------------------------------------


def test_prepare_fetches_what_the_manifest_does_not_vouch_for_and_streams_the_big_sources(tmp_path, monkeypatch):
    from xlt.tasks.nli import NLITask

    for language in ("sl", "de"):
        write_mirror(resolve("nli", language), tmp_path / "mirror")
    task = NLITask("nli", hub=True, cache_dir=tmp_path / "cache", mirror=tmp_path / "mirror")
    calls: list[tuple[str, bool]] = []
    real = hub.materialize

    def recording(source, cache_dir, **options):
        calls.append((source.language, options.get("streaming", False)))
        return real(source, cache_dir, **options)

    monkeypatch.setattr(hub, "materialize", recording)
    messages: list[str] = []
    task.prepare(["sl", "de", "fr"], messages.append)
    assert calls == [("sl", False), ("de", True)]  # XNLI is read as a stream
    assert any(m.startswith("task 'nli' fr: ") and "no source for language 'fr'" in m for m in messages)
    calls.clear()
    task.prepare(["sl", "de"], messages.append)
    assert calls == []  # the manifests vouch for both
    # The registry's entry for sl changed since its files were written: they are fetched again, not reused.
    manifest = tmp_path / "cache" / "nli" / "sl" / "manifest.json"
    record = json.loads(manifest.read_text())
    record["source"]["revision"] = "an-older-revision"
    manifest.write_text(json.dumps(record))
    assert all(task.path("sl", split).is_file() for split in SPLITS)
    task.prepare(["sl", "de"], messages.append)
    assert calls == [("sl", False)]
    assert cached(resolve("nli", "sl"), tmp_path / "cache")
