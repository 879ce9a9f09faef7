"""The Host interface: what one family of base models is to xlt (where representations enter it, how a forward
and a generation run, how it is loaded, trained and written to other formats), so that nothing else branches
on the family."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Literal

import torch
from torch import nn
from transformers import AutoModel, AutoModelForSeq2SeqLM, PretrainedConfig, PreTrainedModel

from xlt.errors import UnsupportedError, XLTError
from xlt.reps.base import RepConfig, Role

if TYPE_CHECKING:
    from xlt.assembly import Assembled
    from xlt.reps.heads import HeadConfig
    from xlt.routing import Route

Family = Literal["encoder", "encoder_decoder", "decoder"]
LMObjective = Literal["masked_lm", "span_corruption", "causal_lm"]
ResidualGetter = Callable[[tuple[Any, ...], dict[str, Any]], torch.Tensor]


def arg(position: int, keyword: str) -> ResidualGetter:
    """Read a module call's argument by position or keyword (transformers versions differ)."""

    def get(args: tuple[Any, ...], kwargs: dict[str, Any]) -> torch.Tensor:
        return args[position] if len(args) > position else kwargs[keyword]

    return get


@dataclass(frozen=True)
class BottleneckSite:
    """One sub-layer that takes a bottleneck.

    ``residual_module``'s call carries the sub-layer's residual input (read by ``residual``);
    ``output_module`` returns the sub-layer output ``h`` (or a tuple starting with it) before the model's own
    residual add; ``layer_norm`` is the block's norm after that add (post-norm blocks), else None.
    """

    key: str
    where: Literal["attn", "ffn"]
    dim: int
    residual_module: nn.Module
    residual: ResidualGetter
    output_module: nn.Module
    layer_norm: nn.Module | None


@dataclass(frozen=True)
class LinearTarget:
    key: str
    name: str
    module: nn.Module
    in_features: int
    out_features: int


@dataclass
class HostOutput:
    logits: torch.Tensor | None = None
    loss: torch.Tensor | None = None
    hidden_states: torch.Tensor | None = None
    encoder_hidden_states: torch.Tensor | None = None


def _linear_shape(module: nn.Module) -> tuple[int, int] | None:
    if isinstance(module, nn.Linear):
        return module.in_features, module.out_features
    if type(module).__name__ == "Conv1D":  # GPT-2 stores its linears transposed
        weight = module.weight
        return int(weight.shape[0]), int(weight.shape[1])
    return None


class Host(ABC):
    """Entry points of one architecture family. Subclasses describe the blocks; this class finds linears."""

    name: ClassVar[str]
    family: ClassVar[Family]
    model_types: ClassVar[tuple[str, ...]]
    # the language-modelling objective a language representation of this family trains with
    lm_objective: ClassVar[LMObjective]
    # whether that objective reads logits from an LM head trained apart (the base model has none to use)
    needs_lm_head: ClassVar[bool] = False
    # text put before a label or answer tokenised as a target (a decoder continues the source's last word)
    answer_prefix: ClassVar[str] = ""
    supports_heads: ClassVar[bool] = False
    supports_generation: ClassVar[bool] = True
    supports_invertible: ClassVar[bool] = True
    default_lora_targets: ClassVar[tuple[str, ...]] = ()
    ignored_linears: ClassVar[tuple[str, ...]] = ("lm_head",)
    # why fp16 cannot run this family (None: it can); refused at load, as training refuses fp16
    fp16_refusal: ClassVar[str | None] = None
    # whether generated tokens take the positions after the input's (and so count against a position table)
    generation_continues_input: ClassVar[bool] = False
    # PEFT prompt tuning's task type for this family, and how many copies of the prompt it allocates and saves
    peft_task_type: ClassVar[str]
    peft_submodules: ClassVar[int] = 1

    @classmethod
    def auto_class(cls, config: PretrainedConfig) -> type:
        """The transformers Auto class that loads a model of this family with what the host drives."""
        # A config that declares itself an encoder-decoder is loaded as one, whatever its family: a mismatch then
        # fails in transformers or in check_base, each saying why.
        return AutoModelForSeq2SeqLM if getattr(config, "is_encoder_decoder", False) else AutoModel

    @classmethod
    def check_dtype(cls, dtype: torch.dtype | str | None) -> None:
        """Refuse a dtype this family cannot compute in, before any weights are loaded."""
        if isinstance(dtype, str):
            dtype = getattr(torch, dtype, None) if dtype != "auto" else None
        if dtype in (torch.float16, torch.half) and cls.fp16_refusal:
            raise UnsupportedError(f"{cls.name} models cannot run in float16: {cls.fp16_refusal}")

    def check_base(self, base: PreTrainedModel) -> None:
        """Refuse a model class of this family that lacks what the host drives (the LM head)."""
        if base.get_output_embeddings() is None:
            raise UnsupportedError(
                f"{type(base).__name__} has no LM head, which {self.name} models need to compute logits and "
                "generate (load the model with XLTModel.from_pretrained, which picks the class with the head)"
            )

    def check_kind(self, config: RepConfig, name: str) -> None:
        """Refuse a representation this family cannot take, before it is built or its weights read."""
        if getattr(config, "invertible", None) and not self.supports_invertible:
            raise UnsupportedError(
                f"rep '{name}': {self.name} models cannot host an invertible adapter (use invertible=None)"
            )

    def check_head(self, name: str, role: Role, head: HeadConfig) -> None:
        """Refuse a head on a family that answers in text, or on a representation that is not a task's."""
        if not self.supports_heads:
            raise UnsupportedError(
                f"rep '{name}': {self.name} models are text-to-text and take no head (drop head=, and "
                "train the task as generation)"
            )
        if role is not Role.TASK:
            raise XLTError(f"rep '{name}': only task representations may own a head")

    def check_forward(
        self, labels: torch.Tensor | None, decoder_input_ids: torch.Tensor | None, has_head: bool
    ) -> None:
        """Refuse, before any compute, a forward's inputs this family cannot take (its plan has a head or not)."""
        if decoder_input_ids is not None:
            raise XLTError(f"decoder_input_ids= is for encoder-decoders; this is a {self.name} model")

    def check_lm_labels(self, input_ids: torch.Tensor, labels: torch.Tensor) -> None:
        """Refuse token labels this family's LM loss cannot align with the input (any shape by default)."""
        return None

    def input_embeddings(self, base: PreTrainedModel) -> nn.Embedding:
        return base.get_input_embeddings()

    def max_positions(self, base: PreTrainedModel) -> int | None:
        """Length of an absolute position table, if the family has one (None: relative or rotary)."""
        return None

    def embedding_output(self, base: PreTrainedModel) -> nn.Module:
        """The module whose output enters the first block (where MAD-X's invertible adapter couples)."""
        return self.input_embeddings(base)

    def backbone(self, base: PreTrainedModel) -> nn.Module:
        return base.base_model

    def compiled_modules(self, base: PreTrainedModel) -> list[nn.Module]:
        """The modules ``run`` calls, which training's ``compile: true`` compiles (the hooks inside them are
        traced with them)."""
        return [self.backbone(base)]

    @abstractmethod
    def bottleneck_sites(self, base: PreTrainedModel) -> list[BottleneckSite]: ...

    def _linears(self, base: PreTrainedModel) -> list[tuple[str, nn.Module, tuple[int, int]]]:
        found = []
        for name, module in base.named_modules():
            shape = _linear_shape(module)
            if shape is None or name.split(".")[-1] in self.ignored_linears:
                continue
            found.append((name, module, shape))
        return found

    def linear_names(self, base: PreTrainedModel) -> list[str]:
        return sorted({name.split(".")[-1] for name, _, _ in self._linears(base)})

    def lora_targets(self, base: PreTrainedModel, targets: list[str]) -> list[LinearTarget]:
        wanted = set(targets or self.default_lora_targets)
        unknown = wanted - set(self.linear_names(base))
        if unknown:
            raise UnsupportedError(
                f"LoRA target_modules {sorted(unknown)} are not linear layers of this {self.name} model "
                f"(choose among: {', '.join(self.linear_names(base))})"
            )
        return [
            LinearTarget(name.replace(".", "-"), name, module, shape[0], shape[1])
            for name, module, shape in self._linears(base)
            if name.split(".")[-1] in wanted
        ]

    @abstractmethod
    def run(self, base: PreTrainedModel, batch: Assembled, route: Route, **kwargs: Any) -> HostOutput:
        """One forward pass of the assembled batch (prompts already at the input)."""

    def generate(self, base: PreTrainedModel, batch: Assembled, route: Route, **kwargs: Any) -> torch.Tensor:
        """Generation from the assembled batch; representations stay routed per row throughout. A family without
        a decoder keeps this refusal (XLTModel raises it before any compute)."""
        raise self.generation_refusal()

    def generation_refusal(self) -> UnsupportedError:
        return self.refuse(f"generation (an {self.name} has no decoder; use a task head)")

    def text_to_text_batch(
        self, sources: Sequence[Sequence[int]], targets: Sequence[Sequence[int]], pad: int
    ) -> dict[str, torch.Tensor]:
        """The teacher-forced training batch of (source ids, target ids) pairs: ``input_ids``,
        ``attention_mask`` (right-padded with ``pad``) and ``labels`` (-100 where no loss is taken)."""
        raise self.refuse("text-to-text training (use a task head)")

    def adapterhub_path(self, site: BottleneckSite, owner: str) -> str:
        """Where AdapterHub hangs ``site``'s adapter, given ``owner``, the path of the module holding the site's
        output module: by default that sub-layer module itself is AdapterHub's bottleneck layer."""
        return owner

    def refuse(self, what: str) -> UnsupportedError:
        return UnsupportedError(f"{self.name} models cannot host {what}")
