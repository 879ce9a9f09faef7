"""Token-id rows made into a batch: right-padded to the longest row, with the mask of real tokens."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

IGNORE_INDEX = -100  # labels to skip, as in Hugging Face and torch's cross-entropy


def pad(rows: Sequence[np.ndarray] | Sequence[Sequence[int]], value: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-pad to the longest row of this batch (never to a fixed length)."""
    width = max(len(r) for r in rows)
    out = np.full((len(rows), width), value, dtype=np.int64)
    mask = np.zeros((len(rows), width), dtype=np.int64)
    for i, r in enumerate(rows):
        out[i, : len(r)] = r
        mask[i, : len(r)] = 1
    return torch.from_numpy(out), torch.from_numpy(mask)
