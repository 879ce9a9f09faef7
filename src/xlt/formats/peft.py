"""Hugging Face PEFT prompt tuning (``peft_type: PROMPT_TUNING``) to and from xlt soft prompts.

A PEFT prompt-tuning directory is ``adapter_config.json`` plus ``adapter_model.safetensors`` holding one
tensor, ``prompt_embeddings``, of shape ``[num_transformer_submodules * num_virtual_tokens, token_dim]``.

Which rows PEFT uses (read in peft 0.21.2, ``peft/peft_model.py``):

- ``PeftModel._setup_prompt_encoder`` sets ``num_transformer_submodules = 2`` for ``SEQ_2_SEQ_LM``, and
  ``PromptEmbedding`` (``tuners/prompt_tuning/model.py``) allocates ``num_virtual_tokens *
  num_transformer_submodules`` rows;
- ``PeftModelForSeq2SeqLM.forward`` (and ``generate``) prepends only
  ``prompts[:, : peft_config.num_virtual_tokens]`` to the encoder input in its ``PROMPT_TUNING``/``P_TUNING``
  branch; the second half is read only by the branch of the other prompt-learning methods (multitask prompt
  tuning), which feeds it to the decoder. For prompt tuning it is allocated and saved, never used;
- ``PeftModelForCausalLM`` and ``PeftModelForFeatureExtraction`` prepend every row
  (``num_transformer_submodules`` is 1 there).

So an encoder-decoder import keeps the first ``num_virtual_tokens`` rows, and an export for an encoder-decoder
writes the prompt twice, the layout PEFT allocates and the one the paper's published language prompts use.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from safetensors.torch import save_file

from xlt.errors import FormatError, UnsupportedError, XLTError
from xlt.formats.atomic import atomic_directory
from xlt.formats.foreign import (
    FOREIGN_CONFIG_NAME,
    check_base_name,
    import_provenance,
    imported_identity,
    load_tensors,
    read_json,
)
from xlt.reps.base import RepInfo, Representation, Role
from xlt.reps.prompt import PromptConfig, SoftPrompt

if TYPE_CHECKING:
    from xlt.model import XLTModel

WEIGHTS_NAME = "adapter_model.safetensors"
PICKLE_WEIGHTS_NAME = "adapter_model.bin"
TENSOR_NAME = "prompt_embeddings"
# PEFT's init names and xlt's; the weights are what count, the init is kept as a record of where they began.
INIT_FROM_PEFT = {"TEXT": "text", "SAMPLE_VOCAB": "vocab", "RANDOM": "random"}


def _positive_int(config: dict[str, Any], key: str, path: Path) -> int:
    value = config.get(key)
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise FormatError(f"{path}: '{key}' must be a positive integer, got {value!r}; the config is damaged")
    return value


def import_peft_prompt(
    model: XLTModel,
    directory: str | Path,
    *,
    role: Role | str,
    language: str | None = None,
    task: str | None = None,
    name: str | None = None,
    allow_other_base: bool = False,
) -> Representation:
    """Import a PEFT prompt-tuning adapter as an xlt soft prompt and attach it to ``model``.

    ``adapter_model.safetensors`` is preferred; a directory with only ``adapter_model.bin`` is read with
    ``torch.load(weights_only=True)``, which rebuilds tensors only and runs no code from the file (anything
    else in it is refused, asking for a safetensors conversion). On an encoder-decoder the first
    ``num_virtual_tokens`` rows are used, as PEFT does (see the module docstring); elsewhere the table must
    have exactly ``num_virtual_tokens`` rows. ``allow_other_base=True`` accepts a file whose
    ``base_model_name_or_path`` names another model whose weights you know to be the same.
    """
    role, rep_name = imported_identity(role, language, task, name, "prompt")
    directory = Path(directory)
    path = directory / FOREIGN_CONFIG_NAME
    config = read_json(path)
    n, token_dim, submodules = _prompt_shape(model, config, path)
    check_base_name(model, config.get("base_model_name_or_path"), path, allow_other_base)
    table, weights = _prompt_table(directory, n, token_dim, submodules)

    init = INIT_FROM_PEFT.get(str(config.get("prompt_tuning_init")), "random")
    init_text = config.get("prompt_tuning_init_text") if init == "text" else None
    rep_config = PromptConfig(num_virtual_tokens=n, init=init, init_text=init_text)  # type: ignore[arg-type]
    source = import_provenance(
        "peft-prompt-tuning",
        directory,
        weights_file=weights.name,
        peft_version=config.get("peft_version"),
        peft_task_type=config.get("task_type"),
        rows_used=f"first {n} of {table.shape[0]}",
        base_model_name_or_path=config.get("base_model_name_or_path"),
    )
    info = RepInfo(rep_name, "prompt", role, language, task, model.fingerprint, source)
    return model.attach(Representation(info, rep_config, SoftPrompt(table[:n].float().clone())))


def _prompt_shape(model: XLTModel, config: dict[str, Any], path: Path) -> tuple[int, int, int]:
    """``(num_virtual_tokens, token_dim, num_transformer_submodules)`` of a PEFT config, checked against the
    model: a prompt-tuning config whose prompt fits this model's embeddings and family."""
    peft_type = config.get("peft_type")
    if peft_type != "PROMPT_TUNING":
        raise FormatError(
            f"{path} has peft_type {peft_type!r}; xlt imports PEFT PROMPT_TUNING only (other PEFT "
            "methods are not supported yet)"
        )
    n = _positive_int(config, "num_virtual_tokens", path)
    token_dim = _positive_int(config, "token_dim", path)
    task_type = config.get("task_type")
    submodules = config.get("num_transformer_submodules") or (2 if task_type == "SEQ_2_SEQ_LM" else 1)
    if submodules not in (1, 2):
        raise FormatError(f"{path}: num_transformer_submodules must be 1 or 2, got {submodules!r}")
    hidden = model.host.input_embeddings(model.base).weight.shape[1]
    if token_dim != hidden:
        raise FormatError(
            f"{path} holds a prompt of token_dim={token_dim}; this model's input embeddings have {hidden} "
            "(import it on the model it was trained for)"
        )
    seq2seq = model.host.peft_task_type == "SEQ_2_SEQ_LM"
    if not seq2seq and (submodules != 1 or task_type == "SEQ_2_SEQ_LM"):
        raise UnsupportedError(
            f"{path} is a seq2seq prompt (task_type {task_type}, {submodules} submodules) and this is a "
            f"{model.host.name} model; import it on an encoder-decoder"
        )
    return n, token_dim, submodules


def _prompt_table(directory: Path, n: int, token_dim: int, submodules: int) -> tuple[torch.Tensor, Path]:
    """The saved prompt table, alone in its weights file and shaped as the config says, and that file."""
    tensors, weights = load_tensors(directory, WEIGHTS_NAME, PICKLE_WEIGHTS_NAME)
    extra = sorted(set(tensors) - {TENSOR_NAME})
    if extra or TENSOR_NAME not in tensors:
        raise FormatError(
            f"{weights} must hold exactly one tensor '{TENSOR_NAME}', found {sorted(tensors)[:5]}; "
            "xlt imports the prompt alone (no classifier or other saved modules)"
        )
    table = tensors[TENSOR_NAME]
    if tuple(table.shape) != (submodules * n, token_dim):
        raise FormatError(
            f"{weights}: '{TENSOR_NAME}' has shape {tuple(table.shape)}, expected "
            f"({submodules * n}, {token_dim}) from num_virtual_tokens={n} x num_transformer_submodules="
            f"{submodules}; the files do not belong together"
        )
    return table, weights


def export_peft_prompt(
    model: XLTModel,
    rep_name: str,
    directory: str | Path,
    *,
    base_model_name_or_path: str | None = None,
) -> Path:
    """Write the soft prompt ``rep_name`` as a directory PEFT loads with ``PeftModel.from_pretrained``.

    The task type follows the model family (SEQ_2_SEQ_LM, CAUSAL_LM, FEATURE_EXTRACTION); encoder-decoders get
    ``num_transformer_submodules=2`` and the prompt written twice, as PEFT allocates it. The init is written
    as RANDOM whatever xlt used, because PEFT would otherwise reload a tokenizer when training resumes.
    The write is atomic.
    """
    rep = model.rep(rep_name)
    if not isinstance(rep.config, PromptConfig) or not isinstance(rep.body, SoftPrompt):
        raise XLTError(f"rep '{rep_name}' is a {rep.kind} rep; only prompt reps export to PEFT prompt tuning")
    if rep.head is not None:
        raise UnsupportedError(
            f"rep '{rep_name}' owns a head, which PEFT prompt tuning cannot carry; save it in xlt's format"
        )
    vectors = rep.body.embedding.detach().to("cpu", torch.float32)
    submodules = model.host.peft_submodules
    table = torch.cat([vectors] * submodules).contiguous()
    n, token_dim = vectors.shape
    base_config = model.base.config
    config: dict[str, Any] = {
        "auto_mapping": None,
        "base_model_name_or_path": base_model_name_or_path or model.fingerprint.name or None,
        "inference_mode": True,
        "modules_to_save": None,
        "num_attention_heads": getattr(base_config, "num_attention_heads", None)
        or getattr(base_config, "num_heads", None),
        "num_layers": model.fingerprint.num_layers or None,
        "num_transformer_submodules": submodules,
        "num_virtual_tokens": int(n),
        "peft_type": "PROMPT_TUNING",
        "prompt_tuning_init": "RANDOM",
        "prompt_tuning_init_text": None,
        "revision": None,
        "task_type": model.host.peft_task_type,
        "token_dim": int(token_dim),
        "tokenizer_kwargs": None,
        "tokenizer_name_or_path": None,
    }
    directory = Path(directory)
    with atomic_directory(directory, marker=FOREIGN_CONFIG_NAME) as tmp:
        save_file({TENSOR_NAME: table}, str(tmp / WEIGHTS_NAME), metadata={"format": "pt"})
        (tmp / FOREIGN_CONFIG_NAME).write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
    return directory
