"""Hostile input to the command line: matrix configs, names that become paths, paths, output directories, result
stores, changed inputs, and the report / inspect / train verbs. Every refusal is exit code 2 (1 for a matrix
whose cells failed) and exactly one ``xlt: error:`` line on stderr naming the problem and its fix, and leaves
the file tree as it was, apart from what the command was asked to write.

Everything runs in-process through ``xlt.cli.main`` (a fresh ``xlt`` takes seconds to start). One tiny finished
matrix (``base``), whose config uses paths relative to itself, is copied into each test that needs one.
"""

from __future__ import annotations

import errno
import os
import shutil
import stat
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "matrix"))
sys.path.insert(0, str(HERE.parent / "training"))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

import training_helpers as th  # noqa: E402
from matrix_helpers import rows, world  # noqa: E402

from snapshots import snapshot  # noqa: E402
from xlt.cli import main  # noqa: E402
from xlt.digest import file_digest  # noqa: E402

# File-system behaviour, the same under every transformers version: run once, under 5.x (see the Makefile).
pytestmark = pytest.mark.slow

# ---- helpers -----------------------------------------------------------------------------------------------


def unchanged(root: Path, before: dict[str, tuple[Any, ...]], written: tuple[Path, ...] = ()) -> None:
    """The tree under ``root`` is as ``before``, except inside the paths in ``written``."""
    skip = [str(Path(w).relative_to(root)) for w in written]

    def kept(rel: str) -> bool:
        return not any(rel == s or rel.startswith(s + os.sep) for s in skip)

    after = snapshot(root)
    old = {k: v for k, v in before.items() if kept(k)}
    new = {k: v for k, v in after.items() if kept(k)}
    added, removed = sorted(set(new) - set(old)), sorted(set(old) - set(new))
    changed = sorted(k for k in set(old) & set(new) if old[k] != new[k])
    assert not (added or removed or changed), f"added {added[:8]}, removed {removed[:8]}, changed {changed[:8]}"


def xlt(argv: list[str]) -> int:
    """``xlt ARGV`` in this process: its exit code (0 when it returns)."""
    try:
        main([str(a) for a in argv])
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else 1
    return 0


def refused(
    capsys: pytest.CaptureFixture[str],
    argv: list[str],
    problem: list[str],
    fix: list[str],
    code: int = 2,
    alone: bool = True,
) -> str:
    """``xlt ARGV`` exits with ``code`` and writes one ``xlt: error:`` line naming ``problem`` and ``fix`` (each a
    list of substrings, all required); ``alone``: that line is all of stderr (refused before any work), else it
    is stderr's last line, after the run's log."""
    capsys.readouterr()
    got = xlt(argv)
    err = capsys.readouterr().err
    assert got == code, (got, err[-2000:])
    lines = err.splitlines()
    assert lines and lines[-1].startswith("xlt: error: "), err[-2000:]
    assert sum(line.startswith("xlt: error:") for line in lines) == 1, err[-2000:]
    if alone:
        assert len(lines) == 1, f"stderr holds more than the error line:\n{err[-2000:]}"
    for part in [*problem, *fix]:
        assert part in lines[-1], (part, lines[-1][:2000])
    return lines[-1]


MINIMAL = {"model": "./model", "output_dir": "out", "tasks": {"toy": "builtin"}, "targets": ["en"]}


def write_config(path: Path, spec: Any) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path


def relative_world(root: Path) -> dict[str, Any]:
    """``world(root)`` over en, de and sk with every path relative to ``root`` (where the config is written),
    a grid of TA and SLP+TA over targets en and de (sk's files exist but are not in the grid)."""
    spec = world(root, languages=["en", "de", "sk"])

    def rel(value: str) -> str:
        return os.path.relpath(value, root)

    task = spec["tasks"]["toy"]
    spec["model"] = rel(spec["model"])
    spec["output_dir"] = "out"
    spec["tasks"]["toy"] = {**task, **{k: rel(task[k]) for k in ("train", "dev", "test")}}
    spec["corpora"] = {k: {"files": [rel(f) for f in v["files"]]} for k, v in spec["corpora"].items() if k != "sk"}
    spec["targets"] = ["en", "de"]
    spec["configurations"] = ["TA", "SLP+TA"]
    return spec


def spec_of(root: Path) -> dict[str, Any]:
    return yaml.safe_load((root / "m.yaml").read_text())


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished tiny matrix: ``ROOT/m.yaml`` (relative paths), its model, data, corpora and ``ROOT/out``."""
    root = tmp_path_factory.mktemp("base") / "w"
    root.mkdir()
    write_config(root / "m.yaml", relative_world(root))
    assert xlt(["matrix", root / "m.yaml", "--report", "false"]) == 0
    assert len(rows(root / "out")) == 4 and all(r["status"] == "ok" for r in rows(root / "out"))
    return root


@pytest.fixture
def copy(base: Path, tmp_path: Path) -> Path:
    """A private copy of the finished matrix under ``tmp_path/w``."""
    return Path(shutil.copytree(base, tmp_path / "w", symlinks=True))


# ---- configs that are not configs ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "problem", "fix"),
    [
        ("", ["is empty"], ["needs at least model, tasks, targets"]),
        ("# only a comment\n\n   # and another\n", ["is empty"], ["needs at least model, tasks, targets"]),
        ("- model\n- tasks\n", ["must be a mapping of keys", "not ['model', 'tasks']"], ["model:, tasks:, targets:"]),
        ("model: ./model\ntasks: [toy\n", ["is not valid YAML"], []),
        (b"model: caf\xe9\ntasks: {toy: builtin}\ntargets: [en]\n", ["is not UTF-8 text"], ["re-save it as UTF-8"]),
    ],
    ids=["empty", "comments", "list", "broken-yaml", "latin-1"],
)
def test_a_config_that_is_no_mapping_is_refused(tmp_path, capsys, text, problem, fix):
    path = tmp_path / "m.yaml"
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    before = snapshot(tmp_path)
    refused(capsys, ["matrix", path], [str(path), *problem], fix)
    unchanged(tmp_path, before)


@pytest.mark.parametrize("missing", ["model", "tasks", "targets"])
def test_each_missing_required_key_is_named(tmp_path, capsys, missing):
    spec = {k: v for k, v in MINIMAL.items() if k != missing}
    path = write_config(tmp_path / "m.yaml", spec)
    before = snapshot(tmp_path)
    refused(capsys, ["matrix", path], [f"has no {missing}:"], ["a matrix config must say which model, tasks"])
    unchanged(tmp_path, before)


@pytest.mark.parametrize(
    ("change", "problem", "fix"),
    [
        ({"targets": []}, ["targets: the list is empty"], ["give at least one language code"]),
        ({"workerz": 2}, ["workerz: unknown key"], ["allowed in the config:", "workers"]),
        (
            {"task_training": {"train": {"lr": "fast"}}},
            ["task_training.train.lr: 'fast' is not allowed"],
            ["allowed: float or null"],
        ),
        ({"preset": "turbo"}, ["preset: 'turbo' is not allowed"], ["allowed: 'fast', 'paper'"]),
        ({"tasks": {"a/b": "builtin"}}, ["tasks: name 'a/b'"], ["may hold only letters, digits"]),
        ({"tasks": {"..": "builtin"}}, ["tasks: name '..'"], ["may hold only letters, digits"]),
        ({"tasks": {".hidden": "builtin"}}, ["tasks: name '.hidden'"], ["starting with a letter or digit"]),
        ({"languages": {"../x": {"name": "X"}}}, ["languages: code '../x'"], ["may hold only letters, digits"]),
        ({"sources": ["../../x"]}, ["sources: language code '../../x'"], ["may hold only letters, digits"]),
        (
            {"custom_configurations": {"my/conf": {"task": "prompt"}}, "configurations": ["my/conf"]},
            ["custom_configurations: name 'my/conf'"],
            ["may hold only letters, digits"],
        ),
        ({"executor": "kubernetes"}, ["executor: 'kubernetes' is not one of"], ["local, processes, ray, slurm"]),
        (
            {"executor": "ray", "executor_options": {"adress": "auto"}},
            ["executor_options.adress: unknown option of executor ray"],
            ["its options: address, num_cpus"],
        ),
        ({"executor": "slurm", "executor_options": {"max_jobs": 0}}, ["executor_options.max_jobs: 0"], ["give 1"]),
        (
            {"executor": "slurm", "executor_options": {"cluster": "pbs"}},
            ["executor_options.cluster: 'pbs'"],
            ["auto, slurm or local"],
        ),
        ({"executor_options": {"nodes": 4}}, ["unknown option of executor local"], ["its options: none"]),
        ({"executor": "ray", "executor_options": {"num_gpus": -1}}, ["executor_options.num_gpus: -1"], ["give 0"]),
        (
            {"executor": "slurm", "executor_options": {"setup": "module load cuda"}},
            ["executor_options.setup"],
            ["give a list of shell lines"],
        ),
    ],
    ids=[
        "no-targets",
        "unknown-key",
        "deep-type",
        "preset",
        "task-slash",
        "task-dotdot",
        "task-hidden",
        "language-code",
        "source",
        "custom-configuration",
        "executor",
        "executor-option",
        "executor-value",
        "slurm-cluster",
        "local-option",
        "ray-negative",
        "slurm-setup",
    ],
)
def test_a_wrong_key_or_name_is_refused_before_anything(tmp_path, capsys, change, problem, fix):
    path = write_config(tmp_path / "m.yaml", {**MINIMAL, **change})
    before = snapshot(tmp_path)
    refused(capsys, ["matrix", path], problem, fix)
    unchanged(tmp_path, before)


def test_billion_laughs_is_refused_at_once_and_briefly(tmp_path, capsys):
    lines = ['a: &a ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    for previous, name in zip("abcdefgh", "bcdefghi", strict=True):
        lines.append(f"{name}: &{name} [{', '.join([f'*{previous}'] * 9)}]")
    path = tmp_path / "m.yaml"
    path.write_text("\n".join([*lines, "model: ./model", "tasks: {toy: builtin}", "targets: [en]"]) + "\n")
    before = snapshot(tmp_path)
    start = time.perf_counter()
    line = refused(capsys, ["matrix", path], ["expands to more than", "aliases"], ["without nested aliases"])
    assert time.perf_counter() - start < 10
    assert len(line) < 500, line
    unchanged(tmp_path, before)


def test_a_recursive_alias_is_refused(tmp_path, capsys):
    path = tmp_path / "m.yaml"
    path.write_text("model: ./model\ntasks: {toy: builtin}\ntargets: &t [en, *t]\n")
    before = snapshot(tmp_path)
    line = refused(capsys, ["matrix", path], [str(path), "line 3", "refers to itself"], [])
    assert len(line) < 500, line
    unchanged(tmp_path, before)


FIX_WORDS = ("give", "check", "remove", "create", "restore", "fix", "write", "choose", "use ", "rename", "correct")


@pytest.mark.parametrize("case", ["recursive-alias", "missing-config", "missing-train-file"])
def test_a_refusal_says_how_to_fix_it(copy, capsys, case):
    if case == "recursive-alias":
        config = copy / "r.yaml"
        config.write_text("model: ./model\ntasks: {toy: builtin}\ntargets: &t [en, *t]\n")
    elif case == "missing-config":
        config = copy / "nope.yaml"
    else:
        spec = spec_of(copy)
        spec["tasks"]["toy"]["train"] = "data/nope.jsonl"
        config = write_config(copy / "m.yaml", spec)
    line = refused(capsys, ["matrix", config], [], [])
    problem = line.replace(str(copy), "PATH")
    assert any(word in problem for word in FIX_WORDS), problem


def test_a_yaml_syntax_error_names_its_line(tmp_path, capsys):
    path = tmp_path / "m.yaml"
    path.write_text("model: ./model\ntargets: [en]\ntasks: [toy\n")
    refused(capsys, ["matrix", path], [str(path), "line 3"], [])


HUGE = "x" * 1_000_000


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        ({"remarks": HUGE}, ["remarks: unknown key"]),
        ({"eval_batch_size": HUGE}, ["eval_batch_size: expected int, got 'xxxx", "...", "xxx'"]),
        ({"preset": HUGE}, ["preset: 'xxx", "...", "is not allowed"]),
    ],
    ids=["unknown-key", "wrong-type", "literal"],
)
def test_a_huge_scalar_is_quoted_shortened(tmp_path, capsys, change, problem):
    path = write_config(tmp_path / "m.yaml", {**MINIMAL, **change})
    assert path.stat().st_size < 1 << 20
    before = snapshot(tmp_path)
    line = refused(capsys, ["matrix", path], problem, [])
    assert len(line) < 500, line[:600]
    unchanged(tmp_path, before)


def test_a_config_over_a_mebibyte_is_refused_unread(tmp_path, capsys):
    path = write_config(tmp_path / "m.yaml", {**MINIMAL, "notes": [HUGE, HUGE]})
    before = snapshot(tmp_path)
    refused(capsys, ["matrix", path], ["larger than 1 MiB"], ["a matrix config is a short YAML file"])
    unchanged(tmp_path, before)


def test_a_config_file_that_does_not_exist(tmp_path, capsys):
    before = snapshot(tmp_path)
    refused(capsys, ["matrix", tmp_path / "nope.yaml"], [str(tmp_path / "nope.yaml"), "does not exist"], [])
    unchanged(tmp_path, before)


def test_a_directory_as_the_config_is_named_a_directory(tmp_path, capsys):
    (tmp_path / "configs").mkdir()
    before = snapshot(tmp_path)
    line = refused(capsys, ["matrix", tmp_path / "configs"], [str(tmp_path / "configs")], [])
    assert "directory" in line.replace(str(tmp_path), "")
    unchanged(tmp_path, before)


def test_a_directory_as_the_config_is_refused(tmp_path, capsys):
    (tmp_path / "configs").mkdir()
    before = snapshot(tmp_path)
    refused(capsys, ["matrix", tmp_path / "configs"], [str(tmp_path / "configs")], [])
    unchanged(tmp_path, before)


@pytest.mark.parametrize(
    ("argv", "problem", "fix"),
    [
        (["--workers", "0"], ["--workers 0"], ["give 1 or more"]),
        (["--on_change", "ignore"], ["--on_change 'ignore'"], ["give refuse or recompute"]),
        (["--executor", "kube"], ["executor: 'kube' is not one of"], ["local, processes, ray, slurm"]),
    ],
    ids=["workers", "on-change", "executor"],
)
def test_a_bad_option_is_refused(copy, capsys, argv, problem, fix):
    before = snapshot(copy)
    refused(capsys, ["matrix", copy / "m.yaml", *argv], problem, fix)
    unchanged(copy, before)


@pytest.mark.parametrize(("executor", "module", "extra"), [("ray", "ray", "ray"), ("slurm", "submitit", "slurm")])
def test_an_executor_without_its_dependency_is_refused_before_anything(
    copy, capsys, monkeypatch, executor, module, extra
):
    monkeypatch.setitem(sys.modules, module, None)  # as if not installed: importing it raises ImportError
    before = snapshot(copy)
    refused(
        capsys,
        ["matrix", copy / "m.yaml", "--executor", executor],
        [f"executor: {executor} needs"],
        [f"pip install 'xlt[{extra}]'"],
    )
    unchanged(copy, before)


@pytest.mark.parametrize("what", ["no-matrix", "missing"])
def test_status_of_a_directory_that_holds_no_matrix(tmp_path, capsys, what):
    target = tmp_path / "somewhere"
    if what == "no-matrix":
        target.mkdir()
        (target / "notes.txt").write_text("mine")
    before = snapshot(tmp_path)
    refused(capsys, ["matrix", "--status", target], [str(target), "holds no matrix"], ["give the output directory"])
    unchanged(tmp_path, before)


# ---- paths in the config ------------------------------------------------------------------------------------


def test_relative_paths_are_read_from_the_config_files_directory(copy, tmp_path, capsys, monkeypatch):
    spec = spec_of(copy)
    task = spec["tasks"]["toy"]
    spec.update(
        model="../model",
        output_dir="../out-sub",
        tasks={"toy": {**task, **{k: "../" + task[k] for k in ("train", "dev", "test")}}},
        targets=["en"],
        configurations=["TA"],
        corpora={k: {"files": ["../" + f for f in v["files"]]} for k, v in spec["corpora"].items()},
    )
    config = write_config(copy / "sub" / "m.yaml", spec)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    before = snapshot(tmp_path)
    assert xlt(["matrix", config, "--report", "false"]) == 0, capsys.readouterr().err[-2000:]
    assert [r["status"] for r in rows(copy / "out-sub")] == ["ok"]
    unchanged(tmp_path, before, (copy / "out-sub",))


@pytest.mark.parametrize("what", ["train", "dev", "corpus"])
def test_a_missing_training_file_is_refused_before_anything_is_written(copy, capsys, what):
    spec = {**spec_of(copy), "output_dir": "fresh"}
    if what == "corpus":
        spec["corpora"]["de"] = {"files": ["corpora/nope.txt"]}
        problem = ["corpora.de: the file", str(copy / "corpora" / "nope.txt"), "does not exist"]
    else:
        spec["tasks"]["toy"][what] = "data/nope.jsonl"
        problem = [f"tasks.toy: the {what} file", str(copy / "data" / "nope.jsonl"), "does not exist"]
    config = write_config(copy / "m.yaml", spec)
    before = snapshot(copy)
    refused(capsys, ["matrix", config], problem, [])
    unchanged(copy, before)
    assert not (copy / "fresh").exists()


def test_a_missing_model_is_refused_and_the_corrected_config_then_runs_there(copy, capsys):
    spec = {**spec_of(copy), "output_dir": "fresh", "targets": ["en"], "configurations": ["TA"], "model": "./mdl"}
    config = write_config(copy / "m.yaml", spec)
    before = snapshot(copy)
    refused(capsys, ["matrix", config], ["model: ./mdl does not exist"], ["give a model directory"])
    unchanged(copy, before)
    assert not (copy / "fresh").exists()
    write_config(config, {**spec, "model": "model"})
    assert xlt(["matrix", config, "--report", "false"]) == 0, capsys.readouterr().err[-2000:]
    assert [r["status"] for r in rows(copy / "fresh")] == ["ok"]


# ---- output directories -------------------------------------------------------------------------------------


def user_output_dir(tmp_path: Path, what: str) -> tuple[Path, list[str], list[str]]:
    """A path of the user's given as ``--output_dir``: the problem and fix its refusal names."""
    if what == "file":
        target = tmp_path / "results.txt"
        target.write_text("mine\n")
        return target, [str(target), "is a file"], ["choose a directory path"]
    target = tmp_path / "mine"
    target.mkdir()
    (target / "notes.txt").write_text("todo\n")
    (target / ".matrix.lock").write_text("theirs\n")
    return target, [str(target), "not empty"], ["choose another output directory"]


@pytest.mark.parametrize("what", ["file", "non-empty-directory"])
def test_a_users_path_as_output_dir_is_refused(copy, tmp_path, capsys, what):
    target, problem, fix = user_output_dir(tmp_path, what)
    before = snapshot(tmp_path)
    refused(capsys, ["matrix", copy / "m.yaml", "--output_dir", target], problem, fix, alone=False)
    unchanged(tmp_path, before)


@pytest.mark.parametrize("what", ["file", "non-empty-directory"])
def test_a_users_path_as_output_dir_is_refused_before_the_model_is_loaded(copy, tmp_path, capsys, what):
    target, problem, fix = user_output_dir(tmp_path, what)
    before = snapshot(tmp_path)
    try:
        refused(capsys, ["matrix", copy / "m.yaml", "--output_dir", target], problem, fix)
    finally:
        unchanged(tmp_path, before)


def test_an_unwritable_output_dir_is_one_line_and_keeps_the_results(copy, tmp_path, capsys, monkeypatch):
    out = copy / "out"
    spec = spec_of(copy)
    spec["targets"] = ["en", "de", "sk"]
    spec["corpora"]["sk"] = {"files": ["corpora/sk.txt"]}
    spec["configurations"] = ["TA"]  # one new cell to store: TA on sk
    config = write_config(copy / "m.yaml", spec)
    results = (out / "results.jsonl").read_bytes()
    mode = stat.S_IMODE(out.stat().st_mode)
    out.chmod(0o555)
    try:
        if not os.access(out, os.W_OK):  # not root: the directory really is read-only
            before = snapshot(tmp_path)
            refused(capsys, ["matrix", config, "--report", "false"], [str(out)], ["fix permissions"], alone=False)
            unchanged(tmp_path, before)
            return
    finally:
        out.chmod(mode)
    # root writes anyway: a full disk when the store is written
    real = os.replace

    def full(src: Any, dst: Any, *args: Any, **kwargs: Any) -> None:
        if Path(dst) == out / "results.jsonl":
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(dst))
        real(src, dst, *args, **kwargs)

    before = snapshot(tmp_path)
    monkeypatch.setattr(os, "replace", full)
    refused(
        capsys,
        ["matrix", config, "--report", "false"],
        ["No space left on device", str(out / "results.jsonl")],
        ["free space, fix permissions or choose another path"],
        alone=False,
    )
    monkeypatch.undo()
    assert (out / "results.jsonl").read_bytes() == results
    assert not [p for p in out.rglob("*") if p.name.startswith(".xlt-tmp-")]
    unchanged(tmp_path, before, (out,))


# ---- the result store ---------------------------------------------------------------------------------------


def test_a_broken_line_in_the_store_names_file_and_line(copy, capsys):
    path = copy / "out" / "results.jsonl"
    lines = path.read_text().splitlines()
    lines[2] = lines[2][: len(lines[2]) // 2]  # a line cut half-way
    path.write_text("\n".join(lines) + "\n")
    before = snapshot(copy)
    refused(
        capsys, ["matrix", copy / "m.yaml"], [f"{path}, line 3: not a result row"], ["delete that line and run again"]
    )
    unchanged(copy, before)


def test_a_damaged_matrix_json_is_refused(copy, capsys):
    path = copy / "out" / "matrix.json"
    path.write_text(path.read_text()[:-40])
    before = snapshot(copy)
    refused(
        capsys, ["matrix", copy / "m.yaml"], [str(path), "is damaged"], ["restore it, or use another output directory"]
    )
    unchanged(copy, before)


# ---- changed inputs -----------------------------------------------------------------------------------------


def test_a_changed_test_file_is_refused_then_recomputed_for_its_target_only(copy, capsys):
    old = {(r["target"], r["configuration"]): r for r in rows(copy / "out")}
    test_de = copy / "data" / "test" / "de.jsonl"
    th.write_jsonl(test_de, th.task_rows(30, 99))
    before = snapshot(copy)
    refused(capsys, ["matrix", copy / "m.yaml"], ["inputs changed", str(test_de)], ["--on_change recompute"])
    unchanged(copy, before)

    assert xlt(["matrix", copy / "m.yaml", "--on_change", "recompute", "--report", "false"]) == 0
    err = capsys.readouterr().err
    assert "forgot 0 representation(s) and 2 cell(s)" in err, err[-2000:]
    new = {(r["target"], r["configuration"]): r for r in rows(copy / "out")}
    assert set(new) == set(old)
    digest = file_digest(test_de)
    recomputed = [k for k, r in new.items() if r["inputs"].get("task:toy:test:de") == digest]
    assert sorted(recomputed) == [("de", "SLP+TA"), ("de", "TA")]
    for key, row in new.items():
        if key[0] == "en":
            assert row == old[key]  # the other target's cells are kept as they were
        assert row["reps"]["task"]["sha256"] == old[key]["reps"]["task"]["sha256"]  # no rep retrained
        assert row["metrics"] == old[key]["metrics"] or key[0] == "de"
    unchanged(copy, before, (copy / "out",))


def test_a_changed_train_file_retrains_the_task_reps_only(copy, capsys):
    task_results = sorted((copy / "out" / "reps" / "task").glob("*/result.json"))
    language_results = sorted((copy / "out" / "reps" / "language").glob("*/result.json"))
    assert len(task_results) == 2 and len(language_results) == 2
    stamps = {p: p.stat().st_mtime_ns for p in [*task_results, *language_results]}
    train = copy / "data" / "train.jsonl"
    train.write_text(train.read_text() + train.read_text().splitlines()[0] + "\n")
    assert xlt(["matrix", copy / "m.yaml", "--on_change", "recompute", "--report", "false"]) == 0
    err = capsys.readouterr().err
    assert "forgot 2 representation(s) and 4 cell(s)" in err, err[-2000:]
    assert all(p.stat().st_mtime_ns != stamps[p] for p in task_results)
    assert all(p.stat().st_mtime_ns == stamps[p] for p in language_results)
    digest = file_digest(train)
    assert all(r["inputs"]["task:toy:train:en"] == digest for r in rows(copy / "out"))


# ---- a wider grid, a moved directory ------------------------------------------------------------------------


def test_a_wider_grid_reuses_the_finished_cells(copy, capsys):
    spec = spec_of(copy)
    old = rows(copy / "out")
    spec["targets"] = ["en", "de", "sk"]
    spec["corpora"]["sk"] = {"files": ["corpora/sk.txt"]}
    spec["configurations"] = ["TA", "SLP+TA", "TP"]
    write_config(copy / "m.yaml", spec)
    before = snapshot(copy)
    assert xlt(["matrix", copy / "m.yaml", "--report", "false"]) == 0
    err = capsys.readouterr().err
    assert "matrix: 9 cells, 4 already done, 5 to run" in err, err[-2000:]
    new = rows(copy / "out")
    assert len(new) == 9 and all(r["status"] == "ok" for r in new)
    assert all(r in new for r in old)
    unchanged(copy, before, (copy / "out",))


def test_a_cell_without_test_data_fails_alone_with_exit_1(copy, capsys):
    spec = spec_of(copy)
    spec["targets"] = ["en", "de", "sk"]
    spec["corpora"]["sk"] = {"files": ["corpora/sk.txt"]}
    spec["configurations"] = ["TA"]
    write_config(copy / "m.yaml", spec)
    test_sk = copy / "data" / "test" / "sk.jsonl"
    test_sk.unlink()
    before = snapshot(copy)
    capsys.readouterr()
    assert xlt(["matrix", copy / "m.yaml", "--report", "false"]) == 1
    captured = capsys.readouterr()
    assert "2 cells evaluated, 1 could not be" in captured.out, captured.out
    assert "xlt: error:" not in captured.err
    assert [line for line in captured.err.splitlines() if line.startswith("cell toy/en->sk TA:")], captured.err[-2000:]
    assert {r["target"]: r["status"] for r in rows(copy / "out") if r["configuration"] == "TA"} == {
        "en": "ok",
        "de": "ok",
        "sk": "error",
    }
    unchanged(copy, before, (copy / "out",))


def test_a_moved_matrix_directory_reuses_its_representations(base, tmp_path, capsys):
    first = Path(shutil.copytree(base, tmp_path / "a" / "w", symlinks=True))
    moved = Path(shutil.move(first, tmp_path / "b" / "moved"))
    assert not first.exists()
    spec = spec_of(moved)
    spec["configurations"] = ["TA", "SLP+TA", "SLP+TP"]  # SLP+TP needs the en and de prompts trained before
    write_config(moved / "m.yaml", spec)
    before = snapshot(tmp_path)
    assert xlt(["matrix", moved / "m.yaml", "--report", "false"]) == 0
    err = capsys.readouterr().err
    assert "matrix: 6 cells, 4 already done, 2 to run" in err, err[-2000:]
    assert "en/prompt: already trained in" in err and "reusing it" in err, err[-2000:]
    assert all(r["status"] == "ok" for r in rows(moved / "out"))
    unchanged(tmp_path, before, (moved / "out",))


# ---- other verbs --------------------------------------------------------------------------------------------


def test_report_never_writes_into_a_users_directory(copy, tmp_path, capsys):
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "report.md").write_text("# my report\n")
    before = snapshot(tmp_path)
    refused(
        capsys,
        ["report", copy / "out", "--out", mine],
        [str(mine), "not empty", "holds no report of xlt's"],
        ["give a new or empty directory"],
    )
    unchanged(tmp_path, before)

    fresh = tmp_path / "fresh"
    assert xlt(["report", copy / "out", "--out", fresh]) == 0
    assert (fresh / "report.md").is_file()
    unchanged(tmp_path, before, (fresh,))
    assert xlt(["report", copy / "out", "--out", fresh]) == 0  # an earlier report of xlt's is replaced
    assert capsys.readouterr().out.strip().endswith("report.md")
    unchanged(tmp_path, before, (fresh,))


def test_report_on_a_directory_without_results(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    before = snapshot(tmp_path)
    refused(
        capsys,
        ["report", tmp_path / "empty"],
        ["holds no matrix results", "matrix.json is missing"],
        ["run `xlt matrix CONFIG` first"],
    )
    unchanged(tmp_path, before)


def test_inspect_a_rep_without_weights(base, tmp_path, capsys):
    rep = Path(shutil.copytree(base / "out" / "reps" / "task" / "toy-en-ta-seed42" / "rep", tmp_path / "rep"))
    (rep / "rep.safetensors").unlink()
    before = snapshot(tmp_path)
    refused(capsys, ["inspect", rep], [str(rep)], [])
    unchanged(tmp_path, before)


def test_inspect_a_directory_that_holds_no_rep(tmp_path, capsys):
    (tmp_path / "nothing").mkdir()
    before = snapshot(tmp_path)
    refused(
        capsys,
        ["inspect", tmp_path / "nothing"],
        ["holds neither xlt_rep.json"],
        ["point at the directory a rep or adapter was saved to"],
    )
    unchanged(tmp_path, before)


def test_train_language_refuses_an_unknown_code(tmp_path, capsys):
    corpus = th.lm_corpus(tmp_path / "xx.txt", documents=10)
    out = tmp_path / "run"
    before = snapshot(tmp_path)
    argv = [
        "train-language",
        "--language",
        "xx",
        "--kind",
        "prompt",
        "--corpus.files",
        f'["{corpus}"]',
        "--output_dir",
        out,
        "--model",
        "/nonexistent/no-model",
        "--train.steps",
        "1",
    ]
    refused(capsys, argv, ["unknown language code 'xx'"], ["register_language"])
    unchanged(tmp_path, before)
    assert not out.exists()


@pytest.mark.parametrize(
    ("extra", "problem", "fix"),
    [
        (
            ["--alignment", "{pairs: missing.jsonl, source: en, teacher: null, config: {}}"],
            ["parallel text", "missing.jsonl", "cannot read it"],
            [],
        ),
        (
            ["--alignment", "{pairs: bad.jsonl, source: en, teacher: null, config: {}}"],
            ["bad.jsonl:3", "each line must be"],
            ["both strings non-empty"],
        ),
        (
            ["--alignment", "{pairs: pairs.jsonl, source: de, teacher: null, config: {}}"],
            ["pairs.jsonl:1", 'each line must be {"de": str'],
            [],
        ),
        (
            ["--alignment", "{pairs: pairs.jsonl, source: en, teacher: en/prompt, config: {}}"],
            ["alignment teacher 'en/prompt' is not in the model's bank"],
            ["load or train the source's"],
        ),
        (
            ["--alignment", "{pairs: pairs.jsonl, source: en, teacher: null, config: {weight: 0}}"],
            ["alignment.weight must be > 0"],
            [],
        ),
        (
            ["--alignment", "{pairs: pairs.jsonl, source: en, teacher: null, config: {lm_weight: .inf}}"],
            ["alignment.lm_weight must be a finite number"],
            [],
        ),
        (["--name", "../../escape"], ["invalid rep name '../../escape'"], ["letters, digits"]),
        (["--name", ""], ["invalid rep name ''"], ["letters, digits"]),
    ],
    ids=[
        "missing-pairs",
        "bad-line",
        "no-source-field",
        "absent-teacher",
        "zero-weight",
        "inf-weight",
        "escaping-name",
        "empty-name",
    ],
)
def test_train_language_refuses_bad_alignment_and_names(extra, problem, fix, tmp_path, capsys, monkeypatch):
    from matrix_helpers import save_model

    model = save_model(tmp_path / "model", "gpt2")
    corpus = th.lm_corpus(tmp_path / "sk.txt", documents=40)
    good = '{"en": "w60 w61", "text": "w30 w31", "split": "train"}\n{"en": "w62", "text": "w32", "split": "dev"}\n'
    (tmp_path / "pairs.jsonl").write_text(good)
    (tmp_path / "bad.jsonl").write_text(good + '{"en": "w63", "text": " ", "split": "train"}\n')
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "run"
    before = snapshot(tmp_path)
    argv = [
        "train-language",
        "--language",
        "sk",
        "--kind",
        "prompt",
        "--corpus.files",
        f'["{corpus}"]',
        "--rep",
        "{num_virtual_tokens: 2, init: vocab}",
        "--output_dir",
        out,
        "--model",
        model,
        "--train.steps",
        "1",
        "--train.progress",
        "false",
        "--train.tensorboard",
        "false",
        *extra,
    ]
    refused(capsys, argv, problem, fix, alone=False)
    unchanged(tmp_path, before)
    assert not out.exists()


@pytest.mark.parametrize(
    ("training", "problem"),
    [
        ({"length_buckets": -1}, ["task_training.length_buckets must be >= 0", "0: no buckets"]),
        ({"length_buckets": "many"}, ["task_training.length_buckets: 'many' is not allowed", "int or null"]),
        ({"train": {"precision": "fp16"}}, ["task_training.train.precision: 'fp16' is not allowed", "'auto', 'fp32'"]),
        ({"train": {"compile": "yes"}}, ["task_training.train.compile", "'yes'", "bool"]),
    ],
    ids=["negative-buckets", "word-buckets", "fp16", "word-compile"],
)
def test_speed_settings_are_checked_before_anything_runs(tmp_path, capsys, training, problem):
    path = write_config(tmp_path / "m.yaml", {**MINIMAL, "task_training": training})
    before = snapshot(tmp_path)
    refused(capsys, ["matrix", path], problem, [])
    unchanged(tmp_path, before)
