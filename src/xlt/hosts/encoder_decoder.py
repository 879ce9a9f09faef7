"""Encoder-decoders: T5, mT5, mt0. Prompts enter the encoder input; the decoder reads the prompted encoder
output through cross-attention, in training and in generation alike."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import torch
from torch import nn
from transformers import PreTrainedModel
from transformers.modeling_outputs import BaseModelOutput

from xlt import batching
from xlt.batching import IGNORE_INDEX
from xlt.errors import UnsupportedError, XLTError
from xlt.hosts.base import BottleneckSite, Host, HostOutput, LMObjective, arg
from xlt.hosts.lm_loss import fusable, linear_cross_entropy

if TYPE_CHECKING:
    from xlt.assembly import Assembled
    from xlt.routing import Route


# T5's feed-forward activations outgrow float16's range (the reason training refuses precision="fp16")
FP16_REASON = "fp16 overflows to inf/NaN in T5-family feed-forward layers; use torch.bfloat16 or torch.float32"


def _passthrough(hidden: torch.Tensor) -> torch.Tensor:
    return hidden


class EncoderDecoderHost(Host):
    name: ClassVar[str] = "encoder-decoder"
    family: ClassVar = "encoder_decoder"
    model_types: ClassVar[tuple[str, ...]] = ("t5", "mt5", "umt5")
    lm_objective: ClassVar[LMObjective] = "span_corruption"
    supports_invertible: ClassVar[bool] = False
    default_lora_targets: ClassVar[tuple[str, ...]] = ("q", "v")
    fp16_refusal: ClassVar[str | None] = FP16_REASON
    peft_task_type: ClassVar[str] = "SEQ_2_SEQ_LM"
    # PEFT allocates a second table for the decoder, which its prompt tuning never reads
    peft_submodules: ClassVar[int] = 2

    def check_base(self, base: PreTrainedModel) -> None:
        if not hasattr(base, "decoder"):
            raise UnsupportedError(
                f"{type(base).__name__} is an encoder alone, and {self.name} models need the decoder (load the "
                "full model with XLTModel.from_pretrained, which uses AutoModelForSeq2SeqLM)"
            )
        super().check_base(base)

    def check_forward(
        self, labels: torch.Tensor | None, decoder_input_ids: torch.Tensor | None, has_head: bool
    ) -> None:
        if labels is None and decoder_input_ids is None:
            raise XLTError("an encoder-decoder forward needs labels= or decoder_input_ids= (or call generate)")

    def bottleneck_sites(self, base: PreTrainedModel) -> list[BottleneckSite]:
        sites = []
        for stack_name in ("encoder", "decoder"):
            stack = getattr(base, stack_name)
            for i, block in enumerate(stack.block):
                attn, ffn = block.layer[0], block.layer[-1]
                for where, sub in (("attn", attn), ("ffn", ffn)):
                    sites.append(
                        BottleneckSite(
                            key=f"{stack_name}_{i}_{where}",
                            where=where,
                            dim=base.config.d_model,
                            residual_module=sub.layer_norm,
                            residual=arg(0, "hidden_states"),
                            output_module=sub.dropout,
                            layer_norm=None,
                        )
                    )
        return sites

    def text_to_text_batch(
        self, sources: Sequence[Sequence[int]], targets: Sequence[Sequence[int]], pad: int
    ) -> dict[str, torch.Tensor]:
        """The sources enter the encoder; the targets are the decoder's labels (T5 shifts them itself)."""
        ids, mask = batching.pad([np.asarray(s) for s in sources], pad)
        labels, _ = batching.pad([np.asarray(t) for t in targets], IGNORE_INDEX)
        return {"input_ids": ids, "attention_mask": mask, "labels": labels}

    def encode(self, base: PreTrainedModel, batch: Assembled) -> BaseModelOutput:
        out = base.get_encoder()(inputs_embeds=batch.inputs_embeds, attention_mask=batch.attention_mask)
        return BaseModelOutput(last_hidden_state=out.last_hidden_state)

    def compiled_modules(self, base: PreTrainedModel) -> list[nn.Module]:
        # the encoder runs on its own (``encode``); the model's own call then runs the decoder and the head
        return [base.get_encoder(), base]

    def run(self, base: PreTrainedModel, batch: Assembled, route: Route, **kwargs: Any) -> HostOutput:
        self.check_forward(kwargs.get("labels"), kwargs.get("decoder_input_ids"), has_head=False)
        encoded = self.encode(base, batch)
        labels = kwargs.get("labels")
        if labels is not None and not kwargs.get("logits", True) and fusable(base.get_output_embeddings()):
            return self._loss_only(base, batch, encoded, labels, kwargs)
        out = base(
            encoder_outputs=encoded,
            attention_mask=batch.attention_mask,
            labels=labels.contiguous() if labels is not None else None,  # T5's loss calls .view on them
            decoder_input_ids=kwargs.get("decoder_input_ids"),
            decoder_attention_mask=kwargs.get("decoder_attention_mask"),
            use_cache=False,  # one teacher-forced pass: a key/value cache would only be built and dropped
        )
        return HostOutput(
            logits=out.logits,
            loss=out.loss,
            encoder_hidden_states=batch.to_input(encoded.last_hidden_state),
        )

    def _loss_only(
        self,
        base: PreTrainedModel,
        batch: Assembled,
        encoded: BaseModelOutput,
        labels: torch.Tensor,
        kwargs: dict[str, Any],
    ) -> HostOutput:
        """The decoder's loss without its logits: the LM head's input (scaled as the model's version scales it)
        is taken from the model's own forward, with the head passing its input through, then reduced by the
        chunked fused loss."""
        head = base.get_output_embeddings()
        decoder_ids = kwargs.get("decoder_input_ids")
        if decoder_ids is None:
            decoder_ids = base.prepare_decoder_input_ids_from_labels(labels=labels)
        head.forward = _passthrough  # type: ignore[method-assign]
        try:
            out = base(
                encoder_outputs=encoded,
                attention_mask=batch.attention_mask,
                decoder_input_ids=decoder_ids,
                decoder_attention_mask=kwargs.get("decoder_attention_mask"),
                use_cache=False,
            )
        finally:
            del head.forward
        loss = linear_cross_entropy(out.logits, head.weight, labels, getattr(head, "bias", None))
        return HostOutput(loss=loss, encoder_hidden_states=batch.to_input(encoded.last_hidden_state))

    def generate(self, base: PreTrainedModel, batch: Assembled, route: Route, **kwargs: Any) -> torch.Tensor:
        encoded = self.encode(base, batch)
        return base.generate(encoder_outputs=encoded, attention_mask=batch.attention_mask, **kwargs)
