"""`xlt serve` on the command line: a real server process answering over HTTP, and every bad option or file
refused with one line before anything listens."""

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytest.importorskip("fastapi")
httpx = pytest.importorskip("httpx")

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "hostile"))

from test_cli_config import refused, snapshot, unchanged  # noqa: E402

from xlt.serve.client import Client  # noqa: E402


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_xlt_serve_a_matrix_directory(matrix_dir, tmp_path):
    port = free_port()
    env = {**os.environ, "XLT_SERVE_TOKEN": "t0ken", "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-c", "from xlt.cli import main; main()", "serve", str(matrix_dir)]
    process = subprocess.Popen(
        [*command, "--port", str(port), "--threads", "1"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        cwd=tmp_path,
    )
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 180
        while True:
            assert process.poll() is None, process.stdout.read()
            try:
                if httpx.get(url + "/health").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "the server did not start"
            time.sleep(0.2)
        assert httpx.get(url + "/v1/representations").status_code == 401  # the token from the environment
        out = Client(url, token="t0ken").predict(["a b c"], task="toy", configuration="SLP+TA", language="de")
        assert out[0]["plan"] == "de/prompt+toy/en/slp-ta/seed42"
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
    assert process.returncode in (0, -signal.SIGINT, 130)
    assert list(tmp_path.iterdir()) == []  # serving writes nothing


@pytest.mark.parametrize(
    ("args", "problem", "fix"),
    [
        (["{dir}", "--port", "70000"], ["port: 70000"], ["between 0 and 65535"]),
        (["{dir}", "--batching", "fast"], ["batching: 'fast'"], ["routed, per-plan, none"]),
        (["{dir}", "--max_batch_size", "0"], ["max_batch_size: 0"], [">= 1"]),
        (["{dir}", "--max_memory_mb", "-1"], ["max_memory_mb: -1"], ["> 0"]),
        (["{dir}", "--max_wait_ms", "-5"], ["max_wait_ms: -5"], ["finite number >= 0"]),
        (["{yaml:reps: [a]\nmax_wait_ms: .nan}"], ["max_wait_ms: nan"], ["finite number"]),
        (["{dir}", "--dtype", "int8"], ["dtype: 'int8'"], ["float32, bfloat16, float16"]),
        (["{dir}", "--max_reps", "0"], ["max_reps: 0"], [">= 1"]),
        (["{dir}", "--max_inputs", "0"], ["max_inputs: 0"], [">= 1"]),
        (["{dir}", "--max_input_chars", "-3"], ["max_input_chars: -3"], [">= 1"]),
        (["{dir}", "--max_new_tokens", "0"], ["max_new_tokens: 0"], [">= 1"]),
        (["{dir}", "--max_length", "0"], ["max_length: 0"], [">= 1"]),
        (["{dir}", "--threads", "0"], ["threads: 0"], [">= 1"]),
        (["{yaml:reps: [a]\nhost: ''}"], ["host: ''"], ["interface address"]),
        (["{yaml:reps: [a]\ntoken: '  '}"], ["token:", "is not a non-empty string"], ["leave it unset"]),
        (["{dir}", "--device", "warp9"], ["device 'warp9' is not a torch device"], ["'cpu', 'cuda'"]),
        (["{tmp}/nowhere"], ["nowhere is neither a directory"], ["check the path"]),
        (["{tmp}"], ["no representation saved by xlt"], ["give a matrix output directory"]),
        (["{yaml:port: 1}"], ["reps:"], ["give at least one directory"]),
        (["{yaml:reps: [a]\ncolour: red}"], ["colour: unknown key"], ["allowed: reps"]),
        (["{yaml:reps: 5}"], ["reps: 5 is not a list"], ["give at least one directory"]),
        (["{yaml:- a}"], ["must be a mapping"], ["reps:"]),
        (["{yaml:reps: [missing]}"], ["missing is not a directory"], ["directories of saved representations"]),
    ],
)
def test_bad_options_are_refused(capsys, matrix_dir, tmp_path, args, problem, fix):
    argv = ["serve"]
    for arg in args:
        if arg.startswith("{yaml:"):
            path = tmp_path / "serve.yaml"
            path.write_text(arg[len("{yaml:") : -1] + "\n")
            argv.append(str(path))
        else:
            argv.append(arg.replace("{dir}", str(matrix_dir)).replace("{tmp}", str(tmp_path)))
    before = snapshot(matrix_dir)
    refused(capsys, argv, problem, fix)
    unchanged(matrix_dir, before)


def test_without_the_serve_extra(capsys, matrix_dir, monkeypatch):
    monkeypatch.setitem(sys.modules, "uvicorn", None)
    refused(capsys, ["serve", str(matrix_dir)], ["needs the serve extra (uvicorn missing)"], ["xlt[serve]"])
