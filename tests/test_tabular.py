"""Tabular BCQL vs Q-learning: exact values on a hand-built dataset, the CliffWalking contrast, determinism."""

import numpy as np
import pytest

from rlbase.algos import tabular as T


def hand_dataset() -> dict[str, np.ndarray]:
    # 5 states, 2 actions. Only action 0 is ever taken in states 0 and 1; state 4 never appears as an obs.
    #   (0, a0) -> 1, r=-1
    #   (1, a0) -> 2, r=-1, terminated       (no bootstrap)
    #   (3, a1) -> 0, r=-2, truncated        (bootstraps from state 0)
    #   (3, a0) -> 4, r=-1, truncated        (state 4 has no seen action: BCQL gives it value 0)
    return {
        "obs": np.array([0, 1, 3, 3]),
        "action": np.array([0, 0, 1, 0]),
        "reward": np.array([-1.0, -1.0, -2.0, -1.0]),
        "next_obs": np.array([1, 2, 0, 4]),
        "terminated": np.array([0.0, 1.0, 0.0, 0.0]),
        "truncated": np.array([0.0, 0.0, 1.0, 1.0]),
    }


def test_bcql_and_q_learning_values_on_hand_dataset():
    # lr=1 in a deterministic dataset: every update writes its exact target, so a few sweeps reach the fixed point.
    kw = dict(n_states=5, n_actions=2, gamma=0.5, lr=1.0, sweeps=5, seed=0)
    bc = T.q_learning(hand_dataset(), batch_constrained=True, **kw)
    plain = T.q_learning(hand_dataset(), batch_constrained=False, **kw)
    # BCQL: Q[1,0] = -1; Q[0,0] = -1 + 0.5 * Q[1,0] = -1.5; Q[3,1] = -2 + 0.5 * Q[0,0] = -2.75; Q[3,0] = -1 + 0.5 * 0.
    expected_bc = np.zeros((5, 2))
    expected_bc[1, 0], expected_bc[0, 0], expected_bc[3, 1], expected_bc[3, 0] = -1.0, -1.5, -2.75, -1.0
    np.testing.assert_allclose(bc, expected_bc)
    # Plain Q-learning bootstraps from the never-updated Q[1,1] = Q[0,1] = 0, above every real value here.
    expected_plain = expected_bc.copy()
    expected_plain[0, 0], expected_plain[3, 1] = -1.0, -2.0
    np.testing.assert_allclose(plain, expected_plain)
    # Greedy: plain picks the unseen action 1 in states 0 and 1; BCQL keeps to action 0; state 4 falls back to argmax.
    seen = T.seen_mask(hand_dataset(), 5, 2)
    assert T.greedy_policy(plain).tolist() == [1, 1, 0, 0, 0]
    assert T.greedy_policy(bc, seen).tolist() == [0, 0, 0, 0, 0]


def test_episode_returns_split_at_terminated_or_truncated():
    np.testing.assert_allclose(T.episode_returns(hand_dataset()), [-2.0, -2.0, -1.0])


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_bcql_follows_data_while_q_learning_fails_on_cliffwalking(seed):
    r = T.run(seed=seed)
    # The behaviour route takes 15 steps (return -15). Measured with the defaults (30 episodes, epsilon 0.1) on
    # seeds 0-9: BCQL returned -15 every time; plain Q-learning returned -100 (wanders until the 100-step limit)
    # or -10000 (steps into the cliff every step, because the unseen "right" at the start keeps its Q of 0).
    # So: BCQL must reach the goal within a few steps of the route, and Q-learning must not reach the goal at all
    # before the time limit (any return above -100 would mean it did), leaving a gap of at least 80.
    assert r["bcql_return"] >= -20
    assert r["q_learning_return"] <= -100
    assert r["bcql_return"] > r["dataset_return"] - 1e-9  # no worse than the noisy behaviour on average


def test_same_seed_same_q():
    a = T.collect(T.ENV_ID, 5, 0.2, seed=3, max_steps=50)
    b = T.collect(T.ENV_ID, 5, 0.2, seed=3, max_steps=50)
    for k in a:
        np.testing.assert_array_equal(a[k], b[k])
    for bc in (False, True):
        q1 = T.q_learning(a, 48, 4, sweeps=3, seed=7, batch_constrained=bc)
        q2 = T.q_learning(b, 48, 4, sweeps=3, seed=7, batch_constrained=bc)
        np.testing.assert_array_equal(q1, q2)
