"""Hosts: one per architecture family, found by the base model's ``model_type``."""

from __future__ import annotations

from transformers import PreTrainedModel

from xlt.errors import UnsupportedError
from xlt.hosts.base import BottleneckSite, Host, HostOutput, LinearTarget
from xlt.hosts.decoder import GPT2Host, LlamaHost
from xlt.hosts.encoder import EncoderHost
from xlt.hosts.encoder_decoder import EncoderDecoderHost

HOSTS: list[type[Host]] = [EncoderDecoderHost, EncoderHost, GPT2Host, LlamaHost]


def register_host(host: type[Host]) -> type[Host]:
    """Make ``host`` the host of its ``model_types`` (a new family is one host module and this call)."""
    taken = sorted(set(host.model_types) & set(supported_model_types()))
    if taken:
        raise UnsupportedError(f"model type(s) {taken} already have a host; give {host.__name__} other model_types")
    HOSTS.append(host)
    return host


def unregister_host(host: type[Host]) -> None:
    """Remove a host registered with ``register_host`` (a plugin's or a test's)."""
    HOSTS.remove(host)


def supported_model_types() -> list[str]:
    return sorted(t for host in HOSTS for t in host.model_types)


def host_class(model_type: str) -> type[Host]:
    for host in HOSTS:
        if model_type in host.model_types:
            return host
    raise UnsupportedError(
        f"model_type '{model_type}' has no xlt host (supported: {', '.join(supported_model_types())})"
    )


def host_for(base: PreTrainedModel) -> Host:
    """The host of ``base``, after checking it is a model class and dtype that host can drive."""
    model_type = getattr(getattr(base, "config", None), "model_type", None)
    host = host_class(model_type)() if isinstance(model_type, str) else None
    if host is None or not isinstance(base, PreTrainedModel):
        raise UnsupportedError(
            f"xlt needs a Hugging Face PreTrainedModel, got {type(base).__name__} (load one with "
            "XLTModel.from_pretrained or transformers' from_pretrained)"
        )
    host.check_base(base)
    host.check_dtype(base.dtype)
    return host


__all__ = [
    "HOSTS",
    "BottleneckSite",
    "Host",
    "HostOutput",
    "LinearTarget",
    "host_class",
    "host_for",
    "register_host",
    "supported_model_types",
    "unregister_host",
]
