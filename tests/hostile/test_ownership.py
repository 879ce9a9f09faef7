"""xlt never deletes or modifies what it did not create (DESIGN invariant 7), whatever a user's directory holds.

Each entry point that writes is pointed at random user trees (hidden names that look like anyone's
temporaries or xlt's own, nested folders, symbolic links to files, to folders, dangling and pointing outside,
files of arbitrary bytes and modes), as the output directory and as its parent. It either refuses with a
one-line XLTError or succeeds, and either way every path that existed is unchanged (type, bytes, link
target, mode), nothing new exists outside the output directory, and the write audit (conftest.py) saw no
write outside it (atomic saves: but their temporary beside it).
"""

from __future__ import annotations

import os
import shutil
import stat
import string
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, Phase, example, given, settings
from hypothesis import strategies as st

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "matrix"))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "training"))

from matrix_helpers import world

from core_helpers import new_model
from snapshots import snapshot
from xlt import BottleneckConfig, PromptConfig, XLTError, XLTModel
from xlt.cli import main
from xlt.formats import export_adapterhub, export_peft_prompt
from xlt.matrix import load_config, run_matrix
from xlt.matrix.publish import publish
from xlt.matrix.store import ResultStore
from xlt.training.run import claim_output_dir

# File-system behaviour, the same under every transformers version: run once, under 5.x (see the Makefile).
pytestmark = pytest.mark.slow

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

DEAD = 999_999_999  # above any pid_max: no process runs under it
SILENT = lambda _: None  # noqa: E731


# ---- snapshots -----------------------------------------------------------------------------------------------


def under(path: str, prefix: str) -> bool:
    return path == prefix or path.startswith(prefix + os.sep)


def check_untouched(
    root: Path, before: dict[str, tuple[Any, ...]], new_roots: list[Path], why: str = "", replaced: Path | None = None
) -> None:
    """Every path of ``before`` is unchanged; new paths lie under one of ``new_roots``. ``replaced``: a directory
    an atomic save may replace when it was empty (its type is kept, not its mode: see
    test_replacing_an_empty_directory_keeps_its_mode)."""
    after = snapshot(root)
    if replaced is not None:
        rel = os.path.relpath(replaced, root)
        if before.get(rel, (None,))[0] == "dir" and after.get(rel, (None,))[0] == "dir":
            after[rel] = before[rel]
    changed = [p for p, record in before.items() if after.get(p) != record]
    assert not changed, f"{why}pre-existing paths changed or gone: " + ", ".join(
        f"{p} {before[p][0]}->{after[p][0] if p in after else 'missing'}" for p in changed[:10]
    )
    allowed = set()
    for new_root in new_roots:
        for candidate in (os.path.abspath(new_root), os.path.realpath(new_root)):
            rel = os.path.relpath(candidate, os.path.realpath(root))
            if not rel.startswith(".."):
                allowed.add(rel)
    stray = [p for p in after if p not in before and not any(under(p, a) for a in allowed)]
    assert not stray, f"{why}new paths outside {sorted(allowed)}: {stray[:10]}"


def one_line_refusal(exc: XLTError) -> None:
    message = str(exc)
    assert message and "\n" not in message, f"refusal is not one line: {message!r}"


# ---- the user's tree -----------------------------------------------------------------------------------------

LOOKALIKES = [
    f".xlt-tmp-{DEAD}-deadbeef-foo",  # a user's file named like a dead xlt writer's temporary: still theirs
    f".xlt-old-{DEAD}-deadbeef-foo",
    ".matrix.lock",
    ".bashrc.old-2023",
    ".cache.old-31337",
    ".x.tmp-123",
    f".xlt-tmp-{os.getpid()}-cafebabe-xlt-out",  # a running writer's: counted as someone's content
    ".xlt-tmp-1-deadbeef-foo",  # pid 1 always runs: a running writer's, so counted as content
    ".xlt-old-nopid-deadbeef-foo",
    "report.md",
    "results.csv",
    "result.json",
    "results.jsonl",
    "rep.safetensors",
    "heatmap.png",
    "xlt-out",
    "out",
    ".git",
    "~backup",
    "a b",
]
# Names that declare a directory an earlier save of xlt's (xlt_rep.json, adapter_config.json, run.json,
# matrix.json) and the owner mark are left out: a user who writes those claims the directory is xlt's.
NAMES = st.one_of(
    st.sampled_from(LOOKALIKES),
    st.text(alphabet=string.ascii_letters + string.digits + "._-~ #", min_size=1, max_size=10).filter(
        lambda s: s not in (".", "..", ".xlt-owned", "xlt_rep.json", "adapter_config.json", "run.json", "matrix.json")
    ),
)
FILE_MODES = st.sampled_from([0o644, 0o600, 0o755, 0o444, 0o640])
DIR_MODES = st.sampled_from([0o755, 0o700, 0o750, 0o775])
LINK_TARGETS = st.sampled_from(["dangling", "outside_file", "outside_dir", "in_tree", "parent"])

FILE = st.tuples(st.just("file"), NAMES, st.binary(max_size=48), FILE_MODES)
LINK = st.tuples(st.just("link"), NAMES, LINK_TARGETS, st.integers(0, 1000))
TREE = st.lists(
    st.recursive(
        st.one_of(FILE, LINK),
        lambda children: st.tuples(st.just("dir"), NAMES, DIR_MODES, st.lists(children, max_size=4)),
        max_leaves=10,
    ),
    max_size=6,
)
WHERE = st.tuples(st.integers(0, 1000), st.booleans())  # (which entry, True: a new child of it)


def build(case: Path, tree: list[Any]) -> Path:
    """``case/home`` (the user's tree) and ``case/outside`` (what links may point to); returns home."""
    outside = case / "outside"
    (outside / "inner").mkdir(parents=True)
    (outside / "secret.txt").write_bytes(b"not yours\n")
    home = case / "home"
    home.mkdir()
    created: list[Path] = []
    links: list[tuple[Path, str, int]] = []
    dirs: list[tuple[Path, int]] = []

    def make(directory: Path, nodes: list[Any]) -> None:
        taken: set[str] = set()
        for node in nodes:
            name = node[1]
            if name in taken:
                continue
            taken.add(name)
            path = directory / name
            if node[0] == "file":
                path.write_bytes(node[2])
                os.chmod(path, node[3])
                created.append(path)
            elif node[0] == "dir":
                path.mkdir()
                created.append(path)
                make(path, node[3])
                dirs.append((path, node[2]))
            else:
                links.append((path, node[2], node[3]))

    make(home, tree)
    for path, kind, index in links:
        if kind == "dangling":
            target = "does-not-exist"
        elif kind == "outside_file":
            target = str(outside / "secret.txt")
        elif kind == "outside_dir":
            target = str(outside / "inner")
        elif kind == "parent":
            target = ".."
        elif created:
            target = os.path.relpath(created[index % len(created)], path.parent)
        else:
            target = "."
        os.symlink(target, path)
    for path, mode in dirs:
        os.chmod(path, mode)
    return home


def output_path(home: Path, where: tuple[int, bool]) -> Path:
    entries = [home] + [home / rel for rel in sorted(snapshot(home))]
    base = entries[where[0] % len(entries)]
    return base / "xlt-out" if where[1] else base


# ---- shared, built once per module ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def model() -> XLTModel:
    m = new_model("bert")
    m.add_language("sk", PromptConfig(num_virtual_tokens=2, init="vocab"))
    m.add_language("de", BottleneckConfig(reduction_factor=4))
    return m


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("ownership")


def store_rows() -> list[dict[str, Any]]:
    rows = []
    for target, value in (("en", 0.8), ("sk", 0.6)):
        for configuration in ("zero-shot", "TA"):
            rows.append(
                {
                    "task": "emoji",
                    "source": "en",
                    "target": target,
                    "configuration": configuration,
                    "seed": 42,
                    "status": "ok",
                    "metrics": {"accuracy": value, "macro_f1": value - 0.1},
                    "examples": 10,
                    "time_s": {"train": 1.0, "eval": 0.1},
                    "reps": {"task": None, "language": None},
                }
            )
    return rows


@pytest.fixture(scope="module")
def matrix_dir(sandbox: Path) -> Path:
    """A matrix output directory whose store holds a few finished rows (what ``xlt report`` reads)."""
    directory = sandbox / "finished-matrix"
    with ResultStore.open(directory, "recipe-1", {"targets": ["en", "sk"]}) as store:
        store.put(store_rows())
    return directory


def entry_points(model: XLTModel, matrix_dir: Path) -> dict[str, tuple[Callable[[Path], Any], bool]]:
    """name -> (write into the output directory, whether the write is an atomic directory swap)."""

    def store(out: Path) -> None:
        with ResultStore.open(out, "recipe-h", {"targets": ["en"]}) as s:
            s.put(store_rows()[:1])

    return {
        "save_rep": (lambda out: model.save_rep("sk/prompt", out), True),
        "export_peft_prompt": (lambda out: export_peft_prompt(model, "sk/prompt", out), True),
        "export_adapterhub": (lambda out: export_adapterhub(model, "de/bottleneck", out), True),
        "claim_output_dir": (lambda out: claim_output_dir(out, {"run": "hostile", "steps": 2}), False),
        "result_store": (store, False),
        "publish": (lambda out: publish(matrix_dir, out=out), False),
    }


ENTRY_POINTS = ["save_rep", "export_peft_prompt", "export_adapterhub", "claim_output_dir", "result_store", "publish"]
EXAMPLES = {"publish": 4}
NO_SHRINK = (Phase.explicit, Phase.reuse, Phase.generate)  # a failure is reported as found: shrinking takes minutes


def attempt(write: Callable[[Path], Any], out: Path) -> bool:
    """Run ``write(out)``: True on success, False on a one-line XLTError (anything else fails the test)."""
    try:
        write(out)
    except XLTError as exc:
        one_line_refusal(exc)
        return False
    return True


def exercise(
    sandbox: Path,
    audit: Any,
    tree: list[Any],
    where: tuple[int, bool],
    write: Callable[[Path], Any],
    atomic: bool,
    once: bool = False,
) -> list[bool]:
    with audit.paused():
        case = Path(tempfile.mkdtemp(dir=sandbox))
        home = build(case, tree)
        out = output_path(home, where)
        before = snapshot(case)
    audit.clear()
    try:
        # a command run twice (a resume or a re-save); a report renders plots: once
        results = [attempt(write, out) for _ in range(1 if once else 2)]
        label = f"out={os.path.relpath(out, case)} results={results}: "
        check_untouched(case, before, [out], label, replaced=out if atomic else None)
        if any(results):
            assert out.is_dir(), f"{label}succeeded but wrote no directory"
        audit.assert_writes_inside([out], temporaries_beside=[out] if atomic else [])
        return results
    finally:
        with audit.paused():
            shutil.rmtree(case)


ISSUE_TREES = [
    # the issue's cases: a user's look-alike temporaries beside the target, and inside it
    ([("file", ".bashrc.old-2023", b"alias ll='ls -l'\n", 0o644), ("dir", ".cache.old-31337", 0o700, [])], (0, True)),
    (
        [
            (
                "dir",
                "xlt-out",
                0o755,
                [("file", ".bashrc.old-2023", b"x", 0o600), ("dir", ".cache.old-31337", 0o755, [])],
            )
        ],
        (1, False),
    ),
    # a user's report.md in --out
    ([("dir", "xlt-out", 0o755, [("file", "report.md", b"# my notes\n", 0o644)])], (1, False)),
    # a look-alike of xlt's own temporary, of a writer that no longer runs, made by the user
    ([("file", f".xlt-tmp-{DEAD}-deadbeef-foo", b"mine\n", 0o644)], (0, True)),
    ([("dir", "xlt-out", 0o700, [])], (1, False)),
    # links out of the tree and dangling, as the output and beside it
    ([("link", "xlt-out", "outside_dir", 0), ("link", "x", "dangling", 0)], (0, True)),
    ([("link", "xlt-out", "dangling", 0)], (0, True)),
    ([("file", "xlt-out", b"", 0o644)], (0, True)),
]


def with_issue_examples(test: Callable[..., Any]) -> Callable[..., Any]:
    for tree, where in ISSUE_TREES:
        test = example(tree=tree, where=where)(test)
    return test


@pytest.mark.parametrize("entry", ENTRY_POINTS)
def test_entry_point_leaves_user_files_alone(entry, model, matrix_dir, sandbox, write_audit):
    write, atomic = entry_points(model, matrix_dir)[entry]

    @settings(
        max_examples=EXAMPLES.get(entry, 30),
        deadline=None,
        phases=NO_SHRINK,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(tree=TREE, where=WHERE)
    @with_issue_examples
    def check(tree: list[Any], where: tuple[int, bool]) -> None:
        outcomes.extend(exercise(sandbox, write_audit, tree, where, write, atomic, once=entry == "publish"))

    outcomes: list[bool] = []
    check()
    assert True in outcomes and False in outcomes, f"{entry}: every example {'succeeded' if outcomes[0] else 'refused'}"


# ---- a real (short) training run -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def trainer(sandbox: Path) -> tuple[XLTModel, Path]:
    from training_helpers import lm_corpus
    from training_helpers import model as training_model

    corpus = lm_corpus(sandbox / "corpus.txt", documents=40)
    return training_model("gpt2"), corpus


def train_into(trainer: tuple[XLTModel, Path]) -> Callable[[Path], Any]:
    """``train_language`` (2 steps of a 2-token soft prompt on a tiny GPT-2) with ``out`` as its output_dir."""
    from training_helpers import quick, rep_options

    from xlt.training.corpora import CorpusConfig
    from xlt.training.language import LanguageRun, train_language
    from xlt.training.lm_objective import ObjectiveConfig

    xlt_model, corpus = trainer

    def write(out: Path) -> None:
        run = LanguageRun(
            language="sk",
            kind="prompt",
            corpus=CorpusConfig(files=[str(corpus)], validation_fraction=0.05),
            output_dir=out,
            rep=rep_options("prompt", tokens=2),
            objective=ObjectiveConfig(max_length=16),
            train=quick(steps=2, eval_every=0),
        )
        train_language(xlt_model, run, log=SILENT)

    return write


def test_training_run_leaves_user_files_alone(trainer, sandbox, write_audit):
    write = train_into(trainer)

    @settings(
        max_examples=4,
        deadline=None,
        phases=NO_SHRINK,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(tree=TREE, where=WHERE)
    @example(tree=ISSUE_TREES[0][0], where=ISSUE_TREES[0][1])
    @example(tree=ISSUE_TREES[2][0], where=ISSUE_TREES[2][1])
    def check(tree: list[Any], where: tuple[int, bool]) -> None:
        outcomes.extend(exercise(sandbox, write_audit, tree, where, write, False))

    outcomes: list[bool] = []
    check()
    assert True in outcomes and False in outcomes, outcomes


# ---- regressions of defects these tests found ---------------------------------------------------------------


@pytest.mark.parametrize(
    "entry",
    [
        "save_rep",
        "export_peft_prompt",
        "export_adapterhub",
        "claim_output_dir",
        "result_store",
        "publish",
        "train_language",
    ],
)
def test_a_users_lookalike_of_a_dead_temporary_is_kept(entry, model, matrix_dir, trainer, sandbox, write_audit):
    """A user's ``.xlt-tmp-DEAD-deadbeef-foo`` in the output directory is theirs: the command refuses (the
    directory is not empty) or writes beside it, and the file survives this run and the next."""
    write = train_into(trainer) if entry == "train_language" else entry_points(model, matrix_dir)[entry][0]
    atomic = entry in ("save_rep", "export_peft_prompt", "export_adapterhub")
    for name in (f".xlt-tmp-{DEAD}-deadbeef-foo", f".xlt-old-{DEAD}-deadbeef-xlt-out"):
        tree = [("dir", "xlt-out", 0o755, [("file", name, b"mine\n", 0o644)])]
        exercise(sandbox, write_audit, tree, (1, False), write, atomic)


def test_a_users_matrix_lock_is_kept(model, matrix_dir, sandbox, write_audit):
    write = entry_points(model, matrix_dir)["result_store"][0]
    exercise(
        sandbox,
        write_audit,
        [("dir", "xlt-out", 0o755, [("file", ".matrix.lock", b"mine\n", 0o644)])],
        (1, False),
        write,
        False,
    )


def test_replacing_an_empty_directory_keeps_its_mode(model, tmp_path):
    out = tmp_path / "private"
    out.mkdir(mode=0o700)
    os.chmod(out, 0o700)
    model.save_rep("sk/prompt", out)
    assert stat.S_IMODE(out.stat().st_mode) == 0o700


def test_the_audit_sees_writes(model, tmp_path, write_audit):
    """The audit itself: an atomic save is seen as a mkdir of its temporary, writes inside it and a rename,
    and a write elsewhere is reported."""
    out = tmp_path / "saved"
    write_audit.clear()
    model.save_rep("sk/prompt", out)
    events = {event for event, _ in write_audit.writes}
    assert {"os.mkdir", "open", "os.rename"} <= events, write_audit.writes
    write_audit.assert_writes_inside([out], temporaries_beside=[out])
    assert write_audit.outside([out])  # its temporary lies beside it, not inside
    (tmp_path / "elsewhere.txt").write_text("x")
    with pytest.raises(AssertionError, match=r"elsewhere\.txt"):
        write_audit.assert_writes_inside([out], temporaries_beside=[out])
    shutil.rmtree(out)
    assert ("shutil.rmtree", str(out)) in write_audit.writes or any(
        e == "os.remove" and p.startswith(str(out)) for e, p in write_audit.writes
    )


# ---- a whole tiny matrix inside a user's tree ----------------------------------------------------------------

USER_FILES = [
    ("file", ".bashrc.old-2023", b"export A=1\n", 0o644),
    ("dir", ".cache.old-31337", 0o700, [("file", "blob", b"\x00\xff", 0o600)]),
    ("file", f".xlt-tmp-{DEAD}-deadbeef-foo", b"mine\n", 0o644),
    ("file", "report.md", b"# my report\n", 0o644),
    ("link", "escape", "outside_dir", 0),
    ("link", "gone", "dangling", 0),
    ("dir", "projects", 0o755, [("file", "notes.txt", b"todo\n", 0o600), ("link", "up", "parent", 0)]),
]


def test_whole_matrix_writes_only_its_output_dir(tmp_path_factory, write_audit):
    case = tmp_path_factory.mktemp("matrix-in-home")
    home = build(case, USER_FILES)
    spec = world(case / "world", languages=["en", "sk"])
    spec.update(configurations=["zero-shot", "SLP+TA"], output_dir=str(home / "projects" / "xlt-matrix"))
    out = home / "projects" / "xlt-matrix"
    before = snapshot(case)
    write_audit.clear()

    # the user's home itself as output_dir: refused, nothing written
    with pytest.raises(XLTError) as refused:
        run_matrix(load_config({**spec, "output_dir": str(home)}), log=SILENT)
    one_line_refusal(refused.value)
    write_audit.assert_writes_inside([])
    check_untouched(case, before, [])

    result = run_matrix(load_config(spec), log=SILENT, report=True)
    assert result and all(r["status"] == "ok" for r in result), result
    assert (out / "report" / "report.md").is_file()
    write_audit.assert_writes_inside([out])
    check_untouched(case, before, [out])


# ---- names in a matrix config that would climb out of the output directory -----------------------------------

ESC = "../../../esc"


def escaping_configs(spec: dict[str, Any]) -> dict[str, dict[str, Any]]:
    task = spec["tasks"]["toy"]
    corpus = spec["corpora"]["en"]
    return {
        "language": {**spec, "languages": {ESC: {"name": "Escape"}}, "targets": ["en", ESC]},
        "language-only-registered": {**spec, "languages": {ESC: {"name": "Escape"}}},
        "task": {**spec, "tasks": {ESC: task}},
        "custom-configuration": {
            **spec,
            "custom_configurations": {ESC: {"language": "prompt", "task": "prompt"}},
            "configurations": [ESC],
        },
        "source": {**spec, "sources": [ESC]},
        "target": {**spec, "targets": [ESC]},
        "corpus": {**spec, "corpora": {**spec["corpora"], ESC: corpus}},
    }


@pytest.fixture(scope="module")
def small_world(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    return world(tmp_path_factory.mktemp("escape-world"), languages=["en", "sk"])


@pytest.mark.parametrize(
    "where", ["language", "language-only-registered", "task", "custom-configuration", "source", "target", "corpus"]
)
def test_escaping_names_are_refused_before_any_write(where, small_world, tmp_path, write_audit, capsys, monkeypatch):
    deep = tmp_path / "a" / "b" / "c"
    deep.mkdir(parents=True)
    spec = {**small_world, "output_dir": str(deep / "out")}
    cfg = tmp_path / "matrix.yaml"
    cfg.write_text(yaml.safe_dump(escaping_configs(spec)[where]))
    monkeypatch.chdir(deep)
    before = snapshot(tmp_path)
    world_root = Path(small_world["model"]).parent
    world_before = snapshot(world_root)
    capsys.readouterr()
    write_audit.clear()
    with pytest.raises(SystemExit) as exc:
        main(["matrix", str(cfg)])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("xlt: error:"), err
    assert "esc" in lines[0], lines[0]
    assert write_audit.writes == [], write_audit.writes
    check_untouched(tmp_path, before, [])
    check_untouched(world_root, world_before, [])
    assert not (tmp_path.parent / "esc").exists() and not (tmp_path / "esc").exists()
