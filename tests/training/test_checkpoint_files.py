"""Checkpoints are data: JSON and safetensors only, resumed with torch.load and pickle unusable; optimiser, schedule
and RNG states round-trip exactly."""

from __future__ import annotations

import json
import pickle
import random

import numpy as np
import pytest
import torch
import training_helpers as th

from xlt.training.checkpoint import (
    load_optimizer_state,
    load_state,
    optimizer_state,
    restore_rng,
    rng_state,
    save_state,
)
from xlt.training.data import micro_batches
from xlt.training.lm_batches import CausalLM
from xlt.training.loop import train
from xlt.training.optim import build_optimizer, linear_schedule


def run_loop(tmp_path, steps, kind="prompt", lines=None):
    from xlt.plan import Plan
    from xlt.reps import get_kind

    model = th.model("gpt2")
    rep = model.add_language("sk", get_kind(kind).config_cls.from_dict(th.rep_options(kind)))
    plan = Plan((rep.name,))

    def examples():
        g = torch.Generator().manual_seed(0)
        while True:
            yield torch.randint(4, 100, (10,), generator=g).tolist()

    def loss_fn(module, batch):
        out = module.model(batch["input_ids"], batch["attention_mask"], plan=plan, labels=batch["labels"])
        return out.loss, int(batch["attention_mask"].sum())

    return train(
        config=th.quick(steps=steps, eval_every=2, checkpoint_every=2),
        model=model,
        trainable={rep.name: rep},
        kind=kind,
        loss_fn=loss_fn,
        batches=micro_batches(examples, CausalLM(pad_id=0), 4, 0),
        evaluate=lambda: {"loss": float(len(lines or []))},
        output_dir=tmp_path / "run",
        log=(lines.append if lines is not None else th.silent),
    )


def refuse(*args, **kwargs):
    raise AssertionError("a checkpoint was unpickled")


@pytest.mark.parametrize("kind", ["prompt", "bottleneck"])
def test_checkpoint_holds_only_json_and_safetensors_and_resumes_without_pickle(tmp_path, monkeypatch, kind):
    run_loop(tmp_path, 4, kind)
    checkpoint = tmp_path / "run" / "checkpoint"
    names = sorted(p.name for p in checkpoint.iterdir())
    assert names and all(n.endswith((".json", ".safetensors")) for n in names), names
    assert {"trainer.json", "trainable.safetensors", "best.safetensors", "optimizer.json", "rng.json"} <= set(names)
    assert all(p.is_file() for p in checkpoint.iterdir())
    for name in names:
        if name.endswith(".json"):
            json.loads((checkpoint / name).read_text())  # plain JSON
    assert not [p for p in (tmp_path / "run").iterdir() if p.name.startswith(".xlt-tmp")]  # no temporary leftovers
    # resume (a longer run in the same directory) with every way to unpickle disabled
    monkeypatch.setattr(torch, "load", refuse)
    monkeypatch.setattr(pickle, "load", refuse)
    monkeypatch.setattr(pickle, "loads", refuse)
    monkeypatch.setattr(pickle, "Unpickler", refuse)
    lines: list[str] = []
    result = run_loop(tmp_path, 6, kind, lines)
    assert lines[0].startswith("resuming from step 4") and result.steps == 6
    assert json.loads((checkpoint / "trainer.json").read_text())["step"] == 6


def tensors_equal(a, b) -> bool:
    if isinstance(a, torch.Tensor):
        return isinstance(b, torch.Tensor) and a.dtype == b.dtype and torch.equal(a, b)
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(tensors_equal(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(tensors_equal(x, y) for x, y in zip(a, b, strict=True))
    return a == b


@pytest.mark.parametrize(("kind", "optimizer"), [("prompt", "adafactor"), ("bottleneck", "adamw")])
def test_optimizer_and_schedule_state_round_trip(tmp_path, kind, optimizer):
    torch.manual_seed(0)
    params = [torch.nn.Parameter(torch.randn(6, 4)), torch.nn.Parameter(torch.randn(4))]
    head = [torch.nn.Parameter(torch.randn(3, 4))]
    opt = build_optimizer(params + head, kind, head_params=head)
    schedule = linear_schedule(opt, 10, warmup_steps=2)
    for _ in range(3):
        sum((p**2).sum() for p in params + head).backward()
        opt.step()
        schedule.step()
        opt.zero_grad()
    assert type(opt).__name__.lower() == optimizer
    save_state(tmp_path, "optimizer", optimizer_state(opt))
    save_state(tmp_path, "scheduler", schedule.state_dict())
    fresh_params = [torch.nn.Parameter(p.detach().clone()) for p in params + head]
    fresh = build_optimizer(fresh_params, kind, head_params=fresh_params[2:])
    fresh_schedule = linear_schedule(fresh, 10, warmup_steps=2)
    load_optimizer_state(fresh, load_state(tmp_path, "optimizer"))
    fresh_schedule.load_state_dict(load_state(tmp_path, "scheduler"))
    a, b = opt.state_dict(), fresh.state_dict()
    assert tensors_equal(a["state"], b["state"])
    assert [{k: v for k, v in g.items()} for g in a["param_groups"]] == [
        {k: (tuple(v) if isinstance(v, list) and k != "params" else v) for k, v in g.items()} for g in b["param_groups"]
    ]
    assert fresh_schedule.get_last_lr() == schedule.get_last_lr()
    # and they keep stepping identically
    for group in (params + head, fresh_params):
        sum((p**2).sum() for p in group).backward()
    opt.step()
    fresh.step()
    assert all(torch.equal(p, q) for p, q in zip(params + head, fresh_params, strict=True))


def test_rng_state_round_trip(tmp_path):
    random.seed(1)
    np.random.seed(2)
    torch.manual_seed(3)
    np.random.normal()  # numpy now holds a cached gaussian
    save_state(tmp_path, "rng", rng_state())
    expected = (random.random(), np.random.normal(), np.random.rand(), torch.rand(3))
    random.seed(9)
    np.random.seed(9)
    torch.manual_seed(9)
    restore_rng(load_state(tmp_path, "rng"))
    got = (random.random(), np.random.normal(), np.random.rand(), torch.rand(3))
    assert got[:3] == expected[:3] and torch.equal(got[3], expected[3])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["rng.json", "rng.safetensors"]


def test_an_incomplete_checkpoint_is_named(tmp_path):
    from xlt.errors import FormatError

    with pytest.raises(FormatError, match=r"lacks trainer\.json; it is incomplete"):
        load_state(tmp_path, "trainer")
