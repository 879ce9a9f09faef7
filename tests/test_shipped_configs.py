"""Every config file xlt ships parses into what it configures: each preset's sections build the dataclasses they
fill, set the defaults of the train-* verbs and of a matrix config; the demo's embedded matrix config loads."""

from __future__ import annotations

from pathlib import Path

import pytest

from xlt.demo import demo_config
from xlt.matrix import load_config
from xlt.matrix.config import read_yaml
from xlt.reps.prompt import PromptConfig
from xlt.train_cli import parser_for
from xlt.training.lm_objective import ObjectiveConfig
from xlt.training.loop import TrainConfig
from xlt.training.presets import PRESET_NAMES, load_preset, preset, preset_file

SRC = Path(__file__).parents[1] / "src" / "xlt"
# What each section of a preset configures.
SECTIONS = {"train": TrainConfig, "objective": ObjectiveConfig, "prompt": PromptConfig}
ROLES = [("train-language", "language"), ("train-task", "task"), ("train-lm-head", "language")]
VERB_ARGS = {
    "train-language": ["--language", "sk", "--kind", "prompt", "--corpus.files", "[a.txt]", "--output_dir", "out"],
    "train-task": ["--task", "t", "--kind", "prompt", "--train_file", "a", "--dev_file", "b", "--output_dir", "out"],
    "train-lm-head": ["--corpora", "[{files: [a.txt]}]", "--output_dir", "out"],
}


def test_the_shipped_yaml_files_are_the_presets():
    shipped = sorted(p.relative_to(SRC).as_posix() for p in [*SRC.rglob("*.yaml"), *SRC.rglob("*.yml")])
    assert shipped == sorted(f"presets/{name}.yaml" for name in PRESET_NAMES)
    assert all(Path(str(preset_file(name))).is_file() for name in PRESET_NAMES)


@pytest.mark.parametrize("name", PRESET_NAMES)
def test_a_preset_file_is_safe_yaml_with_a_section_per_role(name):
    assert read_yaml(Path(str(preset_file(name)))) == load_preset(name)  # what a user's config may hold, too
    sections = load_preset(name)
    assert set(sections) == {"language", "task"}
    assert set(sections["language"]) == {"train", "objective", "prompt"} and set(sections["task"]) == {
        "train",
        "prompt",
    }


@pytest.mark.parametrize("role", ["language", "task"])
@pytest.mark.parametrize("name", PRESET_NAMES)
def test_each_section_builds_the_dataclass_it_configures(name, role):
    values = preset(name, role)
    assert set(values) == set(SECTIONS)
    for section, cls in SECTIONS.items():
        built = cls(**values[section])
        assert all(getattr(built, k) == v for k, v in values[section].items()), (section, built)
    assert TrainConfig(**values["train"]).defaults == name


@pytest.mark.parametrize(
    ("verb", "role"), [("train-language", "language"), ("train-task", "task"), ("train-lm-head", "language")]
)
@pytest.mark.parametrize("name", PRESET_NAMES)
def test_a_preset_is_the_defaults_of_the_train_verbs(name, verb, role):
    argv = ["--preset", name, *VERB_ARGS[verb]]
    parser = parser_for(verb, argv)
    init = parser.instantiate(parser.parse_args(argv))
    values = preset(name, role)
    assert all(getattr(init.train, k) == v for k, v in values["train"].items())
    if "objective" in init:
        assert all(getattr(init.objective, k) == v for k, v in values["objective"].items())


@pytest.mark.parametrize("name", [None, *PRESET_NAMES])
def test_the_demo_matrix_config_loads_under_every_preset(name, tmp_path):
    spec = demo_config(["en", "sk", "sw"], tmp_path / "demo", None)
    config = load_config(spec if name is None else {**spec, "preset": name})
    expected = name or "fast"
    assert config.language_training.train.defaults == expected and config.task_training.train.defaults == expected
    assert config.language_training.train.steps == spec["language_training"]["train"]["steps"]  # the demo's own
    assert config.target_languages() == ["en", "sk", "sw"]
    assert not (tmp_path / "demo").exists()  # loading writes nothing


def test_the_demo_names_its_configurations_and_seeds(tmp_path):
    from xlt.demo import DEMO_CONFIGURATIONS, run_demo
    from xlt.errors import XLTError
    from xlt.matrix.configurations import PAPER_NAMES

    config = load_config(demo_config(["en", "sk"], tmp_path / "demo", None, seeds=3))
    assert config.seeds == [1, 2, 3] and config.configurations == list(DEMO_CONFIGURATIONS)
    assert config.configurations[:7] == list(PAPER_NAMES)
    assert load_config(demo_config(["en", "sk"], tmp_path / "demo", None)).seeds == [1]
    for bad in (0, -1, True):
        with pytest.raises(XLTError, match="--seeds must be an integer >= 1"):
            run_demo("en,sk", tmp_path / "demo", seeds=bad)
    assert not (tmp_path / "demo").exists()
