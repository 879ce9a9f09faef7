"""The demo's matrix in small (English and Slovak, all 7 configurations, a few steps, one thread), printed as
one line per cell: its accuracy and the sha256 of the representations it used. Two checkouts or two machines
that print the same lines compute the same thing to the bit.

    python scripts/demo_digest.py OUTPUT_DIR          # OUTPUT_DIR: new or empty; rerunning it reuses the work
"""

from __future__ import annotations

import sys
from pathlib import Path

from xlt.demo import demo_config
from xlt.matrix import load_config, run_matrix

STEPS = {"lm_head": 6, "language_training": 4, "task_training": 12}


def main(output_dir: Path) -> None:
    spec = demo_config(["en", "sk"], output_dir, threads=1)  # one thread: no reduction order to vary
    spec["progress"] = False
    for section, steps in STEPS.items():
        spec[section]["train"].update(steps=steps, eval_every=steps // 2, checkpoint_every=steps // 2, warmup_steps=2)
    for row in run_matrix(load_config(spec), log=lambda _: None, report=False):
        reps = row.get("reps") or {}
        digests = " ".join((reps.get(role) or {}).get("sha256", "-")[:16] for role in ("language", "task"))
        accuracy = row["metrics"]["accuracy"] if row.get("status") == "ok" else float("nan")
        print(f"{row['target']}\t{row['configuration']}\t{accuracy:.6f}\t{digests}")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    main(Path(sys.argv[1]))
