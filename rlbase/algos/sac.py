"""SAC: Soft Actor-Critic with automatic entropy tuning.

Papers: Haarnoja et al., "Soft Actor-Critic: Off-Policy Maximum Entropy Deep RL with a Stochastic Actor",
ICML 2018, and "Soft Actor-Critic Algorithms and Applications", arXiv:1812.05905 (learned temperature).
Reference implementation: github.com/rail-berkeley/softlearning.

Implementation details:
1. Policy: MLP giving the mean and log-std (clamped to [log_std_min, log_std_max]) of a Gaussian over
   a pre-squash sample u; the action is a = center + scale * tanh(u).
2. Log-probability by the change of variables (appendix C of the 2018 paper), of the squashed action
   tanh(u) in [-1, 1]^|A| before it is scaled to the env's bounds (the authors' softlearning normalises actions to
   [-1, 1], and SB3 works in that unit space too), so the default target entropy -|A| means what it means in the
   paper on every task: log pi = log N(u; mu, sigma) - sum_i log(1 - tanh(u_i)^2), where
   log(1 - tanh(u)^2) = 2 * (log 2 - u - softplus(-2u)) is evaluated on u itself (stable for large |u|,
   unlike log(1 - a^2 + eps) on the squashed action). ``log_prob_eps > 0`` selects that inexact form instead
   (SB3 and CleanRL use eps = 1e-6): it caps the penalty of a saturated action dimension at -log(eps) = 13.8 nats,
   so saturated actions look more entropic and the learned temperature moves; kept for parity comparisons.
3. Twin critics (one batched ensemble) and target critics updated by Polyak averaging with ``tau``;
   soft target y = r + gamma * (1 - terminated) * (min_i Q_i'(s', a') - alpha * log pi(a'|s')), a' ~ pi(s').
   The critics read actions in the unit space [-1, 1]^|A|, as in softlearning and SB3: replay actions as (a - center) /
   scale (``TanhGaussianPolicy.unit``; skipped for bounds of +-1), policy samples as tanh(u) (``sample_unit``).
4. Temperature: alpha = exp(log_alpha), learned to keep the entropy near ``target_entropy``
   (default -|A|), loss -log_alpha * (log pi + target_entropy) (eq. 18 of the 2018 applications paper).
5. Deterministic evaluation uses center + scale * tanh(mu).
6. Terminated transitions do not bootstrap; truncated ones (time limits) do.
7. ``precision=bf16`` (opt-in; fp32 is the default, as CQL's setting of that name) runs the update's forward passes
   (critics, target critics, policy) under bfloat16 autocast (``nets.bf16_autocast``): their matmuls take bf16
   inputs and accumulate in fp32; the policy's mean and log-std, the Q-values and the target are cast back to fp32
   before the log-probabilities and the losses, and every weight, gradient, Adam state, the temperature and the
   target critics stay fp32. Acting stays fp32. The mathematics are unchanged, the rounding is not.
The critic loss is one method (``critic_loss``) so CQL can add its conservative term without copying SAC.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Optional

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from rlbase.algos.stacked import StackedSAC
from rlbase.core.agent import Hooks
from rlbase.core.buffer import Batch
from rlbase.core.nets import ActionScaler, Critic, adam, bf16_autocast, hard_update, init_, minimize, mlp, soft_update
from rlbase.core.seeding import AgentRandom, normal
from rlbase.core.settings import any_value, at_least, non_negative, one_of, positive, unit
from rlbase.envs import EnvSpec
from rlbase.loops.off_policy import OffPolicyConfig

ACTION_SPACES = ("continuous",)
SAMPLES_POLICY = True  # act(deterministic=False) samples the learned policy (eval.sample, load_policy)
LOOP = "off_policy"


@dataclass
class SACLoss:
    """SAC's own settings (networks, learning rates, temperature): the part of its config CQL and offline SAC
    reuse on the offline loop, which has no replay buffer or random steps."""

    actor_lr: float = positive(3e-4)  # Adam learning rate of the policy
    critic_lr: float = positive(3e-4)  # Adam learning rate of the critics
    alpha_lr: float = positive(3e-4)  # Adam learning rate of log(alpha)
    actor_hidden: list[int] = field(default_factory=lambda: [256, 256])  # policy hidden sizes
    critic_hidden: list[int] = field(default_factory=lambda: [256, 256])  # critic hidden sizes
    tau: float = unit(0.005, low_open=True)  # Polyak rate of the target critics
    init_alpha: float = positive(1.0)  # initial temperature
    autotune: bool = True  # learn alpha; False keeps init_alpha fixed
    target_entropy: Optional[float] = any_value(None)  # None: -|A|
    log_std_min: float = any_value(-20.0)  # clamp of the policy's log-std
    log_std_max: float = any_value(2.0)
    log_prob_eps: float = non_negative(0.0)  # 0: exact log(1 - tanh(u)^2); > 0: log(1 - tanh(u)^2 + eps), as SB3 and CleanRL (1e-6)


@dataclass
class SACConfig(SACLoss, OffPolicyConfig):
    name: str = "sac"
    batch_size: int = positive(256)  # transitions per update
    buffer_size: int = positive(1_000_000)  # replay capacity
    random_steps: int = non_negative(10_000)  # uniform random actions first
    learning_starts: int = at_least(1, 10_000)  # updates begin once the buffer holds this many transitions
    precision: str = one_of("fp32", "fp32", "bf16")  # the update's forward passes: fp32, or bf16 autocast (detail 7)


class TanhGaussianPolicy(nn.Module):
    def __init__(self, obs_dim: int, hidden: list[int], spec: EnvSpec, log_std_min: float, log_std_max: float,
                 log_prob_eps: float = 0.0):
        super().__init__()
        self.log_prob_eps = log_prob_eps
        self.net = mlp(obs_dim, hidden, 2 * spec.action_dim)
        self.scaler = ActionScaler(spec.action_low, spec.action_high)
        # bounds of +-1: the unit map is the identity and is skipped, so the critics' inputs are today's bit for bit
        self.unit_bounds = bool(np.all(spec.action_low == -1.0) and np.all(spec.action_high == 1.0))
        self.log_std_min, self.log_std_max = log_std_min, log_std_max

    def dist_params(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mean, log_std = self.net(obs).float().chunk(2, dim=-1)  # .float(): bf16 under autocast, else a no-op
        return mean, log_std.clamp(self.log_std_min, self.log_std_max)

    def log_prob(self, u: torch.Tensor, mean: torch.Tensor, log_std: torch.Tensor) -> torch.Tensor:
        """log-density of the action center + scale * tanh(u), given the pre-squash sample u."""
        gauss = -0.5 * ((u - mean) / log_std.exp()) ** 2 - log_std - 0.5 * math.log(2 * math.pi)
        if self.log_prob_eps > 0:
            log_det_tanh = torch.log(1.0 - torch.tanh(u) ** 2 + self.log_prob_eps)
        else:
            log_det_tanh = 2.0 * (math.log(2.0) - u - F.softplus(-2.0 * u))  # log(1 - tanh(u)^2), stable
        return (gauss - log_det_tanh).sum(-1)  # of tanh(u) in [-1, 1]^|A|: no - sum log(scale) (detail 2)

    def sample_unit(self, obs: torch.Tensor, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """A reparameterised action sample in the unit space, tanh(u) in [-1, 1]^|A| (noise from ``gen``; what the
        critics read, detail 3), and its log-probability."""
        mean, log_std = self.dist_params(obs)
        u = mean + log_std.exp() * normal(mean, gen)
        return torch.tanh(u), self.log_prob(u, mean, log_std)

    def sample(self, obs: torch.Tensor, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """``sample_unit``'s sample scaled to the env's bounds, and its log-probability."""
        action, log_prob = self.sample_unit(obs, gen)
        return self.scaler(action), log_prob

    def unit(self, action: torch.Tensor) -> torch.Tensor:
        """Env actions (the replay's) in the critics' unit space, (a - center) / scale; as is for bounds of +-1."""
        return action if self.unit_bounds else self.scaler.unit(action)

    def sample_action(self, obs: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        """An action sample alone (acting needs no log-probability); draws the same noise as ``sample``."""
        mean, log_std = self.dist_params(obs)
        return self.scaler(torch.tanh(mean + log_std.exp() * normal(mean, gen)))

    def deterministic(self, obs: torch.Tensor) -> torch.Tensor:
        return self.scaler(torch.tanh(self.dist_params(obs)[0]))


class SAC(Hooks):
    def __init__(self, cfg: SACConfig, spec: EnvSpec, device: torch.device, rng: Optional[AgentRandom] = None):
        self.cfg, self.spec, self.device = cfg, spec, device
        self.rng = AgentRandom(0, device) if rng is None else rng
        self.actor = TanhGaussianPolicy(spec.obs_dim, cfg.actor_hidden, spec, cfg.log_std_min, cfg.log_std_max,
                                        cfg.log_prob_eps).to(device)
        self.critic = Critic(2, spec.obs_dim, spec.action_dim, cfg.critic_hidden).to(device)
        self.critic_target = Critic(2, spec.obs_dim, spec.action_dim, cfg.critic_hidden).to(device)
        init_(self.actor, self.rng.init)
        init_(self.critic, self.rng.init)
        hard_update(self.critic_target, self.critic)
        self.critic_target.requires_grad_(False)
        self.log_alpha = torch.tensor(math.log(cfg.init_alpha), device=device, requires_grad=cfg.autotune)
        self.target_entropy = -float(spec.action_dim) if cfg.target_entropy is None else cfg.target_entropy
        self.actor_opt = adam(self.actor.parameters(), cfg.actor_lr)
        self.critic_opt = adam(self.critic.parameters(), cfg.critic_lr)
        self.alpha_opt = adam([self.log_alpha], cfg.alpha_lr)
        self.updates = 0
        # detail 7; offline SAC has no such setting, and CQL's means its conservative term only (it resets this)
        self.update_bf16 = getattr(cfg, "precision", "fp32") == "bf16"

    @property
    def alpha(self) -> torch.Tensor:
        return self.log_alpha.detach().exp()

    @torch.inference_mode()
    def act(self, obs: torch.Tensor, deterministic: bool = False, generator: Optional[torch.Generator] = None) -> torch.Tensor:
        """Actions ``(B, action_dim)`` for observations ``(B, obs_dim)``: the squashed mean when ``deterministic``
        (detail 5), else a sample of the policy."""
        if deterministic:
            return self.actor.deterministic(obs)
        return self.actor.sample_action(obs, self.rng.explore if generator is None else generator)

    def target(self, batch: Batch) -> torch.Tensor:
        """Soft Bellman target y = r + gamma (1 - terminated) (min_i Q_i'(s', a') - alpha log pi(a'|s'))."""
        with torch.no_grad():
            next_action, next_log_prob = self.actor.sample_unit(batch.next_obs, self.rng.update)
            next_q = self.critic_target(batch.next_obs, next_action).min(dim=0).values.float() - self.alpha * next_log_prob
            return batch.reward + self.cfg.gamma * (1.0 - batch.terminated) * next_q

    def critic_loss(self, batch: Batch) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        target_q = self.target(batch)
        q = self.critic(batch.obs, self.actor.unit(batch.action)).float()  # (2, B); .float(): no-op in fp32
        loss = F.mse_loss(q, target_q.expand_as(q), reduction="none").mean(dim=1).sum()
        return loss, {"train/q_mean": q.detach().mean()}

    def update(self, batch: Batch) -> dict[str, torch.Tensor]:
        # bf16 (detail 7): one autocast context per phase, each closed before its optimizer step (nets.bf16_autocast)
        with bf16_autocast(self.device, self.update_bf16):
            critic_loss, metrics = self.critic_loss(batch)
        minimize(self.critic_opt, critic_loss)

        # ``minimize`` differentiates with respect to the policy's parameters only: the critics get no
        # gradient from the policy loss.
        with bf16_autocast(self.device, self.update_bf16):
            action, log_prob = self.actor.sample_unit(batch.obs, self.rng.update)
            q_pi = self.critic(batch.obs, action).min(dim=0).values.float()
            actor_loss = (self.alpha * log_prob - q_pi).mean()
        minimize(self.actor_opt, actor_loss)

        if self.cfg.autotune:
            alpha_loss = -(self.log_alpha * (log_prob.detach() + self.target_entropy)).mean()
            minimize(self.alpha_opt, alpha_loss)
        soft_update(self.critic_target, self.critic, self.cfg.tau)
        self.updates += 1
        return {**metrics, "loss/critic": critic_loss.detach(), "loss/actor": actor_loss.detach(),
                "train/alpha": self.alpha, "train/entropy": -log_prob.detach().mean()}

    def state_dict(self) -> dict:
        return {"actor": self.actor.state_dict(), "critic": self.critic.state_dict(),
                "critic_target": self.critic_target.state_dict(), "log_alpha": self.log_alpha.detach().clone(),
                "actor_opt": self.actor_opt.state_dict(), "critic_opt": self.critic_opt.state_dict(),
                "alpha_opt": self.alpha_opt.state_dict(), "updates": self.updates}

    def load_state_dict(self, state: dict) -> None:
        for name in ("actor", "critic", "critic_target", "actor_opt", "critic_opt", "alpha_opt"):
            getattr(self, name).load_state_dict(state[name])
        with torch.no_grad():
            self.log_alpha.copy_(state["log_alpha"])
        self.updates = state["updates"]


Config, Agent = SACConfig, SAC
STACKED = StackedSAC  # several seeds in one process (hardware.seeds_per_process; algos/stacked.py)
