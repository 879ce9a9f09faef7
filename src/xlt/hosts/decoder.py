"""Decoder-only models: GPT-2 and the Llama family (Llama, Qwen2, Mistral). Pre-norm blocks."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from transformers import AutoModelForCausalLM, PretrainedConfig, PreTrainedModel

from xlt import batching
from xlt.batching import IGNORE_INDEX
from xlt.errors import XLTError
from xlt.hosts.base import BottleneckSite, Host, HostOutput, LMObjective, arg
from xlt.hosts.lm_loss import fusable, head_input, linear_cross_entropy

if TYPE_CHECKING:
    from xlt.assembly import Assembled
    from xlt.routing import Route


def causal_lm_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Token j predicts token j+1 (Hugging Face's convention); -100 labels are ignored."""
    # Shift the labels, not the logits: slicing [B, L, V] logits would copy them forward and backward.
    targets = F.pad(labels.to(logits.device), (0, 1), value=-100)[:, 1:]
    return F.cross_entropy(logits.flatten(0, 1).float(), targets.flatten(), ignore_index=-100)


class DecoderHost(Host):
    """Subclasses name the block list and the four modules around each sub-layer."""

    family: ClassVar = "decoder"
    lm_objective: ClassVar[LMObjective] = "causal_lm"
    answer_prefix: ClassVar[str] = " "
    generation_continues_input: ClassVar[bool] = True
    peft_task_type: ClassVar[str] = "CAUSAL_LM"

    @classmethod
    def auto_class(cls, config: PretrainedConfig) -> type:
        if getattr(config, "is_encoder_decoder", False):
            return super().auto_class(config)
        return AutoModelForCausalLM

    def check_lm_labels(self, input_ids: torch.Tensor, labels: torch.Tensor) -> None:
        if labels.shape != input_ids.shape:
            raise XLTError(
                f"labels have shape {tuple(labels.shape)}, input_ids {tuple(input_ids.shape)}; a causal LM's labels "
                "are the input ids themselves (-100 where no loss is wanted)"
            )

    def adapterhub_path(self, site: BottleneckSite, owner: str) -> str:
        # AdapterHub gives decoder-only blocks sibling bottleneck layers; the sub-layers stay untouched.
        return f"{owner}.{'attention_adapters' if site.where == 'attn' else 'output_adapters'}"

    def blocks(self, base: PreTrainedModel) -> nn.ModuleList:
        raise NotImplementedError

    def parts(self, block: nn.Module) -> dict[str, tuple[nn.Module, nn.Module]]:
        """``{"attn": (norm before, attention), "ffn": (norm before, mlp)}``."""
        raise NotImplementedError

    def bottleneck_sites(self, base: PreTrainedModel) -> list[BottleneckSite]:
        dim = self.input_embeddings(base).weight.shape[1]
        sites = []
        for i, block in enumerate(self.blocks(base)):
            for where, (norm, sub) in self.parts(block).items():
                sites.append(
                    BottleneckSite(
                        key=f"layers_{i}_{where}",
                        where=where,  # type: ignore[arg-type]
                        dim=dim,
                        residual_module=norm,
                        residual=arg(0, "hidden_states"),
                        output_module=sub,
                        layer_norm=None,
                    )
                )
        return sites

    def run(self, base: PreTrainedModel, batch: Assembled, route: Route, **kwargs: Any) -> HostOutput:
        extra = {} if batch.position_ids is None else {"position_ids": batch.position_ids}
        out = self.backbone(base)(
            inputs_embeds=batch.inputs_embeds, attention_mask=batch.attention_mask, use_cache=False, **extra
        )
        # The LM head runs on the input's positions only: prompt positions carry no prediction.
        hidden = batch.to_input(out.last_hidden_state)
        head = base.get_output_embeddings()
        labels = kwargs.get("labels")
        if labels is not None and not kwargs.get("logits", True) and fusable(head):
            # Only positions with a label are projected, chunk by chunk, with no [tokens, vocab] logits; the
            # head's pre-hooks (an invertible adapter's reverse coupling) apply as they would in its forward.
            targets = F.pad(labels.to(hidden.device), (0, 1), value=IGNORE_INDEX)[:, 1:]
            loss = linear_cross_entropy(head_input(head, hidden), head.weight, targets, getattr(head, "bias", None))
            return HostOutput(loss=loss, hidden_states=hidden)
        logits = head(hidden)
        loss = causal_lm_loss(logits, labels) if labels is not None else None
        return HostOutput(logits=logits, loss=loss, hidden_states=hidden)

    def text_to_text_batch(
        self, sources: Sequence[Sequence[int]], targets: Sequence[Sequence[int]], pad: int
    ) -> dict[str, torch.Tensor]:
        """One sequence per pair, the target after the source; the loss is taken on the target only."""
        ids, mask = batching.pad([np.asarray([*s, *t]) for s, t in zip(sources, targets, strict=True)], pad)
        labels = ids.masked_fill(mask == 0, IGNORE_INDEX)
        for i, source in enumerate(sources):
            labels[i, : len(source)] = IGNORE_INDEX
        return {"input_ids": ids, "attention_mask": mask, "labels": labels}

    def generate(self, base: PreTrainedModel, batch: Assembled, route: Route, **kwargs: Any) -> torch.Tensor:
        return base.generate(inputs_embeds=batch.inputs_embeds, attention_mask=batch.attention_mask, **kwargs)


class GPT2Host(DecoderHost):
    name: ClassVar[str] = "gpt2"
    model_types: ClassVar[tuple[str, ...]] = ("gpt2",)
    default_lora_targets: ClassVar[tuple[str, ...]] = ("c_attn",)

    def blocks(self, base: PreTrainedModel) -> nn.ModuleList:
        return self.backbone(base).h

    def max_positions(self, base: PreTrainedModel) -> int | None:
        return int(base.config.n_positions)

    def embedding_output(self, base: PreTrainedModel) -> nn.Module:
        return self.backbone(base).drop  # after token + position embeddings, once per forward

    def parts(self, block: nn.Module) -> dict[str, tuple[nn.Module, nn.Module]]:
        return {"attn": (block.ln_1, block.attn), "ffn": (block.ln_2, block.mlp)}


class LlamaHost(DecoderHost):
    name: ClassVar[str] = "llama"
    model_types: ClassVar[tuple[str, ...]] = ("llama", "qwen2", "qwen3", "mistral")
    default_lora_targets: ClassVar[tuple[str, ...]] = ("q_proj", "v_proj")

    def blocks(self, base: PreTrainedModel) -> nn.ModuleList:
        return self.backbone(base).layers

    def parts(self, block: nn.Module) -> dict[str, tuple[nn.Module, nn.Module]]:
        return {
            "attn": (block.input_layernorm, block.self_attn),
            "ffn": (block.post_attention_layernorm, block.mlp),
        }
