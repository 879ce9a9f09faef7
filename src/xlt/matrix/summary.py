"""What a matrix says, in a few lines: which configuration wins on a set of targets, by how much over the
baselines, with what spread over seeds, and where.

The spread of a set's mean is taken over seeds (each seed's mean over the set's targets, then the sample
standard deviation of those means), and a margin between two configurations is paired by seed: what a reader
asks of "beats TA by more than the seeds' standard deviation"."""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class SetScore:
    """A configuration's mean over a set of targets: its mean and std over seeds, and the seeds' values."""

    configuration: str
    mean: float
    std: float
    by_seed: dict[Any, float]


def set_scores(rows: list[dict[str, Any]], metric: str, targets: list[str]) -> dict[str, SetScore]:
    """Each configuration's per-seed mean of ``metric`` over ``targets`` (only seeds with every target)."""
    values: dict[str, dict[Any, dict[str, float]]] = {}
    for row in rows:
        value = row.get("metrics", {}).get(metric)
        if row.get("status", "ok") == "ok" and row["target"] in targets and isinstance(value, int | float):
            values.setdefault(row["configuration"], {}).setdefault(row.get("seed"), {})[row["target"]] = float(value)
    out = {}
    for configuration, seeds in values.items():
        by_seed = {s: statistics.fmean(v.values()) for s, v in seeds.items() if set(v) == set(targets)}
        if by_seed:
            spread = statistics.stdev(by_seed.values()) if len(by_seed) > 1 else 0.0
            out[configuration] = SetScore(configuration, statistics.fmean(by_seed.values()), spread, by_seed)
    return out


def paired_margin(a: SetScore, b: SetScore) -> tuple[float, float, int]:
    """``a - b`` over the seeds both have: the mean difference, its sample std and the number of seeds."""
    seeds = [s for s in a.by_seed if s in b.by_seed]
    diffs = [a.by_seed[s] - b.by_seed[s] for s in seeds]
    if not diffs:
        return float("nan"), float("nan"), 0
    return statistics.fmean(diffs), statistics.stdev(diffs) if len(diffs) > 1 else 0.0, len(diffs)


def summary_lines(
    rows: list[dict[str, Any]],
    metric: str,
    targets: list[str],
    label: str,
    baselines: list[str],
    uses_language: set[str],
) -> list[str]:
    """The summary of ``rows`` on the ``targets`` set (called ``label``): the winner, the best configuration
    with a language representation, and each against the ``baselines`` (percent points for fractions)."""
    scores = set_scores(rows, metric, targets)
    if not scores:
        return [f"{label}: no configuration was evaluated on all of {', '.join(targets)}"]
    n = max(len(s.by_seed) for s in scores.values())
    points = 100.0 if all(0.0 <= s.mean <= 1.0 for s in scores.values()) else 1.0

    def show(score: SetScore) -> str:
        spread = f" ± {score.std * points:.1f}" if len(score.by_seed) > 1 else ""
        return f"{score.configuration} {score.mean * points:.1f}{spread}"

    ranked = sorted(scores.values(), key=lambda s: -s.mean)
    lines = [
        f"{label} ({', '.join(targets)}), {metric}, {n} seed(s): " + ", ".join(show(s) for s in ranked),
    ]
    with_language = [s.configuration for s in ranked if s.configuration in uses_language]
    for contender in [scores[c] for c in dict.fromkeys([ranked[0].configuration, *with_language[:1]])]:
        for name in baselines:
            if name not in scores or name == contender.configuration:
                continue
            mean, std, seeds = paired_margin(contender, scores[name])
            if seeds < 2:
                lines.append(
                    f"  {contender.configuration} - {name}: {mean * points:+.1f} points (one seed: no spread to "
                    "compare it with; run more seeds)"
                )
                continue
            spread = max(contender.std, scores[name].std)
            verdict = "more than" if mean > spread else "not more than"
            lines.append(
                f"  {contender.configuration} - {name}: {mean * points:+.1f} points (paired over {seeds} seeds, std "
                f"{std * points:.1f}); {verdict} the seeds' std ({spread * points:.1f})"
            )
    return lines
