"""The identity and shape of a base model, recorded by every representation trained on it."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from typing import Any

from transformers import PretrainedConfig

from xlt.errors import FingerprintError


def _text_config(config: PretrainedConfig) -> PretrainedConfig:
    getter = getattr(config, "get_text_config", None)
    return getter() if callable(getter) else config


def _first(config: PretrainedConfig, *names: str) -> int:
    for name in names:
        value = getattr(config, name, None)
        if isinstance(value, int):
            return value
    return 0


@dataclass(frozen=True)
class Fingerprint:
    """What a representation needs to know about the model it was trained on.

    ``name`` is the base model's identity (hub id or path); the other fields are its shape. Two models with
    the same shape but different weights are different models: both the name and the shape must match.
    """

    name: str
    model_type: str
    hidden_size: int
    num_layers: int
    num_decoder_layers: int
    vocab_size: int

    @classmethod
    def of(cls, config: PretrainedConfig, name: str | None = None) -> Fingerprint:
        text = _text_config(config)
        is_enc_dec = bool(getattr(text, "is_encoder_decoder", False))
        return cls(
            name=name if name is not None else str(getattr(config, "_name_or_path", "") or ""),
            model_type=str(getattr(text, "model_type", "") or config.model_type),
            hidden_size=_first(text, "d_model", "hidden_size", "n_embd", "dim"),
            num_layers=_first(text, "num_layers", "num_hidden_layers", "n_layer"),
            num_decoder_layers=_first(text, "num_decoder_layers", "num_layers") if is_enc_dec else 0,
            vocab_size=_first(text, "vocab_size"),
        )

    @property
    def shape(self) -> dict[str, Any]:
        data = asdict(self)
        data.pop("name")
        return data

    @property
    def digest(self) -> str:
        return hashlib.sha256(json.dumps(asdict(self), sort_keys=True).encode()).hexdigest()[:16]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Fingerprint:
        if not isinstance(data, dict):
            raise FingerprintError(f"a fingerprint is a dict of the base model's shape, got {type(data).__name__}")
        missing = [k for k in cls.__dataclass_fields__ if k not in data]
        if missing:
            raise FingerprintError(f"the fingerprint lacks {missing}; re-save the rep with this xlt")
        for key in cls.__dataclass_fields__:
            wanted = str if key in ("name", "model_type") else int
            value = data[key]
            if not isinstance(value, wanted) or isinstance(value, bool):
                raise FingerprintError(
                    f"fingerprint field {key}={value!r} should be {wanted.__name__}; the rep config is damaged "
                    "(re-save the rep)"
                )
        return cls(**{k: data[k] for k in cls.__dataclass_fields__})

    def check_compatible(self, other: Fingerprint, rep_name: str) -> None:
        """Raise if a representation recorded with ``self`` cannot run on a model with ``other``."""
        for key, mine in self.shape.items():
            theirs = other.shape[key]
            if mine != theirs:
                raise FingerprintError(
                    f"rep '{rep_name}' was trained on a model with {key}={mine}; this model has {theirs} "
                    f"(load a rep trained on {other.name or 'this model'}, or retrain it)"
                )
        if self.name != other.name:
            raise FingerprintError(
                f"rep '{rep_name}' was trained on base model '{self.name}', not '{other.name}' (load a rep "
                f"trained on '{other.name}', or pass allow_other_base=True if the weights are the same)"
            )
