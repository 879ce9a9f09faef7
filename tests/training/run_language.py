"""``python run_language.py SPEC_JSON``: language runs (one spec, or a list run in turn; see
training_helpers.language_run) in their own process, for the kill-and-resume and DDP tests. ``sleep`` in a spec
slows every micro-batch down (so that a test can kill the run between two checkpoints); ``crash_at`` raises in
the n-th micro-batch (a simulated failure), after which the run is started again in the same process."""

import json
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).parents[1]))

import training_helpers as th

import xlt.training.language as language_module
from xlt.training.language import train_language


def slowed(spec):
    real = language_module.train
    calls = [0]

    def train(**kwargs):
        loss_fn = kwargs["loss_fn"]

        def loss(module, batch):
            calls[0] += 1
            if spec.get("crash_at") and calls[0] == spec["crash_at"]:
                raise RuntimeError("simulated crash")
            time.sleep(spec.get("sleep", 0.0))
            return loss_fn(module, batch)

        return real(**{**kwargs, "loss_fn": loss})

    return train


def run(spec: dict) -> None:
    language_module.train = slowed(spec)
    for attempt in range(2 if spec.get("crash_at") else 1):
        model, language_run = th.language_run(spec)
        try:
            train_language(model, language_run, log=lambda line: print(line, flush=True))
        except RuntimeError as exc:
            if attempt or "simulated crash" not in str(exc):
                raise
            print("crashed; running again", flush=True)
            spec = {**spec, "crash_at": None}
            language_module.train = slowed(spec)


def main() -> None:
    specs = json.loads(sys.argv[1])  # one spec, or a list run one after the other
    torch.set_num_threads(1)
    for spec in specs if isinstance(specs, list) else [specs]:
        run(spec)
    print("finished", flush=True)


if __name__ == "__main__":
    main()
