"""What each output type comes back as: tags from token heads and spans from span heads (representations offered
from a plain directory, no matrix), and text from a generating family, with per-input generation limits."""

import json
import sys
from pathlib import Path

import pytest
import torch

pytest.importorskip("fastapi")

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "matrix"))

from matrix_helpers import save_model
from serve_helpers import served, trained_matrix

from core_helpers import perturb
from xlt.loading import load_model
from xlt.reps import BottleneckConfig, HeadConfig, LoRAConfig, PromptConfig
from xlt.serve.client import Client
from xlt.serve.compute import example_of, generic_task
from xlt.tasks.head_inputs import best_answers

TAGS = ["O", "B-X", "I-X"]


@pytest.fixture(scope="module")
def heads(tmp_path_factory):
    """A tiny BERT with a language prompt, a token-head task adapter and a span-head task LoRA, saved as reps."""
    root = tmp_path_factory.mktemp("heads")
    path = save_model(root / "model", "bert")
    model = load_model(str(path))
    model.add_language("de", PromptConfig(num_virtual_tokens=2, init="vocab"))
    model.add_task("tagging", BottleneckConfig(), head=HeadConfig("token", num_labels=3, labels=TAGS))
    model.add_task("qa", LoRAConfig(), head=HeadConfig("span"))
    perturb(model, "de/prompt", "tagging/bottleneck", "qa/lora", scale=0.5)
    for name in model.reps:
        model.save_rep(name, root / "reps" / name.replace("/", "-"))
    return root, model.eval()


def test_token_and_span_heads(heads):
    root, model = heads
    sentences = ["a b c d", "e f", "g h i"]
    contexts = ["the cat sat on the mat", "one two three four five six"]
    questions = ["who sat", "what number"]
    with served([str(root / "reps")], model=str(root / "model"), max_wait_ms=20) as (url, _):
        client = Client(url)
        tagged = client.predict(sentences, plan="de/prompt+tagging/bottleneck")
        spans = client.predict(
            [{"text": c, "pair": q} for c, q in zip(contexts, questions, strict=True)], plan="qa/lora"
        )
    task = generic_task("token")
    rows = [example_of(s, None, None) for s in sentences]
    batch = task.encode(model.tokenizer, rows, TAGS, 256, train=False)
    with torch.inference_mode():
        logits = model(batch.input_ids, batch.attention_mask, plan="de/prompt+tagging/bottleneck").logits
    expected = [tags for _, tags in task.decode(logits, batch, rows, TAGS)]
    assert [o["tags"] for o in tagged] == expected
    assert [o["tokens"] for o in tagged] == [s.split() for s in sentences]
    assert all(set(o["tags"]) <= set(TAGS) for o in tagged)

    qa = generic_task("span")
    rows = [example_of(c, q, None) for c, q in zip(contexts, questions, strict=True)]
    batch = qa.encode(model.tokenizer, rows, [], 256, train=False)
    with torch.inference_mode():
        logits = model(batch.input_ids, batch.attention_mask, plan="qa/lora").logits
    answers = best_answers(logits, batch, contexts)
    for o, context, answer in zip(spans, contexts, answers, strict=True):
        span = o["span"]
        assert span["text"] == answer == context[span["start"] : span["end"]]


def test_generation_with_per_input_limits(tmp_path):
    out = trained_matrix(tmp_path, "gpt2", ("TA", "SLP+TA"))
    recorded = [json.loads(line) for line in (out / "outputs/toy/en/slp-ta-seed42/sk.jsonl").read_text().splitlines()][
        :6
    ]
    assert all(r["generation"] for r in recorded)  # the tiny model generates something for each
    with served(out, max_wait_ms=20) as (url, _):
        client = Client(url)
        got = client.predict([r["input"] for r in recorded], task="toy", configuration="SLP+TA", language="sk")
        assert [o["text"] for o in got] == [r["generation"] for r in recorded]
        assert [o.get("label") for o in got] == [r["prediction"] for r in recorded]
        one = {"text": recorded[0]["input"], "max_new_tokens": 1}
        alone = client.predict([one], task="toy", configuration="SLP+TA", language="sk")[0]
        mixed = client.predict([one, {"text": recorded[1]["input"]}], task="toy", configuration="SLP+TA", language="sk")
        assert mixed[0]["text"] == alone["text"]
        assert mixed[1]["text"] == recorded[1]["generation"]
        assert len(alone["text"]) <= len(got[0]["text"])
