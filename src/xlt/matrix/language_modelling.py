"""A matrix's language-modelling stage as its report shows it: what the LM head reached against a unigram
model of the same corpora, and how much each language representation lowers its own language's held-out loss
(and others'). Measured once the language representations exist, kept in ``language_modelling.json`` beside
the store and measured again only when a representation, the head or the objective changes."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from xlt.formats.atomic import atomic_write_text
from xlt.matrix.config import MatrixConfig
from xlt.matrix.configurations import Configuration
from xlt.matrix.inputs import LM_HEAD
from xlt.model import XLTModel
from xlt.records import jsonable
from xlt.training.corpora import CorpusConfig
from xlt.training.lm_eval import ALONE, LossTable, flagged, language_losses
from xlt.training.lm_head import MaskedLMHead

LM_FILE = "language_modelling.json"
HELD_OUT = 32  # held-out segments per language: enough to rank representations, seconds on a CPU


class LanguageModelling:
    """The language-modelling measurement of a ``Matrix`` (which provides the attributes declared here)."""

    config: MatrixConfig
    configurations: list[Configuration]
    failed: dict[str, str]
    digests: dict[str, str]
    log: Any
    out: Path

    @property
    def model(self) -> XLTModel:
        raise NotImplementedError

    def _corpus(self, language: str) -> CorpusConfig | None:
        raise NotImplementedError

    def _language_dir(self, language: str, kind: str) -> Path:
        raise NotImplementedError

    def _lm_head(self) -> Path:
        raise NotImplementedError

    def _measure_language_modelling(self) -> None:
        """Measure (or keep) the language representations' held-out losses; a failure is a log line, never a
        lost matrix: the table is a diagnosis, not a result."""
        try:
            reps = self._built_language_reps()
            if not reps:
                return
            head_dir = self._lm_head() if self.model.host.needs_lm_head else None
            key = self._lm_key(reps, head_dir)
            path = self.out / LM_FILE
            if path.is_file() and _read(path).get("key") == key:
                return
            self.log(f"language modelling: held-out loss of {len(reps)} representation(s) on every language's text")
            table = self._lm_table(reps, head_dir)
            record = {"key": key, "table": table.to_dict(), "head": _head_record(head_dir)}
            atomic_write_text(path, json.dumps(record, indent=2))
        except Exception as exc:  # the matrix's results stand without this diagnosis: never lose them to it
            self.log(f"language modelling: not measured ({type(exc).__name__}: {exc})")

    def _built_language_reps(self) -> dict[str, Path]:
        kinds = dict.fromkeys(c.language for c in self.configurations if c.language)
        languages = dict.fromkeys([*self.config.sources, *self.config.target_languages()])
        reps = {}
        for kind in kinds:
            for language in languages:
                name = f"{language}/{kind}"
                if name in self.failed or self._corpus(language) is None:
                    continue
                try:
                    rep_dir = self._language_dir(language, str(kind)) / "rep"
                except KeyError:  # in a rep store, a pair this run did not build has no directory here
                    continue
                if rep_dir.is_dir():
                    reps[name] = rep_dir
        return reps

    def _lm_key(self, reps: dict[str, Path], head_dir: Path | None) -> str:
        results = {name: _text(rep_dir.parent / "result.json") for name, rep_dir in reps.items()}
        c = self.config.language_training
        determined = {
            "reps": results,
            "head": _text(head_dir.parent / "result.json") if head_dir is not None else None,
            "given_head": self.digests.get(LM_HEAD),  # a head given by path counts by its content
            "batch_size": self.config.eval_batch_size,  # the masks are drawn per batch
            "objective": jsonable(c.objective),
            "skip": c.validation_segments,
            "segments": HELD_OUT,
        }
        return hashlib.sha256(json.dumps(determined, sort_keys=True).encode()).hexdigest()[:16]

    def _lm_table(self, reps: dict[str, Path], head_dir: Path | None) -> LossTable:
        model = self.model
        for name, rep_dir in reps.items():
            if name not in model.reps:
                model.load_rep(rep_dir)
        head = None
        if head_dir is not None:
            head = MaskedLMHead.load(head_dir, model.host.input_embeddings(model.base), model.fingerprint)
            head.requires_grad_(False)
        languages = list(dict.fromkeys(name.split("/")[0] for name in reps))
        corpora = {lang: corpus for lang in languages if (corpus := self._corpus(lang)) is not None}
        c = self.config.language_training
        return language_losses(
            model,
            corpora,
            {name: name.split("/")[0] for name in reps},
            c.objective,
            head,
            skip=c.validation_segments,
            segments=HELD_OUT,
            batch_size=self.config.eval_batch_size,
            log=self.log,
        )


def _text(path: Path) -> str | None:
    return path.read_text(encoding="utf-8") if path.is_file() else None


def _read(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError, OSError):
        return {}
    return data if isinstance(data, dict) else {}


def _head_record(head_dir: Path | None) -> dict[str, Any] | None:
    """What the LM head's run reached (held-out loss against its unigram and uniform baselines)."""
    if head_dir is None:
        return None
    result = _read(head_dir.parent / "result.json")
    keep = ("best_loss", "unigram_loss", "uniform_loss", "steps", "best_step", "epochs", "vocab", "curve")
    return {k: result[k] for k in keep if k in result}


def language_modelling_section(directory: Path) -> str | None:
    """The report's "Language modelling" section from ``directory``'s measurement (None when there is none)."""
    path = Path(directory) / LM_FILE
    data = _read(path) if path.is_file() else {}
    if "table" not in data:
        return None
    try:
        table = LossTable.from_dict(data["table"])
        return _render(table, data.get("head"))
    except (KeyError, TypeError, ValueError):
        return None


def _render(table: LossTable, head: dict[str, Any] | None) -> str:
    lines = ["## Language modelling\n"]
    if head and isinstance(head.get("best_loss"), int | float):
        parts = [f"held-out loss **{head['best_loss']:.3f}** nats per masked token"]
        if "unigram_loss" in head:
            parts.append(f"a unigram model of the same corpora {head['unigram_loss']:.3f}")
        if "uniform_loss" in head:
            parts.append(f"uniform over its vocabulary {head['uniform_loss']:.3f}")
        lines.append("The shared LM head (base frozen): " + "; ".join(parts) + ".\n")
    lines.append(
        "Held-out loss of each language's text (columns) under each language representation (rows) and under "
        f"the model alone; lower is better. Margin: how much a representation lowers its own language's loss "
        f"against the model alone. Held-out segments per language: "
        f"{', '.join(f'{k} {v}' for k, v in table.segments.items())}.\n"
    )
    if table.reused:
        lines.append(
            f"For {', '.join(table.reused)} the held-out split holds no more segments than those that selected the "
            "representations' checkpoints: those are measured again (give more held-out text to separate them).\n"
        )
    header = ["representation", *table.languages, "margin", "own language helped most"]
    rows = [header, ["---", *["---:"] * (len(table.languages) + 1), "---"]]
    rows.append(["model alone", *[f"{table.losses[ALONE][t]:.3f}" for t in table.languages], "", ""])
    for rep in table.reps:
        cells = [f"**{v:.3f}**" if t == table.reps[rep] else f"{v:.3f}" for t, v in table.losses[rep].items()]
        own = "yes" if table.own_best(rep) else "no"
        rows.append([rep, *cells, f"{table.margin(rep):+.3f}", own])
    lines.append("\n".join("| " + " | ".join(r) + " |" for r in rows) + "\n")
    worse = flagged(table)
    if worse:
        lines.append("Flagged (worse than the model alone on their own language):\n")
        lines.append("".join(f"- {line}\n" for line in worse))
    return "\n".join(lines)


def lm_margins(directory: Path) -> list[str]:
    """One line per language-representation kind: how many lower their own language's held-out loss, and the
    margins by language (for summaries; the report's table has the rest)."""
    path = Path(directory) / LM_FILE
    data = _read(path) if path.is_file() else {}
    try:
        table = LossTable.from_dict(data["table"])
    except (KeyError, TypeError, ValueError):
        return []
    lines = []
    kinds = dict.fromkeys(rep.split("/", 1)[1] for rep in table.reps)
    for kind in kinds:
        reps = [rep for rep in table.reps if rep.split("/", 1)[1] == kind]
        helped = sum(table.margin(rep) > 0 for rep in reps)
        own = sum(table.own_best(rep) for rep in reps)
        margins = ", ".join(f"{table.reps[rep]} {table.margin(rep):+.3f}" for rep in reps)
        lines.append(
            f"  {kind}: {helped} of {len(reps)} lower their own language's loss (margins {margins}); {own} of "
            f"{len(reps)} lower it more than any other language's"
        )
    return lines
