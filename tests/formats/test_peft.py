"""PEFT prompt tuning <-> xlt soft prompts: PEFT itself is the oracle (same weights, same outputs)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from oracle_inputs import inputs, xlt_out
from safetensors.torch import save_file

from tiny_models import FAMILY, tiny_base, tiny_tokenizer
from xlt import FormatError, PromptConfig, UnsupportedError, XLTError, XLTModel
from xlt.formats import detect_format, export_peft_prompt, import_peft_prompt, import_rep

TOL = 1e-5
N = 4
ARCHS = ["t5", "mt5", "gpt2", "llama", "bert"]
TASK_TYPE = {"encoder_decoder": "SEQ_2_SEQ_LM", "decoder": "CAUSAL_LM", "encoder": "FEATURE_EXTRACTION"}


@pytest.fixture(scope="module")
def peft():
    return pytest.importorskip("peft")


def peft_out(peft_model, arch: str, n: int) -> torch.Tensor:
    """PEFT prepends n virtual tokens on decoder-only and encoder models: keep the input's positions."""
    ids, mask, dec = inputs()
    with torch.no_grad():
        if FAMILY[arch] == "encoder_decoder":
            return peft_model(input_ids=ids, attention_mask=mask, decoder_input_ids=dec).logits
        out = peft_model(input_ids=ids, attention_mask=mask)
    return (out.logits if FAMILY[arch] == "decoder" else out.last_hidden_state)[:, n:]


def max_diff(a: torch.Tensor, b: torch.Tensor, arch: str) -> float:
    """Decoder-side logits compare everywhere; input-aligned outputs at real (unpadded) positions only."""
    assert a.shape == b.shape
    diff = (a - b).abs()
    if FAMILY[arch] != "encoder_decoder":
        diff = diff[inputs()[1].bool()]
    return float(diff.max())


def peft_prompt_dir(peft, arch: str, directory: Path) -> Path:
    config = peft.PromptTuningConfig(
        task_type=TASK_TYPE[FAMILY[arch]], num_virtual_tokens=N, prompt_tuning_init="RANDOM"
    )
    torch.manual_seed(11)
    peft.get_peft_model(tiny_base(arch), config).save_pretrained(str(directory))
    return directory


@pytest.mark.oracle
@pytest.mark.parametrize("arch", ARCHS)
def test_peft_prompt_imports_to_same_outputs(peft, arch, tmp_path):
    directory = peft_prompt_dir(peft, arch, tmp_path / "peft")
    oracle = peft.PeftModel.from_pretrained(tiny_base(arch), str(directory)).eval()
    model = XLTModel(tiny_base(arch), tiny_tokenizer())
    rep = import_peft_prompt(model, directory, role="language", language="sk")
    assert rep.name == "sk/prompt" and rep.body.num_virtual_tokens == N
    assert rep.info.provenance["source_format"] == "peft-prompt-tuning"
    ours = xlt_out(model, "sk/prompt")
    diff = max_diff(ours, peft_out(oracle, arch, N), arch)
    print(f"peft->xlt {arch}: max abs diff {diff:.2e}")
    assert diff < TOL
    assert (ours - xlt_out(model, None)).abs().max() > 1e-3  # the prompt matters, so the test can fail


@pytest.mark.oracle
@pytest.mark.parametrize("arch", ARCHS)
def test_xlt_prompt_exports_to_peft(peft, arch, tmp_path):
    model = XLTModel(tiny_base(arch), tiny_tokenizer())
    model.add_task("nli", PromptConfig(num_virtual_tokens=N, init="random", init_std=1.0))
    directory = export_peft_prompt(model, "nli/prompt", tmp_path / "export")
    assert detect_format(directory) == "peft-prompt"
    config = json.loads((directory / "adapter_config.json").read_text())
    assert config["num_transformer_submodules"] == (2 if FAMILY[arch] == "encoder_decoder" else 1)
    oracle = peft.PeftModel.from_pretrained(tiny_base(arch), str(directory)).eval()
    diff = max_diff(xlt_out(model, "nli/prompt"), peft_out(oracle, arch, N), arch)
    print(f"xlt->peft {arch}: max abs diff {diff:.2e}")
    assert diff < TOL
    again = import_rep(XLTModel(tiny_base(arch)), directory, role="task", task="nli")
    assert torch.equal(again.body.embedding, model.rep("nli/prompt").body.embedding)


def write_peft_dir(directory: Path, table: torch.Tensor, n: int, **overrides) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    config = {
        "peft_type": "PROMPT_TUNING",
        "task_type": "SEQ_2_SEQ_LM",
        "num_virtual_tokens": n,
        "token_dim": table.shape[1],
        "num_transformer_submodules": table.shape[0] // n,
        "prompt_tuning_init": "RANDOM",
        "inference_mode": True,
        **overrides,
    }
    (directory / "adapter_config.json").write_text(json.dumps(config))
    save_file({"prompt_embeddings": table}, str(directory / "adapter_model.safetensors"))
    return directory


@pytest.mark.oracle
def test_published_seq2seq_layout_uses_first_half(peft, tmp_path):
    """The paper's published prompts: 2n rows for a seq2seq model, of which PEFT reads the first n."""
    g = torch.Generator().manual_seed(5)
    first, second = torch.randn(N, 32, generator=g), torch.randn(N, 32, generator=g) * 3
    directory = write_peft_dir(tmp_path / "published", torch.cat([first, second]), N)
    model = XLTModel(tiny_base("t5"))
    rep = import_peft_prompt(model, directory, role="language", language="cs")
    assert torch.equal(rep.body.embedding, first)
    oracle = peft.PeftModel.from_pretrained(tiny_base("t5"), str(directory)).eval()
    diff = max_diff(xlt_out(model, "cs/prompt"), peft_out(oracle, "t5", N), "t5")
    print(f"published layout t5: max abs diff {diff:.2e}")
    assert diff < TOL


def test_bin_only_directory_is_read_without_unpickling_objects(tmp_path):
    table = torch.randn(N, 32)
    directory = write_peft_dir(tmp_path / "bin", torch.cat([table, table]), N)
    (directory / "adapter_model.safetensors").unlink()
    torch.save({"prompt_embeddings": torch.cat([table, table])}, directory / "adapter_model.bin")
    rep = import_peft_prompt(XLTModel(tiny_base("t5")), directory, role="task", task="qa")
    assert torch.equal(rep.body.embedding, table)
    torch.save({"prompt_embeddings": torch.cat([table, table]), "extra": Path("x")}, directory / "adapter_model.bin")
    with pytest.raises(FormatError, match=r"convert it to adapter_model\.safetensors"):
        import_peft_prompt(XLTModel(tiny_base("t5")), directory, role="task", task="qa")


def test_refusals(tmp_path):
    model = XLTModel(tiny_base("t5"))
    wide = write_peft_dir(tmp_path / "wide", torch.randn(2 * N, 48), N)
    with pytest.raises(FormatError, match="token_dim=48"):
        import_peft_prompt(model, wide, role="language", language="sk")
    extra = write_peft_dir(tmp_path / "extra", torch.randn(2 * N, 32), N)
    save_file(
        {"prompt_embeddings": torch.randn(2 * N, 32), "classifier.weight": torch.randn(2, 32)},
        str(extra / "adapter_model.safetensors"),
    )
    with pytest.raises(FormatError, match="exactly one tensor"):
        import_peft_prompt(model, extra, role="language", language="sk")
    seq2seq = write_peft_dir(tmp_path / "seq2seq", torch.randn(2 * N, 32), N)
    with pytest.raises(UnsupportedError, match="encoder-decoder"):
        import_peft_prompt(XLTModel(tiny_base("gpt2")), seq2seq, role="language", language="sk")
    short = write_peft_dir(tmp_path / "short", torch.randn(N + 1, 32), N, num_transformer_submodules=2)
    with pytest.raises(FormatError, match="do not belong together"):
        import_peft_prompt(model, short, role="language", language="sk")
    other = write_peft_dir(tmp_path / "other", torch.randn(2 * N, 32), N, base_model_name_or_path="google/mt5-base")
    with pytest.raises(FormatError, match="allow_other_base=True"):
        import_peft_prompt(model, other, role="language", language="sk")
    assert import_peft_prompt(model, other, role="language", language="sk", allow_other_base=True).name == "sk/prompt"
    lora = tmp_path / "lora"
    lora.mkdir()
    (lora / "adapter_config.json").write_text(json.dumps({"peft_type": "LORA", "r": 8}))
    with pytest.raises(FormatError, match="PEFT LORA adapter, which xlt does not import yet"):
        detect_format(lora)
    with pytest.raises(FormatError, match="PROMPT_TUNING only"):
        import_peft_prompt(model, lora, role="language", language="sk")
    with pytest.raises(FormatError, match="neither"):
        detect_format(tmp_path)


def test_import_rep_dispatches_to_native(tmp_path):
    model = XLTModel(tiny_base("gpt2"))
    model.add_language("sk", PromptConfig(num_virtual_tokens=3, init="random"))
    model.save_rep("sk/prompt", tmp_path / "native")
    assert detect_format(tmp_path / "native") == "xlt"
    other = XLTModel(tiny_base("gpt2"))
    with pytest.raises(XLTError, match=r"role=.language."):
        import_rep(other, tmp_path / "native", role="task")
    rep = import_rep(other, tmp_path / "native", role="language", language="sk")
    assert torch.equal(rep.body.embedding, model.rep("sk/prompt").body.embedding)
