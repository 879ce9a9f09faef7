"""Where the paper's task data lives on the Hugging Face Hub: one ``HubSource`` per public (task, language) pair.

``SOURCES`` names, for every pair PAPER.md lists that has public data, the hub repository, its config, which hub
split feeds each of xlt's splits (``train`` / ``dev`` / ``test``), how a missing split is derived, and how the
hub's columns and labels become xlt's local schemas (``ner``, ``nli``, ``qa``; see ``xlt.tasks.hub``). Pairs with
no public hub data are in ``UNAVAILABLE`` with the reason; ``resolve`` raises it with the fix (local files).

``verified`` says whether the hub id, config, splits and columns were checked against the dataset's card (or its
file listing); an unverified entry is the best public match found, and its first download may need a column or
config fix. Each repository is read in one of three layouts, the same on the hub and in a local mirror:

* ``configs``: parquet files named in the card's ``configs:`` block, ``{config}/{split}-00000-of-0000N.parquet``
  (or ``data/{split}-...`` for a single config); loaded by config name.
* ``export``: a repository that is a loading script, which ``datasets`` 4+ no longer runs, read from the hub's
  parquet export (revision ``refs/convert/parquet``), laid out ``{config}/{split}/0000.parquet``.
* ``files``: raw files named per hub split (SQuAD-style nested JSON, CSV), read with ``datasets``' json/csv
  builders.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from xlt.errors import XLTError
from xlt.tasks.schemas import NLI_LABELS, WIKIANN_TAGS

SPLITS = ("train", "dev", "test")
SCHEMAS = ("ner", "nli", "qa")
LAYOUTS = ("configs", "export", "files")
EXPORT_REVISION = "refs/convert/parquet"

# WikiANN's ClassLabel order, used when a loaded split does not carry its features (some streamed parquet).
# XNLI's (and ANLI's, IndicXNLI's) ClassLabel order.

DEFAULT_COLUMNS: Mapping[str, Mapping[str, str]] = MappingProxyType(
    {
        "ner": MappingProxyType({"tokens": "tokens", "ner_tags": "ner_tags"}),
        "nli": MappingProxyType({"premise": "premise", "hypothesis": "hypothesis", "label": "label"}),
        "qa": MappingProxyType({"id": "id", "question": "question", "context": "context", "answers": "answers"}),
    }
)

# The seed of every derived split: the paper's seed, so that a derived split is the same on every machine.
SEED = 42

PRIVATE_CHECKWORTHINESS = (
    "the paper's check-worthiness data is private to its authors and has no public source; bring any binary "
    "claim dataset as local files (type: checkworthiness, train:, dev:, test:)"
)


def _frozen(mapping: Mapping | None) -> Mapping:
    return MappingProxyType(dict(mapping or {}))


@dataclass(frozen=True)
class Derive:
    """How xlt splits the hub lacks are cut from one hub split.

    Rows are grouped by ``key`` (a column: the context of a QA row, the premise of an NLI pair, so that no
    paragraph or premise straddles two splits; ``None``: each row on its own, keyed by its content). The groups
    are ordered by the SHA-256 of ``f"{seed}:{key}"`` and cut in that order by ``fractions`` (in the order
    given): the result depends on neither row order nor machine, and the splits are disjoint. An xlt split
    mapped directly to the same hub split keeps the groups no fraction took (SQuAD's train less its dev).
    """

    source: str
    fractions: Mapping[str, float]
    seed: int = SEED
    key: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "fractions", _frozen(self.fractions))

    def record(self) -> dict:
        return {"source": self.source, "fractions": dict(self.fractions), "seed": self.seed, "key": self.key}


@dataclass(frozen=True)
class HubSource:
    """One (task, language) pair's public data on the Hugging Face Hub and how it becomes xlt's local files."""

    task: str
    language: str
    path: str  # hub repository id
    name: str | None  # the hub config (a folder of the parquet export for layout "export")
    splits: Mapping[str, str | None]  # xlt split -> hub split (None: derived, see ``derive``)
    schema: str  # "ner" | "nli" | "qa"
    configs: Mapping[str, str] = field(default_factory=dict)  # xlt split -> another config it is read from
    layout: str = "configs"
    files: Mapping[str, str] = field(default_factory=dict)  # layout "files": hub split -> path in the repo
    file_format: str = "parquet"  # layout "files": "json" | "csv" | "parquet"
    json_field: str | None = None  # layout "files", json: the key holding the rows ("data" in SQuAD files)
    nested: bool = False  # rows are SQuAD articles (title, paragraphs[context, qas[...]]) to flatten
    columns: Mapping[str, str] = field(default_factory=dict)  # xlt field -> hub column (defaults per schema)
    label_names: tuple[str, ...] | None = None  # names of integer labels when the features do not carry them
    label_map: Mapping[str, str] = field(default_factory=dict)  # hub label name -> xlt label
    derive: Derive | None = None
    verified: bool = False
    notes: str = ""
    license: str = ""
    url: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "splits", _frozen(self.splits))
        object.__setattr__(self, "files", _frozen(self.files))
        object.__setattr__(self, "configs", _frozen(self.configs))
        object.__setattr__(self, "columns", _frozen({**DEFAULT_COLUMNS.get(self.schema, {}), **self.columns}))
        object.__setattr__(self, "label_map", _frozen(self.label_map))
        what = f"source {self.task}/{self.language} ({self.path})"
        if self.schema not in SCHEMAS:
            raise XLTError(f"{what}: schema {self.schema!r} is not one of {', '.join(SCHEMAS)}; fix the entry")
        if self.layout not in LAYOUTS:
            raise XLTError(f"{what}: layout {self.layout!r} is not one of {', '.join(LAYOUTS)}; fix the entry")
        derived = set(self.derive.fractions) if self.derive else set()
        for split in SPLITS:
            direct = self.splits.get(split) is not None
            if direct == (split in derived):
                raise XLTError(
                    f"{what}: xlt split {split!r} must come either from a hub split or from derive, exactly once; "
                    "fix the entry"
                )
        if self.derive and sum(self.derive.fractions.values()) > 1 + 1e-9:
            raise XLTError(f"{what}: derive fractions sum to more than 1; fix the entry")
        if self.layout == "files" and set(self.files) != {split for _, split in self.reads()}:
            raise XLTError(f"{what}: layout 'files' needs a file for each hub split it reads; fix the entry")

    @property
    def revision(self) -> str | None:
        return EXPORT_REVISION if self.layout == "export" else None

    def config_for(self, split: str) -> str | None:
        """The config xlt split ``split`` is read from (``name`` unless ``configs`` says another)."""
        return self.configs.get(split, self.name)

    def reads(self) -> list[tuple[str | None, str]]:
        """The (config, hub split) pairs this source loads, in a fixed order."""
        used = {(self.config_for(s), hub) for s, hub in self.splits.items() if hub is not None}
        if self.derive:
            used.add((self.name, self.derive.source))
        return sorted(used, key=lambda pair: (pair[0] or "", pair[1]))

    def labels(self) -> list[str]:
        """How a dry run names the downloads: ``path (config)``, and the revision when not the default."""
        at = f" @ {self.revision}" if self.revision else ""
        configs = sorted({config or "" for config, _ in self.reads()})
        return [self.path + (f" ({config})" if config else "") + at for config in configs]

    def record(self) -> dict:
        """What identifies this source in a materialised cache's manifest."""
        return {
            "task": self.task,
            "language": self.language,
            "path": self.path,
            "name": self.name,
            "revision": self.revision,
            "layout": self.layout,
            "files": dict(self.files),
            "splits": dict(self.splits),
            "configs": dict(self.configs),
            "schema": self.schema,
            "columns": dict(self.columns),
            "label_map": dict(self.label_map),
            "derive": self.derive.record() if self.derive else None,
            "verified": self.verified,
        }


# ---- the table ------------------------------------------------------------------------------------------------

LANGUAGES = ("ar", "bg", "cs", "de", "el", "en", "es", "ml", "ro", "ru", "sk", "sl", "sw", "te", "ur", "zh")
XNLI_LANGUAGES = ("ar", "bg", "de", "el", "en", "es", "ru", "sw", "ur", "zh")

_STANDARD = {"train": "train", "dev": "validation", "test": "test"}
# A source with one split only: all three xlt splits are cut from it, grouped so no paragraph straddles two.
_ALL_FROM_ONE = {"train": 0.6, "dev": 0.1, "test": 0.3}


def _wikiann(language: str) -> HubSource:
    return HubSource(
        "ner",
        language,
        "unimelb-nlp/wikiann",
        language,
        _STANDARD,
        "ner",
        label_names=WIKIANN_TAGS,
        verified=True,
        notes="ner_tags are ClassLabel ints (O, B-PER, I-PER, B-ORG, I-ORG, B-LOC, I-LOC), written as IOB2 names",
        license="unknown (card)",
        url="https://huggingface.co/datasets/unimelb-nlp/wikiann",
    )


def _xnli(language: str) -> HubSource:
    return HubSource(
        "nli",
        language,
        "facebook/xnli",
        language,
        _STANDARD,
        "nli",
        label_names=NLI_LABELS,
        verified=True,
        notes="label is a ClassLabel (0 entailment, 1 neutral, 2 contradiction); rows labelled -1 are dropped; "
        "train is 392k rows per language (stream it)",
        license="cc-by-nc-4.0",
        url="https://huggingface.co/datasets/facebook/xnli",
    )


def _indicxnli(language: str) -> HubSource:
    return HubSource(
        "nli",
        language,
        "Divyanshu/indicxnli",
        language,
        _STANDARD,
        "nli",
        layout="export",
        label_names=NLI_LABELS,
        verified=False,
        notes="IndicXNLI (XNLI machine-translated); a loading-script repo read from its parquet export; the label "
        "is taken to be XNLI's ClassLabel (not checked against the export's schema)",
        license="cc0-1.0",
        url="https://huggingface.co/datasets/Divyanshu/indicxnli",
    )


def _indicqa(language: str) -> HubSource:
    return HubSource(
        "qa",
        language,
        "ai4bharat/IndicQA",
        None,
        {"train": None, "dev": None, "test": None},
        "qa",
        layout="files",
        files={"test": f"data/indicqa.{language}.json"},
        file_format="json",
        json_field="data",
        nested=True,
        derive=Derive("test", _ALL_FROM_ONE, key="context"),
        verified=False,
        notes="IndicQA has one (test) file per language in SQuAD's nested JSON (its loading script is not run); "
        "train/dev/test are cut from it by context (0.6/0.1/0.3); unanswerable questions are dropped; the file "
        "names are from the repo listing, the JSON structure is not checked",
        license="cc-by-4.0",
        url="https://huggingface.co/datasets/ai4bharat/IndicQA",
    )


_ENTRIES: list[HubSource] = [
    *(_wikiann(language) for language in LANGUAGES),
    *(_xnli(language) for language in XNLI_LANGUAGES),
    *(_indicxnli(language) for language in ("te", "ml")),
    HubSource(
        "nli",
        "sk",
        "ivykopal/anli_sk",
        None,
        _STANDARD,
        "nli",
        layout="files",
        files={"train": "train.csv", "validation": "validation.csv", "test": "test.csv"},
        file_format="csv",
        label_names=NLI_LABELS,
        label_map={"e": "entailment", "n": "neutral", "c": "contradiction"},
        verified=False,
        notes="Slovak ANLI (machine-translated); train.csv/validation.csv/test.csv at the repo root; columns are "
        "taken to be ANLI's (premise, hypothesis, label 0/1/2 or e/n/c), not checked against the files",
        url="https://huggingface.co/datasets/ivykopal/anli_sk",
    ),
    HubSource(
        "nli",
        "sl",
        "cjvt/si_nli",
        "public",
        {"train": None, "dev": None, "test": "validation"},
        "nli",
        layout="export",
        derive=Derive("train", {"train": 0.9, "dev": 0.1}, key="premise"),
        verified=True,
        notes="SI-NLI's public test split has no labels, so its validation split (547) is xlt's test and train/dev "
        "are cut from its train split by premise (0.9/0.1); label is a string (entailment/neutral/contradiction)",
        license="cc-by-nc-sa-4.0",
        url="https://huggingface.co/datasets/cjvt/si_nli",
    ),
    HubSource(
        "qa",
        "en",
        "rajpurkar/squad",
        "plain_text",
        {"train": "train", "dev": None, "test": "validation"},
        "qa",
        derive=Derive("train", {"dev": 0.02}, key="context"),
        verified=True,
        notes="SQuAD v1.1: its validation split is xlt's test; dev is 2% of train's paragraphs (seeded); train is "
        "87.6k rows (stream it)",
        license="cc-by-sa-4.0",
        url="https://huggingface.co/datasets/rajpurkar/squad",
    ),
    *(
        HubSource(
            "qa",
            language,
            "facebook/mlqa",
            f"mlqa-translate-train.{language}",
            _STANDARD,
            "qa",
            configs={"test": f"mlqa.{language}.{language}"},
            layout="export",
            verified=True,
            notes=f"MLQA translate-train ({language}) for train/dev, test from config mlqa.{language}.{language}; "
            "a loading-script repo read from its parquet export; translate-train is ~80k rows (stream it)",
            license="cc-by-sa-3.0",
            url="https://huggingface.co/datasets/facebook/mlqa",
        )
        for language in ("de", "es")
    ),
    *(
        HubSource(
            "qa",
            language,
            "google/xquad",
            f"xquad.{language}",
            {"train": None, "dev": None, "test": None},
            "qa",
            derive=Derive("validation", _ALL_FROM_ONE, key="context"),
            verified=True,
            notes="XQuAD has a validation split only (1190 questions): train/dev/test are cut from it by "
            "paragraph (0.6/0.1/0.3, seeded)",
            license="cc-by-sa-4.0",
            url="https://huggingface.co/datasets/google/xquad",
        )
        for language in ("el", "ro")
    ),
    HubSource(
        "qa",
        "ar",
        "hsseinmz/arcd",
        "plain_text",
        {"train": "train", "dev": None, "test": "validation"},
        "qa",
        layout="export",
        derive=Derive("train", {"dev": 0.1}, key="context"),
        verified=True,
        notes="ARCD (693 train, 702 validation): validation is xlt's test, dev is 10% of train's paragraphs and "
        "is left out of train",
        license="mit",
        url="https://huggingface.co/datasets/hsseinmz/arcd",
    ),
    HubSource(
        "qa",
        "ru",
        "kuznetsoffandrey/sberquad",
        "sberquad",
        _STANDARD,
        "qa",
        layout="export",
        verified=True,
        notes="SberQuAD (45.3k train, 5k validation, 23.9k test); ids are integers, written as strings; test rows "
        "without an answer are dropped",
        license="unknown (card)",
        url="https://huggingface.co/datasets/kuznetsoffandrey/sberquad",
    ),
    HubSource(
        "qa",
        "zh",
        "hfl/cmrc2018",
        "default",
        _STANDARD,
        "qa",
        layout="export",
        verified=True,
        notes="CMRC 2018 (10.1k train, 3.2k validation, 1k test)",
        license="cc-by-sa-4.0",
        url="https://huggingface.co/datasets/hfl/cmrc2018",
    ),
    HubSource(
        "qa",
        "cs",
        "Pehy/cs_sqad-3.0",
        None,
        _STANDARD,
        "qa",
        verified=True,
        notes="SQAD 3.0 (Czech, SQuAD-style: 6250/570/843); answers is a struct of lists",
        license="mit",
        url="https://huggingface.co/datasets/Pehy/cs_sqad-3.0",
    ),
    HubSource(
        "qa",
        "sk",
        "TUKE-DeutscheTelekom/skquad",
        "plain_text",
        {"train": "train", "dev": None, "test": "validation"},
        "qa",
        layout="export",
        derive=Derive("train", {"dev": 0.05}, key="context"),
        verified=False,
        notes="SK-QuAD; a loading-script repo read from its parquet export; the config name (plain_text, as in "
        "SQuAD's script it follows) is not checked; validation is xlt's test, dev is 5% of train's paragraphs",
        license="cc-by-sa-4.0",
        url="https://huggingface.co/datasets/TUKE-DeutscheTelekom/skquad",
    ),
    *(_indicqa(language) for language in ("te", "ml")),
    HubSource(
        "qa",
        "sw",
        "lightblue/KenSwQuAD",
        None,
        {"train": None, "dev": None, "test": None},
        "qa",
        derive=Derive("train", _ALL_FROM_ONE, key="context"),
        verified=False,
        notes="KenSwQuAD (Swahili) has one train split (data/train-00000-of-00001.parquet): train/dev/test are cut "
        "from it by paragraph (0.6/0.1/0.3); SQuAD columns are assumed, not checked",
        license="cc-by-4.0",
        url="https://huggingface.co/datasets/lightblue/KenSwQuAD",
    ),
    HubSource(
        "qa",
        "sl",
        "thetian11/slosquad",
        None,
        {"train": "train", "dev": None, "test": "validation"},
        "qa",
        layout="files",
        files={"train": "squad2-slo-mt-train.json", "validation": "squad2-slo-mt-dev.json"},
        file_format="json",
        json_field="data",
        nested=True,
        derive=Derive("train", {"dev": 0.02}, key="context"),
        verified=False,
        notes="SQuAD 2.0 machine-translated to Slovene (a community upload, SQuAD's nested JSON): unanswerable "
        "questions are dropped; its dev file is xlt's test, dev is 2% of train's paragraphs",
        url="https://huggingface.co/datasets/thetian11/slosquad",
    ),
]

SOURCES: Mapping[tuple[str, str], HubSource] = MappingProxyType({(s.task, s.language): s for s in _ENTRIES})

UNAVAILABLE: Mapping[tuple[str, str], str] = MappingProxyType(
    {
        ("nli", "cs"): "no Czech ANLI is public on the Hugging Face Hub (CZLC/cs_snli, a Czech SNLI, is the "
        "nearest public set)",
        ("nli", "ro"): "RoNLI is published on GitHub (Eduard6421/RONLI), not on the Hugging Face Hub",
        ("qa", "ur"): "no Urdu SQuAD-style set with a checkable hub layout was found (mshakeel/UrFQuAD-v1 exists "
        "but its files and columns could not be checked)",
        **{("classification", language): PRIVATE_CHECKWORTHINESS for language in LANGUAGES},
    }
)

TASKS = ("ner", "nli", "qa", "classification")
# Other names the task goes by in configs.
_ALIASES = {"checkworthiness": "classification"}


def _task(task: str) -> str:
    name = _ALIASES.get(task, task)
    if name not in TASKS:
        raise XLTError(f"unknown task {task!r}; the paper's tasks are {', '.join(TASKS)}")
    return name


def resolve(task: str, language: str) -> HubSource:
    """The hub source of ``task`` in ``language``; a one-line error when there is none (with the fix)."""
    name = _task(task)
    if (name, language) in SOURCES:
        return SOURCES[(name, language)]
    if (name, language) in UNAVAILABLE:
        reason = UNAVAILABLE[(name, language)]
        if name == "classification":
            raise XLTError(f"{name} in {language!r}: {reason}")
        raise XLTError(
            f"{name} in {language!r} has no public hub source: {reason}; bring it as local files "
            f"(train:, dev:, test: in the {name} schema)"
        )
    covered = sorted(lang for task_, lang in SOURCES if task_ == name)
    raise XLTError(
        f"{name} has no source for language {language!r}; covered: {', '.join(covered)} "
        "(for another language, bring local files)"
    )


def sources_for(task: str) -> list[HubSource]:
    """Every hub source of ``task``, by language."""
    name = _task(task)
    return sorted((s for s in SOURCES.values() if s.task == name), key=lambda s: s.language)
