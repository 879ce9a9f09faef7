"""Representations on disk: xlt's native format, and import/export of PEFT and AdapterHub files."""

from xlt.formats.adapterhub import export_adapterhub, import_adapterhub
from xlt.formats.interop import detect_format, import_rep
from xlt.formats.native import CONFIG_NAME, WEIGHTS_NAME, load_rep, read_rep_config, save_rep
from xlt.formats.peft import export_peft_prompt, import_peft_prompt

__all__ = [
    "CONFIG_NAME",
    "WEIGHTS_NAME",
    "detect_format",
    "export_adapterhub",
    "export_peft_prompt",
    "import_adapterhub",
    "import_peft_prompt",
    "import_rep",
    "load_rep",
    "read_rep_config",
    "save_rep",
]
