"""What the benchmark scripts share: the device they run on, a clock that waits for it, and the e5 they time."""

from __future__ import annotations

import time
from pathlib import Path

import torch
from transformers import BertConfig, BertModel, PreTrainedTokenizerFast

from xlt.e5 import E5_MODEL_ID, load_e5


def pick_device(name: str) -> torch.device:
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit(f"--device {name}: this torch ({torch.__version__}) sees no CUDA GPU")
    return device


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return f"{torch.cuda.get_device_name(device)} ({device})"
    return f"CPU ({torch.get_num_threads()} threads)"


def clock(device: torch.device) -> float:
    # CUDA kernels run asynchronously: without waiting for them the clock would time their launch only.
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter()


def e5_model(config_dir: Path | None) -> tuple[BertModel, PreTrainedTokenizerFast]:
    """The converted e5-small, or with ``config_dir`` a model of the shape in its ``config.json`` with random
    weights (timing only: throughput does not depend on the weight values) and the tokenizer stored there."""
    if config_dir is None:
        return load_e5()
    with torch.random.fork_rng(devices=[]):  # seeded, and the rest of the run draws what it draws after load_e5
        torch.manual_seed(0)
        model = BertModel(BertConfig.from_pretrained(config_dir, local_files_only=True), add_pooling_layer=False)
    tokenizer = PreTrainedTokenizerFast.from_pretrained(config_dir, local_files_only=True)
    # As load_e5 does: fingerprints key on the model's identity, not on a path.
    model.config._name_or_path = model.name_or_path = tokenizer.name_or_path = E5_MODEL_ID
    return model.eval(), tokenizer


def e5_label(config: BertConfig, random: bool) -> str:
    if not random:
        return "multilingual-e5-small"
    layers, hidden = config.num_hidden_layers, config.hidden_size
    shape = "e5-small" if (layers, hidden) == (12, 384) else f"{layers} × {hidden}"
    return f"e5 (random weights, {shape} shape)"
