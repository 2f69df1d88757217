"""Faults: a non-finite reward stops the run naming the step, the quantity and the last good checkpoint."""

import os
import re

import torch

from algos.common import checkpoint
from algos.common.loops import _first_non_finite
from tests.conftest import ROOT, run_train


def test_nan_reward_stops_run_and_keeps_good_checkpoint(tmp_path):
    run_dir = tmp_path / "run"
    env = {"PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    proc = run_train("env=gym", "env.id=tests.crashing_env:NaNRewardCartPole-v0", "total_steps=5000",
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
