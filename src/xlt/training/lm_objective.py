"""The language-modelling objective a host declares (``host.lm_objective``): segments, batches and loss."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from xlt.errors import XLTError
from xlt.model import XLTModel
from xlt.plan import Plan
from xlt.training.lm_batches import CausalLM, MaskedLM, SpanCorruption
from xlt.training.lm_head import MaskedLMHead


@dataclass
class ObjectiveConfig:
    """Language-modelling objective settings.

    Args:
        max_length: model input length (span corruption: the corrupted input's length, the paper's 256).
        noise_density: span corruption: share of tokens masked (0.15).
        mean_span: span corruption: mean noise span length (3).
        mlm_probability: masked LM: share of tokens chosen (0.15).
    """

    max_length: int = 256
    noise_density: float = 0.15
    mean_span: float = 3.0
    mlm_probability: float = 0.15

    def __post_init__(self) -> None:
        # Below 4 tokens an encoder's segment (less [CLS] and [SEP]) cannot be packed; a masking probability of 0
        # masks nothing, and the empty loss would surface steps later as a NaN, far from its cause.
        if self.max_length < 4:
            raise XLTError(f"objective.max_length must be >= 4, got {self.max_length}")
        if not 0 < self.mlm_probability <= 1:
            raise XLTError(f"objective.mlm_probability must be in (0, 1], got {self.mlm_probability}")


@dataclass
class LMObjective:
    """Segment length, separator and collate function for one family, plus its loss."""

    segment_length: int
    separator: int | None
    collate: Callable[[Any, np.random.Generator], dict[str, torch.Tensor]]
    loss: Callable[[nn.Module, dict[str, torch.Tensor]], tuple[torch.Tensor, int]]
    name: str


def _special(tokenizer: Any, name: str) -> int | None:
    value = getattr(tokenizer, f"{name}_token_id", None)
    return int(value) if value is not None else None


def lm_objective(model: XLTModel, plan: Plan, config: ObjectiveConfig, head: MaskedLMHead | None) -> LMObjective:
    """The language-modelling objective the model's family declares (``host.lm_objective``), under ``plan``."""
    tok = model.tokenizer
    if tok is None:
        raise XLTError("language modelling needs the model's tokenizer (create the XLTModel with tokenizer=...)")
    pad = _special(tok, "pad")
    return OBJECTIVES[model.host.lm_objective](tok, 0 if pad is None else pad, plan, config, head)


def _model_loss(plan: Plan, seq2seq: bool) -> Callable[[nn.Module, dict[str, torch.Tensor]], tuple[torch.Tensor, int]]:
    """The model's own loss on a teacher-forced batch, without materialising its logits (the vocabulary's
    softmax in chunks fused with the LM head); weighted by the tokens read (and written, for seq2seq)."""

    def loss(module: nn.Module, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, int]:
        out = module.model(batch["input_ids"], batch["attention_mask"], plan=plan, labels=batch["labels"], logits=False)
        tokens = batch["attention_mask"].sum() + ((batch["labels"] != -100).sum() if seq2seq else 0)
        return out.loss, int(tokens)

    return loss


def _span_corruption(tok: Any, pad: int, plan: Plan, config: ObjectiveConfig, head: MaskedLMHead | None) -> LMObjective:
    eos = _special(tok, "eos")
    sentinel = tok.convert_tokens_to_ids("<extra_id_0>") if "<extra_id_0>" in tok.get_vocab() else None
    objective = SpanCorruption(
        vocab_size=len(tok),
        eos_id=eos if eos is not None else 1,
        pad_id=pad,
        inputs_length=config.max_length,
        noise_density=config.noise_density,
        mean_span=config.mean_span,
        first_sentinel=sentinel,
    )
    return LMObjective(objective.lengths.tokens, eos, objective, _model_loss(plan, True), "span_corruption")


def _causal_lm(tok: Any, pad: int, plan: Plan, config: ObjectiveConfig, head: MaskedLMHead | None) -> LMObjective:
    eos = _special(tok, "eos")
    return LMObjective(config.max_length, eos, CausalLM(pad_id=pad), _model_loss(plan, False), "causal_lm")


def _masked_lm(tok: Any, pad: int, plan: Plan, config: ObjectiveConfig, head: MaskedLMHead | None) -> LMObjective:
    if head is None:
        raise XLTError(
            "masked-LM training on an encoder needs an LM head: this model ships none (train one once with "
            "`xlt train-lm-head`, then pass lm_head=DIR)"
        )
    cls, sep, mask = _special(tok, "cls"), _special(tok, "sep"), _special(tok, "mask")
    if mask is None:
        raise XLTError("the tokenizer has no mask token; masked-LM training needs one")
    specials = tuple(i for i in (cls, sep, pad, _special(tok, "bos"), _special(tok, "eos")) if i is not None)
    replace = head.vocab_ids.tolist() if head.restricted else None
    mlm = MaskedLM(
        mask_id=mask,
        pad_id=pad,
        vocab_size=len(tok),
        special_ids=specials,
        probability=config.mlm_probability,
        replace_vocab=replace,
    )

    def with_specials(rows: Any, rng: np.random.Generator) -> dict[str, torch.Tensor]:
        framed = [([cls] if cls is not None else []) + list(r) + ([sep] if sep is not None else []) for r in rows]
        return mlm(framed, rng)

    def mlm_loss(module: nn.Module, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, int]:
        out = module.model(batch["input_ids"], batch["attention_mask"], plan=plan)
        lm_head = module.extra["lm_head"]
        loss, _ = lm_head.loss(out.hidden_states, batch["labels"])
        return loss, int(batch["attention_mask"].sum())

    return LMObjective(config.max_length - 2, sep, with_specials, mlm_loss, "masked_lm")


# The objective each host declares, by name.
OBJECTIVES: dict[str, Callable[[Any, int, Plan, ObjectiveConfig, MaskedLMHead | None], LMObjective]] = {
    "masked_lm": _masked_lm,
    "span_corruption": _span_corruption,
    "causal_lm": _causal_lm,
}


def evaluate_loss(
    module: nn.Module,
    loss_fn: Callable[[nn.Module, dict[str, torch.Tensor]], tuple[torch.Tensor, int]],
    batches: list[dict[str, torch.Tensor]],
) -> dict[str, float]:
    total, weight = 0.0, 0
    device = next(module.parameters()).device
    for batch in batches:
        batch = {k: v.to(device) for k, v in batch.items()}
        loss, _ = loss_fn(module, batch)
        rows = batch["input_ids"].shape[0]
        total += float(loss) * rows
        weight += rows
    if not weight:
        raise XLTError("the validation split is empty (give more text or a larger validation_fraction)")
    return {"loss": total / weight}
