"""Serving tests: one small trained matrix per test process, served on the loopback interface."""

import os
import sys
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    from threads import one_torch_thread

    with one_torch_thread():
        yield


@pytest.fixture(scope="session")
def matrix_dir(tmp_path_factory) -> Path:
    from serve_helpers import trained_matrix

    from threads import one_torch_thread

    with one_torch_thread():
        return trained_matrix(tmp_path_factory.mktemp("served"))
