"""IQL: Implicit Q-Learning, offline RL that never queries the critics on actions outside the dataset.

Paper: Kostrikov, Nair, Levine, "Offline Reinforcement Learning with Implicit Q-Learning", ICLR 2022
(arXiv:2110.06169). Reference implementation: github.com/ikostrikov/implicit_q_learning (learner.py, value_net.py,
actor.py, critic.py, train_offline.py).

Implementation details:
1. Value V(s): expectile regression onto the target critics' min_i Q_i'(s, a) for dataset actions a, loss
   |tau - 1(u < 0)| * u^2 with u = Q'(s, a) - V(s) (eq. 5), ``expectile`` tau = 0.7 for MuJoCo. With tau > 0.5 V
   approaches an upper expectile of Q over the data's actions: a maximum over in-support actions only.
2. Critics: twin Q_i(s, a) regress onto r + gamma * (1 - terminated) * V(s') (eq. 6): the target needs no action
   at s', so no out-of-data action is ever evaluated. Target critics by Polyak averaging (tau 0.005) every update.
3. Policy extraction by advantage-weighted regression (eq. 7): maximise
   mean exp(beta * (min_i Q_i'(s, a) - V(s))) * log pi(a | s), weights clipped at ``max_weight`` = 100,
   temperature ``beta`` = 3 for MuJoCo.
4. Order within an update, as in the reference: V first, then the policy and the critics, both with the new V.
5. Policy: Gaussian with tanh-bounded mean and a state-independent log-std clamped to [-5, 2], over the action
   box rescaled to [-1, 1] (no squashing of samples: dataset actions are scored as they are). Deterministic
   evaluation takes the mean. Its learning rate follows a cosine decay to 0 over ``actor_lr_decay_steps`` updates
   (1M in the reference; 0: constant).
6. Rewards are scaled for MuJoCo as in the reference: r * 1000 / (max - min) of the dataset's episode returns,
   computed once from the dataset (``fit_dataset``; all episodes, the unfinished last one included).
7. Offline: trained by the ``offline`` loop on a fixed dataset; the env is used for evaluation only.
Defaults are the paper's MuJoCo settings: 256-256 networks, lr 3e-4 for all, batch 256, gamma 0.99.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Optional

import numpy as np
import torch
from torch import nn

from rlbase.core.agent import Hooks
from rlbase.core.buffer import Batch
from rlbase.core.nets import ActionScaler, Critic, adam, hard_update, init_, minimize, mlp, soft_update
from rlbase.core.seeding import AgentRandom, normal
from rlbase.core.settings import any_value, non_negative, positive, unit
from rlbase.envs import EnvSpec
from rlbase.loops.offline import OfflineConfig

ACTION_SPACES = ("continuous",)
SAMPLES_POLICY = True  # act(deterministic=False) samples the learned policy (eval.sample, load_policy)
LOOP = "offline"
OFFLINE = True


@dataclass
class IQLConfig(OfflineConfig):
    name: str = "iql"
    expectile: float = unit(0.7, low_open=True, high_open=True)  # tau of the expectile value loss (0.5: a mean; toward 1: a max over data actions)
    beta: float = non_negative(3.0)  # inverse temperature of the advantage weights
    max_weight: float = positive(100.0)  # clip of the advantage weights exp(beta * A)
    scale_rewards: bool = True  # r * 1000 / (max - min episode return of the dataset), the reference's MuJoCo scaling
    actor_lr: float = positive(3e-4)  # Adam learning rate of the policy (start of its cosine decay)
    critic_lr: float = positive(3e-4)  # Adam learning rate of the twin critics
    value_lr: float = positive(3e-4)  # Adam learning rate of V
    actor_lr_decay_steps: int = non_negative(1_000_000)  # cosine decay of actor_lr to 0 over this many updates (0: constant)
    hidden: list[int] = field(default_factory=lambda: [256, 256])  # hidden sizes of every network
    tau: float = unit(0.005, low_open=True)  # Polyak rate of the target critics
    log_std_min: float = any_value(-5.0)  # clamp of the policy's log-std
    log_std_max: float = any_value(2.0)


class GaussianPolicy(nn.Module):
    """N(tanh(mlp(s)), exp(log_std)) over actions rescaled to [-1, 1]; log_std is one learned vector."""

    def __init__(self, obs_dim: int, hidden: list[int], action_dim: int, log_std_min: float, log_std_max: float):
        super().__init__()
        self.net = mlp(obs_dim, hidden, action_dim, out_activation=nn.Tanh)
        self.log_std = nn.Parameter(torch.zeros(action_dim))
        self.log_std_min, self.log_std_max = log_std_min, log_std_max

    def log_prob(self, obs: torch.Tensor, unit_action: torch.Tensor) -> torch.Tensor:
        mean = self.net(obs)
        log_std = self.log_std.clamp(self.log_std_min, self.log_std_max)
        z = (unit_action - mean) / log_std.exp()
        return (-0.5 * z.pow(2) - log_std - 0.5 * math.log(2 * math.pi)).sum(-1)


def expectile_loss(diff: torch.Tensor, expectile: float) -> torch.Tensor:
    """mean |tau - 1(diff < 0)| * diff^2 (eq. 5's asymmetric squared loss)."""
    weight = torch.where(diff < 0, 1.0 - expectile, expectile)
    return (weight * diff.pow(2)).mean()


class IQL(Hooks):
    def __init__(self, cfg: IQLConfig, spec: EnvSpec, device: torch.device, rng: Optional[AgentRandom] = None):
        self.cfg, self.spec, self.device = cfg, spec, device
        self.rng = AgentRandom(0, device) if rng is None else rng
        self.scaler = ActionScaler(spec.action_low, spec.action_high).to(device)
        self.policy = GaussianPolicy(spec.obs_dim, cfg.hidden, spec.action_dim, cfg.log_std_min,
                                     cfg.log_std_max).to(device)
        self.critic = Critic(2, spec.obs_dim, spec.action_dim, cfg.hidden).to(device)
        self.critic_target = Critic(2, spec.obs_dim, spec.action_dim, cfg.hidden).to(device)
        init_(self.policy, self.rng.init)
        init_(self.critic, self.rng.init)
        hard_update(self.critic_target, self.critic)
        self.critic_target.requires_grad_(False)
        self.value = init_(mlp(spec.obs_dim, cfg.hidden, 1).to(device), self.rng.init)
        self.actor_opt = adam(self.policy.parameters(), cfg.actor_lr)
        self.critic_opt = adam(self.critic.parameters(), cfg.critic_lr)
        self.value_opt = adam(self.value.parameters(), cfg.value_lr)
        self.reward_scale = 1.0
        self.updates = 0

    def fit_dataset(self, arrays: dict[str, np.ndarray]) -> None:
        if not self.cfg.scale_rewards:
            return
        ids, rewards = arrays["episode_ids"], arrays["rewards"].astype(np.float64)
        returns = np.bincount(ids - ids.min(), weights=rewards)
        span = float(returns.max() - returns.min())
        self.reward_scale = 1000.0 / span if span > 0 else 1.0

    @torch.inference_mode()
    def act(self, obs: torch.Tensor, deterministic: bool = True, generator: Optional[torch.Generator] = None) -> torch.Tensor:
        """Actions ``(B, action_dim)`` for observations ``(B, obs_dim)``: the policy's mean (detail 5), or unless
        ``deterministic`` a sample clipped to the unit box; scaled to the env's bounds."""
        mean = self.policy.net(obs)
        if not deterministic:
            std = self.policy.log_std.clamp(self.cfg.log_std_min, self.cfg.log_std_max).exp()
            mean = (mean + std * normal(mean, self.rng.explore if generator is None else generator)).clamp(-1.0, 1.0)
        return self.scaler(mean)

    def actor_lr(self) -> float:
        c = self.cfg
        if c.actor_lr_decay_steps <= 0:
            return c.actor_lr
        t = min(self.updates, c.actor_lr_decay_steps) / c.actor_lr_decay_steps
        return c.actor_lr * 0.5 * (1.0 + math.cos(math.pi * t))

    def update(self, batch: Batch) -> dict[str, torch.Tensor]:
        c = self.cfg
        reward = batch.reward * self.reward_scale
        with torch.no_grad():
            q_target = self.critic_target(batch.obs, batch.action).min(dim=0).values  # (B,)
        v = self.value(batch.obs).squeeze(-1)
        value_loss = expectile_loss(q_target - v, c.expectile)
        minimize(self.value_opt, value_loss)

        with torch.no_grad():
            v_new = self.value(batch.obs).squeeze(-1)
            weight = torch.exp(c.beta * (q_target - v_new)).clamp(max=c.max_weight)
            next_v = self.value(batch.next_obs).squeeze(-1)
            y = reward + c.gamma * (1.0 - batch.terminated) * next_v
        for group in self.actor_opt.param_groups:
            group["lr"] = self.actor_lr()
        log_prob = self.policy.log_prob(batch.obs, self.scaler.unit(batch.action))
        actor_loss = -(weight * log_prob).mean()
        minimize(self.actor_opt, actor_loss)

        q = self.critic(batch.obs, batch.action)  # (2, B)
        critic_loss = (q - y).pow(2).mean(dim=1).sum()
        minimize(self.critic_opt, critic_loss)
        soft_update(self.critic_target, self.critic, c.tau)
        self.updates += 1
        return {"loss/value": value_loss.detach(), "loss/actor": actor_loss.detach(), "loss/critic": critic_loss.detach(),
                "train/v_mean": v.detach().mean(), "train/adv_weight_mean": weight.mean(),
                "train/q_mean": q.detach().mean()}

    def state_dict(self) -> dict:
        return {"policy": self.policy.state_dict(), "critic": self.critic.state_dict(),
                "critic_target": self.critic_target.state_dict(), "value": self.value.state_dict(),
                "actor_opt": self.actor_opt.state_dict(), "critic_opt": self.critic_opt.state_dict(),
                "value_opt": self.value_opt.state_dict(), "updates": self.updates, "reward_scale": self.reward_scale}

    def load_state_dict(self, state: dict) -> None:
        for name in ("policy", "critic", "critic_target", "value", "actor_opt", "critic_opt", "value_opt"):
            getattr(self, name).load_state_dict(state[name])
        self.updates, self.reward_scale = state["updates"], state["reward_scale"]


Config, Agent = IQLConfig, IQL
