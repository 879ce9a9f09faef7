"""Training tests: tiny models, one torch thread, no network (datasets are read from local directories)."""

import os
import sys
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).parent))


@pytest.fixture(autouse=True)
def _one_thread():
    """Tiny models gain nothing from intra-op threads; one thread also makes in-process runs bitwise comparable
    with the subprocess runs of the resume and DDP tests, which use one thread each."""
    from threads import one_torch_thread

    with one_torch_thread():
        yield
