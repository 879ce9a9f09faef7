"""Inputs and xlt's outputs shared by the PEFT and AdapterHub oracle tests."""

from __future__ import annotations

import torch

from tiny_models import batch
from xlt import XLTModel


def inputs() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    ids, mask = batch([7, 4, 6])
    decoder_ids = torch.randint(4, 128, (3, 5), generator=torch.Generator().manual_seed(3))
    return ids, mask, decoder_ids


def xlt_out(model: XLTModel, plan: str | None) -> torch.Tensor:
    """The output an oracle is compared with: LM logits for text-to-text families, hidden states for encoders."""
    ids, mask, dec = inputs()
    family = model.host.family
    with torch.no_grad():
        if family == "encoder_decoder":
            return model(ids, mask, plan=plan, decoder_input_ids=dec).logits
        out = model(ids, mask, plan=plan)
    return out.logits if family == "decoder" else out.hidden_states
