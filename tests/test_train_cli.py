"""``xlt train-language`` / ``xlt train-task`` as a user runs them: YAML config, overrides, reuse, bad input."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tiny_models import WORDS, tiny_base, tiny_tokenizer

pytestmark = pytest.mark.slow


def xlt(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    path = os.pathsep.join(p for p in (str(Path(__file__).parents[1] / "src"), os.environ.get("PYTHONPATH")) if p)
    env = {**os.environ, "PYTHONPATH": path, "OMP_NUM_THREADS": "1"}
    code = "import sys; from xlt.cli import main; main(sys.argv[1:])"
    return subprocess.run(
        [sys.executable, "-c", code, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300
    )


def train_language(root: Path, model_dir: Path, out: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    """``xlt train-language`` with the workspace's YAML config, the tiny model and ``out``, plus ``extra``."""
    config = ["--config", str(root / "run.yaml"), "--model", str(model_dir), "--output_dir", str(out)]
    return xlt("train-language", *config, *extra, cwd=root)


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli")
    model_dir = root / "tiny-gpt2"
    tiny_base("gpt2").save_pretrained(model_dir)
    tiny_tokenizer().save_pretrained(model_dir)
    (root / "sk.txt").write_text("\n".join(" ".join(WORDS[(i + j) % 30] for j in range(10)) for i in range(200)))
    rows = [{"text": f"{WORDS[i % 40]} {WORDS[(i * 7) % 40]}", "label": "w1" if i % 2 else "w2"} for i in range(40)]
    (root / "train.jsonl").write_text("\n".join(json.dumps(r) for r in rows))
    (root / "dev.jsonl").write_text("\n".join(json.dumps(r) for r in rows[:10]))
    (root / "run.yaml").write_text(
        "language: sk\nkind: prompt\n"
        f"corpus:\n  files: [{root / 'sk.txt'}]\n  validation_fraction: 0.1\n"
        "objective:\n  max_length: 24\n"
        "rep:\n  num_virtual_tokens: 3\n  init: vocab\n"
        "train:\n  steps: 4\n  batch_size: 4\n  eval_every: 2\n  checkpoint_every: 2\n  progress: false\n"
        "  tensorboard: false\n"
    )
    return root, model_dir


def test_train_language_from_yaml_then_reuse(workspace):
    root, model_dir = workspace
    out = root / "sk-prompt"
    done = train_language(root, model_dir, out)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().endswith(str(out / "rep"))
    run = json.loads((out / "run.json").read_text())
    assert run["config"]["run"]["train"]["steps"] == 4 and run["versions"]["torch"]
    assert (out / "rep" / "xlt_rep.json").is_file() and json.loads((out / "result.json").read_text())["steps"] == 4
    again = train_language(root, model_dir, out)
    assert again.returncode == 0 and "reusing" in again.stderr
    other = train_language(root, model_dir, out, "--train.lr", "0.05")
    assert other.returncode == 2
    assert other.stderr.strip().splitlines()[-1].startswith("xlt: error:") and "holds a different run" in other.stderr

    task_out = root / "task"
    task = xlt(
        "train-task",
        "--model",
        str(model_dir),
        "--load",
        f"[{out / 'rep'}]",
        "--language_rep",
        "sk/prompt",
        "--task",
        "topic",
        "--kind",
        "bottleneck",
        "--train_file",
        str(root / "train.jsonl"),
        "--dev_file",
        str(root / "dev.jsonl"),
        "--output_dir",
        str(task_out),
        "--train.steps",
        "2",
        "--train.batch_size",
        "4",
        "--train.eval_every",
        "2",
        "--train.progress",
        "false",
        "--train.tensorboard",
        "false",
        cwd=root,
    )
    assert task.returncode == 0, task.stderr
    assert (task_out / "rep" / "xlt_rep.json").is_file()


def test_bad_input_is_one_line_and_leaves_nothing(workspace):
    root, model_dir = workspace
    out = root / "missing"
    bad = train_language(root, model_dir, out, "--corpus.files", "[/no/such/file.txt]")
    assert bad.returncode == 2
    assert "does not exist" in bad.stderr.strip().splitlines()[-1]
    assert not out.exists()
    labels = xlt(
        "train-task",
        "--model",
        str(model_dir),
        "--task",
        "topic",
        "--kind",
        "lora",
        "--train_file",
        str(root / "train.jsonl"),
        "--dev_file",
        str(root / "dev.jsonl"),
        "--labels",
        "[w1]",
        "--output_dir",
        str(root / "bad-task"),
        cwd=root,
    )
    assert labels.returncode == 2 and "outside the task's labels" in labels.stderr
    assert not (root / "bad-task").exists()
