"""Exact resume: a run killed (SIGKILL) after a checkpoint and resumed matches an uninterrupted run exactly."""

import signal
import subprocess
import sys
import time

import pytest
import torch

from rlbase.core import checkpoint
from tests.conftest import ROOT, eval_returns, read_rows, run_train

CASES = {
    "a2c": ["algo=a2c", "env=cartpole", "total_steps=12000", "checkpoint_every=4000", "eval_every=4000"],
    # PPO with observation normalisation and reward scaling: their statistics must come back exactly too
    "ppo": ["algo=ppo", "env=pendulum", "total_steps=6144", "checkpoint_every=2048", "eval_every=2048",
            "algo.num_envs=4", "algo.n_epochs=2", "algo.n_minibatches=4", "env.normalize_obs=true",
            "env.normalize_reward=true"],
    # the critic's return scale (algo.return_norm) is in the checkpoint as well
    "a2c_return_norm": ["algo=a2c", "env=pendulum", "total_steps=4800", "checkpoint_every=1600", "eval_every=1600",
                        "algo.return_norm=true", "env.normalize_obs=true"],
    # small networks for the off-policy cases: an exact resume does not depend on their size, and the defaults'
    # 256-wide ones made these the slowest of the file
    "dqn": ["algo=dqn", "env=cartpole", "total_steps=3000", "checkpoint_every=500", "eval_every=1000",
            "algo.hidden=[64,64]"],
    "td3": ["algo=td3", "env=pendulum", "total_steps=1400", "checkpoint_every=400", "eval_every=400",
            "algo.random_steps=200", "algo.learning_starts=200", "algo.actor_hidden=[64,64]", "algo.critic_hidden=[64,64]"],
    "sac": ["algo=sac", "env=pendulum", "total_steps=1400", "checkpoint_every=400", "eval_every=400",
            "algo.random_steps=200", "algo.learning_starts=200", "algo.actor_hidden=[64,64]", "algo.critic_hidden=[64,64]"],
}


def final_params(run_dir):
    return checkpoint.load(run_dir)["agent"]


def assert_same_tree(a, b, path=""):
    if torch.is_tensor(a):
        assert torch.equal(a, b), path
    elif isinstance(a, dict):
        assert a.keys() == b.keys(), path
        for k in a:
            assert_same_tree(a[k], b[k], f"{path}.{k}")
    else:
        assert a == b, path


@pytest.mark.parametrize("algo", sorted(CASES))
def test_sigkill_then_resume_is_exact(tmp_path, algo):
    args = [*CASES[algo], "eval_episodes=2", "seed=1"]
    straight = tmp_path / "straight"
    run_train(*args, run_dir=straight)

    killed = tmp_path / "killed"
    cmd = [sys.executable, str(ROOT / "train.py"), *args, "logger=none", "progress=false", f"hydra.run.dir={killed}"]
    proc = subprocess.Popen(cmd, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    while not (killed / "checkpoint.pt").exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (killed / "done").exists(), "the run finished before it could be killed"
    k = checkpoint.load(killed)["step"]
    resumed = run_train(*args, run_dir=killed)
    assert f"resumed from step {k}" in resumed.stdout + resumed.stderr

    assert eval_returns(killed) == eval_returns(straight)
    steps = [r["step"] for r in read_rows(killed)]
    assert steps == sorted(steps)
    assert_same_tree(final_params(killed), final_params(straight))


def test_a_damaged_newest_replay_chunk_resumes_from_the_previous_checkpoint(tmp_path):
    run_dir = tmp_path / "run"
    args = ["algo=dqn", "env=cartpole", "total_steps=2000", "checkpoint_every=500", "eval_every=1000", "keep_replay=true"]
    run_train(*args, run_dir=run_dir)
    (run_dir / "done").unlink()
    newest, older = checkpoint._read(run_dir / checkpoint.NAME), checkpoint._read(run_dir / checkpoint.PREV)
    kept = {c["name"] for c in older["buffer"]["chunks"]}
    (only_newest,) = [c["name"] for c in newest["buffer"]["chunks"] if c["name"] not in kept]
    chunk = run_dir / "replay" / only_newest
    chunk.write_bytes(chunk.read_bytes()[:-10])  # cut short
    proc = run_train(*args[:2], "total_steps=2500", *args[3:], run_dir=run_dir)  # keep_replay=true again
    out = proc.stdout + proc.stderr
    assert "checksum mismatch" in out and "trying the previous checkpoint" in out
    assert f"resumed from step {older['step']} of 2500" in out and (run_dir / "done").exists()
    assert (run_dir / "checkpoint.damaged.pt").exists()  # set aside, not rotated over the good previous one
    steps = [r["step"] for r in read_rows(run_dir)]
    assert steps == sorted(steps)


def test_a_finished_off_policy_run_leaves_no_replay_unless_kept(tmp_path):
    args = ["algo=dqn", "env=cartpole", "total_steps=1000", "checkpoint_every=500", "eval_every=1000"]
    run_train(*args, run_dir=tmp_path / "a")
    assert (tmp_path / "a" / "done").exists() and not (tmp_path / "a" / "replay").exists()
    run_train(*args, "keep_replay=true", run_dir=tmp_path / "b")
    assert list((tmp_path / "b" / "replay").iterdir())
