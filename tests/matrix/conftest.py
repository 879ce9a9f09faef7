"""Matrix tests: tiny models on one torch thread, so in-process runs compare bitwise with subprocess runs."""

import os

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    from threads import one_torch_thread

    with one_torch_thread():
        yield
