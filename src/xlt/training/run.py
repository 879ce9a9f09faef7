"""What every run directory records: the resolved config, package versions and the git revision; and the
rule that an output directory holding a different run is refused, never overwritten."""

from __future__ import annotations

import fcntl
import json
import os
import platform
import subprocess
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from importlib import metadata
from pathlib import Path
from typing import Any

from xlt.digest import digest
from xlt.errors import XLTError
from xlt.formats.atomic import atomic_write_text, clear_leftovers, contents, make_dir, owns
from xlt.records import differing_keys, flat, jsonable, named, without_fields

RUN_FILE = "run.json"


def versions() -> dict[str, str | None]:
    out: dict[str, str | None] = {"python": platform.python_version()}
    for name in ("xlt", "torch", "transformers", "accelerate", "safetensors", "datasets", "peft"):
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def git_revision() -> str | None:
    here = Path(__file__).resolve().parent
    try:
        result = subprocess.run(
            ["git", "-C", str(here), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    if result.returncode != 0:
        return None
    return result.stdout.strip() or None


# Display, logging and execution options of ``TrainConfig``: they change nothing in the trained result (compile
# changes float rounding only), so a rerun or a resumption of the same run may change them, and a run, a rep
# store's key or a matrix's recipe made before one of them existed is still the same.
COSMETIC = ("progress", "tensorboard", "wandb", "log_every", "compile")


def processes() -> tuple[bool, Callable[[], None]]:
    """``(is_main_process, wait_for_everyone)`` of this launch: a plain process is the main one and waits for no
    one; under ``accelerate launch`` / ``torchrun`` the run directory is written by the main process only."""
    from accelerate.utils import get_int_from_env

    if get_int_from_env(["WORLD_SIZE", "PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "MV2_COMM_WORLD_SIZE"], 1) <= 1:
        return True, lambda: None
    import torch
    from accelerate import PartialState

    state = PartialState(cpu=not torch.cuda.is_available())
    return state.is_main_process, state.wait_for_everyone


# Where a run writes is not what it computes: a run directory moved elsewhere is the same run.
LOCATION = ("output_dir",)
# Fields naming input files or directories: a run records their content (sha256), so that the same data
# elsewhere is the same run and changed data under the same path is a different one.
INPUT_KEYS = ("train_file", "dev_file", "files", "lm_head", "pairs")


def _ignored(key: str, ignore: tuple[str, ...]) -> bool:
    parts = key.split(".")
    return (
        key in ignore
        or parts[-1] in ignore
        or parts[-1] in LOCATION
        or (parts[-2:-1] == ["train"] and parts[-1] in COSMETIC)
    )


def _differences(record: dict[str, Any], resolved: dict[str, Any], ignore: tuple[str, ...]) -> list[str]:
    """The keys where the recorded run and the wanted one differ, by the content of their inputs."""
    if "content" in record:
        recorded, wanted = flat(record["content"]), flat(content(resolved))
    else:  # recorded before contents were: where its inputs lay is no longer compared (the matrix compares
        # their content), so that the same run found under another path is reused
        recorded = without_fields(flat(record.get("config", {})), INPUT_KEYS)
        wanted = without_fields(flat(resolved), INPUT_KEYS)
    return differing_keys(recorded, wanted, lambda key: _ignored(key, ignore))


def content(config: Any) -> Any:
    """``config`` with every input path (``INPUT_KEYS``) replaced by the sha256 of what it names, where it exists."""
    if isinstance(config, dict):
        return {k: _content_of(v) if k in INPUT_KEYS else content(v) for k, v in config.items()}
    if isinstance(config, list):
        return [content(v) for v in config]
    return config


def _content_of(value: Any) -> Any:
    if isinstance(value, list):
        return [_content_of(v) for v in value]
    if isinstance(value, str) and Path(value).exists():
        return {"sha256": digest(Path(value))}
    return value


def _claim(output_dir: Path, resolved: dict[str, Any], ignore: tuple[str, ...], write: bool) -> bool:
    path = output_dir / RUN_FILE
    if output_dir.exists() and not output_dir.is_dir():
        raise XLTError(f"output_dir {output_dir} is a file, not a directory; choose a directory path")
    # A run killed while claiming or saving leaves temporaries: they are no run, and no reason to refuse one.
    remaining = clear_leftovers(output_dir) if write else contents(output_dir)
    if path.is_file() and not _is_record(path):
        raise XLTError(f"{output_dir} holds a run.json that is not xlt's; choose another output_dir")
    if path.is_file():
        differ = _differences(_read_record(path), resolved, ignore)
        if not differ:
            return (output_dir / "result.json").is_file()
        # A run that was claimed but never started (nothing but run.json) holds no work: a new run may take it.
        if not (write and owns(output_dir) and {p.name for p in remaining} == {RUN_FILE}):
            raise XLTError(
                f"{output_dir} holds a different run (its config differs in {named(differ)}); "
                "choose another output_dir or delete that one"
            )
    elif remaining:
        raise XLTError(f"{output_dir} is not empty and holds no xlt run; choose another output_dir")
    elif not write:
        raise XLTError(f"{output_dir} was not claimed by the main process; see its error")
    make_dir(output_dir, adopt=True)
    record = {
        "config": resolved,
        "content": content(resolved),
        "versions": versions(),
        "git_revision": git_revision(),
    }
    atomic_write_text(path, json.dumps(record, indent=2))
    return False


def _is_record(path: Path) -> bool:
    """Whether ``path`` is a run record xlt wrote (a user's own run.json is not one)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError, OSError):
        return owns(path.parent)  # xlt's directory: a damaged record of xlt's, reported as such below
    return isinstance(data, dict) and "config" in data and "versions" in data


def _read_record(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise XLTError(
            f"{path} is not a readable run record ({exc}); delete that run directory to start over"
        ) from None
    if not isinstance(data, dict):
        raise XLTError(f"{path} is not a run record; delete that run directory to start over")
    return data


def claim_output_dir(output_dir: Path, config: Any, ignore: tuple[str, ...] = ()) -> bool:
    """Record the run in ``output_dir`` or check that it already holds this same run.

    Returns True when the directory already holds a finished run of this config. Keys in ``ignore`` (dotted,
    such as ``run.train.seed``, or a field name) and the display options in ``COSMETIC`` may differ between the
    runs. Under several processes the main one claims the directory and the others then check it.
    """
    resolved = json.loads(json.dumps(jsonable(config)))
    output_dir = Path(output_dir)
    main, wait = processes()
    if not main:
        wait()
        return _claim(output_dir, resolved, ignore, write=False)
    try:
        return _claim(output_dir, resolved, ignore, write=True)
    finally:
        wait()


@contextmanager
def run_lock(output_dir: Path, log: Callable[[str], None] = print) -> Iterator[None]:
    """Hold ``output_dir`` for one process from its claim to its finish, so that runs started side by side on the
    same directory (matrices sharing a rep store) train it once: the second waits, then finds it finished (or, if
    the first was killed, resumes from its checkpoints).

    The lock is the directory's own (flock on it, no file written), released by the system when its holder dies.
    A directory that is not there yet is created (claiming it would); an existing one is only read, so a
    directory that the claim then refuses is left as it was. Under several processes the main one holds it."""
    output_dir = Path(output_dir)
    main, _ = processes()
    if not main or (output_dir.exists() and not output_dir.is_dir()):
        yield  # the claim refuses a file; the other processes follow the main one
        return
    make_dir(output_dir)
    handle = os.open(output_dir, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            log(f"{output_dir}: another process is training this run; waiting for it to finish")
            fcntl.flock(handle, fcntl.LOCK_EX)
        except OSError:
            pass  # a file system without locks: runs side by side are unprotected there, as they were before
        yield
    finally:
        os.close(handle)  # closing releases the lock


def finish(output_dir: Path, save: Callable[[], Any], result: dict[str, Any]) -> None:
    """Save the trained weights (one writer under several processes), then record the run as finished."""
    main, wait = processes()
    if main:
        save()
    wait()
    write_result(output_dir, result)


def write_result(output_dir: Path, result: dict[str, Any]) -> None:
    main, wait = processes()
    try:
        if main:
            atomic_write_text(Path(output_dir) / "result.json", json.dumps(jsonable(result), indent=2))
    finally:
        wait()
