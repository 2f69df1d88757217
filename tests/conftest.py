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

from rlbase.conf.schema import register  # noqa: E402

register()


def pytest_configure(config):
    """Under pytest-xdist (``make test`` runs ``-n auto``), each worker owns its share of the cores: pinned to them,
    so the runs it starts (in-process or as subprocesses) pick as many torch threads as it has cores, and two
    workers never fight over one core (two-thread runs that share cores run several times slower)."""
    worker, count = os.environ.get("PYTEST_XDIST_WORKER"), int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    if worker is None or count < 2 or not hasattr(os, "sched_setaffinity"):
        return
    cores = sorted(os.sched_getaffinity(0))
    if len(cores) >= count:
        mine = cores[int(worker.removeprefix("gw")) % count::count]
        os.sched_setaffinity(0, mine)
        import torch

        torch.set_num_threads(len(mine))


def pytest_collection_modifyitems(config, items):
    """The long tests first: with tests spread over workers, a long one left for the end would run alone."""
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)


@pytest.fixture
def compose_cfg():
    """Compose conf/config.yaml with overrides, as train.py would (without running anything)."""

    def _compose(*overrides: str, config_dir: Path = ROOT / "rlbase" / "conf"):
        GlobalHydra.instance().clear()
        with initialize_config_dir(config_dir=str(config_dir), version_base="1.3"):
            return compose(config_name="config", overrides=list(overrides), return_hydra_config=False)

    yield _compose
    GlobalHydra.instance().clear()


# Runs go through train.cli in the pytest process (what `python train.py` runs, without a new interpreter's
# start-up of torch, Hydra, gymnasium and MuJoCo for each): RLBASE_TEST_SUBPROCESS=1 runs each in its own process.
IN_PROCESS = os.environ.get("RLBASE_TEST_SUBPROCESS", "") in ("", "0")


def _in_process(argv: list[str], cwd: Path, env: dict) -> subprocess.CompletedProcess:
    import contextlib
    import io

    from rlbase import cli as train

    crashing = sys.modules.get("tests.crashing_env")
    if crashing is not None:  # its envs count steps per process: each run starts as a fresh process would
        crashing.CrashingCartPole.steps_in_process = crashing.NaNRewardCartPole.steps_in_process = 0
    out, err = io.StringIO(), io.StringIO()
    saved_env, saved_cwd = dict(os.environ), os.getcwd()
    os.environ.update(env)
    os.chdir(cwd)
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                code = train.cli(argv)
            except Exception:  # what an uncaught exception does to the process: a traceback, exit code 1
                import traceback

                traceback.print_exc()
                code = 1
    finally:
        os.chdir(saved_cwd)
        os.environ.clear()
        os.environ.update(saved_env)
    return subprocess.CompletedProcess(["train.py", *argv], code, out.getvalue(), err.getvalue())


def run_train(*args: str, run_dir: Path, timeout: float = 600, check: bool = True, env: dict | None = None,
              own_process: bool = False):
    """Run train.py with logging off unless asked, output in run_dir (in this process, see IN_PROCESS, unless
    ``own_process``: for tests that read what another process writes, such as W&B's service, after the run)."""
    argv = [*args, f"hydra.run.dir={run_dir}", "progress=false"]
    if not any(a.startswith("logger=") for a in args):
        argv.append("logger=none")
    extra = {"WANDB_DIR": str(run_dir.parent), **(env or {})}
    if IN_PROCESS and not own_process:
        proc = _in_process(argv, run_dir.parent, extra)
    else:
        proc = subprocess.run([sys.executable, str(ROOT / "train.py"), *argv], cwd=run_dir.parent, capture_output=True,
                              text=True, timeout=timeout, env={**os.environ, **extra})
    if check and proc.returncode != 0:
        raise AssertionError(f"train.py failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return proc


def read_rows(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines() if line.strip()]


def eval_returns(run_dir: Path) -> list[tuple[int, float]]:
    return [(r["step"], r["eval/return_mean"]) for r in read_rows(run_dir) if "eval/return_mean" in r]


def every_agent(specs: dict, seed: int):
    """(name, kind, spec, agent) for every registered algorithm and each action kind it supports ("discrete",
    "continuous": the keys of ``specs``), untrained, on the CPU, its generators from ``seed``."""
    import torch

    from rlbase import algos
    from rlbase.core import seeding

    for name in algos.ALGOS:
        module = algos.get(name)
        for kind in module.ACTION_SPACES:
            yield name, kind, specs[kind], module.Agent(module.Config(), specs[kind], torch.device("cpu"),
                                                        seeding.AgentRandom(seed))
