import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("WANDB_SILENT", "true")
os.environ.setdefault("WANDB_MODE", "offline")  # belt and braces: tests never reach a W&B server

from conf.schema import register  # noqa: E402

register()


@pytest.fixture
def compose_cfg():
    """Compose conf/config.yaml with overrides, as train.py would (without running anything)."""

    def _compose(*overrides: str, config_dir: Path = ROOT / "conf"):
        GlobalHydra.instance().clear()
        with initialize_config_dir(config_dir=str(config_dir), version_base="1.3"):
            return compose(config_name="config", overrides=list(overrides), return_hydra_config=False)

    yield _compose
    GlobalHydra.instance().clear()


def run_train(*args: str, run_dir: Path, timeout: float = 600, check: bool = True, env: dict | None = None):
    """Run train.py in a subprocess with logging off unless asked, output in run_dir."""
    cmd = [sys.executable, str(ROOT / "train.py"), *args, f"hydra.run.dir={run_dir}", "progress=false"]
    if not any(a.startswith("logger=") for a in args):
        cmd.append("logger=none")
    full_env = {**os.environ, "WANDB_DIR": str(run_dir.parent), **(env or {})}
    proc = subprocess.run(cmd, cwd=run_dir.parent, capture_output=True, text=True, timeout=timeout, env=full_env)
    if check and proc.returncode != 0:
        raise AssertionError(f"train.py failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return proc


def read_rows(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines() if line.strip()]


def eval_returns(run_dir: Path) -> list[tuple[int, float]]:
    return [(r["step"], r["eval/return_mean"]) for r in read_rows(run_dir) if "eval/return_mean" in r]
