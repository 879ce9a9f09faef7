"""Training a language representation: a soft language prompt, language adapter or LoRA, with the family's
language-modelling objective on that language's text, the base model frozen."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path
from typing import Any

import torch

from xlt.errors import XLTError
from xlt.languages import get_language
from xlt.model import XLTModel
from xlt.plan import Plan
from xlt.reps.base import check_name
from xlt.reps.registry import role_kind
from xlt.training.alignment import AlignmentRun, Pairs, read_pairs
from xlt.training.compilation import check_compile
from xlt.training.corpora import CorpusConfig, check_corpus, describe, pack, tokenized
from xlt.training.data import SegmentSource, fixed_batches, micro_batches
from xlt.training.lm_head import MaskedLMHead
from xlt.training.lm_head_fit import CachedFit, check_cached_options, fit_cached_head
from xlt.training.lm_objective import ObjectiveConfig, evaluate_loss, lm_objective
from xlt.training.loop import TrainConfig, TrainingModule, discarded_on_failure, train
from xlt.training.run import claim_output_dir, finish, run_lock
from xlt.training.task import rep_record


@dataclass
class LanguageRun:
    """One language representation to train.

    Args:
        language: ISO code of the language (e.g. "sk").
        kind: a kind serving the language role: "prompt" (soft language prompt), "bottleneck" (language
            adapter), "lora", or one registered with ``register_kind``.
        corpus: where the language's text comes from.
        output_dir: run directory; the trained rep is written to output_dir/rep.
        rep: options of the kind's config (e.g. {"num_virtual_tokens": 50} or {"reduction_factor": 16}).
        objective: language-modelling objective settings.
        train: optimisation settings.
        validation_segments: validation segments used at each evaluation.
        lm_head: directory of an xlt LM head (encoders without their own MLM head, such as e5).
        alignment: parallel text the representation is also aligned with (``xlt.training.alignment``); its teacher
            (the source's language representation) must be in the model's bank.
        name: the representation's name in the bank (default ``{language}/{kind}``).
    """

    language: str
    kind: str
    corpus: CorpusConfig
    output_dir: Path
    rep: dict[str, Any] = field(default_factory=dict)
    objective: ObjectiveConfig = field(default_factory=ObjectiveConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    validation_segments: int = 64
    lm_head: Path | None = None
    alignment: AlignmentRun | None = None
    name: str | None = None


def train_language(model: XLTModel, run: LanguageRun, log: Any = print) -> Path:
    """Train (or resume, or reuse) ``{language}/{kind}`` on ``model``; returns the saved rep's directory.

    The trained rep stays in the model's bank under its name.
    """
    check_language_run(run)
    out = Path(run.output_dir)
    rep_dir = out / "rep"
    name = check_name(run.name if run.name is not None else f"{run.language}/{run.kind}")
    config = role_kind(run.kind, "language").config_cls.from_dict(dict(run.rep))
    # Every input is checked before the output directory is claimed: bad input leaves nothing behind.
    head = _lm_head(model, run.lm_head)
    plan = Plan((name,))
    objective = lm_objective(model, plan, run.objective, head)
    check_corpus(run.corpus)
    claim: dict[str, Any] = {"run": run, "base": model.fingerprint.to_dict()}
    pairs_read = None
    if run.alignment is not None:
        claim["teacher"] = _teacher_identity(model, run.alignment)
        pairs_read = read_pairs(run.alignment.pairs, run.alignment.source)
    with run_lock(out, log):
        if claim_output_dir(out, claim, ignore=()):
            log(f"{name}: already trained in {out}, reusing it")
            if name in model.reps:  # the finished run's weights, not whatever the bank held under that name
                model.remove(name)
            model.load_rep(rep_dir)
            return rep_dir
        if name in model.reps:
            model.remove(name)
        source = SegmentSource(
            run.corpus, model.tokenizer, objective.segment_length, objective.separator, run.train.seed
        )
        pairs = None
        if run.alignment is not None:
            pairs = Pairs(model, run.alignment, run.train.seed, pairs_read)
            log(f"{name}: aligned with {len(pairs.train)} pairs ({len(pairs.dev)} held out) from {run.alignment.pairs}")
        with discarded_on_failure(model, name):
            rep = model.add_language(run.language, config, name=name)
            record = _train_lm(
                model,
                objective,
                source,
                {name: rep},
                run.kind,
                head,
                run.train,
                run.validation_segments,
                out,
                log,
                alignment=(pairs, plan) if pairs is not None else None,
            )
            finish(out, lambda: model.save_rep(name, rep_dir), {"objective": objective.name, **record})
    return rep_dir


def _teacher_identity(model: XLTModel, alignment: AlignmentRun) -> str | None:
    """The teacher's weights (sha256): another teacher is another run."""
    if alignment.teacher is None:
        return None
    if alignment.teacher not in model.reps:
        raise XLTError(
            f"alignment teacher {alignment.teacher!r} is not in the model's bank (load or train the source's "
            "language representation first)"
        )
    return str(rep_record(model.rep(alignment.teacher))["weights"])


def check_language_run(run: LanguageRun) -> None:
    """Refuse what no training could fix, before the model is touched: an unknown language code (the
    registry's error lists the known ones; the matrix would refuse the representation later), an unknown kind."""
    get_language(run.language)
    role_kind(run.kind, "language")
    check_validation_segments(run.validation_segments)
    check_compile(run.train.compile)


def check_validation_segments(count: int) -> None:
    if isinstance(count, bool) or not isinstance(count, int) or count < 1:
        raise XLTError(
            f"validation_segments must be an integer >= 1, got {count!r} (to skip evaluation set train.eval_every 0)"
        )


def _train_lm(
    model: XLTModel,
    objective: Any,
    source: SegmentSource,
    trainable: dict[str, Any],
    kind: str,
    head: MaskedLMHead | None,
    config: TrainConfig,
    validation_segments: int,
    out: Path,
    log: Any,
    alignment: tuple[Pairs, Plan] | None = None,
) -> dict[str, Any]:
    """The language-modelling run shared by language representations and the LM head: batches from the
    packed training split, validation loss on fixed segments, the best weights kept. Returns the run's record
    for result.json (with the validation segments evaluation used, and the warnings).

    With ``alignment`` (the pairs and the trained representation's plan) each micro-batch also carries pairs, the
    loss is the weighted sum of both objectives, and so is the validation loss the checkpoint is chosen on."""
    micro = config.batch_size // config.gradient_accumulation
    batches = micro_batches(source.train, objective.collate, micro, config.seed)
    segments = source.validation(validation_segments)
    warnings = validation_warnings(source, len(segments), validation_segments, config)
    for warning in warnings:
        log(f"warning: {warning}")
    validation = fixed_batches(segments, objective.collate, micro, config.seed)
    extra = {"lm_head": head} if head is not None else None
    loss_fn = objective.loss
    scorer = TrainingModule(model, objective.loss, extra)

    def evaluate() -> dict[str, float]:
        scores = evaluate_loss(scorer, objective.loss, validation) if validation else {}
        if alignment is None:
            return scores
        pairs, plan = alignment
        aligned = pairs.dev_loss(scorer, plan, micro)
        lm = scores.get("loss")
        total = pairs.config.weight * aligned + (pairs.config.lm_weight * lm if lm is not None else 0.0)
        return {"loss": total, "alignment_loss": aligned, **({"lm_loss": lm} if lm is not None else {})}

    if alignment is not None:
        batches = alignment[0].with_pairs(batches, micro)
        loss_fn = alignment[0].objective(objective.loss, alignment[1])
    result = train(
        config=config,
        model=model,
        trainable=trainable,
        kind=kind,
        loss_fn=loss_fn,
        batches=batches,
        evaluate=evaluate if (validation or alignment is not None) else None,
        output_dir=out,
        metric="loss",
        extra=extra,
        log=log,
    )
    result.warnings = [*warnings, *result.warnings]
    return {**result.to_dict(), "validation_segments": len(segments)}


# Training segments counted for a warning at most: enough to tell a small corpus from a large one.
COUNT_LIMIT = 10_000


def validation_warnings(source: SegmentSource, held: int, asked: int, config: TrainConfig) -> list[str]:
    """A line saying what an empty validation split takes from a run that asks for evaluation or early
    stopping (none otherwise). A split short of ``asked`` but not empty still evaluates, on the segments
    recorded in result.json's ``validation_segments``.

    A warning, not an error: a corpus too small to hold out text still trains a usable representation (the last
    weights), and the fast preset asks for early stopping by default, so a refusal would block every small
    corpus whether or not its user asked for early stopping."""
    if held or not (config.eval_every or config.early_stopping_patience):
        return []
    trained = source.count("train", COUNT_LIMIT)
    skipped = [f"evaluation every {config.eval_every} steps"] if config.eval_every else []
    if config.early_stopping_patience:
        skipped.append(f"early stopping (patience {config.early_stopping_patience})")
    return [
        f"{source.describe()}: the validation split holds 0 segments of {source.length} tokens (the corpus packs "
        f"into {trained if trained < COUNT_LIMIT else f'{COUNT_LIMIT}+'} training segments; validation needs at "
        f"least 1, {asked} asked for), so {' and '.join(skipped)} are skipped and the last weights are kept (give "
        "more text or raise validation_fraction)"
    ]


def _lm_head(model: XLTModel, path: Path | None) -> MaskedLMHead | None:
    if not model.host.needs_lm_head or path is None:
        return None
    head = MaskedLMHead.load(path, model.host.input_embeddings(model.base), model.fingerprint)
    head.requires_grad_(False)
    return head


@dataclass
class LMHeadRun:
    """The masked-LM head of an encoder that ships none, trained once on the pooled text of all languages.

    Args:
        corpora: the languages' corpora (documents are interleaved across them).
        output_dir: run directory; the head is written to output_dir/head.
        restrict_vocab: predict only the token ids that occur in the corpora (much cheaper than the full
            vocabulary; the rest are ignored as targets).
        objective: masked-LM settings (max_length, mlm_probability).
        train: optimisation settings (AdamW; the base stays frozen). The cached fit reads the optimiser, lr,
            weight_decay, warmup_steps (in its steps of 256 positions), max_grad_norm, seed, checkpoint_every
            (whether, not how often) and early_stopping_patience (in epochs; 3 when unset) from it, and
            batch_size as the segments masked together; its steps and eval_every are its own
            (``lm_head_fit.fit_config``).
        validation_segments: validation segments the held-out loss is measured on.
        vocab_documents: documents per corpus scanned to collect the vocabulary (and, for the cached fit, the
            unigram counts that set the head's initial bias and its baseline).
        cached_segments: training segments the frozen base runs over once; the head is then fitted on the
            states at their masked positions (``xlt.training.lm_head_fit``). 0 trains through the base step by
            step instead (``train.steps`` steps, as before the cached fit).
        cached_epochs: epochs of the cached fit over its states: the learning rate decays to 0 over them (early
            stopping may end the fit sooner).
    """

    corpora: list[CorpusConfig]
    output_dir: Path
    restrict_vocab: bool = True
    objective: ObjectiveConfig = field(default_factory=ObjectiveConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    validation_segments: int = 64
    vocab_documents: int = 100_000
    cached_segments: int = 1536
    cached_epochs: int = 8


def check_lm_head_run(run: LMHeadRun) -> None:
    """Refuse options no head run could honour, before the model is loaded or a directory claimed."""
    check_validation_segments(run.validation_segments)
    check_cached_options(run.cached_segments, run.cached_epochs)
    check_compile(run.train.compile)


def _interleave(corpora: list[CorpusConfig], split: str) -> Any:
    """Round-robin documents of several corpora, so that every language is seen from the first step."""
    from xlt.training.corpora import documents

    streams = [documents(c, split) for c in corpora]  # type: ignore[arg-type]
    while streams:
        alive = []
        for stream in streams:
            text = next(stream, None)
            if text is not None:
                yield text
                alive.append(stream)
        streams = alive


def train_lm_head(model: XLTModel, run: LMHeadRun, log: Any = print) -> Path:
    """Train the LM head of an encoder on the pooled corpora (base frozen, no representation active): by default
    fitted on the base's cached states at masked positions (``run.cached_segments``), else step by step."""
    if not model.host.needs_lm_head:
        raise XLTError(f"{model.host.name} models predict tokens with their own LM head; only encoders need one")
    if not run.corpora:
        raise XLTError("an LM head needs at least one corpus (corpora=[...])")
    check_lm_head_run(run)
    out = Path(run.output_dir)
    head_dir = out / "head"
    embeddings = model.host.input_embeddings(model.base)
    for corpus in run.corpora:
        check_corpus(corpus)
    tok = model.tokenizer
    if tok is None:
        raise XLTError("an LM head needs the model's tokenizer (create the XLTModel with tokenizer=...)")
    with run_lock(out, log):
        return _train_head(model, run, out, head_dir, embeddings, log)


def _train_head(model: XLTModel, run: LMHeadRun, out: Path, head_dir: Path, embeddings: Any, log: Any) -> Path:
    """The head's run once ``out`` is held: reused when finished, else trained (or resumed)."""
    if claim_output_dir(out, {"run": run, "base": model.fingerprint.to_dict()}):
        log(f"LM head: already trained in {out}, reusing it")
        return head_dir
    counts = _scan(run, model.tokenizer)
    with torch.random.fork_rng(devices=[]):  # the head's init comes from the run's seed, not the global RNG
        torch.manual_seed(run.train.seed)
        vocab = sorted(counts) if run.restrict_vocab else None
        head = MaskedLMHead(embeddings, vocab).to(embeddings.weight.device)
    objective = lm_objective(model, Plan(), run.objective, head)
    source = _pooled(run, model.tokenizer, objective.segment_length, objective.separator)
    if run.cached_segments:
        fit = CachedFit(run.cached_segments, run.cached_epochs, run.validation_segments, run.train)
        record = fit_cached_head(model, head, objective.collate, source, counts, fit, out, log)
    else:
        record = _train_lm(
            model, objective, source, {"lm_head": head}, "lm_head", head, run.train, run.validation_segments, out, log
        )
    finish(
        out,
        lambda: head.save(head_dir, model.fingerprint, {"vocab": len(head.vocab_ids), "steps": record["steps"]}),
        {"objective": "masked_lm_head", "vocab": len(head.vocab_ids), **record},
    )
    return head_dir


def _scan(run: LMHeadRun, tok: Any) -> Counter[int]:
    """Token counts of the first ``vocab_documents`` training documents of each corpus: the restricted
    vocabulary, and the cached fit's unigram model. Skipped (empty) when neither is asked for."""
    counts: Counter[int] = Counter()
    if not (run.restrict_vocab or run.cached_segments):
        return counts
    scanned = islice(_interleave(run.corpora, "train"), run.vocab_documents * len(run.corpora))
    for ids in tokenized(scanned, tok):
        counts.update(ids)
    if not counts:
        raise XLTError("the corpora hold no text to build the LM head's vocabulary from")
    return counts


def _pooled(run: LMHeadRun, tok: Any, length: int, separator: int | None) -> SegmentSource:
    """The segments of all corpora, interleaved document by document."""

    class Pooled(SegmentSource):
        def _packed(self, split: str) -> Any:
            return pack(tokenized(_interleave(run.corpora, split), tok), self.length, self.separator)

        def describe(self) -> str:
            return "the pooled corpora (" + "; ".join(describe(c) for c in run.corpora) + ")"

    return Pooled(run.corpora[0], tok, length, separator, run.train.seed)
