"""xlt: zero-shot cross-lingual transfer with composable language and task representations."""

from xlt.errors import FingerprintError, FormatError, PlanError, UnsupportedError, XLTError
from xlt.fingerprint import Fingerprint
from xlt.model import XLTModel, XLTOutput
from xlt.plan import Plan
from xlt.reps import (
    BottleneckConfig,
    HeadConfig,
    LoRAConfig,
    PromptConfig,
    RepConfig,
    Representation,
    Role,
    register_kind,
)
from xlt.version import __version__

__all__ = [
    "BottleneckConfig",
    "Fingerprint",
    "FingerprintError",
    "FormatError",
    "HeadConfig",
    "LoRAConfig",
    "Plan",
    "PlanError",
    "PromptConfig",
    "RepConfig",
    "Representation",
    "Role",
    "UnsupportedError",
    "XLTError",
    "XLTModel",
    "XLTOutput",
    "__version__",
    "register_kind",
]
