"""The paper's seven configurations as plan rules, users' own, and the classification metrics."""

from __future__ import annotations

import pytest

from xlt import Plan, XLTError
from xlt.hosts import EncoderDecoderHost, EncoderHost
from xlt.hosts.decoder import GPT2Host
from xlt.matrix.configurations import PAPER_CONFIGURATIONS, PAPER_NAMES, Configuration, resolve_configurations
from xlt.tasks.metrics import classification_metrics


def test_paper_configurations_compose_language_first():
    plans = {c.name: c.plan("sk", c.task_rep("nli", "en", 42)) for c in PAPER_CONFIGURATIONS}
    task = {c.name: c.task_rep("nli", "en", 42) for c in PAPER_CONFIGURATIONS}
    assert PAPER_NAMES == ("zero-shot", "TA", "TP", "LA+TA", "LA+TP", "SLP+TA", "SLP+TP")
    assert plans["TA"] == Plan((task["TA"],))
    assert plans["LA+TA"] == Plan(("sk/bottleneck", task["LA+TA"]))
    assert plans["LA+TP"] == Plan(("sk/bottleneck", task["LA+TP"]))
    assert plans["SLP+TA"] == Plan(("sk/prompt", task["SLP+TA"]))
    assert plans["SLP+TP"] == Plan(("sk/prompt", task["SLP+TP"]))  # [LP ; TP ; x], never [LP ; LP ; TP ; x]
    assert len(set(task.values())) == 7  # each configuration trains its own task representation


def test_training_and_test_plans_differ_only_in_the_language():
    for c in PAPER_CONFIGURATIONS:
        rep = c.task_rep("emoji", "en", 1)
        train, test = c.plan("en", rep), c.plan("sw", rep)
        assert len(train) == len(test)
        assert train.reps[-1] == test.reps[-1] == rep
        assert [r.replace("en/", "sw/") for r in train.reps[:-1]] == list(test.reps[:-1])


def test_zero_shot_trains_a_probe_only_on_encoders():
    zero = PAPER_CONFIGURATIONS[0]
    assert zero.trains_task(EncoderHost) and not zero.trains_task(EncoderDecoderHost)
    assert not zero.trains_task(GPT2Host)


def test_custom_configurations_and_refusals():
    confs = resolve_configurations(["TA", "LoRA+TA"], {"LoRA+TA": {"language": "lora", "task": "bottleneck"}})
    assert confs[1] == Configuration("LoRA+TA", "lora", "bottleneck") and confs[1].slug == "lora-ta"
    with pytest.raises(XLTError, match=r"unknown configuration 'XX'.*allowed: zero-shot, TA"):
        resolve_configurations(["XX"], {})
    with pytest.raises(XLTError, match="language kind 'adapter'"):
        resolve_configurations(["A"], {"A": {"language": "adapter", "task": "prompt"}})
    with pytest.raises(XLTError, match="a built-in configuration's"):
        resolve_configurations(["TA"], {"TA": {"task": "prompt"}})
    with pytest.raises(XLTError, match="collide"):
        resolve_configurations(["a+b", "a b"], {"a+b": {"task": "prompt"}, "a b": {"task": "lora"}})


def test_metrics_by_hand():
    refs = ["a", "a", "b", "c"]
    preds = ["a", "b", "b", None]
    m = classification_metrics(preds, refs)
    assert m["accuracy"] == pytest.approx(0.5)
    # a: P 1, R 0.5, F 2/3; b: P 0.5, R 1, F 2/3; c: P 0 (never predicted), R 0, F 0
    assert m["macro_f1"] == pytest.approx((2 / 3 + 2 / 3 + 0) / 3)
    assert classification_metrics(["x"], ["x"]) == {"accuracy": 1.0, "macro_f1": 1.0}
    with pytest.raises(XLTError):
        classification_metrics([], [])
