"""Faults: a non-finite reward stops the run naming the step, the quantity and the last good checkpoint."""

import os
import re
import signal
import subprocess
import sys
import time

import pytest
import torch

from rlbase.core import checkpoint
from rlbase.loops.runner import _first_non_finite
from tests.conftest import ROOT, read_rows, run_train


@pytest.mark.parametrize("algo", ["dqn", "a2c"])
def test_nan_reward_stops_run_and_keeps_good_checkpoint(tmp_path, algo):
    run_dir = tmp_path / "run"
    env = {"PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    proc = run_train(f"algo={algo}", "env=gym", "env.id=tests.crashing_env:NaNRewardCartPole-v0", "total_steps=5000",
                     "checkpoint_every=1000", "eval_every=1000", "eval_episodes=1", run_dir=run_dir, check=False, env=env)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 3, out[-2000:]
    assert re.search(r"non-finite reward at env step 1[0-4]\d\d;", out), out[-1000:]  # eval steps count too
    state = checkpoint.load(run_dir)
    # periodic checkpoints wait for the episode's end (exact resume), so the step is 1000 or a little after
    assert 1000 <= state["step"] < 1500 and _first_non_finite(state["agent"]) is None
    assert f"last good checkpoint is {run_dir / 'checkpoint.pt'} (step {state['step']})" in out
    assert not (run_dir / "done").exists()


def test_first_non_finite_names_the_tensor():
    tree = {"q": {"w": torch.ones(2), "b": torch.tensor([1.0, float("inf")])}, "n": 3}
    assert _first_non_finite(tree) == "q.b"
    assert _first_non_finite({"q": {"w": torch.ones(2)}}) is None


def test_full_disk_keeps_previous_checkpoint(tmp_path, monkeypatch):
    checkpoint.save(tmp_path, {"step": 1, "w": torch.ones(3)})
    real_open = open

    def full_disk_open(path, mode="r", *args, **kwargs):
        if str(path).endswith(".tmp") and "w" in mode:
            raise OSError(28, "No space left on device")
        return real_open(path, mode, *args, **kwargs)

    monkeypatch.setattr("builtins.open", full_disk_open)
    with pytest.raises(checkpoint.CheckpointError) as info:
        checkpoint.save(tmp_path, {"step": 2, "w": torch.zeros(3)})
    monkeypatch.undo()
    msg = str(info.value)
    assert "No space left on device" in msg and str(tmp_path) in msg and "\n" not in msg
    assert checkpoint.load(tmp_path)["step"] == 1
    assert not list(tmp_path.glob("*.tmp"))


def test_online_wandb_without_key_fails_fast(tmp_path):
    env = {"WANDB_API_KEY": "", "HOME": str(tmp_path), "WANDB_MODE": ""}
    start = time.time()
    proc = run_train("total_steps=300", "logger=wandb", "logger.mode=online", run_dir=tmp_path / "run", check=False,
                     env=env, timeout=120)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 2 and "needs a W&B API key" in out
    assert not (tmp_path / "run").exists()
    assert time.time() - start < 60


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGUSR1, signal.SIGUSR2])
def test_signal_checkpoints_finishes_wandb_and_exits_with_its_code(tmp_path, sig):
    run_dir = tmp_path / "run"
    cmd = [sys.executable, str(ROOT / "train.py"), "total_steps=40000", "eval_every=1000", "eval_episodes=1",
           "checkpoint_every=1000", "logger=wandb", "logger.mode=offline", "progress=false", f"hydra.run.dir={run_dir}"]
    env = {**os.environ, "WANDB_DIR": str(tmp_path)}
    proc = subprocess.Popen(cmd, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    deadline = time.time() + 120
    while not (run_dir / "checkpoint.pt").exists() and time.time() < deadline:
        time.sleep(0.2)
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 128 + sig, err[-2000:]
    log = out + err
    assert f"{signal.Signals(sig).name}: checkpoint written at step" in log and "resume with" in log
    assert "W&B offline run saved in" in log  # the W&B run was finished before exiting
    assert (run_dir / "checkpoint.pt").exists() and not (run_dir / "done").exists()


def test_diverged_policy_is_named_not_the_env(tmp_path, monkeypatch, compose_cfg):
    """NaN weights make NaN actions: the run stops naming the action, not the env's reward."""
    import numpy as np

    from rlbase import envs
    from rlbase.algos import sac
    from rlbase.loops.runner import NonFiniteError
    from rlbase.runtime import job as train

    cfg = compose_cfg("algo=sac", "env=pendulum", "total_steps=600", "eval_every=600", "eval_episodes=1",
                      "algo.random_steps=100", "algo.learning_starts=100", "logger=none", "progress=false")
    calls = {"n": 0}
    act = sac.SAC.act

    def diverging(self, obs, deterministic=False, generator=None):
        calls["n"] += 1
        return act(self, obs, deterministic, generator) * (np.nan if calls["n"] > 200 else 1.0)

    monkeypatch.setattr(sac.SAC, "act", diverging)
    with pytest.raises(NonFiniteError, match=r"non-finite action \(policy output; the agent's weights may have diverged\) at env step 301"):
        (tmp_path / "run").mkdir()
        train.run(cfg, envs.probe(cfg.env), tmp_path / "run")


@pytest.mark.parametrize("presses", [1, 2])
def test_ctrl_c_during_a_long_evaluation_stops_at_once_and_the_resume_makes_that_evaluation(tmp_path, presses):
    """One Ctrl-C during an evaluation of thousands of episodes stops it within a step (it used to wait for the
    evaluation to end); two in a row stop at once too, in one line, no traceback. The resumed run makes the
    evaluation it owes first, so every evaluation is in metrics.jsonl once. No update before the last step
    (learning_starts): every evaluation is of the initial policy, about 9 steps an episode (an update phase at step
    768 made the evaluation at 1000 four times as long as the others, three quarters of the test's time). 6000 episodes
    (about 6 s) leave a stop that waited for the evaluation's end well apart from one within a step, at 8 s less of
    the test than 10000."""
    run_dir = tmp_path / "run"
    args = ["total_steps=1000", "eval_every=500", "eval_episodes=6000", "log_every=100", "checkpoint_every=250",
            "algo.learning_starts=999", "logger=none", "progress=false", f"hydra.run.dir={run_dir}"]
    cmd = [sys.executable, str(ROOT / "train.py"), *args]
    proc = subprocess.Popen(cmd, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    metrics = run_dir / "metrics.jsonl"
    while time.time() < deadline and not (metrics.exists() and '"step": 500' in metrics.read_text()):
        time.sleep(0.05)
    time.sleep(0.5)  # inside the evaluation at step 500 (about 6 s long)
    sent = time.time()
    for _ in range(presses):
        proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    # it had about 5.5 s left on a quiet machine; on a loaded one (more busy processes than cores) both that and the
    # stop itself take longer in proportion, so the bound scales with the load (a run of the suite beside two
    # training jobs took 3.07 s to stop)
    slow = max(1.0, os.getloadavg()[0] / (os.cpu_count() or 1))
    assert time.time() - sent < 3 * slow, "the evaluation was not interrupted"
    log = out + err
    assert proc.returncode == 130 and "Traceback" not in log, log[-3000:]
    assert "resume" in log and not (run_dir / "done").exists()
    rows = [r for r in read_rows(run_dir) if "eval/return_mean" in r]
    assert [r["step"] for r in rows] == []
    if presses == 2:  # the resume is the same after one press or two: made once (two evaluations, ~12 s of the test)
        return
    resumed = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert [r["step"] for r in read_rows(run_dir) if "eval/return_mean" in r] == [500, 1000]


def test_an_env_that_raises_mid_run_is_one_line_and_its_traceback_goes_to_train_log(tmp_path):
    run_dir = tmp_path / "run"
    proc = run_train("env=gym", "env.id=tests.crashing_env:CrashingCartPole-v0", "total_steps=1000", run_dir=run_dir,
                     check=False)
    err = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert proc.returncode == 1 and "Traceback" not in proc.stdout + proc.stderr, proc.stderr[-2000:]
    assert len(err) == 1 and "CrashingCartPole-v0: its step raised RuntimeError: injected crash in the env" in err[0]
    assert "injected crash in the env" in (run_dir / "train.log").read_text().split("Traceback", 1)[1]


def test_a_run_dir_that_cannot_be_written_is_one_line_and_left_as_it_was(tmp_path, monkeypatch):
    import errno

    from omegaconf import OmegaConf

    from rlbase.runtime import job as train

    real_open = open

    def no_space_for_lock(path, mode="r", *args, **kwargs):
        f = real_open(path, mode, *args, **kwargs)
        if str(path).endswith(".lock"):
            def full(*_a, **_k):
                raise OSError(errno.ENOSPC, "No space left on device", str(path))
            f.flush = full
        return f

    monkeypatch.setattr("builtins.open", no_space_for_lock)
    train.own(tmp_path / "new")  # the lock itself is taken; the pid is written when the run is accepted
    with pytest.raises(train.DiskError, match="No space left on device") as info:
        train.accept(OmegaConf.create({"seed": 0}), tmp_path / "new", train.Record(["seed=0"]))
    monkeypatch.undo()
    train.release(tmp_path / "new")
    assert "\n" not in str(info.value) and not (tmp_path / "new" / ".hydra").exists()  # no record written
    monkeypatch.setattr("builtins.open", no_space_for_lock)  # the same through a whole run: one line, nothing left
    proc = run_train("algo=dqn", "env=cartpole", "total_steps=300", "eval_every=300", "eval_episodes=1",
                     "algo.random_steps=100", "algo.learning_starts=100", run_dir=tmp_path / "other", check=False)
    monkeypatch.undo()
    err = proc.stderr.strip().splitlines()
    assert proc.returncode == 1 and len(err) == 1 and "No space left on device" in err[0], proc.stderr[-2000:]
    assert not (tmp_path / "other").exists()


def test_a_full_disk_mid_run_is_one_line(tmp_path, monkeypatch):
    import errno

    from rlbase.core.logger import Logger

    calls = {"n": 0}
    real_log = Logger.log

    def log_until_full(self, step, metrics):
        calls["n"] += 1
        if calls["n"] > 3:
            raise OSError(errno.ENOSPC, "No space left on device", str(self.path))
        return real_log(self, step, metrics)

    monkeypatch.setattr(Logger, "log", log_until_full)
    proc = run_train("total_steps=3000", "log_every=100", run_dir=tmp_path / "run", check=False)
    err = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert proc.returncode == 1 and "Traceback" not in proc.stdout + proc.stderr, proc.stderr[-2000:]
    assert len(err) == 1 and "metrics.jsonl: No space left on device; free space" in err[0], err


def test_a_diverged_loss_is_named_at_its_update_not_at_the_next_log(tmp_path, monkeypatch, compose_cfg):
    from rlbase import envs
    from rlbase.algos import dqn
    from rlbase.loops.runner import NonFiniteError
    from rlbase.runtime import job as train

    cfg = compose_cfg("algo=dqn", "env=cartpole", "total_steps=5000", "log_every=2000", "algo.learning_starts=100",
                      "logger=none", "progress=false")
    update, calls = dqn.DQN.update, {"n": 0}

    def diverging(self, batch):
        calls["n"] += 1
        metrics = update(self, batch)
        return {**metrics, "loss/q": metrics["loss/q"] * float("nan")} if calls["n"] >= 200 else metrics

    monkeypatch.setattr(dqn.DQN, "update", diverging)
    (tmp_path / "run").mkdir()
    with pytest.raises(NonFiniteError, match=r"non-finite loss/q at env step (\d+)") as info:
        train.run(cfg, envs.probe(cfg.env), tmp_path / "run")
    step = int(re.search(r"env step (\d+)", str(info.value)).group(1))
    # stopped after that update's phase of gradient steps (with log_every=2000 it was named at step 2000)
    assert step < 2000 and calls["n"] <= 200 + cfg.algo.gradient_steps
