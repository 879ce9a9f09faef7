"""The transfer-matrix report: tables (means, stds, best marks, like-with-like averages), renderers, plots, page."""

from __future__ import annotations

import csv
import io
import statistics

import matplotlib.image
import pytest

from xlt.errors import XLTError
from xlt.matrix.report import (
    Report,
    Table,
    bar_plot,
    build_tables,
    heatmap,
    render_report,
    to_csv,
    to_latex,
    to_markdown,
)

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
CONFIGS = ["zero-shot", "TA", "LA+TA", "SLP+TA"]
TARGETS = ["en", "de", "sk", "sw"]
# accuracy per (target, configuration) for seed 42; seed 43 adds 0.02 everywhere
BASE = {
    "en": [0.50, 0.80, 0.78, 0.79],
    "de": [0.40, 0.70, 0.72, 0.69],
    "sk": [0.30, 0.60, 0.58, 0.65],
    "sw": [0.20, 0.50, 0.55, 0.52],
}
MISSING_CELL = ("sw", "LA+TA")


def make_rows(recipe: str = "r1") -> list[dict]:
    rows = []
    for target, values in BASE.items():
        for configuration, value in zip(CONFIGS, values, strict=True):
            if (target, configuration) == MISSING_CELL:
                continue
            for seed, shift in ((42, 0.0), (43, 0.02)):
                rows.append(
                    {
                        "task": "emoji",
                        "source": "en",
                        "target": target,
                        "configuration": configuration,
                        "seed": seed,
                        "metrics": {"accuracy": value + shift, "macro_f1": value - 0.1},
                        "examples": 460,
                        "time_s": {"train": 12.3, "eval": 1.2},
                        "reps": {"task": "emoji/bottleneck"},
                        "recipe": recipe,
                    }
                )
    return rows


@pytest.fixture
def table() -> Table:
    (only,) = build_tables(make_rows())
    return only


def test_table_shape_and_order(table):
    assert (table.task, table.source, table.metric) == ("emoji", "en", "accuracy")
    assert table.targets == ["de", "en", "sk", "sw"]  # sources first, then focus languages
    assert table.configurations == CONFIGS  # the paper's order
    assert MISSING_CELL not in table.mean


def test_mean_and_sample_std(table):
    assert table.mean[("sk", "SLP+TA")] == pytest.approx(0.66)
    assert table.std[("sk", "SLP+TA")] == pytest.approx(statistics.stdev([0.65, 0.67]))
    assert table.seeds[("sk", "SLP+TA")] == 2
    (single,) = build_tables([r for r in make_rows() if r["seed"] == 42])
    assert single.std[("sk", "SLP+TA")] == 0.0 and single.seeds[("sk", "SLP+TA")] == 1


def test_averages_compare_like_with_like(table):
    averages = dict(table.averages)
    assert list(averages) == ["all targets (4)", "source languages (2)", "focus languages (2)"]
    # LA+TA lacks sw: no average over a set holding sw, but the source-language average is there
    assert "LA+TA" not in averages["all targets (4)"]
    assert "LA+TA" not in averages["focus languages (2)"]
    assert averages["source languages (2)"]["LA+TA"] == pytest.approx((0.79 + 0.73) / 2)
    assert averages["all targets (4)"]["TA"] == pytest.approx((0.81 + 0.71 + 0.61 + 0.51) / 4)
    assert table.average_targets["focus languages (2)"] == ["sk", "sw"]


def test_markdown_marks_best_and_missing(table):
    text = to_markdown(table)
    lines = text.splitlines()
    header = next(line for line in lines if line.startswith("| target"))
    assert header == "| target | zero-shot | TA | LA+TA | SLP+TA |"
    sk = next(line for line in lines if line.startswith("| sk "))
    assert "**66.0 ± 1.4**" in sk and "61.0 ± 1.4" in sk and "**61.0" not in sk
    sw = next(line for line in lines if line.startswith("| sw "))
    assert "| – |" in sw and "**53.0 ± 1.4**" in sw
    all_row = next(line for line in lines if "all targets (4)" in line)
    assert all_row == "| *all targets (4)* | 36.0 | 66.0 | – | **67.2** |"
    source_row = next(line for line in lines if "source languages" in line)
    assert "**76.0**" in source_row  # LA+TA wins over the sources


def test_ties_are_all_marked():
    rows = [
        {"task": "t", "source": "en", "target": "sk", "configuration": c, "metrics": {"accuracy": 0.5}}
        for c in ("TA", "TP")
    ]
    (table,) = build_tables(rows)
    assert "| sk | **50.0** | **50.0** |" in to_markdown(table)


def test_lower_is_better_metrics():
    rows = [
        {"task": "t", "source": "en", "target": "sk", "configuration": c, "metrics": {"loss": v}}
        for c, v in (("TA", 2.5), ("TP", 1.25))
    ]
    (table,) = build_tables(rows, metric="loss")
    assert not table.percent and "| sk | 2.50 | **1.25** |" in to_markdown(table)


def test_single_seed_has_no_plus_minus():
    (single,) = build_tables([r for r in make_rows() if r["seed"] == 42])
    assert "±" not in to_markdown(single).split("\n", 2)[2]
    assert "**65.0**" in to_markdown(single)


def test_csv_parses_back(table):
    records = list(csv.DictReader(io.StringIO(to_csv(table))))
    cells = [r for r in records if r["kind"] == "cell"]
    assert len(cells) == len(TARGETS) * len(CONFIGS)
    sk = next(r for r in cells if r["target"] == "sk" and r["configuration"] == "SLP+TA")
    assert float(sk["mean"]) == pytest.approx(0.66) and int(sk["n_seeds"]) == 2 and sk["best"] == "1"
    assert float(sk["std"]) == pytest.approx(statistics.stdev([0.65, 0.67]))
    gap = next(r for r in cells if (r["target"], r["configuration"]) == MISSING_CELL)
    assert gap["mean"] == "" and gap["n_seeds"] == "0"
    averages = [r for r in records if r["kind"] == "average"]
    assert len(averages) == 3 * len(CONFIGS)
    focus_ta = next(r for r in averages if r["target"].startswith("focus") and r["configuration"] == "TA")
    assert float(focus_ta["mean"]) == pytest.approx(0.56) and focus_ta["n_targets"] == "2"


def test_latex_booktabs_bold_and_escaping():
    rows = make_rows()
    for row in rows:
        if row["configuration"] == "zero-shot":
            row["configuration"] = "my_config 100%"
    (table,) = build_tables(rows)
    text = to_latex(table)
    assert r"\toprule" in text and r"\midrule" in text and r"\bottomrule" in text
    assert r"\begin{tabular}{lrrrr}" in text
    assert r"& LA+TA &" in text  # '+' needs no escape
    assert r"my\_config 100\%" in text and "my_config" not in text
    sk = next(line for line in text.splitlines() if line.startswith("sk &"))
    assert r"\textbf{66.0 $\pm$ 1.4}" in sk
    sw = next(line for line in text.splitlines() if line.startswith("sw &"))
    assert " -- " in sw


def test_plots_are_pngs(table, tmp_path):
    for plot, name in ((heatmap, "h.png"), (bar_plot, "b.png")):
        path = plot(table, tmp_path / name)
        assert path == tmp_path / name
        assert path.read_bytes()[:8] == PNG_SIGNATURE
        image = matplotlib.image.imread(path)
        height, width = image.shape[:2]
        assert 300 < width < 3000 and 250 < height < 3000
    assert not list(tmp_path.glob(".*"))  # no temporary files left


def test_render_report(tmp_path):
    config = {"task": "emoji", "sources": ["en"], "seeds": [42, 43]}
    report = render_report(make_rows(), tmp_path / "out", config=config, notes=["synthetic rows"])
    assert isinstance(report, Report) and report.page == tmp_path / "out" / "report.md"
    assert [(t.metric) for t in report.tables] == ["accuracy", "macro_f1"]
    assert report.files[-1] == report.page and all(f.exists() for f in report.files)
    names = {f.name for f in report.files}
    for suffix in (".md", ".csv", ".tex", "-heatmap.png", "-bars.png"):
        assert f"emoji-en-accuracy{suffix}" in names and f"emoji-en-macro_f1{suffix}" in names
    page = report.page.read_text()
    assert page.startswith("# Cross-lingual transfer\n") and "UTC" in page
    assert "- synthetic rows" in page
    assert "| target | zero-shot | TA | LA+TA | SLP+TA |" in page
    assert "](emoji-en-accuracy-heatmap.png)" in page and "](emoji-en-accuracy-bars.png)" in page
    assert "[CSV](emoji-en-accuracy.csv)" in page and "[LaTeX](emoji-en-accuracy.tex)" in page
    assert "```yaml\ntask: emoji\nsources:\n- en\nseeds:\n- 42\n- 43\n```" in page
    assert page.index("### accuracy") < page.index("### macro_f1")


def test_results_csv_has_every_row(tmp_path):
    rows = make_rows()
    render_report(rows, tmp_path, metrics=["accuracy"], config="already: yaml\n")
    records = list(csv.DictReader((tmp_path / "results.csv").open()))
    assert len(records) == len(rows)
    assert list(records[0]) == [
        "task", "source", "target", "configuration", "seed", "recipe",
        "accuracy", "macro_f1", "examples", "time_eval_s", "time_train_s",
    ]  # fmt: skip
    assert [(r["target"], r["configuration"], r["seed"]) for r in records[:3]] == [
        ("de", "zero-shot", "42"),
        ("de", "zero-shot", "43"),
        ("de", "TA", "42"),
    ]
    assert "```yaml\nalready: yaml\n```" in (tmp_path / "report.md").read_text()


def test_selection_and_order_arguments():
    (table,) = build_tables(make_rows(), configurations=["SLP+TA", "TA", "TP"], targets=["sw", "sk"])
    assert table.configurations == ["SLP+TA", "TA", "TP"] and table.targets == ["sw", "sk"]
    assert not any(c == "TP" for _, c in table.mean)  # requested but never run: a column of dashes
    assert dict(table.averages)["all targets (2)"] == pytest.approx({"SLP+TA": 0.595, "TA": 0.56})


def test_unknown_languages_and_configurations_are_other():
    rows = make_rows()
    for row in rows:
        if row["target"] == "sw":
            row["target"] = "xx"
        if row["configuration"] == "zero-shot":
            row["configuration"] = "A-custom"
    (table,) = build_tables(rows)
    assert table.targets == ["de", "en", "sk", "xx"]
    assert table.configurations == ["TA", "LA+TA", "SLP+TA", "A-custom"]
    assert [label for label, _ in table.averages][-1] == "other languages (1)"


def test_refuses_empty_rows(tmp_path):
    with pytest.raises(XLTError, match="no results to report"):
        render_report([], tmp_path)
    with pytest.raises(XLTError, match="no results to report"):
        build_tables([])


def test_refuses_mixed_recipes(tmp_path):
    rows = make_rows("r1") + make_rows("r2")[:3]
    with pytest.raises(XLTError, match="2 different recipes"):
        render_report(rows, tmp_path / "out")
    assert not (tmp_path / "out").exists()
    unlabelled = [{k: v for k, v in row.items() if k != "recipe"} for row in make_rows()]
    assert build_tables(unlabelled)  # rows without a recipe are fine


def test_refuses_duplicate_seeds_and_unknown_metric():
    rows = make_rows()
    with pytest.raises(XLTError, match="deduplicate"):
        build_tables([*rows, rows[0]])
    with pytest.raises(XLTError, match="metrics found: accuracy, macro_f1"):
        build_tables(rows, metric="bleu")


def test_odd_names_make_safe_files(tmp_path):
    rows = [{**row, "task": "nli/xnli v2"} for row in make_rows()]
    report = render_report(rows, tmp_path, metrics=["accuracy"])
    assert (tmp_path / "nli_xnli_v2-en-accuracy.csv").exists()
    assert all(f.parent == tmp_path for f in report.files)
