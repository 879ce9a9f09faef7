"""Executor tests: the same tiny matrix under each executor; one Ray cluster per test session."""

import os

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")


@pytest.fixture(scope="module")
def ray_cluster():
    """A local Ray cluster of 2 CPUs, started once for the Ray tests (Ray takes seconds to start) and shut down
    after them: its own processes would otherwise take CPU from the rest of the session."""
    ray = pytest.importorskip("ray")
    ray.init(num_cpus=2, num_gpus=0, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    from threads import one_torch_thread

    with one_torch_thread():
        yield
