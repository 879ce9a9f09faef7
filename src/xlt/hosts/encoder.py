"""Encoders: BERT, RoBERTa, XLM-R (multilingual-e5 is a BERT). Post-norm blocks; heads live here."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

import torch
from torch import nn
from transformers import PreTrainedModel

from xlt.errors import PlanError
from xlt.hosts.base import BottleneckSite, Host, HostOutput, LMObjective, arg

if TYPE_CHECKING:
    from xlt.assembly import Assembled
    from xlt.routing import Route


class EncoderHost(Host):
    name: ClassVar[str] = "encoder"
    family: ClassVar = "encoder"
    model_types: ClassVar[tuple[str, ...]] = ("bert", "roberta", "xlm-roberta", "camembert")
    lm_objective: ClassVar[LMObjective] = "masked_lm"
    needs_lm_head: ClassVar[bool] = True
    supports_heads: ClassVar[bool] = True
    supports_generation: ClassVar[bool] = False
    default_lora_targets: ClassVar[tuple[str, ...]] = ("query", "value")
    peft_task_type: ClassVar[str] = "FEATURE_EXTRACTION"
    ignored_linears: ClassVar[tuple[str, ...]] = ("decoder", "classifier", "qa_outputs")

    def check_base(self, base: PreTrainedModel) -> None:
        """Any encoder class will do: xlt's heads, not the base's, compute the outputs."""

    def check_forward(
        self, labels: torch.Tensor | None, decoder_input_ids: torch.Tensor | None, has_head: bool
    ) -> None:
        if labels is not None and not has_head:
            raise PlanError("labels= on an encoder needs a plan with a task head (add one with head=HeadConfig(...))")
        super().check_forward(labels, decoder_input_ids, has_head)

    def bottleneck_sites(self, base: PreTrainedModel) -> list[BottleneckSite]:
        sites = []
        for i, layer in enumerate(self.backbone(base).encoder.layer):
            for where, sub in (("attn", layer.attention.output), ("ffn", layer.output)):
                sites.append(
                    BottleneckSite(
                        key=f"encoder_{i}_{where}",
                        where=where,
                        dim=sub.dense.out_features,
                        residual_module=sub,
                        residual=arg(1, "input_tensor"),
                        output_module=sub.dropout,
                        layer_norm=sub.LayerNorm,
                    )
                )
        return sites

    def embedding_output(self, base: PreTrainedModel) -> nn.Module:
        return self.backbone(base).embeddings

    def max_positions(self, base: PreTrainedModel) -> int | None:
        return int(base.config.max_position_embeddings) - self.position_offset(base)

    def position_offset(self, base: PreTrainedModel) -> int:
        # RoBERTa-style models count positions from padding_idx + 1 (what they compute for themselves).
        if base.config.model_type in ("roberta", "xlm-roberta", "camembert"):
            return int(base.config.pad_token_id) + 1
        return 0

    def run(self, base: PreTrainedModel, batch: Assembled, route: Route, **kwargs: Any) -> HostOutput:
        embeds = batch.inputs_embeds
        extra: dict[str, Any] = {}
        if batch.position_ids is not None:
            extra["position_ids"] = batch.position_ids + self.position_offset(base)
        # Without explicit token types BERT falls back to a buffer sized for the input ids, not the prompts.
        extra["token_type_ids"] = torch.zeros_like(batch.attention_mask)
        out = self.backbone(base)(inputs_embeds=embeds, attention_mask=batch.attention_mask, **extra)
        return HostOutput(hidden_states=batch.to_input(out.last_hidden_state))
