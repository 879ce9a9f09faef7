"""`xlt serve` on a trained matrix, over real HTTP on the loopback interface: every endpoint, predictions equal
to the matrix's own evaluation, exactness in mixed batches, and the batching policies."""

import json
import threading
from pathlib import Path

import pytest

pytest.importorskip("fastapi")
httpx = pytest.importorskip("httpx")

from serve_helpers import served  # noqa: E402

from xlt.serve.client import Client, ServeClientError  # noqa: E402

TARGETS = ("en", "de", "sk", "sw")


@pytest.fixture(scope="module")
def server(matrix_dir):
    with served(matrix_dir, max_wait_ms=30, max_batch_size=64) as (url, state):
        yield url, state


def outputs(matrix_dir: Path, configuration: str, target: str) -> list[dict]:
    path = matrix_dir / "outputs" / "toy" / "en" / f"{configuration}-seed42" / f"{target}.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_health_and_representations(server):
    url, _ = server
    client = Client(url)
    health = client.health()
    assert health["status"] == "ok" and health["model"].endswith("model")
    listing = client.representations()
    names = {o["name"] for o in listing["offered"]}
    assert {"de/prompt", "sk/bottleneck", "toy/en/ta/seed42", "toy/en/slp-ta/seed42"} <= names
    assert not any(o["directory"].startswith("/") for o in listing["offered"] if o["directory"])
    by_name = {c["configuration"]: c for c in listing["configurations"]}
    assert by_name["SLP+TA"]["languages"] == sorted(TARGETS)
    assert by_name["TA"]["languages"] == ["any"]
    assert by_name["LA+TA-ens"]["servable"] is False and by_name["LA+TA-avg"]["servable"] is True
    assert by_name["LA+TA-avg"]["languages"] == ["any"]
    assert listing["limits"]["max_batch_size"] == 64


@pytest.mark.parametrize(
    "configuration", ["zero-shot", "TA", "SLP+TA", "LA+TA", "LA+TA-avg", "SLP+TA-cyc", "LA+TA-align"]
)
def test_predictions_equal_the_matrix_evaluation(server, matrix_dir, configuration):
    """What the server answers for a test set is what the matrix's evaluation predicted for it, cell by cell
    (a composed language representation included)."""
    url, _ = server
    client = Client(url)
    slug = configuration.lower().replace("+", "-")
    for target in TARGETS:
        recorded = outputs(matrix_dir, slug, target)
        got = client.predict([r["input"] for r in recorded], task="toy", configuration=configuration, language=target)
        assert [o["label"] for o in got] == [r["prediction"] for r in recorded], (configuration, target)
        plan = got[0]["plan"]
        if configuration == "LA+TA-avg":
            assert plan == f"{target}/bottleneck-composed+toy/en/la-ta/seed42"
        elif configuration == "SLP+TA":
            assert plan == f"{target}/prompt+toy/en/slp-ta/seed42"
        elif configuration == "LA+TA-align" and target != "en":
            assert plan == f"{target}/bottleneck-aligned-en+toy/en/la-ta/seed42"
        elif configuration == "SLP+TA-cyc":
            assert plan == f"{target}/prompt+toy/en/slp-ta-cyc/seed42"
        for o in got:
            assert abs(sum(o["scores"].values()) - 1) < 1e-5 and o["scores"][o["label"]] == max(o["scores"].values())


def test_an_explicit_plan_is_the_configuration_plan(server):
    url, _ = server
    client = Client(url)
    texts = ["alpha beta", "gamma delta epsilon"]
    named = client.predict(texts, task="toy", configuration="SLP+TA", language="sk")
    explicit = client.predict(texts, plan="sk/prompt+toy/en/slp-ta/seed42")
    listed = client.predict(texts, plan=["sk/prompt", "toy/en/slp-ta/seed42"], task="toy")
    for a, b, c in zip(named, explicit, listed, strict=True):
        assert a["label"] == b["label"] == c["label"]
        assert a["scores"] == pytest.approx(b["scores"], abs=1e-6) == c["scores"]


def mixed_inputs() -> list[dict]:
    words = ["one two", "three", "four five six seven", "eight nine ten", "eleven"]
    return [
        {"text": words[(i + j) % len(words)] + f" {i}", "language": target, "configuration": conf}
        for i, target in enumerate(TARGETS)
        for j, conf in enumerate(("TA", "SLP+TA", "LA+TA", "LA+TA-avg"))
    ]


def test_a_mixed_batch_gives_each_input_what_it_gets_alone(server):
    """Concurrent requests for 4 languages x 4 configurations share batches (several plans in one batch), and
    every input gets the prediction and scores it gets when served alone."""
    url, state = server
    inputs = mixed_inputs()
    alone = [Client(url).predict([i], task="toy")[0] for i in inputs]
    batches_before = state.batcher.batches
    plans = state.metrics.batch_plans
    before = (plans._sum.get(), sum(b.get() for b in plans._buckets))
    together: list = [None] * len(inputs)
    barrier = threading.Barrier(len(inputs))

    def ask(k: int) -> None:
        barrier.wait()
        together[k] = Client(url).predict([inputs[k]], task="toy")[0]

    threads = [threading.Thread(target=ask, args=(k,)) for k in range(len(inputs))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    batches = state.batcher.batches - batches_before
    plan_sum = plans._sum.get() - before[0]
    assert batches < len(inputs), "the concurrent requests were not batched together"
    assert plan_sum > batches, "no batch held more than one plan"
    for a, b in zip(alone, together, strict=True):
        assert a["plan"] == b["plan"] and a["label"] == b["label"]
        for label, p in a["scores"].items():
            assert abs(p - b["scores"][label]) < 1e-5


@pytest.mark.parametrize("policy", ["per-plan", "none"])
def test_every_batching_policy_answers_the_same(matrix_dir, server, policy):
    url, _ = server
    inputs = mixed_inputs()
    routed = Client(url).predict(inputs, task="toy")
    with served(matrix_dir, batching=policy, max_wait_ms=5) as (other, state):
        got = Client(other).predict(inputs, task="toy")
        sizes = state.metrics.batch_size
        if policy == "none":
            assert state.batcher.batches == len(inputs)
        else:
            assert state.batcher.batches == len({i["configuration"] + i["language"] for i in inputs}) - 3  # TA: 1 plan
        assert sizes._sum.get() == len(inputs)
    for a, b in zip(routed, got, strict=True):
        assert a["label"] == b["label"] and a["scores"] == pytest.approx(b["scores"], abs=1e-5)


def test_metrics_are_prometheus_text(server):
    url, _ = server
    Client(url).predict(["x y"], task="toy", configuration="TA", language="de")
    text = Client(url).metrics()
    for name in (
        "xlt_requests_total",
        "xlt_request_latency_seconds_bucket",
        "xlt_batch_size_bucket",
        "xlt_queue_seconds_bucket",
        "xlt_representations_resident",
        "xlt_representation_loads_total",
    ):
        assert name in text
    assert 'xlt_requests_total{endpoint="/v1/predict",status="200"}' in text


def test_load_and_unload(server):
    url, state = server
    client = Client(url)
    loaded = client.load(names=["sw/prompt"], paths=["reps/language/sw-bottleneck/rep"])
    assert loaded["loaded"] == ["sw/prompt", "sw/bottleneck"]
    assert {"sw/prompt", "sw/bottleneck"} <= {r["name"] for r in loaded["resident"]}
    gone = client.unload(["sw/prompt", "sw/prompt", "de/prompt", "en/prompt"])
    assert "sw/prompt" in gone["unloaded"] and "sw/prompt" not in {r["name"] for r in gone["resident"]}
    assert "sw/prompt" not in state.model.reps
    again = client.predict(["a b"], task="toy", configuration="SLP+TA", language="sw")  # loaded on demand again
    assert again[0]["plan"].startswith("sw/prompt+")


def test_openapi_documents_the_endpoints(server):
    url, _ = server
    spec = httpx.get(url + "/openapi.json").json()
    assert {"/v1/predict", "/v1/representations", "/v1/representations/load", "/v1/representations/unload"} <= set(
        spec["paths"]
    )
    assert {"/health", "/metrics"} <= set(spec["paths"])
    assert "PredictRequest" in spec["components"]["schemas"]


def test_a_bearer_token_guards_everything_but_health(matrix_dir):
    with served(matrix_dir, token="s3cret") as (url, _):
        assert httpx.get(url + "/health").status_code == 200
        for path in ("/v1/representations", "/metrics"):
            r = httpx.get(url + path)
            assert r.status_code == 401 and "bearer token" in r.json()["error"]
            assert r.headers["www-authenticate"] == "Bearer"
        wrong = httpx.get(url + "/v1/representations", headers={"Authorization": "Bearer nope"})
        assert wrong.status_code == 401
        garbled = httpx.post(url + "/v1/predict", content=b"{", headers={"Content-Type": "application/json"})
        assert garbled.status_code == 401  # the token is checked before the body is read
        with pytest.raises(ServeClientError) as caught:
            Client(url).predict(["a"], task="toy", configuration="TA", language="de")
        assert caught.value.status == 401
        ok = Client(url, token="s3cret").predict(["a"], task="toy", configuration="TA", language="de")
        assert ok[0]["plan"] == "toy/en/ta/seed42"


def test_pairs_and_single_texts_in_one_request(server):
    """A pair and a single text never share a forward (a task encodes them differently); each gets what it gets
    alone."""
    url, _ = server
    client = Client(url)
    inputs = [{"text": "a b", "pair": "c d"}, {"text": "e f"}, {"text": "g", "pair": "h"}, {"text": "i j k"}]
    together = client.predict(inputs, plan="de/prompt+toy/en/slp-ta/seed42", task="toy")
    for given, got in zip(inputs, together, strict=True):
        alone = client.predict([given], plan="de/prompt+toy/en/slp-ta/seed42", task="toy")[0]
        assert got["label"] == alone["label"] and got["scores"] == pytest.approx(alone["scores"], abs=1e-5)


def test_a_composed_configuration_serves_a_language_without_a_representation(server):
    """Arabic has no representation in the matrix: LA+TA-avg composes one from the grid languages' (no other
    shares its script: all of them, uniformly)."""
    url, _ = server
    client = Client(url)
    out = client.predict(["alpha beta"], task="toy", configuration="LA+TA-avg", language="ar")
    assert out[0]["plan"] == "ar/bottleneck-composed+toy/en/la-ta/seed42"
    offered = {o["name"]: o for o in client.representations()["offered"]}
    members = offered["ar/bottleneck-composed"]["composed_from"]
    assert members == {f"{lang}/bottleneck": pytest.approx(0.25) for lang in TARGETS}
    with pytest.raises(ServeClientError) as caught:
        client.predict(["alpha"], task="toy", configuration="LA+TA", language="ar")
    assert caught.value.status == 422 and "has no bottleneck representation" in caught.value.message
