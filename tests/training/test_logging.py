"""What a run reports: TensorBoard scalars, the progress bar (loss and throughput), evaluation lines via log."""

from __future__ import annotations

import pytest
import training_helpers as th

from xlt.training.corpora import CorpusConfig
from xlt.training.language import LanguageRun, train_language
from xlt.training.lm_objective import ObjectiveConfig


def test_tensorboard_scalars_progress_bar_and_log_lines(tmp_path, capsys):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    run = th.prompt_run(tmp_path, th.quick(steps=4, eval_every=2, log_every=1, tensorboard=True, progress=True))
    lines: list[str] = []
    train_language(th.model("gpt2"), run, log=lines.append)
    events = list((tmp_path / "run").rglob("events.out.tfevents.*"))
    assert len(events) == 1
    accumulator = EventAccumulator(str(events[0].parent))
    accumulator.Reload()
    tags = set(accumulator.Tags()["scalars"])
    assert {"train/loss", "train/lr", "eval/loss"} <= tags
    assert [e.step for e in accumulator.Scalars("train/loss")] == [1, 2, 3, 4]
    assert [e.step for e in accumulator.Scalars("eval/loss")] == [2, 4]
    lrs = [e.value for e in accumulator.Scalars("train/lr")]
    assert lrs == sorted(lrs, reverse=True) and lrs[-1] == 0.0  # linear decay to 0
    assert [line.split(":")[0] for line in lines] == ["step 2", "step 4"]
    err = capsys.readouterr().err
    assert "train" in err and "loss=" in err and "tok_s=" in err  # the progress bar, on stderr


def test_silent_runs_write_no_logs(tmp_path, capsys):
    run = LanguageRun(
        language="sk",
        kind="lora",
        corpus=CorpusConfig(files=[str(th.lm_corpus(tmp_path / "sk.txt"))], validation_fraction=0.05),
        output_dir=tmp_path / "run",
        objective=ObjectiveConfig(max_length=16),
        train=th.quick(steps=2, eval_every=1),
    )
    train_language(th.model("gpt2"), run, log=th.silent)
    captured = capsys.readouterr()
    assert "loss" not in captured.out and "loss" not in captured.err
    assert not list((tmp_path / "run").rglob("events.out.tfevents.*"))
