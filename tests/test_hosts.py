"""Hosts: one per family, chosen by model_type; where bottlenecks and LoRA enter each family."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from tiny_models import ARCHS, FAMILY, tiny_base
from xlt import UnsupportedError
from xlt.hosts import host_for, supported_model_types

SITES = {"encoder_decoder": 8, "encoder": 4, "decoder": 4}  # 2 sites per block; T5 has 2 + 2 blocks
DEFAULT_LORA = {
    "t5": ({"q", "v"}, 12),  # encoder self, decoder self and cross attention: 3 x 2 blocks x 2
    "mt5": ({"q", "v"}, 12),
    "bert": ({"query", "value"}, 4),
    "xlm-roberta": ({"query", "value"}, 4),
    "gpt2": ({"c_attn"}, 2),
    "llama": ({"q_proj", "v_proj"}, 4),
    "qwen2": ({"q_proj", "v_proj"}, 4),
}


@pytest.mark.parametrize("arch", ARCHS)
def test_host_of_each_family(arch):
    base = tiny_base(arch)
    host = host_for(base)
    assert host.family == FAMILY[arch]
    assert base.config.model_type in supported_model_types()
    sites = host.bottleneck_sites(base)
    assert len(sites) == SITES[FAMILY[arch]]
    assert len({s.key for s in sites}) == len(sites)
    assert {s.where for s in sites} == {"attn", "ffn"}
    assert all(s.dim == 32 for s in sites)
    names, count = DEFAULT_LORA[arch]
    targets = host.lora_targets(base, [])
    assert {t.name.split(".")[-1] for t in targets} == names and len(targets) == count
    assert "lm_head" not in host.linear_names(base)
    assert host.supports_heads == (FAMILY[arch] == "encoder")
    assert host.supports_invertible == (FAMILY[arch] != "encoder_decoder")
    assert host.supports_generation == (FAMILY[arch] != "encoder")


def test_gpt2_conv1d_shapes():
    base = tiny_base("gpt2")
    shapes = {
        t.name.split(".")[-1]: (t.in_features, t.out_features)
        for t in host_for(base).lora_targets(base, ["c_attn", "c_fc", "c_proj"])
    }
    assert shapes["c_attn"] == (32, 96) and shapes["c_fc"] == (32, 128)


def test_unknown_model_type():
    fake = SimpleNamespace(config=SimpleNamespace(model_type="bloom"))
    with pytest.raises(UnsupportedError, match=r"model_type 'bloom' has no xlt host.*t5"):
        host_for(fake)  # type: ignore[arg-type]
