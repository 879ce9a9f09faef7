"""The input entry: prompts joined to the input per row, padding moved left, positions counted over real
tokens, and an index back to the caller's own input positions."""

from __future__ import annotations

import torch

from xlt.assembly import assemble, positions


def embeds(batch, length, dim=2):
    # embedding of token j of row i is (i + 1, j + 1): easy to follow through the reordering
    rows = torch.arange(1, batch + 1, dtype=torch.float).view(-1, 1, 1).expand(batch, length, 1)
    cols = torch.arange(1, length + 1, dtype=torch.float).view(1, -1, 1).expand(batch, length, 1)
    return torch.cat([rows, cols], -1)[..., :dim]


def test_no_prompt_no_padding_is_untouched():
    e, mask = embeds(2, 3), torch.ones(2, 3, dtype=torch.long)
    out = assemble(e, mask, [])
    assert out.inputs_embeds is e and out.position_ids is None and out.input_index is None
    assert torch.equal(out.to_input(e), e)


def test_prompts_per_row():
    e = embeds(3, 4)
    mask = torch.tensor([[1, 1, 1, 1], [1, 1, 0, 0], [1, 1, 1, 0]])
    p2 = torch.full((2, 2), -2.0)  # row 0 and 2
    p3 = torch.full((3, 2), -3.0)  # row 1
    out = assemble(e, mask, [(p2, torch.tensor([0, 2])), (p3, torch.tensor([1]))])
    # row 0: 2 prompt + 4 input = 6 real; row 1: 3 + 2 = 5; row 2: 2 + 3 = 5 -> width 6, padding on the left
    assert out.attention_mask.tolist() == [[1, 1, 1, 1, 1, 1], [0, 1, 1, 1, 1, 1], [0, 1, 1, 1, 1, 1]]
    assert out.position_ids.tolist() == [[0, 1, 2, 3, 4, 5], [0, 0, 1, 2, 3, 4], [0, 0, 1, 2, 3, 4]]
    assert out.inputs_embeds[0, :2].eq(-2).all() and out.inputs_embeds[1, 1:4].eq(-3).all()
    assert out.inputs_embeds[2, 1:3].eq(-2).all()
    assert torch.equal(out.inputs_embeds[1, 4:], e[1, :2]) and torch.equal(out.inputs_embeds[2, 3:], e[2, :3])
    # back to the caller's positions: every real input token is found where the caller had it
    back = out.to_input(out.inputs_embeds)
    assert back.shape == e.shape
    assert torch.equal(back[mask.bool()], e[mask.bool()])
    assert torch.equal(out.input_mask, mask)
    # a 2-D tensor (e.g. a mask or per-position score) maps back the same way
    assert out.to_input(out.attention_mask)[mask.bool()].eq(1).all()


def test_prompt_for_every_row():
    e, mask = embeds(2, 3), torch.tensor([[1, 1, 1], [1, 0, 0]])
    out = assemble(e, mask, [(torch.zeros(2, 2), None)])
    assert out.attention_mask.tolist() == [[1, 1, 1, 1, 1], [0, 0, 1, 1, 1]]
    assert out.position_ids.tolist() == [[0, 1, 2, 3, 4], [0, 0, 0, 1, 2]]


def test_padding_without_prompts_is_packed_left():
    """Right padding moves left (generation continues from each row's last token) and positions count real
    tokens only (a left-padded row keeps the positions it has alone)."""
    e = embeds(2, 4)
    right = torch.tensor([[1, 1, 1, 1], [1, 1, 0, 0]])
    out = assemble(e, right, [])
    assert out.attention_mask.tolist() == [[1, 1, 1, 1], [0, 0, 1, 1]]
    assert out.position_ids.tolist() == [[0, 1, 2, 3], [0, 0, 0, 1]]
    assert torch.equal(out.to_input(out.inputs_embeds)[right.bool()], e[right.bool()])
    left = torch.tensor([[1, 1, 1, 1], [0, 0, 1, 1]])
    out = assemble(e, left, [])
    assert out.position_ids.tolist() == [[0, 1, 2, 3], [0, 0, 0, 1]]
    assert torch.equal(out.inputs_embeds[1, 2:], e[1, 2:])


def test_positions():
    mask = torch.tensor([[0, 0, 1, 1, 1], [1, 1, 1, 1, 1]])
    assert positions(mask).tolist() == [[0, 0, 0, 1, 2], [0, 1, 2, 3, 4]]
