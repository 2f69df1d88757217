"""Tabular batch-constrained Q-learning (BCQL) next to plain Q-learning, both learning from one fixed dataset.

Paper: Fujimoto, Meger, Precup, "Off-Policy Deep Reinforcement Learning without Exploration", ICML 2019,
section 4 (the tabular analysis that motivates BCQ).

Both learners see only the transitions in a dataset gathered beforehand by a fixed behaviour policy; neither
ever acts in the environment while learning. Plain Q-learning bootstraps from the max over *all* next actions,
including actions the data never shows for that state. Those entries keep their initial value (0 here), and
because every reward in CliffWalking is negative, 0 is larger than any real return: the error does not come
from noise but from extrapolating to actions the data says nothing about. BCQL removes it by taking the max
only over actions the data does show.

Implementation details:
1. Q is a ``(n_states, n_actions)`` table initialised to 0. Each sweep visits every dataset transition once,
   in an order shuffled by a seeded generator, and moves ``Q[s, a]`` a step ``lr`` towards its target.
2. Target: ``r + gamma * (1 - terminated) * max_{a'} Q[s', a']``. A terminated transition does not bootstrap;
   a truncated one (time limit) does, since the episode was cut short rather than ended by the environment.
3. BCQL: a boolean table ``seen[s, a]`` marks the (state, action) pairs present in the dataset, and the max in
   the target runs only over ``a'`` with ``seen[s', a']``. A next state with no seen action at all (for example
   the last state of a truncated episode, never itself an ``obs``) is given value 0, the same value as the
   initial table: the data holds no evidence about what follows it, and we chose not to invent a penalty.
4. Greedy policy: plain Q-learning takes the argmax over all actions; BCQL takes it over the seen actions, and
   falls back to all actions in a state where none was seen. Ties go to the lowest action index.
5. Behaviour policy (CliffWalking, 4 x 12 grid, start bottom-left, goal bottom-right, cliff in between): a
   fixed, state-based safe route, up to row 1 (two rows above the cliff), right along it to the last column,
   then down to the goal; 15 steps, return -15. With probability ``epsilon`` a uniformly random action
   replaces it, so the data covers the route and a thin, uneven band of states and actions around it.
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np

UP, RIGHT, DOWN, LEFT = 0, 1, 2, 3  # CliffWalking's action indices
N_COLS = 12  # CliffWalking grid is 4 rows x 12 columns; state = row * 12 + col
ROUTE_ROW = 1  # the row the behaviour route runs along (the cliff is in row 3)

ENV_ID = "CliffWalking-v1"
EPISODES = 30
EPSILON = 0.1
MAX_STEPS = 100


def route_action(state: int) -> int:
    """The behaviour route's action in ``state``: climb to ROUTE_ROW, walk right, descend in the last column."""
    row, col = divmod(int(state), N_COLS)
    if col == N_COLS - 1:
        return DOWN
    if row > ROUTE_ROW:
        return UP
    if row < ROUTE_ROW:
        return DOWN
    return RIGHT


def make_env(env_id: str, max_steps: int) -> gym.Env:
    return gym.make(env_id, max_episode_steps=max_steps)


def collect(env_id: str, episodes: int, epsilon: float, seed: int, max_steps: int) -> dict[str, np.ndarray]:
    """Roll out the epsilon-noisy route policy for ``episodes`` episodes and return the flat transitions."""
    rng = np.random.default_rng(seed)
    env = make_env(env_id, max_steps)
    n_actions = env.action_space.n
    cols: dict[str, list] = {k: [] for k in ("obs", "action", "reward", "next_obs", "terminated", "truncated")}
    for ep in range(episodes):
        obs, _ = env.reset(seed=seed if ep == 0 else None)
        done = False
        while not done:
            act = int(rng.integers(n_actions)) if rng.random() < epsilon else route_action(obs)
            next_obs, rew, term, trunc, _ = env.step(act)
            for k, v in zip(cols, (obs, act, rew, next_obs, term, trunc)):
                cols[k].append(v)
            obs, done = next_obs, term or trunc
    env.close()
    ints = {"obs", "action", "next_obs"}
    return {k: np.asarray(v, dtype=np.int64 if k in ints else np.float64) for k, v in cols.items()}


def seen_mask(dataset: dict[str, np.ndarray], n_states: int, n_actions: int) -> np.ndarray:
    """Boolean ``(n_states, n_actions)`` table: True where the pair (s, a) occurs in the dataset."""
    seen = np.zeros((n_states, n_actions), dtype=bool)
    seen[dataset["obs"], dataset["action"]] = True
    return seen


def q_learning(dataset: dict[str, np.ndarray], n_states: int, n_actions: int, gamma: float = 0.99, lr: float = 0.5,
               sweeps: int = 100, seed: int = 0, batch_constrained: bool = False) -> np.ndarray:
    """Q-learning (or BCQL with ``batch_constrained``) over the fixed dataset; returns the Q table."""
    rng = np.random.default_rng(seed)
    q = np.zeros((n_states, n_actions))
    s, a, r = dataset["obs"], dataset["action"], dataset["reward"]
    s2, not_term = dataset["next_obs"], 1.0 - dataset["terminated"]
    seen = seen_mask(dataset, n_states, n_actions)
    has_seen = seen.any(axis=1)
    for _ in range(sweeps):
        for i in rng.permutation(len(s)):
            nxt = s2[i]
            if not batch_constrained:
                v_next = q[nxt].max()
            elif has_seen[nxt]:
                v_next = q[nxt][seen[nxt]].max()
            else:
                v_next = 0.0  # no evidence about this state's actions: value 0 (see detail 3)
            target = r[i] + gamma * not_term[i] * v_next
            q[s[i], a[i]] += lr * (target - q[s[i], a[i]])
    return q


def greedy_policy(q: np.ndarray, seen: np.ndarray | None = None) -> np.ndarray:
    """Greedy action per state; with ``seen``, restricted to seen actions where the state has any."""
    if seen is None:
        return q.argmax(axis=1)
    masked = np.where(seen, q, -np.inf)
    return np.where(seen.any(axis=1), masked.argmax(axis=1), q.argmax(axis=1))


def evaluate(env_id: str, policy: np.ndarray, episodes: int, seed: int, max_steps: int) -> float:
    """Mean undiscounted return of the table policy ``policy[state]`` over ``episodes`` episodes."""
    env = make_env(env_id, max_steps)
    returns = []
    for ep in range(episodes):
        obs, _ = env.reset(seed=seed if ep == 0 else None)
        total, done = 0.0, False
        while not done:
            obs, rew, term, trunc, _ = env.step(int(policy[obs]))
            total += float(rew)
            done = term or trunc
        returns.append(total)
    env.close()
    return float(np.mean(returns))


def episode_returns(dataset: dict[str, np.ndarray]) -> np.ndarray:
    """Undiscounted return of each complete episode in the dataset (episodes end at terminated or truncated)."""
    ends = np.flatnonzero((dataset["terminated"] + dataset["truncated"]) > 0)
    sums = np.add.reduceat(dataset["reward"], np.r_[0, ends[:-1] + 1]) if len(ends) else np.zeros(0)
    return sums


def run(seed: int = 0, episodes: int = EPISODES, epsilon: float = EPSILON, env_id: str = ENV_ID,
        max_steps: int = MAX_STEPS, gamma: float = 0.99, lr: float = 0.5, sweeps: int = 100,
        eval_episodes: int = 1) -> dict:
    """Collect one dataset, fit Q-learning and BCQL to it, and evaluate both greedy policies.

    CliffWalking is deterministic and so are the greedy policies, so one evaluation episode is exact.
    """
    data = collect(env_id, episodes, epsilon, seed, max_steps)
    env = make_env(env_id, max_steps)
    n_states, n_actions = env.observation_space.n, env.action_space.n
    env.close()
    seen = seen_mask(data, n_states, n_actions)
    out = {"seed": seed, "transitions": len(data["obs"]), "coverage": float(seen.mean()),
           "dataset_return": float(episode_returns(data).mean())}
    for name, bc in (("q_learning", False), ("bcql", True)):
        q = q_learning(data, n_states, n_actions, gamma=gamma, lr=lr, sweeps=sweeps, seed=seed, batch_constrained=bc)
        policy = greedy_policy(q, seen if bc else None)
        out[f"{name}_return"] = evaluate(env_id, policy, eval_episodes, seed, max_steps)
    return out
