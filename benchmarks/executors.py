"""The demo's matrix under the ``local``, ``processes`` and ``ray`` executors, side by side in one run, and each
executor's overhead per job.

Each executor runs the same matrix from scratch in its own output directory (a fresh store, no representation
reused) and the script checks that the three stores hold the same metrics. The overhead per job is measured
with probes, jobs that compute nothing: after one probe per worker (which starts the workers and loads the
model), the wall time of ``--probes`` more, divided by their number.

The default grid is the demo's, reduced so that three runs fit in minutes on a 2-core CPU: the languages
``en,sk``, the configurations TA, SLP+TA and LA+TA, and the demo's budgets (steps, and the LM head's cached
segments) times ``--scale`` 0.5. ``--full`` runs the demo's whole default matrix (6 languages, 15
configurations, the demo's budgets: about 40 minutes per executor on 2 CPU cores).

    PYTHONPATH=src python benchmarks/executors.py                 # the reduced grid, 2 workers
    PYTHONPATH=src python benchmarks/executors.py --full          # the demo's matrix
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from xlt.demo import DEFAULT_LANGUAGES, DEMO_CONFIGURATIONS, demo_config
from xlt.matrix import load_config, run_matrix
from xlt.matrix.executors import Probe, WorkerSpec, make_executor
from xlt.matrix.store import key_of, read_rows


def _scaled(spec: dict[str, Any], scale: float) -> dict[str, Any]:
    for section in ("language_training", "task_training", "lm_head"):
        train = spec[section]["train"]
        for key in ("steps", "eval_every", "checkpoint_every"):
            train[key] = max(1, round(train[key] * scale))
        train["warmup_steps"] = min(train["warmup_steps"], train["steps"] // 2)
    spec["lm_head"]["cached_segments"] = max(64, round(1536 * scale))
    return spec


def _options(name: str, workers: int) -> dict[str, Any]:
    if name == "ray":
        return {"num_cpus": workers, "cpus_per_job": 1}
    return {}


def run_one(name: str, base: dict[str, Any], out: Path, workers: int, reuse: bool) -> dict[str, Any]:
    """The matrix from scratch under ``name`` (or, with ``reuse``, the finished run already in ``out``)."""
    run_file = out / "status" / "run.json"
    finished = reuse and run_file.is_file() and json.loads(run_file.read_text()).get("finished")
    if not finished:
        shutil.rmtree(out, ignore_errors=True)
        spec = {**base, "output_dir": str(out), "executor": name, "executor_options": _options(name, workers)}
        spec["workers"] = 1 if name == "local" else workers
        spec["threads"] = workers if name == "local" else 1  # the same cores either way
        spec["progress"] = False
        run_matrix(load_config(spec), log=lambda m: print(f"  [{name}] {m}", file=sys.stderr), report=False)
    run = json.loads(run_file.read_text())
    wall = float(run["finished"]) - float(run["started"])
    jobs, busy = 0, 0.0
    for stage in (out / "status").glob("*.json"):
        if stage.name == "run.json":
            continue
        for job in json.loads(stage.read_text())["jobs"].values():
            jobs += 1
            busy += float(job.get("seconds") or 0.0)
    return {"wall": wall, "jobs": jobs, "busy": busy, "rows": read_rows(out)}


def overhead(name: str, model: str, workers: int, probes: int) -> tuple[float, float]:
    """(seconds until every worker has run its first probe, seconds per probe after that)."""
    spec = WorkerSpec(model, None, 1, {})
    executor = make_executor(
        name, _options(name, workers), 1 if name == "local" else workers, spec, None, lambda m: None
    )
    from xlt.loading import load_model

    here = load_model(model, workers) if name == "local" else None
    try:
        start = time.perf_counter()
        list(executor.run([Probe(f"warm-{i}") for i in range(workers)], here))  # type: ignore[arg-type]
        warm = time.perf_counter() - start
        start = time.perf_counter()
        list(executor.run([Probe(f"probe-{i}") for i in range(probes)], here))  # type: ignore[arg-type]
        return warm, (time.perf_counter() - start) / probes
    finally:
        executor.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--executors", default="local,processes,ray")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--languages", default="en,sk")
    parser.add_argument("--configurations", default="TA,SLP+TA,LA+TA")
    parser.add_argument("--scale", type=float, default=0.5, help="multiplies the demo's training budgets")
    parser.add_argument("--full", action="store_true", help="the demo's whole default matrix, its budgets")
    parser.add_argument("--probes", type=int, default=40)
    parser.add_argument("--out", type=Path, default=None, help="where the runs go (default: a temporary dir)")
    parser.add_argument("--reuse", action="store_true", help="keep the finished runs in --out (measure the rest)")
    args = parser.parse_args()
    names = args.executors.split(",")
    root = args.out or Path(tempfile.mkdtemp(prefix="xlt-executors-"))
    if args.full:
        languages, configurations, scale = list(DEFAULT_LANGUAGES), list(DEMO_CONFIGURATIONS), 1.0
    else:
        languages, configurations, scale = args.languages.split(","), args.configurations.split(","), args.scale
    base = demo_config(languages, root / "unused", None)
    base["configurations"] = configurations
    base = _scaled(base, scale)
    print(
        f"# executors: the demo's matrix ({len(languages)} languages: {', '.join(languages)}; "
        f"{len(configurations)} configurations; budgets x {scale:g})\n"
    )
    print(
        f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPU cores; "
        f"{args.workers} workers; python {platform.python_version()}\n"
    )
    results = {}
    for name in names:
        results[name] = run_one(name, base, root / name, args.workers, args.reuse)
    costs = {name: overhead(name, "e5", args.workers, args.probes) for name in names}
    first = results[names[0]]["wall"]
    print(
        "| executor | wall (s) | vs local | jobs | job time (s, summed) | start: workers + model (s) "
        "| overhead per job (ms) |"
    )
    print("|---|---|---|---|---|---|---|")
    for name in names:
        r, (warm, per) = results[name], costs[name]
        print(
            f"| {name} | {r['wall']:.1f} | {r['wall'] / first:.2f} | {r['jobs']} | {r['busy']:.1f} | {warm:.1f} "
            f"| {per * 1000:.1f} |"
        )
    print()
    for name in names[1:]:
        print(f"- {name} vs {names[0]}: {_agreement(results[names[0]]['rows'], results[name]['rows'])}")


def _agreement(ours: list[dict[str, Any]], theirs: list[dict[str, Any]]) -> str:
    """Whether two stores hold the same metrics; else how far apart (torch's CPU kernels reduce in an order that
    depends on the thread count, so jobs on different threads per job train to slightly different weights)."""
    a = {key_of(r): (r.get("metrics") or {}) for r in ours}
    b = {key_of(r): (r.get("metrics") or {}) for r in theirs}
    if a.keys() != b.keys():
        return f"different cells ({len(a)} vs {len(b)})"
    if a == b:
        return f"identical metrics in all {len(a)} cells"
    differ = {k: abs(float(a[k].get("accuracy", 0)) - float(b[k].get("accuracy", 0))) for k in a if a[k] != b[k]}
    worst = max(differ, key=differ.__getitem__)
    return (
        f"{len(differ)} of {len(a)} cells differ (threads per job differ); largest: {worst[3]} on {worst[2]}, "
        f"{100 * differ[worst]:.1f} accuracy points"
    )


if __name__ == "__main__":
    main()
