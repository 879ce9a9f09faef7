"""The representation cache: loads on first use, least-recently-used eviction by count and by memory, one load
for many concurrent requests, loads that hold up no one else, and files that are bad in every way a directory's
files can be (each a 4xx naming it, the server serving on)."""

import os
import shutil
import threading
import time

import pytest

pytest.importorskip("fastapi")
httpx = pytest.importorskip("httpx")

from serve_helpers import served  # noqa: E402

from xlt.serve.client import Client, ServeClientError  # noqa: E402

SLP = {"task": "toy", "configuration": "SLP+TA"}


def resident(url: str) -> list[str]:
    return [r["name"] for r in Client(url).representations()["resident"]]


def settled(url: str, check, timeout: float = 10.0) -> list[str]:
    """The resident list once ``check`` holds of it (evictions finish just after the answer is out)."""
    deadline = time.monotonic() + timeout
    while True:
        names = resident(url)
        if check(names) or time.monotonic() > deadline:
            return names
        time.sleep(0.02)


def test_least_recently_used_is_evicted_at_the_count_limit(matrix_dir):
    with served(matrix_dir, max_reps=2) as (url, state):
        client = Client(url)
        for name in ("de/prompt", "sk/prompt", "sw/prompt"):
            client.load(names=[name])
        assert settled(url, lambda names: len(names) == 2) == ["sk/prompt", "sw/prompt"]
        client.predict(["a b"], language="sk", **SLP)  # sk/prompt used: sw/prompt is now the least recent
        names = settled(url, lambda names: len(names) <= 2)
        assert names == ["sk/prompt", "toy/en/slp-ta/seed42"]
        assert "de/prompt" not in state.model.reps and "sw/prompt" not in state.model.reps
        # de/prompt for sw/prompt, then sw/prompt for the task representation
        assert "xlt_representation_evictions_total 2.0" in client.metrics()
        # an evicted representation comes back on demand, with the same answer
        first = client.predict(["c d"], language="de", **SLP)
        again = client.predict(["c d"], language="de", **SLP)
        assert first == again


def test_the_memory_limit_keeps_only_what_requests_use(matrix_dir):
    with served(matrix_dir, max_memory_mb=0.001) as (url, state):
        out = Client(url).predict(["a b", "c"], language="sk", **SLP)
        assert len(out) == 2  # a request's reps are pinned while it is served, whatever the limit
        assert settled(url, lambda names: not names) == []
        assert state.metrics.evictions._value.get() >= 2


def test_concurrent_requests_load_a_representation_once(matrix_dir):
    with served(matrix_dir, max_wait_ms=20) as (url, state):
        answers: list = [None] * 8
        barrier = threading.Barrier(8)

        def ask(k: int) -> None:
            barrier.wait()
            answers[k] = Client(url).predict([f"text {k}"], language="sw", task="toy", configuration="LA+TA")

        threads = [threading.Thread(target=ask, args=(k,)) for k in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert all(a and a[0]["plan"] == "sw/bottleneck+toy/en/la-ta/seed42" for a in answers)
        assert state.metrics.loads._value.get() == 2  # the language and the task representation, once each


def test_a_slow_load_holds_up_only_the_requests_that_need_it(matrix_dir):
    with served(matrix_dir) as (url, state):
        client = Client(url)
        client.predict(["warm"], language="de", **SLP)  # de/prompt and the task rep resident
        read = state.bank._read

        def slow(offer):
            if offer.name == "sw/prompt":
                time.sleep(3)
            return read(offer)

        state.bank._read = slow
        done: dict[str, float] = {}

        def needs_slow() -> None:
            Client(url).predict(["x"], language="sw", **SLP)
            done["slow"] = time.monotonic()

        thread = threading.Thread(target=needs_slow)
        thread.start()
        time.sleep(0.3)
        start = time.monotonic()
        client.predict(["y"], language="de", **SLP)
        done["other"] = time.monotonic()
        thread.join()
        assert done["other"] - start < 2 and done["other"] < done["slow"]


@pytest.fixture
def damaged(matrix_dir, tmp_path):
    """A copy of the matrix with a truncated weights file, a config that is not JSON, a rep of another base
    model and a link to a rep outside the directory."""
    from xlt.formats.native import save_rep
    from xlt.model import XLTModel
    from xlt.reps import PromptConfig

    root = tmp_path / "m"
    shutil.copytree(matrix_dir, root)
    weights = root / "reps/language/de-prompt/rep/rep.safetensors"
    weights.write_bytes(weights.read_bytes()[:100])
    (root / "reps/language/sk-bottleneck/rep/xlt_rep.json").write_text("{not json")
    task = root / "reps/task/toy-en-ta-seed42/rep/xlt_rep.json"
    task.write_text(task.read_text().replace('"type": "sequence"', '"type": "seq"'))
    from training_helpers import base, tokenizer

    other = XLTModel(base("bert"), tokenizer(), name="another-model")
    other.add_language("de", PromptConfig(num_virtual_tokens=2, init="vocab"), name="de/other")
    save_rep(other.rep("de/other"), root / "reps" / "other")
    outside = tmp_path / "outside"
    shutil.copytree(matrix_dir / "reps/language/sw-prompt/rep", outside / "rep")
    os.symlink(outside / "rep", root / "reps" / "linked")
    return root


def test_bad_files_are_refused_one_by_one(damaged):
    with served(damaged) as (url, _):
        client = Client(url)
        listing = client.representations()
        names = {o["name"] for o in listing["offered"]}
        assert "sk/bottleneck" not in names and any("sk-bottleneck" in s for s in listing["skipped"])
        assert "toy/en/ta/seed42" not in names and any("toy-en-ta-seed42" in s for s in listing["skipped"])
        assert "de/other" in names
        cases = [
            (lambda: client.predict(["a"], language="de", **SLP), 422, "cannot be loaded"),
            (lambda: client.load(names=["de/other"]), 422, "cannot be loaded"),
            (lambda: client.predict(["a"], language="sk", task="toy", configuration="LA+TA"), 422, "sk/bottleneck"),
            (lambda: client.load(paths=["reps/linked"]), 403, "outside the offered directories"),
            (lambda: client.load(paths=[str(damaged.parent / "outside" / "rep")]), 403, "outside the offered"),
        ]
        for call, status, says in cases:
            with pytest.raises(ServeClientError) as caught:
                call()
            assert caught.value.status == status and says in caught.value.message, caught.value.message
            assert str(damaged) not in caught.value.message  # the server's own paths stay its own
            ok = client.predict(["fine"], language="sw", **SLP)  # the server serves on
            assert ok[0]["plan"] == "sw/prompt+toy/en/slp-ta/seed42"
        assert "another-model" in str(_message(client, ["de/other"]))


def _message(client, names):
    try:
        client.load(names=names)
    except ServeClientError as exc:
        return exc.message
    return None
