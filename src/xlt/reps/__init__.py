"""Representation kinds. Importing this package registers the built-in kinds."""

from xlt.reps.base import Entry, RepBody, RepConfig, RepInfo, Representation, Role
from xlt.reps.bottleneck import BottleneckConfig
from xlt.reps.heads import Head, HeadConfig
from xlt.reps.lora import LoRAConfig
from xlt.reps.probe import ProbeConfig
from xlt.reps.prompt import PromptConfig
from xlt.reps.registry import Kind, get_kind, kinds, register_kind

__all__ = [
    "BottleneckConfig",
    "Entry",
    "Head",
    "HeadConfig",
    "Kind",
    "LoRAConfig",
    "ProbeConfig",
    "PromptConfig",
    "RepBody",
    "RepConfig",
    "RepInfo",
    "Representation",
    "Role",
    "get_kind",
    "kinds",
    "register_kind",
]
