"""TD3+BC: TD3 with a behaviour-cloning term in the actor loss, the minimalist offline RL baseline.

Paper: Fujimoto, Gu, "A Minimalist Approach to Offline Reinforcement Learning", NeurIPS 2021.
Reference implementation: github.com/sfujim/TD3_BC (TD3_BC.py, main.py).

Implementation details:
1. Everything of TD3 (algos/td3.py) is kept for the critics: twin critics, clipped double-Q target with target
   policy smoothing (noise 0.2, clip 0.5, times the action half-width), delayed actor and target updates every
   ``policy_freq`` = 2 critic updates, Polyak rate 0.005; terminated transitions do not bootstrap.
2. Actor loss (eq. 3 with the paper's lambda): -lambda * mean Q1(s, pi(s)) + mean (pi(s) - a)^2, with
   lambda = alpha / mean |Q1(s, pi(s))| computed on the batch and treated as a constant (alpha = 2.5). The squared
   error is taken in the action box rescaled to [-1, 1] (the reference's units on MuJoCo, whose bounds are +-1),
   so the balance does not depend on an env's action scale.
3. State normalisation (``normalize_states``): observations minus the dataset's mean, divided by its std + 1e-3,
   computed once from the dataset's states (``fit_dataset``); the same statistics, saved with the agent, are
   applied at evaluation.
4. Offline: trained by the ``offline`` loop on a fixed dataset; the env is used for evaluation only.
Defaults are the paper's (Table 4): 256-256 networks, lr 3e-4, batch 256, gamma 0.99, alpha 2.5.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

import numpy as np
import torch
import torch.nn.functional as F

from rlbase.algos.td3 import TD3
from rlbase.core.buffer import Batch
from rlbase.core.nets import minimize, soft_update
from rlbase.core.seeding import AgentRandom
from rlbase.core.settings import non_negative, positive, unit
from rlbase.envs import EnvSpec
from rlbase.loops.offline import OfflineConfig

ACTION_SPACES = ("continuous",)
LOOP = "offline"
OFFLINE = True


@dataclass
class TD3BCConfig(OfflineConfig):
    name: str = "td3_bc"
    alpha: float = non_negative(2.5)  # weight of the Q term against behaviour cloning (lambda = alpha / mean|Q|)
    normalize_states: bool = True  # standardise observations with the dataset's mean and std
    actor_lr: float = positive(3e-4)  # Adam learning rate of the actor
    critic_lr: float = positive(3e-4)  # Adam learning rate of the critics
    actor_hidden: list[int] = field(default_factory=lambda: [256, 256])  # actor hidden sizes
    critic_hidden: list[int] = field(default_factory=lambda: [256, 256])  # critic hidden sizes
    tau: float = unit(0.005, low_open=True)  # Polyak rate of the target networks
    policy_noise: float = non_negative(0.2)  # target policy smoothing noise std, times the action half-width
    noise_clip: float = non_negative(0.5)  # clip of the smoothing noise, times the action half-width
    policy_freq: int = positive(2)  # critic updates per actor and target update
    # TD3's settings it reuses, fixed (plain class attributes, so not settings): twin critics on (s, a), no decay
    twin = True
    critic_action_layer = 0
    critic_weight_decay = 0.0
    expl_noise = 0.0


class StateNorm(torch.nn.Module):
    """(obs - mean) / std with the dataset's statistics; identity until fitted (or when switched off)."""

    def __init__(self, obs_dim: int):
        super().__init__()
        self.register_buffer("mean", torch.zeros(obs_dim))
        self.register_buffer("std", torch.ones(obs_dim))

    def fit(self, observations: np.ndarray, eps: float = 1e-3) -> None:
        obs = torch.as_tensor(observations, dtype=torch.float64)
        self.mean.copy_(obs.mean(0).to(self.mean))
        self.std.copy_((obs.std(0, unbiased=False) + eps).to(self.std))

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return (obs - self.mean) / self.std


class TD3BC(TD3):
    def __init__(self, cfg: TD3BCConfig, spec: EnvSpec, device: torch.device, rng: Optional[AgentRandom] = None):
        super().__init__(cfg, spec, device, rng)
        self.norm = StateNorm(spec.obs_dim).to(device)
        self._lmbda = torch.zeros((), device=device)
        self._bc = torch.zeros((), device=device)

    def fit_dataset(self, arrays: dict[str, np.ndarray]) -> None:
        if self.cfg.normalize_states:
            self.norm.fit(arrays["observations"])

    @torch.inference_mode()
    def act(self, obs: torch.Tensor, deterministic: bool = True, generator: Optional[torch.Generator] = None) -> torch.Tensor:
        """pi(normalised s) ``(B, action_dim)`` for observations ``(B, obs_dim)``, deterministic either way (TD3+BC
        evaluates without exploration noise)."""
        return self.actor(self.norm(obs))

    def update(self, batch: Batch) -> dict[str, torch.Tensor]:
        batch = batch._replace(obs=self.norm(batch.obs), next_obs=self.norm(batch.next_obs))
        target_q = self.target(batch)
        q = self.critic(batch.obs, batch.action)  # (2, B)
        critic_loss = F.mse_loss(q, target_q.expand_as(q), reduction="none").mean(dim=1).sum()
        minimize(self.critic_opt, critic_loss)
        self.updates += 1
        if self.updates % self.cfg.policy_freq == 0:
            pi = self.actor(batch.obs)
            q_pi = self.critic(batch.obs, pi, members=1)[0]
            lmbda = self.cfg.alpha / q_pi.abs().mean().detach()
            bc = F.mse_loss(self.scaler.unit(pi), self.scaler.unit(batch.action))
            actor_loss = -lmbda * q_pi.mean() + bc
            minimize(self.actor_opt, actor_loss)
            soft_update(self.critic_target, self.critic, self.cfg.tau)
            soft_update(self.actor_target, self.actor, self.cfg.tau)
            self._actor_loss, self._lmbda, self._bc = actor_loss.detach(), lmbda, bc.detach()
        return {"loss/critic": critic_loss.detach(), "loss/actor": self._actor_loss, "loss/bc": self._bc,
                "train/lambda": self._lmbda, "train/q_mean": q.detach().mean()}

    def state_dict(self) -> dict:
        return {**super().state_dict(), "norm": self.norm.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        super().load_state_dict(state)
        self.norm.load_state_dict(state["norm"])


Config, Agent = TD3BCConfig, TD3BC
