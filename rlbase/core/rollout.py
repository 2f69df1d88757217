"""Rollout storage for on-policy algorithms: fixed-length rollouts from N envs, n-step or GAE returns.

Time limits: when an env is *truncated* at step t, the caller adds gamma * V(real final observation) to
r_t and marks the step done, so the return is cut there but still bootstrapped from the critic's value
of the state the env really reached. A *terminated* step is marked done with nothing added.
"""

from __future__ import annotations

from typing import NamedTuple, Optional

import torch


class RolloutBatch(NamedTuple):
    obs: torch.Tensor  # (T*N, *obs_shape)
    actions: torch.Tensor  # (T*N, *action_shape)
    returns: torch.Tensor  # (T*N,) targets of the critic
    advantages: torch.Tensor  # (T*N,)
    values: torch.Tensor  # (T*N,) V(s) when the rollout was collected
    log_probs: torch.Tensor  # (T*N,) log-probability of each action under the policy that collected it
    # What recomputing the advantages with a newer critic needs (PPO's recompute_advantage): the (T, N) rewards
    # (with the time-limit bootstraps added) and dones, and the observations after the last step (N, *obs_shape).
    rewards: Optional[torch.Tensor] = None
    dones: Optional[torch.Tensor] = None
    last_obs: Optional[torch.Tensor] = None
    # ``algo.return_norm``: the critic works in units of the returns' running std ``value_scale`` (the
    # advantages and ``rewards`` stay in the env's units; ``returns`` and ``values`` are the critic's units).
    value_scale: float = 1.0


def compute_returns(rewards: torch.Tensor, values: torch.Tensor, dones: torch.Tensor, last_value: torch.Tensor,
                    gamma: float, gae_lambda: float) -> tuple[torch.Tensor, torch.Tensor]:
    """GAE(lambda) advantages and returns over a (T, N) rollout; lambda = 1 gives n-step returns.

    delta_t = r_t + gamma * (1 - done_t) * V(s_{t+1}) - V(s_t);  A_t = delta_t + gamma * lambda * (1 - done_t) * A_{t+1}.
    ``dones[t]`` means the episode ended at step t (s_{t+1} belongs to a new episode).
    """
    T = rewards.shape[0]
    advantages = torch.zeros_like(rewards)
    next_adv = torch.zeros_like(last_value)
    next_value = last_value
    for t in reversed(range(T)):
        not_done = 1.0 - dones[t]
        delta = rewards[t] + gamma * not_done * next_value - values[t]
        next_adv = delta + gamma * gae_lambda * not_done * next_adv
        advantages[t] = next_adv
        next_value = values[t]
    return advantages + values, advantages


class RolloutStorage:
    def __init__(self, n_steps: int, n_envs: int, obs_shape: tuple[int, ...], action_shape: tuple[int, ...],
                 discrete: bool, device: torch.device):
        self.n_steps, self.n_envs = n_steps, n_envs
        self.obs = torch.zeros((n_steps, n_envs, *obs_shape), device=device)
        self.actions = torch.zeros((n_steps, n_envs, *action_shape), device=device,
                                   dtype=torch.int64 if discrete else torch.float32)
        self.rewards = torch.zeros((n_steps, n_envs), device=device)
        self.dones = torch.zeros((n_steps, n_envs), device=device)
        self.values = torch.zeros((n_steps, n_envs), device=device)
        self.log_probs = torch.zeros((n_steps, n_envs), device=device)
        self.t = 0

    def add(self, obs, actions, rewards, dones, values, log_probs) -> None:
        t = self.t
        self.obs[t] = torch.as_tensor(obs, dtype=torch.float32)
        self.actions[t] = torch.as_tensor(actions, dtype=self.actions.dtype)
        self.rewards[t] = torch.as_tensor(rewards, dtype=torch.float32)
        self.dones[t] = torch.as_tensor(dones, dtype=torch.float32)
        self.values[t] = values
        self.log_probs[t] = log_probs
        self.t += 1

    def full(self) -> bool:
        return self.t == self.n_steps

    def batch(self, last_value: torch.Tensor, gamma: float, gae_lambda: float, last_obs=None,
              value_scale: float = 1.0) -> RolloutBatch:
        """Returns and advantages of the rollout. ``value_scale`` != 1 (``algo.return_norm``): the critic's values
        are in units of ``value_scale``; GAE runs on them times ``value_scale`` (the env's units, as the rewards),
        and the critic's targets ``returns`` are divided by it again."""
        returns, advantages = compute_returns(self.rewards, self.values * value_scale, self.dones,
                                              last_value * value_scale, gamma, gae_lambda)
        if value_scale != 1.0:
            returns = returns / value_scale
        self.t = 0
        flat = self.n_steps * self.n_envs
        if last_obs is not None:
            last_obs = torch.as_tensor(last_obs, dtype=torch.float32, device=self.obs.device)
        return RolloutBatch(self.obs.reshape(flat, *self.obs.shape[2:]), self.actions.reshape(flat, *self.actions.shape[2:]),
                            returns.reshape(flat), advantages.reshape(flat), self.values.reshape(flat),
                            self.log_probs.reshape(flat), self.rewards, self.dones, last_obs, value_scale)
