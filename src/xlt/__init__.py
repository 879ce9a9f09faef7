"""xlt: zero-shot cross-lingual transfer with composable language and task representations."""

__version__ = "0.1.0"

from xlt.errors import FingerprintError, FormatError, PlanError, UnsupportedError, XLTError  # noqa: E402
from xlt.fingerprint import Fingerprint  # noqa: E402
from xlt.plan import Plan  # noqa: E402
from xlt.reps import (  # noqa: E402
    BottleneckConfig,
    HeadConfig,
    LoRAConfig,
    PromptConfig,
    RepConfig,
    Representation,
    Role,
    register_kind,
)
from xlt.model import XLTModel, XLTOutput  # noqa: E402

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
]
