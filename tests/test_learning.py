"""Learning tests: each algorithm reaches a stated return within a fixed budget (marked slow)."""

import pytest

from tests.conftest import eval_returns, run_train


@pytest.mark.slow
def test_dqn_learns_cartpole(tmp_path):
    run_dir = tmp_path / "dqn"
    run_train("algo=dqn", "env=cartpole", "seed=0", "total_steps=100000", "eval_every=5000", run_dir=run_dir,
              timeout=900)
    best = max(r for _, r in eval_returns(run_dir))
    assert best >= 475, eval_returns(run_dir)


@pytest.mark.slow
@pytest.mark.parametrize("algo", ["td3", "sac", "ddpg"])
def test_continuous_control_learns_pendulum(tmp_path, algo):
    # The acceptance bar is -250 within 20k env steps; all three get there well inside 8k, so 8k keeps CI short.
    run_dir = tmp_path / algo
    run_train(f"algo={algo}", "env=pendulum", "seed=0", "total_steps=8000", "eval_every=1000", run_dir=run_dir,
              timeout=900)
    returns = eval_returns(run_dir)
    assert returns[-1][1] >= -250, returns


@pytest.mark.slow
def test_a2c_learns_cartpole(tmp_path):
    run_dir = tmp_path / "a2c"
    run_train("algo=a2c", "env=cartpole", "seed=0", "total_steps=500000", "eval_every=10000", run_dir=run_dir,
              timeout=900)
    best = max(r for _, r in eval_returns(run_dir))
    assert best >= 475, eval_returns(run_dir)


@pytest.mark.slow
def test_a3c_learns_cartpole(tmp_path):
    # Asynchronous, hence not bit-reproducible: the bar leaves room for scheduling noise. The 475-in-1M
    # acceptance run is in docs/results.md.
    run_dir = tmp_path / "a3c"
    run_train("algo=a3c", "env=cartpole", "hardware.workers=2", "total_steps=150000", "eval_every=10000", run_dir=run_dir,
              timeout=900)
    best = max(r for _, r in eval_returns(run_dir))
    assert best >= 200, eval_returns(run_dir)
