"""The base model identity and shape a rep records, and what counts as another model."""

from __future__ import annotations

import pytest

from tiny_models import ARCHS, FAMILY, tiny_base
from xlt import Fingerprint, FingerprintError

LAYERS = {"encoder_decoder": (2, 2), "encoder": (2, 0), "decoder": (2, 0)}


@pytest.mark.parametrize("arch", ARCHS)
def test_fingerprint_of_each_family(arch):
    base = tiny_base(arch)
    fp = Fingerprint.of(base.config)
    assert fp.name == f"tiny-{arch}"
    assert fp.model_type == base.config.model_type
    assert (fp.hidden_size, fp.vocab_size) == (32, 128)
    assert (fp.num_layers, fp.num_decoder_layers) == LAYERS[FAMILY[arch]]
    assert Fingerprint.from_dict(fp.to_dict()) == fp
    assert Fingerprint.of(base.config, "my/name").name == "my/name"
    fp.check_compatible(Fingerprint.of(tiny_base(arch, seed=5).config), "x/prompt")


def test_what_differs_is_said():
    fp = Fingerprint("m", "t5", 32, 2, 2, 128)
    assert fp.digest == Fingerprint("m", "t5", 32, 2, 2, 128).digest
    assert fp.digest != Fingerprint("n", "t5", 32, 2, 2, 128).digest
    cases = {
        Fingerprint("m", "mt5", 32, 2, 2, 128): "model_type=t5; this model has mt5",
        Fingerprint("m", "t5", 48, 2, 2, 128): "hidden_size=32; this model has 48",
        Fingerprint("m", "t5", 32, 3, 2, 128): "num_layers=2; this model has 3",
        Fingerprint("m", "t5", 32, 2, 3, 128): "num_decoder_layers=2; this model has 3",
        Fingerprint("m", "t5", 32, 2, 2, 96): "vocab_size=128; this model has 96",
        Fingerprint("other", "t5", 32, 2, 2, 128): "trained on base model 'm', not 'other'",
    }
    for other, message in cases.items():
        with pytest.raises(FingerprintError, match=message):
            fp.check_compatible(other, "sk/prompt")
        with pytest.raises(FingerprintError, match="'sk/prompt'"):
            fp.check_compatible(other, "sk/prompt")
