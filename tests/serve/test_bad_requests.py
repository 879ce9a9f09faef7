"""Every bad request gets a 4xx JSON error naming the problem, and the server serves on: a table of what clients
send and what each gets (status, message)."""

import json

import pytest

pytest.importorskip("fastapi")
httpx = pytest.importorskip("httpx")

from serve_helpers import served  # noqa: E402

GOOD = {"task": "toy", "configuration": "SLP+TA", "language": "sk"}
ESCAPE = "../../../../../../etc"


def body(**fields):
    return {**GOOD, "inputs": [{"text": "alpha beta"}], **fields}


def one(**fields):
    return {"inputs": [{"text": "alpha beta", **fields}]}


# (case, method, path, JSON body or raw bytes, status, what the message says)
CASES = [
    ("malformed JSON", "POST", "/v1/predict", b'{"inputs": [', 400, "not valid JSON"),
    ("a body that is a list", "POST", "/v1/predict", [], 422, "valid dictionary"),
    ("no inputs", "POST", "/v1/predict", {"task": "toy"}, 422, "inputs: Field required"),
    ("an empty list of inputs", "POST", "/v1/predict", {**GOOD, "inputs": []}, 422, "at least 1 item"),
    ("too many inputs", "POST", "/v1/predict", {**GOOD, "inputs": [{"text": "a"}] * 9}, 422, "at most 8 per request"),
    ("an empty text", "POST", "/v1/predict", body(inputs=[{"text": ""}]), 422, "inputs[0].text is empty"),
    ("a blank text", "POST", "/v1/predict", body(inputs=[{"text": " \n\t"}]), 422, "inputs[0].text is empty"),
    (
        "a text too long",
        "POST",
        "/v1/predict",
        body(inputs=[{"text": "a" * 301}]),
        422,
        "at most 300 (max_input_chars)",
    ),
    ("a pair too long", "POST", "/v1/predict", body(inputs=[{"text": "a", "pair": "b" * 301}]), 422, "inputs[0].pair"),
    ("a text that is not a string", "POST", "/v1/predict", body(inputs=[{"text": 7}]), 422, "valid string"),
    ("an unknown field", "POST", "/v1/predict", body(inputs=[{"text": "a", "lang": "sk"}]), 422, "Extra inputs"),
    ("an unknown language", "POST", "/v1/predict", body(language="xx"), 422, "unknown language 'xx'"),
    ("a language without a rep", "POST", "/v1/predict", body(language="ar"), 422, "has no prompt representation"),
    ("an unknown task", "POST", "/v1/predict", body(task="nope"), 422, "unknown task 'nope' (served: toy)"),
    ("an unknown configuration", "POST", "/v1/predict", body(configuration="XX"), 422, "unknown configuration 'XX'"),
    ("an output ensemble", "POST", "/v1/predict", body(configuration="LA+TA-ens"), 422, "one plan per input"),
    ("a configuration without language", "POST", "/v1/predict", body(language=None), 422, "target language"),
    ("neither plan nor configuration", "POST", "/v1/predict", one(language="sk"), 422, "task and a configuration"),
    ("a plan and a configuration", "POST", "/v1/predict", body(plan="sk/prompt"), 422, "either a plan or"),
    ("an unknown rep in a plan", "POST", "/v1/predict", one(plan="zz/prompt+toy/en/ta/seed42"), 404, "'zz/prompt'"),
    ("a path as a rep name", "POST", "/v1/predict", one(plan=f"{ESCAPE}/passwd"), 404, "unknown representation"),
    (
        "a plan with two heads",
        "POST",
        "/v1/predict",
        one(plan="toy/en/ta/seed42+toy/en/la-ta/seed42"),
        422,
        "2 task heads",
    ),
    ("a plan without a head", "POST", "/v1/predict", one(plan="sk/prompt"), 422, "has no task head"),
    ("a plan entry that is empty", "POST", "/v1/predict", one(plan=["sk/prompt", ""]), 422, "non-empty string"),
    ("a plan naming a rep twice", "POST", "/v1/predict", one(plan="sk/prompt+sk/prompt"), 422, "names a rep twice"),
    ("an unknown seed", "POST", "/v1/predict", body(seed=7), 422, "seed 7 is not one of the matrix's (42)"),
    ("a seed that is no number", "POST", "/v1/predict", body(seed="x"), 422, "seed"),
    ("an unknown source", "POST", "/v1/predict", body(source="de"), 422, "source 'de' is not one of"),
    (
        "too many new tokens",
        "POST",
        "/v1/predict",
        body(inputs=[{"text": "a", "max_new_tokens": 99}]),
        422,
        "at most 16",
    ),
    ("a body over the limit", "POST", "/v1/predict", b"{" + b" " * 400_000 + b"}", 413, "request body is over"),
    ("an unknown endpoint", "GET", "/v2/predict", None, 404, "no endpoint /v2/predict"),
    ("a wrong method", "GET", "/v1/predict", None, 405, "GET is not allowed"),
    ("load: nothing named", "POST", "/v1/representations/load", {}, 422, "give names"),
    ("load: an unknown name", "POST", "/v1/representations/load", {"names": ["qq/prompt"]}, 404, "'qq/prompt'"),
    ("load: a path escaping", "POST", "/v1/representations/load", {"paths": [ESCAPE]}, 403, "outside the offered"),
    ("load: an absolute path", "POST", "/v1/representations/load", {"paths": ["/etc"]}, 403, "outside the offered"),
    ("load: a path to no rep", "POST", "/v1/representations/load", {"paths": ["reps"]}, 404, "no saved representation"),
    ("unload: an unknown name", "POST", "/v1/representations/unload", {"names": ["qq"]}, 404, "unknown representation"),
    ("load: a null byte", "POST", "/v1/representations/load", {"paths": ["reps\u0000x"]}, 422, "not a directory path"),
    ("load: a long path", "POST", "/v1/representations/load", {"paths": ["a/" * 2000]}, 422, "at most 1024"),
    ("a plan of 17 reps", "POST", "/v1/predict", one(plan=[f"r{i}" for i in range(17)]), 422, "at most 16"),
    ("unload: paths", "POST", "/v1/representations/unload", {"paths": ["reps"]}, 422, "give names"),
]


@pytest.fixture(scope="module")
def limited(matrix_dir):
    with served(matrix_dir, max_inputs=8, max_input_chars=300, max_new_tokens=16) as (url, state):
        yield url, state


@pytest.mark.parametrize(("case", "method", "path", "payload", "status", "says"), CASES, ids=[c[0] for c in CASES])
def test_bad_request(limited, case, method, path, payload, status, says):
    url, _ = limited
    if isinstance(payload, bytes):
        r = httpx.request(method, url + path, content=payload, headers={"Content-Type": "application/json"})
    elif payload is None:
        r = httpx.request(method, url + path)
    else:
        r = httpx.request(method, url + path, json=payload)
    assert r.status_code == status, r.text
    message = r.json()["error"]
    assert says in message, message
    assert "\n" not in message and len(message) < 700
    # and the server serves on
    ok = httpx.post(url + "/v1/predict", json=body())
    assert ok.status_code == 200, ok.text


def test_a_body_without_a_length_is_limited_too(limited):
    url, _ = limited

    def chunks():
        yield b'{"inputs": ['
        for _ in range(2000):
            yield json.dumps({"text": "a" * 250}).encode() + b","
        yield b'{"text": "a"}]}'

    r = httpx.post(url + "/v1/predict", content=chunks(), headers={"Content-Type": "application/json"})
    assert r.status_code == 413 and "request body is over" in r.json()["error"]


def test_the_table_is_complete():
    assert len(CASES) >= 20 and len({c[0] for c in CASES}) == len(CASES)


def test_non_ascii_inputs_at_the_limits_are_not_too_large(limited):
    url, _ = limited
    inputs = [{"text": "\U0001f600" * 300, "pair": "\u0161" * 300} for _ in range(8)]
    r = httpx.post(
        url + "/v1/predict",
        content=json.dumps({**GOOD, "inputs": inputs}),
        headers={"Content-Type": "application/json"},
    )
    assert r.status_code == 200, r.text
