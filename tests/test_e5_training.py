"""On the real multilingual-e5-small: an LM head trained once (base frozen), then a soft language prompt and a
language adapter trained through that frozen head on real English text, each lowering the held-out loss."""

from __future__ import annotations

import importlib
import inspect
import json

import pytest
import torch

from xlt import XLTModel
from xlt.e5 import E5_MODEL_ID
from xlt.plan import Plan
from xlt.training.corpora import CorpusConfig
from xlt.training.data import SegmentSource, fixed_batches
from xlt.training.language import LanguageRun, LMHeadRun, train_language, train_lm_head
from xlt.training.lm_head import MaskedLMHead
from xlt.training.lm_objective import ObjectiveConfig, evaluate_loss, lm_objective
from xlt.training.loop import TrainConfig, TrainingModule

pytestmark = [pytest.mark.e5, pytest.mark.slow]

MODULES = [
    "json",
    "argparse",
    "collections",
    "itertools",
    "functools",
    "pathlib",
    "logging",
    "csv",
    "datetime",
    "decimal",
    "random",
    "statistics",
    "textwrap",
    "unittest",
    "zipfile",
    "tarfile",
    "email",
    "http.client",
]
OBJECTIVE = ObjectiveConfig(max_length=32)


def stdlib_text() -> list[str]:
    """Real English running text available offline: paragraphs of the standard library's docstrings."""
    paragraphs: list[str] = []
    for name in MODULES:
        module = importlib.import_module(name)
        for obj in [module, *(getattr(module, a) for a in dir(module) if not a.startswith("_"))]:
            doc = inspect.getdoc(obj)
            for para in (doc or "").split("\n\n"):
                para = " ".join(para.split())
                if len(para) > 80:
                    paragraphs.append(para)
    return list(dict.fromkeys(paragraphs))


def quick(steps: int, lr: float) -> TrainConfig:
    return TrainConfig(
        steps=steps,
        batch_size=16,
        eval_every=steps,
        checkpoint_every=0,
        lr=lr,
        warmup_steps=0,
        progress=False,
        tensorboard=False,
    )


@pytest.fixture(scope="module")
def trained(e5, tmp_path_factory):
    torch.manual_seed(0)
    base, tokenizer = e5
    root = tmp_path_factory.mktemp("e5-train")
    (root / "en.txt").write_text("\n".join(stdlib_text()))
    corpus = CorpusConfig(files=[str(root / "en.txt")], validation_fraction=0.05, max_validation_documents=64)
    model = XLTModel(base, tokenizer, name=E5_MODEL_ID)
    head_dir = train_lm_head(
        model,
        LMHeadRun(
            corpora=[corpus],
            output_dir=root / "head",
            objective=OBJECTIVE,
            train=quick(30, 2e-3),
            validation_segments=32,
            cached_segments=256,  # the base's states of 256 masked segments, fitted on for a few epochs
            cached_epochs=4,
        ),
    )
    head = MaskedLMHead.load(head_dir, model.host.input_embeddings(base), model.fingerprint)
    base_objective = lm_objective(model, Plan(), OBJECTIVE, head)
    source = SegmentSource(corpus, tokenizer, base_objective.segment_length, base_objective.separator, 42)
    validation = fixed_batches(source.validation(32), base_objective.collate, 16, 42)

    def loss(plan: Plan, lm_head: MaskedLMHead) -> float:
        objective = lm_objective(model, plan, OBJECTIVE, lm_head)
        with torch.no_grad():
            return evaluate_loss(
                TrainingModule(model, objective.loss, {"lm_head": lm_head}), objective.loss, validation
            )["loss"]

    fresh = MaskedLMHead(model.host.input_embeddings(base), head.vocab_ids.tolist())
    losses = {"fresh head": loss(Plan(), fresh), "trained head": loss(Plan(), head)}
    for kind, lr, rep in (("prompt", 0.3, {"num_virtual_tokens": 10}), ("bottleneck", 1e-3, {})):
        train_language(
            model,
            LanguageRun(
                language="en",
                kind=kind,
                corpus=corpus,
                output_dir=root / kind,
                rep=rep,
                objective=OBJECTIVE,
                train=quick(10, lr),
                validation_segments=32,
                lm_head=head_dir,
            ),
        )
        losses[kind] = loss(Plan((f"en/{kind}",)), head)
    print("held-out masked-LM loss:", losses)
    return root, losses, model


def test_lm_head_learns_on_frozen_e5(trained):
    _, losses, model = trained
    assert losses["trained head"] < losses["fresh head"] - 0.5, losses
    assert not any(p.requires_grad for p in model.base.parameters())


@pytest.mark.parametrize("kind", ["prompt", "bottleneck"])
def test_language_rep_lowers_the_loss_through_the_frozen_head(trained, kind):
    root, losses, _ = trained
    assert losses[kind] < losses["trained head"], losses
    result = json.loads((root / kind / "result.json").read_text())
    assert result["steps"] == 10 and result["objective"] == "masked_lm"
    assert (root / kind / "rep" / "rep.safetensors").is_file()
