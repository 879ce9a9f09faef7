"""Record utilities: JSON values, flattened configs and how two of them differ."""

from __future__ import annotations

import ast
import sys
from dataclasses import dataclass
from pathlib import Path

import xlt.records
from xlt.records import differing_keys, flat, jsonable, named, same_config, without_fields


@dataclass
class Inner:
    path: Path
    pair: tuple[int, int]


def test_jsonable_turns_dataclasses_tuples_paths_and_keys_into_json_data():
    value = {1: Inner(Path("/data/x.txt"), (1, 2)), "list": [Path("a"), (3,)]}
    assert jsonable(value) == {"1": {"path": "/data/x.txt", "pair": [1, 2]}, "list": ["a", [3]]}
    assert jsonable(Inner) is Inner  # a class is not an instance: left as it is


def test_flat_names_every_leaf_by_its_dotted_path():
    assert flat({"run": {"train": {"lr": 0.1, "steps": 3}}, "empty": {}, "seed": 1}) == {
        "run.train.lr": 0.1,
        "run.train.steps": 3,
        "empty": {},
        "seed": 1,
    }
    assert flat(5) == {"": 5}


def test_differing_keys_are_sorted_and_skip_what_is_ignored():
    recorded = {"b": 1, "a": 2, "c": 3, "d.x": 4}
    wanted = {"b": 9, "a": 8, "c": 3, "d.x": 5}
    assert differing_keys(recorded, wanted) == ["a", "b", "d.x"]
    assert differing_keys(recorded, wanted, lambda key: key.startswith("d.")) == ["a", "b"]


def test_a_missing_key_differs_unless_the_other_side_holds_none():
    assert differing_keys({"a": 1}, {}) == ["a"]
    assert differing_keys({"a": None}, {}) == []
    assert not same_config({"a": None}, {})  # equality is strict: the key is on one side only


def test_same_config_compares_flattened_values():
    assert same_config({"a": {"b": 1}}, {"a": {"b": 1}})
    assert not same_config({"a": {"b": 1}}, {"a": {"b": 2}})


def test_without_fields_drops_keys_by_their_last_part():
    config = {"task.train_file": "x", "task.lr": 1, "files": ["y"], "train_file_count": 2}
    assert without_fields(config, ("train_file", "files")) == {"task.lr": 1, "train_file_count": 2}


def test_named_lists_the_first_six_keys():
    assert named([f"k{i}" for i in range(8)]) == "k0, k1, k2, k3, k4, k5"
    assert named([]) == ""


def test_records_is_a_low_layer():
    tree = ast.parse(Path(xlt.records.__file__).read_text(encoding="utf-8"))
    imported = {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
    imported |= {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.module}
    outside = {name for name in imported if name.split(".")[0] not in sys.stdlib_module_names}
    assert outside <= {"xlt.errors"}


def test_the_former_home_still_offers_jsonable_and_flat():
    from xlt.training import run

    assert run.jsonable is jsonable and run.flat is flat
