"""Representations on disk: xlt's native format, and import/export of PEFT and AdapterHub files."""

from xlt.formats.native import CONFIG_NAME, WEIGHTS_NAME, load_rep, read_rep_config, save_rep

__all__ = ["CONFIG_NAME", "WEIGHTS_NAME", "load_rep", "read_rep_config", "save_rep"]
