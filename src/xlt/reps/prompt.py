"""Soft prompts: n trainable virtual tokens in the input-embedding space, prepended to the input."""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import ClassVar, Literal

import torch
from torch import nn

from xlt.errors import XLTError
from xlt.reps.base import RepBody, RepConfig, check_range, check_seed
from xlt.reps.context import BuildContext
from xlt.reps.registry import OptimizerDefaults, register_kind

LANGUAGE_INIT_TEXT = "Generate the output in {language}:"


@dataclass
class PromptConfig(RepConfig):
    """A soft prompt (Lester et al. 2021), as the paper's soft language and task prompts.

    ``init="text"`` tokenises ``init_text`` and repeats its ids cyclically over the rows, each row the frozen
    embedding of its id (PEFT's TEXT init; ``init_special_tokens`` keeps the tokenizer's special tokens as
    PEFT does). ``{language}`` in the text is replaced by the rep's English language name, so a language
    prompt defaults to the paper's ``Generate the output in {language}:``. ``init="vocab"`` samples
    embeddings of random vocabulary ids; ``init="random"`` draws from N(0, ``init_std``).
    """

    kind: ClassVar[str] = "prompt"
    num_virtual_tokens: int = 50
    init: Literal["text", "vocab", "random"] = "text"
    init_text: str | None = None
    init_special_tokens: bool = True
    init_std: float = 0.02
    seed: int = 42

    def __post_init__(self) -> None:
        if self.init not in ("text", "vocab", "random"):
            raise XLTError(f"prompt init must be 'text', 'vocab' or 'random', got {self.init!r}")
        super().__post_init__()
        if self.num_virtual_tokens < 1:
            raise XLTError(f"num_virtual_tokens must be >= 1, got {self.num_virtual_tokens}")
        check_range("prompt", "init_std", self.init_std, 0.0, low_open=True)
        check_seed("prompt", self.seed)


class SoftPrompt(RepBody):
    entry: ClassVar = "input"

    def __init__(self, vectors: torch.Tensor) -> None:
        super().__init__()
        self.embedding = nn.Parameter(vectors)

    @property
    def num_virtual_tokens(self) -> int:
        return self.embedding.shape[0]

    def forward(self) -> torch.Tensor:
        return self.embedding


def init_token_ids(config: PromptConfig, ctx: BuildContext) -> list[int]:
    text = config.init_text
    if text is None and ctx.language_name is not None:
        text = LANGUAGE_INIT_TEXT
    if text is None:
        raise XLTError(
            "prompt init 'text' needs init_text for a task prompt (e.g. 'Answer the question in {language} "
            "language:'), or use init='vocab'"
        )
    if ctx.tokenizer is None:
        raise XLTError(
            "prompt init 'text' needs a tokenizer: create the XLTModel with tokenizer=..., or use init='vocab'"
        )
    text = text.replace("{language}", ctx.language_name or "English").replace(
        "{Language}", ctx.language_name or "English"
    )
    ids = list(ctx.tokenizer(text, add_special_tokens=config.init_special_tokens)["input_ids"])
    if not ids:
        raise XLTError(f"init_text {text!r} tokenises to nothing; give a longer text")
    ids = ids * math.ceil(config.num_virtual_tokens / len(ids))
    return ids[: config.num_virtual_tokens]


def build_prompt(config: RepConfig, ctx: BuildContext) -> SoftPrompt:
    assert isinstance(config, PromptConfig)
    table = ctx.input_embeddings.weight
    generator = torch.Generator().manual_seed(config.seed)
    if config.init == "text":
        ids = torch.tensor(init_token_ids(config, ctx), dtype=torch.long)
        vectors = table.detach()[ids.to(table.device)].clone()
    elif config.init == "vocab":
        ids = torch.randint(0, table.shape[0], (config.num_virtual_tokens,), generator=generator)
        vectors = table.detach()[ids.to(table.device)].clone()
    else:
        vectors = torch.randn(config.num_virtual_tokens, table.shape[1], generator=generator) * config.init_std
    return SoftPrompt(vectors.float().to(table.device))


def _for_loading(config: RepConfig) -> RepConfig:
    # Text init would tokenise and look up embeddings only to be overwritten by the saved weights.
    return replace(config, init="random")  # type: ignore[type-var]


# "paper": soft prompts with Adafactor at lr 0.5, weight decay 1e-5 (Vykopal et al.); "fast": 0.3, since at 0.5
# the prompt's row norms grow fastest on small budgets.
register_kind(
    "prompt",
    PromptConfig,
    build_prompt,
    aliases=("soft_prompt",),
    optimizer={
        "paper": OptimizerDefaults("adafactor", 0.5, 1e-5),
        "fast": OptimizerDefaults("adafactor", 0.3, 1e-5),
    },
    for_loading=_for_loading,
)
