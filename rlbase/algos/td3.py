"""TD3: Twin Delayed Deep Deterministic policy gradient.

Paper: Fujimoto, van Hoof, Meger, "Addressing Function Approximation Error in Actor-Critic Methods", ICML 2018.
Reference implementation: github.com/sfujim/TD3 (TD3.py, main.py).

Implementation details:
1. Actor: MLP with tanh output mapped to the env's bounds; critics: 256-256 MLPs on concat(s, a).
2. Twin critics (clipped double Q, eq. 10): the target uses min(Q1', Q2'); both critics regress onto it
   with MSE. The two critics run as one batched ensemble (one matmul per layer for both).
3. Target policy smoothing (eq. 14): a' = clip(pi'(s') + clip(eps, -c, c), low, high), eps ~ N(0, sigma),
   with sigma = ``policy_noise`` and c = ``noise_clip`` both scaled by the action range's half-width.
4. Delayed updates: the actor and all target networks update every ``policy_freq`` critic updates;
   the actor maximises Q1 only. Targets by Polyak averaging with ``tau``.
5. Exploration: ``random_steps`` uniform actions, then pi(s) + N(0, expl_noise * half-width), clipped
   (``warmup_noise``: the uniform actions get that noise too, as SB3's ``learn()`` does; off by default).
6. Terminated transitions do not bootstrap; truncated ones (time limits) do.
7. ``precision=bf16`` (opt-in; fp32 is the default, as CQL's setting of that name) runs the update's forward passes
   (critics, actor, target networks) under bfloat16 autocast (``nets.bf16_autocast``): their matmuls take bf16
   inputs and accumulate in fp32; the Q-values and the target are cast back to fp32 before the losses, and every
   weight, gradient, Adam state and target network stays fp32 (Polyak averaging included). Acting stays fp32.
   The mathematics are unchanged, the rounding is not (bf16 keeps 8 bits of mantissa), and on Hopper-v5 it cost
   return: 100k steps, 10 seeds each, bf16 - fp32 = -108 [-208, -9] (benchmarks/bf16_100k/compare.json).
Deviations: none in the math. DDPG (algos/ddpg.py) is this class with the three tricks switched off.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from rlbase.algos.stacked import StackedTD3
from rlbase.core.agent import Hooks
from rlbase.core.buffer import Batch
from rlbase.core.nets import ActionScaler, Critic, adam, bf16_autocast, hard_update, init_, minimize, mlp, soft_update
from rlbase.core.seeding import AgentRandom, normal
from rlbase.core.settings import at_least, non_negative, one_of, positive, unit
from rlbase.envs import EnvSpec
from rlbase.loops.off_policy import OffPolicyConfig

ACTION_SPACES = ("continuous",)
LOOP = "off_policy"


@dataclass
class TD3Config(OffPolicyConfig):
    name: str = "td3"
    batch_size: int = positive(256)  # transitions per update
    buffer_size: int = positive(1_000_000)  # replay capacity
    random_steps: int = non_negative(25_000)  # uniform random actions first (Fujimoto's start_timesteps)
    learning_starts: int = at_least(1, 25_000)  # updates begin once the buffer holds this many transitions
    actor_lr: float = positive(3e-4)  # Adam learning rate of the actor
    critic_lr: float = positive(3e-4)  # Adam learning rate of the critics
    critic_weight_decay: float = non_negative(0.0)  # L2 weight decay of the critics (1e-2 in Lillicrap's DDPG)
    actor_hidden: list[int] = field(default_factory=lambda: [256, 256])  # actor hidden sizes
    critic_hidden: list[int] = field(default_factory=lambda: [256, 256])  # critic hidden sizes
    critic_action_layer: int = one_of(0, 0, 1)  # where the action enters the critic: 0 input, 1 after the first layer
    tau: float = unit(0.005, low_open=True)  # Polyak rate of the target networks
    expl_noise: float = non_negative(0.1)  # std of the Gaussian exploration noise, times the action half-width
    warmup_noise: bool = False  # add that noise to the random_steps' uniform actions too (SB3's learn() does)
    twin: bool = True  # clipped double Q with two critics (False: one critic)
    policy_noise: float = non_negative(0.2)  # target policy smoothing noise std, times the action half-width (0: off)
    noise_clip: float = non_negative(0.5)  # clip of the smoothing noise, times the action half-width
    policy_freq: int = positive(2)  # critic updates per actor and target update (1: no delay)
    precision: str = one_of("fp32", "fp32", "bf16")  # the update's forward passes: fp32, or bf16 autocast (detail 7)


class Actor(nn.Module):
    def __init__(self, obs_dim: int, hidden: list[int], spec: EnvSpec):
        super().__init__()
        self.net = mlp(obs_dim, hidden, spec.action_dim, out_activation=nn.Tanh)
        self.scaler = ActionScaler(spec.action_low, spec.action_high)

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return self.scaler(self.net(obs))


class TD3(Hooks):
    def __init__(self, cfg: TD3Config, spec: EnvSpec, device: torch.device, rng: Optional[AgentRandom] = None):
        self.cfg, self.spec, self.device = cfg, spec, device
        self.rng = AgentRandom(0, device) if rng is None else rng
        k = 2 if cfg.twin else 1
        self.actor = Actor(spec.obs_dim, cfg.actor_hidden, spec).to(device)
        self.actor_target = Actor(spec.obs_dim, cfg.actor_hidden, spec).to(device)
        self.critic = Critic(k, spec.obs_dim, spec.action_dim, cfg.critic_hidden, cfg.critic_action_layer).to(device)
        self.critic_target = Critic(k, spec.obs_dim, spec.action_dim, cfg.critic_hidden, cfg.critic_action_layer).to(device)
        init_(self.actor, self.rng.init)
        init_(self.critic, self.rng.init)
        hard_update(self.actor_target, self.actor)
        hard_update(self.critic_target, self.critic)
        self.actor_target.requires_grad_(False)
        self.critic_target.requires_grad_(False)
        self.actor_opt = adam(self.actor.parameters(), cfg.actor_lr)
        self.critic_opt = adam(self.critic.parameters(), cfg.critic_lr, cfg.critic_weight_decay)
        self.scaler = self.actor.scaler
        self.updates = 0
        self._actor_loss = torch.zeros((), device=device)
        # detail 7; TD3+BC, which reuses this class, has no such setting and stays fp32
        self.update_bf16 = getattr(cfg, "precision", "fp32") == "bf16"

    @torch.inference_mode()
    def act(self, obs: torch.Tensor, deterministic: bool = False, generator: Optional[torch.Generator] = None) -> torch.Tensor:
        """Actions ``(B, action_dim)`` for observations ``(B, obs_dim)``: pi(s), plus clipped Gaussian exploration
        noise unless ``deterministic``."""
        action = self.actor(obs)
        if not deterministic:
            action = self._explore(action, generator)
        return action

    def _explore(self, action: torch.Tensor, generator: Optional[torch.Generator] = None) -> torch.Tensor:
        if self.cfg.expl_noise > 0:
            noise = normal(action, self.rng.explore if generator is None else generator)
            action = action + noise * (self.cfg.expl_noise * self.scaler.scale)
            action = torch.maximum(torch.minimum(action, self.scaler.high), self.scaler.low)
        return action

    @torch.inference_mode()
    def warmup_action(self, action: np.ndarray) -> np.ndarray:
        """A uniform warm-up action, with the exploration noise added if ``warmup_noise`` (else unchanged)."""
        if not self.cfg.warmup_noise:
            return action
        noisy = self._explore(torch.as_tensor(action, dtype=torch.float32, device=self.device))
        return noisy.cpu().numpy().astype(action.dtype)

    def target(self, batch: Batch) -> torch.Tensor:
        """y = r + gamma * (1 - terminated) * min_i Q_i'(s', a'), a' smoothed (eqs. 10 and 14)."""
        c, s = self.cfg, self.scaler
        with torch.no_grad():
            next_action = self.actor_target(batch.next_obs)
            if c.policy_noise > 0:
                noise = (normal(next_action, self.rng.update) * c.policy_noise).clamp(-c.noise_clip, c.noise_clip)
                next_action = torch.maximum(torch.minimum(next_action + noise * s.scale, s.high), s.low)
            next_q = self.critic_target(batch.next_obs, next_action).min(dim=0).values.float()
            return batch.reward + c.gamma * (1.0 - batch.terminated) * next_q

    def update(self, batch: Batch) -> dict[str, torch.Tensor]:
        # bf16 (detail 7): one autocast context per phase, each closed before its optimizer step (nets.bf16_autocast)
        with bf16_autocast(self.device, self.update_bf16):
            target_q = self.target(batch)
            q = self.critic(batch.obs, batch.action).float()  # (k, B); .float(): no-op in fp32
            # Sum over critics of each critic's MSE, as in the reference (mse(Q1) + mse(Q2)).
            critic_loss = F.mse_loss(q, target_q.expand_as(q), reduction="none").mean(dim=1).sum()
        minimize(self.critic_opt, critic_loss)
        self.updates += 1

        if self.updates % self.cfg.policy_freq == 0:
            # The actor maximises Q1, so only the first critic is evaluated; ``minimize`` differentiates with
            # respect to the actor's parameters only, so the critic's weights get no gradient from this loss.
            with bf16_autocast(self.device, self.update_bf16):
                actor_loss = -self.critic(batch.obs, self.actor(batch.obs), members=1)[0].float().mean()
            minimize(self.actor_opt, actor_loss)
            soft_update(self.critic_target, self.critic, self.cfg.tau)
            soft_update(self.actor_target, self.actor, self.cfg.tau)
            self._actor_loss = actor_loss.detach()
        return {"loss/critic": critic_loss.detach(), "loss/actor": self._actor_loss, "train/q_mean": q.detach().mean()}

    def state_dict(self) -> dict:
        return {"actor": self.actor.state_dict(), "actor_target": self.actor_target.state_dict(),
                "critic": self.critic.state_dict(), "critic_target": self.critic_target.state_dict(),
                "actor_opt": self.actor_opt.state_dict(), "critic_opt": self.critic_opt.state_dict(),
                "updates": self.updates}

    def load_state_dict(self, state: dict) -> None:
        for name in ("actor", "actor_target", "critic", "critic_target", "actor_opt", "critic_opt"):
            getattr(self, name).load_state_dict(state[name])
        self.updates = state["updates"]


def check_config(a) -> list[str]:
    """Relations between settings (validate_algo reports each in one line before anything is built)."""
    if a.get("critic_action_layer", 0) == 1 and len(a.critic_hidden) < 2:
        return [f"algo.critic_action_layer=1 with algo.critic_hidden=[{','.join(map(str, a.critic_hidden))}]: the action enters after "
                "the first hidden layer, so the critic needs at least two; allowed: two or more sizes, or "
                "algo.critic_action_layer=0"]
    return []


Config, Agent = TD3Config, TD3
STACKED = StackedTD3  # several seeds in one process (hardware.seeds_per_process; algos/stacked.py)
