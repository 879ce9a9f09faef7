"""AdapterHub (``adapters``) bottleneck adapters to and from xlt bottleneck reps.

An AdapterHub adapter directory is ``adapter_config.json`` (the adapter's ``BnConfig`` under ``config``, with
``model_type``, ``model_name``, ``name``, ``version: "adapters.X"``) and the weights, ``adapter.safetensors``
or ``pytorch_adapter.bin``. Tensor names are module paths of the model the adapter was saved from, e.g.
``bert.encoder.layer.3.output.adapters.sk.adapter_down.0.weight``. Modules holding ``adapters.{name}``, and
the xlt block key each maps to:

- encoders: ``encoder.layer.{i}.attention.output`` -> ``encoder_{i}_attn``, ``encoder.layer.{i}.output`` ->
  ``encoder_{i}_ffn``;
- T5/mT5: ``{stack}.block.{i}.layer.0`` -> ``{stack}_{i}_attn``, the block's last layer (``layer.1`` in the
  encoder, ``layer.2`` in the decoder) -> ``{stack}_{i}_ffn``; the decoder's ``layer.1`` is the
  cross-attention, where only ``cross_adapter`` puts one;
- GPT-2 / Llama family: ``h.{i}`` / ``layers.{i}`` + ``.attention_adapters`` -> ``layers_{i}_attn``,
  + ``.output_adapters`` -> ``layers_{i}_ffn``;

and inside each, ``adapter_down.0.{weight,bias}`` -> ``down.{weight,bias}``, ``adapter_up.{weight,bias}`` ->
``up.{weight,bias}``. The paths come from the hosts' own sites, not from a table: an encoder's or T5's
sub-layer module is itself AdapterHub's bottleneck layer (xlt's site ends at its ``dropout``), and
decoder-only blocks get sibling modules. The model-class prefix (``bert.``, ``transformer.``, ``model.``) is
optional on import, as in AdapterHub, and written on export as ``save_adapter`` writes it for the class xlt
holds.

xlt's stacking is AdapterHub's ``Stack``: each adapter re-reads the sub-layer input and the block's norm
(``original_ln_before``); the model's own residual add and norm follow the last one (``original_ln_after``).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
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
from xlt.formats.tensors import check_shapes, key_mismatch
from xlt.reps.base import RepBody, RepInfo, Representation, Role
from xlt.reps.bottleneck import BottleneckConfig
from xlt.reps.context import BuildContext
from xlt.reps.registry import get_kind

if TYPE_CHECKING:
    from xlt.model import XLTModel

WEIGHTS_NAME = "adapter.safetensors"
PICKLE_WEIGHTS_NAME = "pytorch_adapter.bin"
HEAD_CONFIG_NAME = "head_config.json"
FORMAT_VERSION = "adapters.1.3.0"
PARAMS = {
    "adapter_down.0.weight": "down.weight",
    "adapter_down.0.bias": "down.bias",
    "adapter_up.weight": "up.weight",
    "adapter_up.bias": "up.bias",
}
# AdapterHub still loads adapter-transformers v2 files under these names (its legacy_weights_mapping).
LEGACY_NAMES = {
    "attention_text_task_adapters": "adapters",
    "attention_text_lang_adapters": "adapters",
    "layer_text_task_adapters": "adapters",
    "layer_text_lang_adapters": "adapters",
}
# Configs without "version" predate the activation renaming; AdapterHub applies the same map on load.
LEGACY_ACTIVATIONS = {"gelu": "gelu_new", "gelu_orig": "gelu"}
# BnConfig options xlt has no counterpart for: the value making each a no-op, and what another value means.
NEUTRAL: dict[str, tuple[Any, str]] = {
    "original_ln_after": (True, "original_ln_after=False (xlt leaves the residual add and norm to the base)"),
    "ln_before": (False, "an adapter layer norm (ln_before)"),
    "ln_after": (False, "an adapter layer norm (ln_after)"),
    "is_parallel": (False, "parallel adapters (is_parallel)"),
    "use_gating": (False, "gating (use_gating)"),
    "phm_layer": (False, "PHM/Compacter layers (phm_layer)"),
    "inv_adapter": (
        None,
        "an invertible adapter (AdapterHub couples the embedding layer's output "
        "and reverses it in its flex LM heads only; xlt couples the word embeddings)",
    ),
    "cross_adapter": (False, "cross-attention adapters (cross_adapter)"),
    "leave_out": ([], "leave_out (xlt puts a block in every layer)"),
    "stochastic_depth": (0.0, "stochastic depth"),
}
LEGACY_NEUTRAL = {"invertible_adapter": (None, "an invertible adapter (legacy invertible_adapter)")}
# Options that cannot change what an adapter with given weights computes once the NEUTRAL ones hold.
INERT_DEFAULTS: dict[str, Any] = {
    "init_weights": "bert",
    "init_weights_seed": None,
    "inv_adapter_reduction_factor": None,
    "adapter_residual_before_ln": False,  # it only moves the residual around ln_after, which is off
    "factorized_phm_W": True,
    "factorized_phm_rule": False,
    "hypercomplex_nonlinearity": "glorot-uniform",
    "learn_phm": True,
    "phm_bias": True,
    "phm_c_init": "normal",
    "phm_dim": 4,
    "phm_init_range": 0.0001,
    "phm_rank": 1,
    "shared_W_phm": False,
    "shared_phm_rule": True,
}
MAPPED = (
    "mh_adapter",
    "output_adapter",
    "reduction_factor",
    "non_linearity",
    "original_ln_before",
    "residual_before_ln",
    "scaling",
    "dropout",
)


def bottleneck_config(hub: Mapping[str, Any], path: Path, *, legacy: bool = False) -> BottleneckConfig:
    """The xlt config equal to an AdapterHub ``BnConfig`` dict; raises for anything xlt cannot reproduce."""
    architecture = hub.get("architecture")
    if architecture not in (None, "bottleneck"):
        raise UnsupportedError(
            f"{path}: AdapterHub '{architecture}' adapters are not supported (xlt imports bottleneck adapters only)"
        )
    known = {*MAPPED, *NEUTRAL, *LEGACY_NEUTRAL, *INERT_DEFAULTS, "architecture"}
    unknown = sorted(set(hub) - known)
    if unknown:
        raise FormatError(
            f"{path}: unknown AdapterHub option(s) {unknown}; xlt knows the BnConfig of "
            "adapters 1.x (update xlt, or remove options you know to be inert)"
        )
    for key, (neutral, what) in {**NEUTRAL, **LEGACY_NEUTRAL}.items():
        value = hub.get(key, neutral)
        if value != neutral and (neutral or value):  # None, [] and 0 all mean "off"
            raise UnsupportedError(
                f"{path}: xlt cannot reproduce {what}, set by {key}={value!r} (use the "
                "adapter in AdapterHub, or retrain it as an xlt bottleneck)"
            )
    missing = [key for key in ("mh_adapter", "output_adapter", "reduction_factor", "non_linearity") if key not in hub]
    if missing:
        raise FormatError(f"{path}: the adapter config lacks {missing}; the file is damaged or no bottleneck")
    factor = hub["reduction_factor"]
    if isinstance(factor, Mapping):
        if len(set(factor.values())) != 1:
            raise UnsupportedError(
                f"{path}: per-layer reduction factors {dict(factor)} are not supported "
                "(xlt uses one reduction_factor for every block)"
            )
        factor = next(iter(factor.values()))
    scaling = hub.get("scaling", 1.0)
    if isinstance(scaling, str | bool) or not isinstance(scaling, int | float):
        raise UnsupportedError(f"{path}: scaling={scaling!r} is not supported (xlt scales by a fixed float)")
    residual_before_ln = hub.get("residual_before_ln", True)
    if not isinstance(residual_before_ln, bool):
        raise UnsupportedError(
            f"{path}: residual_before_ln={residual_before_ln!r} is not supported (xlt takes True or False)"
        )
    activation = (hub["non_linearity"] or "linear").lower()
    if legacy:
        activation = LEGACY_ACTIVATIONS.get(activation, activation)
    # AdapterHub special-cases "leakyrelu" to F.leaky_relu; ACT2FN calls the same function "leaky_relu".
    activation = {"leakyrelu": "leaky_relu"}.get(activation, activation)
    try:
        return BottleneckConfig(
            reduction_factor=float(factor),
            non_linearity=activation,
            residual_before_ln=residual_before_ln,
            original_ln_before=bool(hub.get("original_ln_before", False)),
            mh_adapter=bool(hub["mh_adapter"]),
            output_adapter=bool(hub["output_adapter"]),
            scaling=float(scaling),
            dropout=float(hub.get("dropout") or 0.0),
        )
    except (XLTError, TypeError, ValueError) as exc:
        raise FormatError(f"{path}: {exc}") from exc


def hub_config(config: BottleneckConfig) -> dict[str, Any]:
    """The AdapterHub ``BnConfig`` dict (every field, as ``save_adapter`` writes it) for an xlt config."""
    neutral = {key: value for key, (value, _) in NEUTRAL.items()}
    mapped = {key: getattr(config, key) for key in MAPPED}
    return dict(sorted({**INERT_DEFAULTS, **neutral, **mapped}.items()))


def hub_paths(model: XLTModel) -> dict[str, str]:
    """xlt block key -> path, inside the backbone, of the module AdapterHub hangs ``adapters.{name}`` on."""
    backbone = model.host.backbone(model.base)
    names = {id(module): name for name, module in backbone.named_modules()}
    paths = {}
    for site in model.host.bottleneck_sites(model.base):
        owner = names[id(site.output_module)].rpartition(".")[0]
        paths[site.key] = model.host.adapterhub_path(site, owner)
    return paths


def _backbone_prefix(model: XLTModel) -> str:
    backbone = model.host.backbone(model.base)
    name = next((name for name, module in model.base.named_modules() if module is backbone), "")
    return f"{name}." if name else ""


def _check_model(model: XLTModel, data: Mapping[str, Any], path: Path, allow_other_base: bool) -> None:
    fingerprint = model.fingerprint
    model_type, hidden = data.get("model_type"), data.get("hidden_size")
    if model_type and model_type != fingerprint.model_type:
        raise FormatError(
            f"{path} was saved for a {model_type} model, not {fingerprint.model_type} "
            f"(import it on a {model_type} model)"
        )
    if hidden and hidden != fingerprint.hidden_size:
        raise FormatError(
            f"{path} was saved for hidden_size={hidden}; this model has "
            f"{fingerprint.hidden_size} (import it on the model it was trained for)"
        )
    check_base_name(model, data.get("model_name"), path, allow_other_base)


def _check_head(directory: Path, ignore_head: bool) -> None:
    """A static-head model saves its own output layer with ``"config": null``: the base's, not ours."""
    path = directory / HEAD_CONFIG_NAME
    head = None if ignore_head or not path.is_file() else read_json(path).get("config")
    if head is not None:
        kind = head.get("head_type", "?") if isinstance(head, Mapping) else head
        raise UnsupportedError(
            f"{directory} also holds an AdapterHub prediction head ({kind}), which "
            "xlt does not import; pass ignore_head=True to import the adapter alone "
            "(and give the task an xlt HeadConfig)"
        )


def _xlt_state(
    model: XLTModel, tensors: Mapping[str, torch.Tensor], hub_name: str, weights: Path
) -> dict[str, torch.Tensor]:
    by_path = {
        f"{path}.adapters.{hub_name}.{theirs}": f"blocks.{key}.{ours}"
        for key, path in hub_paths(model).items()
        for theirs, ours in PARAMS.items()
    }
    prefix = f"{model.base.base_model_prefix}." if model.base.base_model_prefix else None
    state, unknown = {}, []
    for original, value in tensors.items():
        key = original
        for old, new in LEGACY_NAMES.items():
            key = key.replace(old, new)
        if prefix and key.startswith(prefix):
            key = key[len(prefix) :]
        if key in by_path:
            state[by_path[key]] = value
        else:
            unknown.append(original)
    if unknown:
        raise FormatError(
            f"{weights}: tensor(s) {sorted(unknown)[:3]} match no bottleneck block of adapter "
            f"'{hub_name}' on this {model.host.name} model (saved from another architecture, "
            "or holding parts xlt cannot import)"
        )
    return state


def import_adapterhub(
    model: XLTModel,
    directory: str | Path,
    *,
    role: Role | str,
    language: str | None = None,
    task: str | None = None,
    name: str | None = None,
    allow_other_base: bool = False,
    ignore_head: bool = False,
) -> Representation:
    """Import an AdapterHub bottleneck adapter (``seq_bn``, ``double_seq_bn``...) and attach it to ``model``.

    ``adapter.safetensors`` is preferred; ``pytorch_adapter.bin`` is read by ``torch.load(weights_only=True)``
    (which rebuilds tensors only and runs no code from the file; anything else in it is refused, asking for a
    safetensors conversion). Options xlt cannot reproduce exactly (gating, PHM, adapter layer norms,
    invertible or cross adapters, parallel adapters, learned scaling, leave_out, other architectures such as
    prefix tuning or LoRA) raise, as do tensors that match no block. ``allow_other_base=True`` accepts a file
    whose ``model_name`` names another model whose weights you know to be the same. A prediction head saved
    beside the adapter is refused unless ``ignore_head=True``.
    """
    role, rep_name = imported_identity(role, language, task, name, "bottleneck")
    directory = Path(directory)
    path = directory / FOREIGN_CONFIG_NAME
    data = read_json(path)
    config = _adapter_config(data, path)
    _check_model(model, data, path, allow_other_base)
    _check_head(directory, ignore_head)
    hub_name = data.get("name")
    if not isinstance(hub_name, str) or not hub_name:
        raise FormatError(f"{path} names no adapter ('name' is {hub_name!r}); re-save it with save_adapter")
    tensors, weights = load_tensors(directory, WEIGHTS_NAME, PICKLE_WEIGHTS_NAME)
    body = _body(model, config, task, _xlt_state(model, tensors, hub_name, weights), weights)
    source = import_provenance(
        "adapterhub",
        directory,
        weights_file=weights.name,
        adapterhub_name=hub_name,
        adapterhub_version=data.get("version"),
        model_name=data.get("model_name"),
    )
    info = RepInfo(rep_name, "bottleneck", role, language, task, model.fingerprint, source)
    return model.attach(Representation(info, config, body))


def _adapter_config(data: Mapping[str, Any], path: Path) -> BottleneckConfig:
    """The xlt config of an AdapterHub ``adapter_config.json`` (refusing a PEFT one)."""
    if "peft_type" in data:
        raise FormatError(f"{path} is a PEFT config, not AdapterHub's (use xlt.formats.import_peft_prompt)")
    hub = data.get("config")
    if not isinstance(hub, Mapping):
        raise FormatError(f"{path} has no adapter 'config' dict (got {type(hub).__name__}); re-save it with adapters")
    return bottleneck_config(hub, path, legacy="version" not in data)


def _body(
    model: XLTModel, config: BottleneckConfig, task: str | None, state: dict[str, torch.Tensor], weights: Path
) -> RepBody:
    """The bottleneck body ``config`` builds on ``model``, holding ``state`` (every tensor there, shapes checked)."""
    body = get_kind("bottleneck").build(config, BuildContext(model.base, model.host, model.tokenizer, None, task))
    expected = body.state_dict()
    missing, _ = key_mismatch(state, expected)
    if missing:
        raise FormatError(
            f"{weights} lacks {len(missing)} tensor(s) its config implies, e.g. {missing[0]} "
            "(saved with leave_out, or incomplete)"
        )
    check_shapes(weights, state, expected, "from the config; the files do not match")
    with torch.no_grad():
        body.load_state_dict({key: value.to(expected[key].dtype) for key, value in state.items()})
    return body


def export_adapterhub(
    model: XLTModel,
    rep_name: str,
    directory: str | Path,
    *,
    adapter_name: str | None = None,
    write_bin: bool = True,
) -> Path:
    """Write the bottleneck rep ``rep_name`` as a directory that AdapterHub's ``load_adapter`` loads.

    ``adapter.safetensors`` is always written; adapters 1.3 reads it only with ``use_safetensors=True`` and by
    default reads ``pytorch_adapter.bin``, so that is written too (a plain dict of tensors, which
    ``torch.load(weights_only=True)`` reads) unless ``write_bin=False``. The adapter's AdapterHub name is
    ``adapter_name`` or the rep name with ``/`` replaced by ``_``. The write is atomic.
    """
    rep = model.rep(rep_name)
    config = rep.config
    if not isinstance(config, BottleneckConfig):
        raise XLTError(f"rep '{rep_name}' is a {rep.kind} rep; only bottleneck reps export to AdapterHub")
    if config.invertible:
        raise UnsupportedError(
            f"rep '{rep_name}' has an invertible adapter, which AdapterHub places "
            "differently (after the embedding layer, reversed in flex LM heads only); "
            "export a bottleneck without invertible="
        )
    if rep.head is not None:
        raise UnsupportedError(
            f"rep '{rep_name}' owns a head, which xlt does not export to AdapterHub; save it in xlt's format"
        )
    hub_name = adapter_name or rep_name.replace("/", "_")
    if not hub_name or "." in hub_name:
        raise XLTError(f"AdapterHub adapter name {hub_name!r} must be non-empty and without '.'; pass adapter_name=")
    paths, prefix = hub_paths(model), _backbone_prefix(model)
    theirs = {ours: hub for hub, ours in PARAMS.items()}
    tensors = {}
    for key, value in rep.body.state_dict().items():
        group, site, param = key.split(".", 2)
        if group != "blocks" or param not in theirs:
            raise UnsupportedError(
                f"rep '{rep_name}': tensor {key} has no AdapterHub counterpart (a "
                "non-linearity with weights?); export a plain bottleneck"
            )
        hub_key = f"{prefix}{paths[site]}.adapters.{hub_name}.{theirs[param]}"
        tensors[hub_key] = value.detach().cpu().contiguous()
    data = {
        "config": hub_config(config),
        "hidden_size": getattr(model.base.config, "hidden_size", None),
        "model_class": type(model.base).__name__,
        "model_name": model.fingerprint.name or None,
        "model_type": model.base.config.model_type,
        "name": hub_name,
        "version": FORMAT_VERSION,
    }
    directory = Path(directory)
    with atomic_directory(directory, marker=FOREIGN_CONFIG_NAME) as tmp:
        save_file(tensors, str(tmp / WEIGHTS_NAME))
        if write_bin:
            torch.save(tensors, tmp / PICKLE_WEIGHTS_NAME)
        (tmp / FOREIGN_CONFIG_NAME).write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
    return directory
