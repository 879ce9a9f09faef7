"""Plans: one explicit, immutable, serialisable value; parsing, printing, JSON, ordering and errors."""

from __future__ import annotations

import dataclasses

import pytest

from core_helpers import new_model
from xlt import BottleneckConfig, Plan, PlanError, PromptConfig


@pytest.mark.parametrize(
    ("text", "reps"),
    [
        ("sk/prompt+nli/bottleneck", ("sk/prompt", "nli/bottleneck")),
        (" sk/prompt + nli/bottleneck ", ("sk/prompt", "nli/bottleneck")),
        ("nli/bottleneck+sk/prompt", ("nli/bottleneck", "sk/prompt")),
        ("sk/prompt", ("sk/prompt",)),
        ("base", ()),
        ("", ()),
        ("  ", ()),
    ],
)
def test_parse(text, reps):
    plan = Plan.parse(text)
    assert plan.reps == reps
    assert len(plan) == len(reps)
    assert Plan.parse(str(plan)) == plan
    assert Plan.from_json(plan.to_json()) == plan
    assert Plan.from_dict(plan.to_dict()) == plan
    assert Plan.coerce(text) == plan == Plan(text)


def test_str_and_json():
    plan = Plan(("sk/prompt", "nli/bottleneck"))
    assert str(plan) == "sk/prompt+nli/bottleneck"
    assert str(Plan()) == "base"
    assert plan.to_dict() == {"reps": ["sk/prompt", "nli/bottleneck"]}
    assert plan.to_json() == '{"reps": ["sk/prompt", "nli/bottleneck"]}'
    assert Plan.from_json('{"reps": []}') == Plan()


def test_of_puts_language_first():
    assert Plan.of(language="sk/prompt", task="nli/bottleneck").reps == ("sk/prompt", "nli/bottleneck")
    assert Plan.of(task="nli/bottleneck", language="sk/prompt").reps == ("sk/prompt", "nli/bottleneck")
    assert Plan.of(task="nli/prompt").reps == ("nli/prompt",)
    assert Plan.of(language="sk/prompt").reps == ("sk/prompt",)
    assert Plan.of() == Plan()


def test_order_matters_and_plans_are_values():
    a, b = Plan.parse("sk/prompt+nli/prompt"), Plan.parse("nli/prompt+sk/prompt")
    assert a != b and hash(a) != hash(b)
    assert Plan(["sk/prompt", "nli/prompt"]) == a and hash(Plan(["sk/prompt", "nli/prompt"])) == hash(a)
    assert isinstance(Plan(["x/lora"]).reps, tuple)
    assert {a: 1}[Plan.parse("sk/prompt + nli/prompt")] == 1
    with pytest.raises(dataclasses.FrozenInstanceError):
        a.reps = ()  # type: ignore[misc]


def test_coerce():
    plan = Plan.parse("sk/prompt")
    assert Plan.coerce(plan) is plan
    assert Plan.coerce(None) == Plan()
    assert (
        Plan.coerce(["sk/prompt", "nli/lora"])
        == Plan.coerce(("sk/prompt", "nli/lora"))
        == Plan.parse("sk/prompt+nli/lora")
    )


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: Plan.parse("sk/prompt+nli/lora+sk/prompt"), "names a rep twice"),
        (lambda: Plan(("a/lora", "a/lora")), "names a rep twice"),
        (lambda: Plan.parse("sk/prompt++nli/lora"), "must be rep names"),
        (lambda: Plan(("sk/prompt", 3)), "must be rep names"),  # type: ignore[arg-type]
        (lambda: Plan(("sk/prompt", None)), "must be rep names"),  # type: ignore[arg-type]
        (lambda: Plan.from_dict({"reps": [], "extra": 1}), "exactly one key 'reps'"),
        (lambda: Plan.from_dict({"plan": ["a"]}), "exactly one key 'reps'"),
        (lambda: Plan.from_json('{"reps": ["a", "a"]}'), "names a rep twice"),
    ],
)
def test_errors(make, message):
    with pytest.raises(PlanError, match=message):
        make()


def test_resolve_keeps_plan_order():
    m = new_model("bert")
    m.add_language("sk", PromptConfig(2, init="vocab"))
    m.add_task("nli", BottleneckConfig())
    m.add_task("nli", PromptConfig(2, init="vocab"))
    resolved = m.resolve("nli/bottleneck+sk/prompt+nli/prompt")
    assert [r.name for r in resolved.reps] == ["nli/bottleneck", "sk/prompt", "nli/prompt"]
    assert [r.name for r in resolved.by_entry("input")] == ["sk/prompt", "nli/prompt"]
    assert [r.name for r in resolved.by_entry("blocks")] == ["nli/bottleneck"]
    assert resolved.head is None
    assert m.resolve(None).reps == () and m.resolve("base").plan == Plan()
    with pytest.raises(PlanError, match=r"unknown rep\(s\) \['nli/lora'\]"):
        m.resolve("nli/lora")
