"""Multiruns through Hydra launchers: one W&B run per job, a report at the end, failed jobs listed and rerun."""

import json
import os
import subprocess
import sys

import pytest

from tests.conftest import ROOT

SHORT = ["total_steps=400", "eval_every=200", "eval_episodes=1", "progress=false"]


def sweep(tmp_path, *args, env=None, timeout=600):
    cmd = [sys.executable, str(ROOT / "train.py"), "-m", *SHORT, *args, f"hydra.sweep.dir={tmp_path / 'sweep'}"]
    full_env = {**os.environ, "WANDB_DIR": str(tmp_path), "PYTHONPATH": str(ROOT), **(env or {})}
    return subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=timeout, env=full_env)


@pytest.mark.parametrize("launcher", ["joblib", "submitit_local"])
def test_two_tasks_two_seeds_sweep(tmp_path, launcher):
    extra = ["hydra.launcher.n_jobs=2"] if launcher == "joblib" else ["hydra.launcher.timeout_min=10"]
    proc = sweep(tmp_path, "env=cartpole,acrobot", "seed=0,1", "logger=wandb", f"hydra/launcher={launcher}", *extra)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-3000:]
    jobs = sorted((tmp_path / "sweep" / "dqn").glob("*/seed*"))
    assert [f"{j.parent.name}/{j.name}" for j in jobs] == ["acrobot/seed0", "acrobot/seed1", "cartpole/seed0", "cartpole/seed1"]
    meta = [json.loads((j / "wandb_run.json").read_text()) for j in jobs]
    assert len({m["id"] for m in meta}) == 4
    assert [m["group"] for m in meta] == ["dqn-acrobot", "dqn-acrobot", "dqn-cartpole", "dqn-cartpole"]
    assert [m["name"] for m in meta] == ["seed0", "seed1", "seed0", "seed1"]
    assert all(list((j / "wandb").glob("offline-run-*")) and (j / "done").exists() for j in jobs)
    report = (tmp_path / "sweep" / "report" / "report.md").read_text()
    assert "| CartPole-v1 | dqn | 2 (0, 1) |" in report and "| Acrobot-v1 | dqn | 2 (0, 1) |" in report
    assert (tmp_path / "sweep" / "report" / "CartPole-v1.png").exists()


def test_failed_job_is_listed_and_only_it_reruns(tmp_path):
    args = ["env=gym", "env.id=CartPole-v1,tests.crashing_env:NaNRewardCartPole-v0", "logger=none",
            "total_steps=2000", "eval_every=1000"]
    first = sweep(tmp_path, *args)
    out = first.stdout + first.stderr
    assert "1 jobs finished, 1 failed or unfinished" in out, out[-3000:]
    failed = [line for line in out.splitlines() if "failed: " in line]
    assert len(failed) == 1 and "NaNRewardCartPole-v0" in failed[0] and "train.log" in failed[0]
    second = sweep(tmp_path, *args)
    out2 = second.stdout + second.stderr
    assert "skipping finished job" in out2 and out2.count("run dir:") == 1  # only the failed job ran again


def test_sweep_preset_sets_multirun(compose_cfg):
    cfg = compose_cfg("+sweep=classic", "algo=dqn", "env=cartpole")
    assert cfg.logger.group == "classic"
