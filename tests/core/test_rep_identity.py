"""What every rep records of itself, and the weights checks every loader shares."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from xlt import Fingerprint, FingerprintError, Role, __version__
from xlt.errors import FormatError
from xlt.formats.tensors import check_shapes, key_mismatch
from xlt.reps.identity import check_fits, default_name, provenance
from xlt.version import __version__ as leaf_version

FP = Fingerprint("tiny", "bert", 32, 2, 0, 128)


def test_version_is_the_leaf_s():
    assert __version__ == leaf_version


def test_default_name():
    assert default_name(Role.LANGUAGE, "sk", "nli", "prompt") == "sk/prompt"
    assert default_name(Role.TASK, "sk", "nli", "bottleneck") == "nli/bottleneck"


def test_provenance_keeps_key_order_and_drops_none():
    record = provenance(source_format="peft", source_path="/x", peft_version=None, rows="first 2")
    assert list(record) == ["xlt_version", "created", "source_format", "source_path", "rows"]
    assert record["xlt_version"] == __version__


def test_check_fits():
    check_fits(None, FP, "r", allow_other_base=False)
    check_fits(FP, FP, "r", allow_other_base=False)
    other = Fingerprint("other", "bert", 32, 2, 0, 128)
    with pytest.raises(FingerprintError):
        check_fits(other, FP, "r", allow_other_base=False)
    check_fits(other, FP, "r", allow_other_base=True)
    with pytest.raises(FingerprintError, match="hidden_size=64"):
        check_fits(Fingerprint("other", "bert", 64, 2, 0, 128), FP, "r", allow_other_base=True)


def test_state_mismatches():
    expected = {"a": torch.zeros(2), "b": torch.zeros(3)}
    assert key_mismatch({"a": torch.zeros(2), "c": torch.zeros(1)}, expected) == (["b"], ["c"])
    check_shapes(Path("w"), {"a": torch.zeros(2), "b": torch.zeros(3)}, expected, "on this model")
    with pytest.raises(FormatError, match=r"^w: tensor b has shape \(4,\), expected \(3,\) on this model$"):
        check_shapes(Path("w"), {"a": torch.zeros(2), "b": torch.zeros(4)}, expected, "on this model")
