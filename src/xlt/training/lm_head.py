"""A masked-LM head for encoders that ship none (multilingual-e5 is an embedding model).

Design: one head per base model, trained once on the pooled text of all languages with the base frozen, then
frozen and shared by every language representation, so what differs between languages is the language
representation alone. The head is BERT's (dense, GELU, LayerNorm) with the decoder tied to the base's frozen
word embeddings; only the transform and an output bias are trained. ``vocab_ids`` may restrict the output to
the ids seen in the corpora (logits over ~50k ids instead of 250k); logits are computed only at masked
positions. Stored like a representation: ``xlt_lm_head.json`` + ``lm_head.safetensors`` + fingerprint.
``train_lm_head`` fits it on the frozen base's cached states at masked positions (``lm_head_fit``), or step by
step through the base (``cached_segments=0``); both save the same format.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn

from xlt.errors import FormatError
from xlt.fingerprint import Fingerprint
from xlt.formats.atomic import atomic_directory

CONFIG_NAME = "xlt_lm_head.json"
WEIGHTS_NAME = "lm_head.safetensors"


class MaskedLMHead(nn.Module):
    def __init__(
        self, embeddings: nn.Embedding, vocab_ids: list[int] | None = None, layer_norm_eps: float = 1e-12
    ) -> None:
        super().__init__()
        vocab_size, dim = embeddings.weight.shape
        self.dense = nn.Linear(dim, dim)
        self.norm = nn.LayerNorm(dim, eps=layer_norm_eps)
        ids = torch.arange(vocab_size) if vocab_ids is None else torch.tensor(sorted(set(vocab_ids)), dtype=torch.long)
        if ids.numel() == 0 or int(ids.max()) >= vocab_size or int(ids.min()) < 0:
            raise FormatError(f"LM head vocab_ids must be non-empty ids below {vocab_size}")
        self.register_buffer("vocab_ids", ids, persistent=False)
        lookup = torch.full((vocab_size,), -100, dtype=torch.long)
        lookup[ids] = torch.arange(ids.numel())
        self.register_buffer("lookup", lookup, persistent=False)
        self.bias = nn.Parameter(torch.zeros(ids.numel()))
        self.restricted = vocab_ids is not None
        # The word embeddings are the frozen base's: kept out of this module's parameters and state.
        self._embeddings = [embeddings]
        nn.init.normal_(self.dense.weight, std=0.02)
        nn.init.zeros_(self.dense.bias)

    def forward(self, hidden: torch.Tensor, decoder: torch.Tensor | None = None) -> torch.Tensor:
        """``hidden``: [n, d] states at the masked positions only; returns [n, len(vocab_ids)] logits.

        ``decoder``: ``decoder_weight()`` computed once by a caller that runs many batches (the table is frozen,
        and gathering the restricted rows costs as much as a small batch's logits)."""
        h = self.transform(hidden)
        weight = self.decoder_weight() if decoder is None else decoder
        return h @ weight.to(h.dtype).T + self.bias

    def transform(self, hidden: torch.Tensor) -> torch.Tensor:
        """The trained part before the tied decoder: dense, GELU, LayerNorm."""
        return self.norm(F.gelu(self.dense(hidden.to(self.dense.weight.dtype))))

    def decoder_weight(self) -> torch.Tensor:
        """The frozen word embeddings of the output vocabulary, [len(vocab_ids), d]."""
        table = self._embeddings[0].weight
        return table if not self.restricted else table.index_select(0, self.vocab_ids)

    def targets(self, labels: torch.Tensor) -> torch.Tensor:
        """Map token ids to output indices (ids outside ``vocab_ids`` become -100, i.e. ignored)."""
        return self.lookup[labels]

    def loss(self, hidden: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, int]:
        """Mean cross-entropy over masked positions (``labels`` != -100) of [batch, len, d] ``hidden``."""
        chosen = labels != -100
        logits = self(hidden[chosen])
        target = self.targets(labels[chosen])
        return F.cross_entropy(logits.float(), target, ignore_index=-100), int(chosen.sum())

    def save(self, directory: str | Path, fingerprint: Fingerprint, provenance: dict[str, Any] | None = None) -> Path:
        data = {
            "format": "xlt-lm-head",
            "fingerprint": fingerprint.to_dict(),
            "vocab_ids": self.vocab_ids.tolist() if self.restricted else None,
            "layer_norm_eps": self.norm.eps,
            "provenance": provenance or {},
        }
        state = {k: v.detach().cpu().contiguous() for k, v in self.state_dict().items()}
        with atomic_directory(Path(directory), marker=CONFIG_NAME) as tmp:
            save_file(state, str(tmp / WEIGHTS_NAME))
            (tmp / CONFIG_NAME).write_text(json.dumps(data))
        return Path(directory)

    @classmethod
    def load(cls, directory: str | Path, embeddings: nn.Embedding, fingerprint: Fingerprint) -> MaskedLMHead:
        directory = Path(directory)
        config_path = directory / CONFIG_NAME
        if not config_path.is_file() or not (directory / WEIGHTS_NAME).is_file():
            raise FormatError(
                f"{directory} is not an xlt LM head (it needs {CONFIG_NAME} and {WEIGHTS_NAME}); "
                "train one with `xlt train-lm-head`"
            )
        data = _read_config(config_path)
        Fingerprint.from_dict(data["fingerprint"]).check_compatible(fingerprint, f"LM head {directory}")
        try:
            head = cls(embeddings, data["vocab_ids"], data["layer_norm_eps"])
            head.load_state_dict(load_file(str(directory / WEIGHTS_NAME)))
        except (OSError, ValueError, TypeError, RuntimeError, SafetensorError) as exc:
            reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise FormatError(
                f"LM head {directory} does not load ({reason[:200]}); train it again with `xlt train-lm-head`"
            ) from None
        return head.to(embeddings.weight.device)


def _read_config(path: Path) -> dict[str, Any]:
    """The head's JSON record, with the keys ``load`` reads; a damaged one is one error naming the file."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise FormatError(f"{path} is not JSON ({exc}); train the LM head again with `xlt train-lm-head`") from None
    missing = [
        key for key in ("fingerprint", "vocab_ids", "layer_norm_eps") if not isinstance(data, dict) or key not in data
    ]
    if missing or data.get("format") != "xlt-lm-head":
        raise FormatError(
            f"{path} is not an xlt LM head record (format {data.get('format') if isinstance(data, dict) else None!r},"
            f" missing {missing}); train one with `xlt train-lm-head`"
        )
    return data
