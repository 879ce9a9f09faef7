"""The whole report, pinned: every page, table file and CSV a fixed set of rows gives, byte for byte.

The rows cover what the report distinguishes: several seeds and one seed, a failed (NaN) evaluation, missing cells,
a metric where lower wins, a metric only some cells have, unknown targets and configurations, names that need
escaping, and task names that sanitise to the same file stem. ``golden/report.md`` is the page with its date line
replaced; every other text file is pinned by its sha256 (PNG files by name only).
"""

from __future__ import annotations

import hashlib
import math
import re
from pathlib import Path

from xlt.matrix.report import Report, render_report

GOLDEN = Path(__file__).parent / "golden"
CONFIG = {"model": "e5", "note": "a ``` fence inside", "seeds": [42, 43, 44]}


def golden_rows() -> list[dict]:
    rows = []
    cells = {
        ("emoji", "en"): {
            "en": {"zero-shot": 0.5, "TA": 0.81, "LA+TA": 0.79, "SLP+TA": 0.8, "my|custom_*": 0.6},
            "sk": {"zero-shot": 0.3, "TA": 0.61, "LA+TA": 0.61, "SLP+TA": 0.65},
            "sw": {"zero-shot": 0.2, "TA": 0.5, "SLP+TA": 0.52, "my|custom_*": 0.4},
            "xx": {"TA": 0.33, "LA+TA": 0.34},
        },
        ("nli v2", "de"): {"de": {"TA": 0.7, "TP": 0.72}, "fr": {"TA": 0.66, "TP": 0.6}},
        ("nli/v2", "de"): {"de": {"TA": 0.1}},
    }
    for (task, source), by_target in cells.items():
        for target, by_config in by_target.items():
            for configuration, value in by_config.items():
                seeds = (42, 43, 44) if task == "emoji" and configuration != "my|custom_*" else (42,)
                for n, seed in enumerate(seeds):
                    metrics = {"accuracy": value + 0.013 * n, "loss": 2.5 - value + 0.1 * n}
                    if (target, configuration, seed) == ("sk", "TA", 44):
                        metrics["accuracy"] = math.nan  # a failed evaluation
                    if target == "xx":
                        metrics["macro_f1"] = value / 2
                    rows.append(
                        {
                            "task": task,
                            "source": source,
                            "target": target,
                            "configuration": configuration,
                            "seed": seed,
                            "metrics": metrics,
                            "examples": 100 + n,
                            "time_s": {"train": 1.5 * (n + 1), "eval": 0.25},
                            "recipe": "abc123",
                        }
                    )
    return rows


def _text(path: Path) -> str:
    # the page's only varying line: when it was generated
    return re.sub(r"Generated \d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC", "Generated DATE", path.read_text(encoding="utf-8"))


def _digests(report: Report) -> dict[str, str | None]:
    return {f.name: None if f.suffix == ".png" else hashlib.sha256(_text(f).encode()).hexdigest() for f in report.files}


FULL_FILES = {
    "emoji-en-accuracy.md": "d4c42ea4ca067c057bbcf9f5520dd294219d70f6b44a59867dfa30e2c181cf5f",
    "emoji-en-accuracy.csv": "9e9ac5778331f2431649b252f05b14613fcb0d8a416e9a80d46c1c6b4627c847",
    "emoji-en-accuracy.tex": "4ad3c5b86d21824c7d784a514445b1b07a5b6c2afe7f6d7fa64e7c7da46f5c1c",
    "emoji-en-accuracy-heatmap.png": None,
    "emoji-en-accuracy-bars.png": None,
    "emoji-en-loss.md": "cd169fd24c5071a722ab6b5607425be9a07c1116adb480bc0a5b81136b834d05",
    "emoji-en-loss.csv": "ee79bafbaac5e038a09495577c170df52064f7e2ba83243963db472e598b2d59",
    "emoji-en-loss.tex": "c68748c9321d09eab4b9155c91375208e1fd1a3a70d151938732b598e09f40fe",
    "emoji-en-loss-heatmap.png": None,
    "emoji-en-loss-bars.png": None,
    "emoji-en-macro_f1.md": "ccc6d52148f832d2caf85a934ff0993930048e454c17bc8ce4b5f49f71e6183e",
    "emoji-en-macro_f1.csv": "405510700eac09583dd150d5faa6e168012b315c4ec14e3e25ec2dded8e4bbfe",
    "emoji-en-macro_f1.tex": "32a8cc08225f24ca06db90e254008ed8b2f31556005a89dcddbc775f4e8caf85",
    "emoji-en-macro_f1-heatmap.png": None,
    "emoji-en-macro_f1-bars.png": None,
    "nli_v2-de-accuracy-50cb1923.md": "5795ba15eff3456fff92bc8177591f78cd33313f8bfe0300a594f515d898b782",
    "nli_v2-de-accuracy-50cb1923.csv": "1aa0d92e0fb43c7d53d979d3bdb0fcabaccd952d5aea2a2dc692d4bda433d903",
    "nli_v2-de-accuracy-50cb1923.tex": "2e835edfd69ca465b9d2da5b1a2e512048d3ce3e4508eab0b711f1e7f7685e9e",
    "nli_v2-de-accuracy-50cb1923-heatmap.png": None,
    "nli_v2-de-accuracy-50cb1923-bars.png": None,
    "nli_v2-de-loss-18cefda7.md": "7c8f346d089a6d354870c0aea7e77fe1368b6d7f3efab9ace9890aa7924e61c9",
    "nli_v2-de-loss-18cefda7.csv": "872c59cb1822456e2e428049815542c270d7c83ebf96aa2da5b6c40f524b2797",
    "nli_v2-de-loss-18cefda7.tex": "530186a61956fd9f25e2d09a91dc4f8b6ff4c530c22a71b9ecaee56a2d514793",
    "nli_v2-de-loss-18cefda7-heatmap.png": None,
    "nli_v2-de-loss-18cefda7-bars.png": None,
    "nli_v2-de-accuracy-f5cf9bb2.md": "81409ec9c0490c060d8061062e4d3b2824d2198a0615f0efdabe27cb4fe53637",
    "nli_v2-de-accuracy-f5cf9bb2.csv": "55abb937b25bb5a2f24aad6e4993d9ec9416662dade0f557d9d8afaf9c07a4ac",
    "nli_v2-de-accuracy-f5cf9bb2.tex": "bc770cb0c5d362689687f14172aec4a27cb5a6aee2e95686b3b1144d1975e3f1",
    "nli_v2-de-accuracy-f5cf9bb2-heatmap.png": None,
    "nli_v2-de-accuracy-f5cf9bb2-bars.png": None,
    "nli_v2-de-loss-33972bd1.md": "3da6504f65663ee41dc9b8b6286fbd7911f0c65d10db2ea4d018fafa77429a65",
    "nli_v2-de-loss-33972bd1.csv": "bd747ad1137e1cc2bc42885c8cb4bb3ed85595b7f21af8d48c3c9b8b471d3506",
    "nli_v2-de-loss-33972bd1.tex": "4666e499dd5ce26eef7bf9280775cff2a90c0e0236c56d370a4c6c12d3e8e57c",
    "nli_v2-de-loss-33972bd1-heatmap.png": None,
    "nli_v2-de-loss-33972bd1-bars.png": None,
    "results.csv": "2c134af87ebf32a34a4206ecba3ce1f85e8dd2c4ccaf33874466ae5665853131",
    "report.md": "4d99ad723b5e684eac6a165b483301d3fe2018c256d930c80f440d62e50c4410",
}

SELECTED_FILES = {
    "emoji-en-loss.md": "596c8bb4a2c6682e88e1de420c5bbcfb132423ea73c451f78a4539c856f894f9",
    "emoji-en-loss.csv": "8270db17b213a215997215ba6735c0168e1172330a33d3ddcf16df8c4e008be4",
    "emoji-en-loss.tex": "3c8dd868c4675c82f24542190cb293a44f363b0ef2274ec970a41a23db6477ec",
    "emoji-en-loss-heatmap.png": None,
    "emoji-en-loss-bars.png": None,
    "emoji-en-accuracy.md": "6f89965b182b12f79be33d1cec93e0df20aa4f8c2ed4a2110355976e4113055c",
    "emoji-en-accuracy.csv": "f3e5f33174ccb3d6b78dd39bbc7abdebfe3b8b98dbf86bc390acc8befdeeeb2d",
    "emoji-en-accuracy.tex": "b32069829ef1923c25b346cb2bb2bb2fd5ebdb20ab73105e6b64a25a0a6f2c4e",
    "emoji-en-accuracy-heatmap.png": None,
    "emoji-en-accuracy-bars.png": None,
    "nli_v2-de-loss-18cefda7.md": "33f8c1a995738a2257d1188ee2113684c0c9842953a95587465a00d57621aeb9",
    "nli_v2-de-loss-18cefda7.csv": "0230d561b8777237c8a2c435919a4fb12689389e58294667cd2c9a869f7e14c3",
    "nli_v2-de-loss-18cefda7.tex": "a3ac63a003f02d5dda616ee90177c5c990c5c471559b4f858fcad614445e1011",
    "nli_v2-de-loss-18cefda7-heatmap.png": None,
    "nli_v2-de-loss-18cefda7-bars.png": None,
    "nli_v2-de-accuracy-50cb1923.md": "c9e4d1058062c29dafb40dc91e58c5838985aec61512c29c930e30db34b76cad",
    "nli_v2-de-accuracy-50cb1923.csv": "47ea791ce25a687b1977ed02cb0907ab17b9ad2d8cfdbcba88d17bf2622a0eb0",
    "nli_v2-de-accuracy-50cb1923.tex": "7847c312861a5916f1fbad0fc0eb5384ed4c5a4ecb22c26c45dd433ada841bdd",
    "nli_v2-de-accuracy-50cb1923-heatmap.png": None,
    "nli_v2-de-accuracy-50cb1923-bars.png": None,
    "nli_v2-de-loss-33972bd1.md": "0a57d7f74add625621dd34afc5ddd7b162a95d04de911b01feacddb75284aa48",
    "nli_v2-de-loss-33972bd1.csv": "87f565ec89f6d4a20688d0cad392464ddb264dd1b527a6371045772e5926a167",
    "nli_v2-de-loss-33972bd1.tex": "2b29b1a13adf304d17feb0ccc1d38a6df5d78c19b1869f735c9bdc05c1e65bb9",
    "nli_v2-de-loss-33972bd1-heatmap.png": None,
    "nli_v2-de-loss-33972bd1-bars.png": None,
    "nli_v2-de-accuracy-f5cf9bb2.md": "0e1f50da8b3e28955e2663f838cedd0347140173ab79fb88f4de4d549d1867b4",
    "nli_v2-de-accuracy-f5cf9bb2.csv": "c01632bfc1d33ee183c93de9e5dda7e502ce4e297202ccb3cc34e72ad078475f",
    "nli_v2-de-accuracy-f5cf9bb2.tex": "fc70814c16c421d2933ae86b25f9b61874691bad61e718348d386d568d387b0d",
    "nli_v2-de-accuracy-f5cf9bb2-heatmap.png": None,
    "nli_v2-de-accuracy-f5cf9bb2-bars.png": None,
    "results.csv": "2c134af87ebf32a34a4206ecba3ce1f85e8dd2c4ccaf33874466ae5665853131",
    "report.md": "a25ed1652b276d0da1ad3d4ea5634f43bda64403a250bb32cedc12dea7357523",
}


def test_full_report_is_unchanged(tmp_path):
    report = render_report(golden_rows(), tmp_path, config=CONFIG, notes=["note | one", "two"], title="Golden")
    assert _text(report.page) == (GOLDEN / "report.md").read_text(encoding="utf-8")
    assert list(_digests(report).items()) == list(FULL_FILES.items())


def test_selected_report_is_unchanged(tmp_path):
    report = render_report(
        golden_rows(),
        tmp_path,
        configurations=["SLP+TA", "TA", "TP"],
        targets=["sw", "en", "de"],
        metrics=["loss", "accuracy"],
    )
    assert list(_digests(report).items()) == list(SELECTED_FILES.items())
