"""Learning tests: each algorithm reaches a stated return within a fixed budget (marked slow).

Budgets are the smallest that still prove learning on 2 CPU cores; the acceptance runs at full budgets are
in docs/results.md with the commands that made them.
"""

import pytest

from tests.conftest import eval_returns, run_train

NETS_128 = ["algo.actor_hidden=[128,128]", "algo.critic_hidden=[128,128]"]

CASES = {
    # name: (overrides, threshold, which eval counts)
    "dqn-cartpole": (["algo=dqn", "env=cartpole", "total_steps=100000", "eval_every=5000"], 475, "best"),
    # -250 within 20k env steps is the acceptance bar (a random policy is near -1200). Their final returns at 10k
    # depend on the torch thread count (with the default networks TD3's seed 0 ends at -238 with one thread and -363
    # with two), so the test asks for the bar to be reached, and stops there. 128-wide networks: the defaults' (256,
    # DDPG's 400x300) cost twice as much per update; seed 0 at one thread reaches the bar at TD3 8k (-139), SAC 4k
    # (-138), DDPG 7k (-131), against 6k / 4k / 4k with the defaults; no earlier evaluation above -270.
    "td3-pendulum": (["algo=td3", "env=pendulum", "total_steps=10000", "eval_every=1000", *NETS_128], -250, "best"),
    "sac-pendulum": (["algo=sac", "env=pendulum", "total_steps=10000", "eval_every=1000", *NETS_128], -250, "best"),
    "ddpg-pendulum": (["algo=ddpg", "env=pendulum", "total_steps=10000", "eval_every=1000", *NETS_128], -250, "best"),
    "a2c-cartpole": (["algo=a2c", "env=cartpole", "total_steps=500000", "eval_every=10000"], 475, "best"),
    # RL-Zoo's CartPole settings (conf/tuned/ppo_cartpole.yaml); seed 0 is at 500 from 25k steps
    "ppo-cartpole": (["algo=ppo", "env=cartpole", "total_steps=50000", "eval_every=5000"], 475, "best"),
    # A3C's learning test is tests/test_a3c.py::test_a3c_resumes_and_learns (it learns after a resume).
}


@pytest.mark.slow
@pytest.mark.parametrize("name", list(CASES))
def test_learns(tmp_path, name):
    overrides, threshold, which = CASES[name]
    run_dir = tmp_path / name
    # "best" cases end at the first evaluation at the threshold (stop_return): the rest of the budget proves nothing
    stop = [f"stop_return={threshold}"] if which == "best" else []
    run_train(*overrides, *stop, "seed=0", run_dir=run_dir, timeout=900)
    returns = eval_returns(run_dir)
    value = max(r for _, r in returns) if which == "best" else returns[-1][1]
    assert value >= threshold, returns
