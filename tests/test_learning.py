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
