"""Representation kinds. Importing this package registers the built-in kinds, in the order a matrix config's
training sections list their options: prompt, bottleneck, lora, probe."""

from xlt.reps.prompt import PromptConfig  # isort: skip
from xlt.reps.bottleneck import BottleneckConfig  # isort: skip
from xlt.reps.lora import LoRAConfig  # isort: skip
from xlt.reps.probe import ProbeConfig  # isort: skip
from xlt.reps.base import Entry, RepBody, RepConfig, RepInfo, Representation, Role
from xlt.reps.heads import Head, HeadConfig
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
