"""Helpers of the core test suite: a standard bank of reps per family, perturbation, row-wise comparison."""

from __future__ import annotations

from contextlib import contextmanager

import torch

from tiny_models import FAMILY, tiny_base, tiny_tokenizer
from xlt import BottleneckConfig, LoRAConfig, PromptConfig, XLTModel

TEXT_TO_TEXT = [arch for arch, family in FAMILY.items() if family != "encoder"]
ENCODERS = [arch for arch, family in FAMILY.items() if family == "encoder"]
PAD = 0
OTHER_LORA_TARGETS = {
    "t5": ["k", "o", "wo"],
    "mt5": ["k", "o", "wi_0"],
    "bert": ["key", "dense"],
    "xlm-roberta": ["key", "dense"],
    "gpt2": ["c_proj", "c_fc"],
    "llama": ["k_proj", "o_proj", "down_proj"],
    "qwen2": ["k_proj", "o_proj", "up_proj"],
}


def supports_invertible(arch: str) -> bool:
    return FAMILY[arch] != "encoder_decoder"


def perturb(model: XLTModel, *names: str, scale: float = 0.1, seed: int = 7) -> None:
    """Move reps' weights away from their init (LoRA's B is zero at init, a 'bert' bottleneck is near
    identity), so that a rep that is silently dropped changes the output."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name in names or list(model.reps):
            for p in model.rep(name).parameters():
                p.add_(torch.randn(p.shape, generator=g).to(p.dtype) * scale)


def new_model(arch: str, seed: int = 0) -> XLTModel:
    return XLTModel(tiny_base(arch, seed), tiny_tokenizer())


def standard_bank(arch: str) -> XLTModel:
    """Every kind in both roles, with prompts of different lengths; perturbed. Names:
    ``sk/prompt`` (3 tokens), ``de/prompt`` (5), ``nli/prompt`` (4, task), ``sk/bottleneck`` (Pfeiffer),
    ``de/bottleneck`` (Houlsby), ``nli/bottleneck`` (task), ``t/lora`` (task, the host's default targets),
    ``cs/lora`` (language, other linears), ``cs/invertible`` (MAD-X bottleneck with invertible adapter; not on
    encoder-decoders)."""
    m = new_model(arch)
    m.add_language("sk", PromptConfig(num_virtual_tokens=3, init="vocab"))
    m.add_language("de", PromptConfig(num_virtual_tokens=5, init="text", init_text="w1 w2 w3"))
    m.add_task("nli", PromptConfig(num_virtual_tokens=4, init="text", init_text="w5 w6"))
    m.add_language("sk", BottleneckConfig(reduction_factor=4))
    m.add_language("de", BottleneckConfig.houlsby(reduction_factor=4))
    m.add_task("nli", BottleneckConfig(reduction_factor=8))
    m.add_task("t", LoRAConfig(rank=2))
    m.add_language("cs", LoRAConfig(rank=4, alpha=4, target_modules=OTHER_LORA_TARGETS[arch]))
    if supports_invertible(arch):
        m.add_language("cs", BottleneckConfig.madx(reduction_factor=4), name="cs/invertible")
    perturb(m)
    return m


def decoder_inputs(arch: str, rows: int, length: int = 3, seed: int = 5) -> dict[str, torch.Tensor]:
    """``decoder_input_ids`` for encoder-decoders (random, so the decoder's bottlenecks and LoRA matter)."""
    if FAMILY[arch] != "encoder_decoder":
        return {}
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(4, 100, (rows, length), generator=g)
    ids[:, 0] = 0  # decoder start
    return {"decoder_input_ids": ids}


def main_output(arch: str, out) -> torch.Tensor:
    """What a forward produces for each row: LM logits (text-to-text) or the last hidden states (encoders)."""
    return out.hidden_states if FAMILY[arch] == "encoder" else out.logits


def row_of(arch: str, tensor: torch.Tensor, i: int, n: int) -> torch.Tensor:
    """Row ``i`` of a batched output, cut to the ``n`` real input positions where the output is per input
    token (encoder-decoder logits are per decoder position and are kept whole)."""
    if FAMILY[arch] == "encoder_decoder":
        return tensor[i : i + 1]
    return tensor[i : i + 1, :n]


def assert_rows_close(a: torch.Tensor, b: torch.Tensor, what: str = "") -> None:
    """Equal to fp32 tolerance: atol 1e-5 scaled by the magnitude of ``b`` (logits can be large)."""
    a, b = a.detach(), b.detach()
    scale = max(1.0, float(b.abs().max()))
    torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5 * scale, msg=lambda m: f"{what}: {m}")


def max_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).abs().max())


def same_generation(batched: torch.Tensor, solo: torch.Tensor) -> bool:
    """Batched rows equal the solo rows; where the batch ran on (other rows unfinished) it holds padding."""
    n = solo.shape[1]
    if batched.shape[1] < n:
        return False
    return torch.equal(batched[:, :n], solo) and bool((batched[:, n:] == PAD).all())


class CallCounter:
    """Counts forward calls of every module of a base model (forward pre-hooks)."""

    def __init__(self, module: torch.nn.Module) -> None:
        self.calls = 0
        self._handles = [m.register_forward_pre_hook(self._hook) for m in module.modules()]

    def _hook(self, module, args) -> None:
        self.calls += 1

    def remove(self) -> None:
        for h in self._handles:
            h.remove()


@contextmanager
def no_compute(model: XLTModel):
    """Assert that the body runs no module of the base model (an error must come before any compute)."""
    counter = CallCounter(model.base)
    try:
        yield counter
    finally:
        counter.remove()
    assert counter.calls == 0, f"the base model ran {counter.calls} module calls before the error"
