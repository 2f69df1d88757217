"""Defaults that fit the budget: random/learning starts, torch threads, variant names, update phases."""

import pytest
import torch

from rlbase import algos
from rlbase.core.nets import adam, hard_update, minimize, mlp
from rlbase.runtime import job as train
from rlbase.runtime.validate import ConfigError, fit_starts
from tests.conftest import read_rows, run_train


@pytest.mark.parametrize("algo, default", [("td3", 25_000), ("ddpg", 25_000), ("sac", 10_000)])
def test_default_starts_scale_to_the_budget(compose_cfg, algo, default):
    cfg = compose_cfg(f"algo={algo}", "env=hopper", "total_steps=20000")
    assert cfg.algo.random_steps == default
    notes = fit_starts(cfg, explicit=set())
    assert cfg.algo.random_steps == cfg.algo.learning_starts == 2000
    assert len(notes) == 2 and all("\n" not in n and "using 2000" in n for n in notes)
    # at the 1M-step protocol the defaults stand
    full = compose_cfg(f"algo={algo}", "env=hopper")
    assert fit_starts(full, explicit=set()) == [] and full.algo.random_steps == default


def test_explicit_starts_are_kept_or_refused(compose_cfg):
    cfg = compose_cfg("algo=td3", "env=hopper", "total_steps=20000", "algo.random_steps=8000")
    fit_starts(cfg, explicit={"algo.random_steps"})
    assert cfg.algo.random_steps == 8000 and cfg.algo.learning_starts == 2000
    bad = compose_cfg("algo=td3", "env=hopper", "total_steps=20000", "algo.learning_starts=20000")
    with pytest.raises(ConfigError, match="algo.learning_starts=20000 is not below total_steps=20000"):
        fit_starts(bad, explicit={"algo.learning_starts"})


def test_fitted_starts_recorded_for_resume(tmp_path):
    run_dir = tmp_path / "run"
    proc = run_train("algo=td3", "env=pendulum", "total_steps=600", "eval_every=600", "eval_episodes=1",
                     "hardware.threads=1", run_dir=run_dir)
    assert "using 256" in proc.stdout + proc.stderr  # tuned 1000 > 10% of 600: one batch
    saved = (run_dir / ".hydra" / "overrides.yaml").read_text()
    assert "algo.random_steps=256" in saved and "algo.learning_starts=256" in saved
    assert "random_steps: 256" in (run_dir / ".hydra" / "config.yaml").read_text()


def test_update_phases_every_train_every_steps(tmp_path):
    """DQN's CartPole defaults update 128 times every 256 env steps once the buffer holds learning_starts."""
    run_dir = tmp_path / "run"
    run_train("total_steps=1000", "eval_every=1000", "eval_episodes=1", "algo.learning_starts=300",
              "algo.random_steps=300", run_dir=run_dir)
    updates = [r["train/updates"] for r in read_rows(run_dir) if "train/updates" in r]
    assert updates[-1] == 2 * 128  # phases after env steps 512 and 768 (256: buffer still below 300)


def test_auto_threads(compose_cfg):
    dqn = compose_cfg("algo=dqn")
    assert train.auto_threads(dqn, algos.get("dqn"))[0] == 1
    sac = compose_cfg("algo=sac", "env=pendulum")
    cores = len(__import__("os").sched_getaffinity(0))
    assert train.auto_threads(sac, algos.get("sac"))[0] == cores
    assert train.auto_threads(compose_cfg("algo=sac", "env=pendulum", "hardware.threads=3"), algos.get("sac"))[0] == 3


def test_threads_on_cores_that_others_use_are_named_not_changed(monkeypatch):
    """Two torch threads beside other busy processes run several times slower: the run says so in one line (the
    load average against the cores), and keeps the threads it was given (they can change its sums)."""
    import os

    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1})
    monkeypatch.setattr(os, "getloadavg", lambda: (2.1, 1.0, 0.5))  # two other jobs
    line = train.crowded(2)
    assert line.startswith("the load average is 2.1 on 2 cores") and "hardware.threads=1" in line
    assert train.crowded(1) is None  # one thread: nothing shared that matters
    monkeypatch.setattr(os, "getloadavg", lambda: (1.0, 1.0, 0.5))  # one other job: two threads would share a core
    assert train.crowded(2) is not None
    monkeypatch.setattr(os, "getloadavg", lambda: (0.2, 0.3, 0.5))  # a quiet machine
    assert train.crowded(2) is None


def test_variants_have_their_own_names(compose_cfg):
    assert compose_cfg("algo=ddpg_lillicrap").algo.name == "ddpg_lillicrap"
    assert algos.get("ddpg_lillicrap") is algos.get("ddpg")
    tutorial, tuned = compose_cfg("algo=dqn_tutorial"), compose_cfg("algo=dqn")
    assert tutorial.algo.name == "dqn_tutorial" and tutorial.algo.buffer_size == 10_000 and tutorial.algo.lr == 1e-4
    assert tuned.algo.buffer_size == 100_000 and tuned.algo.train_every == 256  # conf/tuned/dqn_cartpole.yaml


def test_minimize_clip_norm_matches_clip_grad_norm():
    torch.manual_seed(0)
    ref, new = mlp(4, [16], 2), mlp(4, [16], 2)
    hard_update(new, ref)
    ref_opt, new_opt = adam(ref.parameters(), 1e-3), adam(new.parameters(), 1e-3)
    for _ in range(4):
        x = torch.randn(32, 4) * 50
        ref_opt.zero_grad(set_to_none=True)
        ref(x).pow(2).mean().backward()
        torch.nn.utils.clip_grad_norm_(ref.parameters(), 1.0)
        ref_opt.step()
        minimize(new_opt, new(x).pow(2).mean(), clip_norm=1.0)
    assert all(torch.allclose(p, q, atol=1e-7, rtol=0) for p, q in zip(ref.parameters(), new.parameters()))
