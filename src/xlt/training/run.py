"""What every run directory records: the resolved config, package versions and the git revision; and the
rule that an output directory holding a different run is refused, never overwritten."""

from __future__ import annotations

import json
import platform
import subprocess
from dataclasses import asdict, is_dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

from xlt.errors import XLTError

RUN_FILE = "run.json"


def _jsonable(value: Any) -> Any:
    if is_dataclass(value) and not isinstance(value, type):
        return {k: _jsonable(v) for k, v in asdict(value).items()}
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    return value


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


def claim_output_dir(output_dir: Path, config: Any, ignore: tuple[str, ...] = ()) -> bool:
    """Record the run in ``output_dir`` or check that it already holds this same run.

    Returns True when the directory already holds a finished run of this config. Keys in ``ignore`` (such as
    progress display) may differ between the runs.
    """
    resolved = _jsonable(config)
    path = Path(output_dir) / RUN_FILE
    if path.is_file():
        recorded = json.loads(path.read_text()).get("config", {})
        differ = sorted(
            k for k in set(recorded) | set(resolved) if k not in ignore and recorded.get(k) != resolved.get(k)
        )
        if differ:
            raise XLTError(
                f"{output_dir} holds a different run (its config differs in {', '.join(differ)}); "
                "choose another output_dir or delete that one"
            )
        return (Path(output_dir) / "result.json").is_file()
    if Path(output_dir).exists() and any(Path(output_dir).iterdir()):
        raise XLTError(f"{output_dir} is not empty and holds no xlt run; choose another output_dir")
    Path(output_dir).mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"config": resolved, "versions": versions(), "git_revision": git_revision()}, indent=2))
    return False


def write_result(output_dir: Path, result: dict[str, Any]) -> None:
    tmp = Path(output_dir) / ".result.json.tmp"
    tmp.write_text(json.dumps(_jsonable(result), indent=2))
    tmp.replace(Path(output_dir) / "result.json")
