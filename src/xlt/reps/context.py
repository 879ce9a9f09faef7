"""What a kind's builder may look at when it creates a body for a given base model."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from torch import nn

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

    from xlt.hosts.base import Host


@dataclass
class BuildContext:
    base: PreTrainedModel
    host: Host
    tokenizer: PreTrainedTokenizerBase | None
    language_name: str | None = None
    task_name: str | None = None

    @property
    def input_embeddings(self) -> nn.Embedding:
        return self.host.input_embeddings(self.base)

    @property
    def hidden_size(self) -> int:
        return self.input_embeddings.weight.shape[1]
