"""BCQ: Batch-Constrained deep Q-learning, continuous (generative model + perturbation) and discrete.

Papers: Fujimoto, Meger, Precup, "Off-Policy Deep Reinforcement Learning without Exploration", ICML 2019
(continuous); Fujimoto, Conti, Ghavamzadeh, Pineau, "Benchmarking Batch Deep Reinforcement Learning
Algorithms", arXiv:1910.01708 (discrete). Reference implementation: github.com/sfujim/BCQ.

Implementation details, continuous actions (``BCQ``), all in the action box rescaled to [-1, 1]:
1. Generator: a conditional VAE of the dataset's actions given the state (750-750 encoder and decoder,
   latent size 2|A|); encoder log-std clamped to [-4, 15]; loss = reconstruction MSE + 0.5 * KL to N(0, I).
   Sampling decodes z ~ N(0, I) clipped to [-0.5, 0.5], which keeps samples near the data's actions.
2. Perturbation network xi(s, a) (400-300): a + phi * tanh(.), clipped to [-1, 1], so an action moves at
   most ``phi`` x the action half-width away from the generated one.
3. Twin critics (400-300) with soft clipped double Q:
   y = r + gamma (1 - terminated) max_j [lambda min_i Q_i'(s', a_j) + (1 - lambda) max_i Q_i'(s', a_j)]
   over ``n_target`` perturbed generator samples a_j at s' (target perturbation network).
4. xi maximises Q_1(s, xi(s, a)), a from the generator; targets follow by Polyak averaging with ``tau``.
5. Acting: the best, by Q_1, of ``n_act`` perturbed generator samples (10 and 100 in the reference code).
Implementation details, discrete actions (``DiscreteBCQ``):
6. A Q-network and a behaviour-cloning network G(a|s) (256-256 each). Allowed actions at s are those with
   G(a|s) / max_a' G(a'|s) > ``threshold``; the target uses the online Q's best allowed action at s',
   valued by the target Q-network. Loss = Huber TD + cross-entropy of G + 0.01 * mean(logits^2).
7. Acting: the best allowed action by Q. Targets by Polyak averaging with ``tau`` (the paper's non-Atari setup).
Both: terminated transitions do not bootstrap, truncated ones do; offline loop, env used for evaluation only.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from rlbase.core.agent import Hooks
from rlbase.core.buffer import Batch
from rlbase.core.nets import (
    ActionScaler,
    Critic,
    adam,
    hard_update,
    init_,
    load_state_of,
    minimize,
    mlp,
    soft_update,
    state_of,
)
from rlbase.core.seeding import AgentRandom, normal
from rlbase.core.settings import non_negative, positive, unit
from rlbase.envs import EnvSpec
from rlbase.loops.offline import OfflineConfig

ACTION_SPACES = ("continuous", "discrete")
LOOP = "offline"
OFFLINE = True


@dataclass
class BCQConfig(OfflineConfig):
    name: str = "bcq"
    batch_size: int = positive(100)  # transitions per update (the reference code's)
    tau: float = unit(0.005, low_open=True)  # Polyak rate of the target networks
    lr: float = positive(1e-3)  # Adam learning rate of every network (continuous); discrete uses discrete_lr
    # continuous actions
    phi: float = non_negative(0.05)  # perturbation bound, times the action half-width
    lmbda: float = unit(0.75)  # weight of min over max in the soft clipped double-Q target
    n_target: int = positive(10)  # generator samples per next state in the target
    n_act: int = positive(100)  # generator samples when acting
    vae_hidden: list[int] = field(default_factory=lambda: [750, 750])  # encoder and decoder hidden sizes
    latent_dim: Optional[int] = positive(None)  # None: 2 x action dim
    actor_hidden: list[int] = field(default_factory=lambda: [400, 300])  # perturbation network
    critic_hidden: list[int] = field(default_factory=lambda: [400, 300])
    # discrete actions
    threshold: float = unit(0.3)  # allowed: G(a|s) / max G(.|s) above this
    hidden: list[int] = field(default_factory=lambda: [256, 256])  # Q and behaviour-cloning networks
    discrete_lr: float = positive(3e-4)  # Adam learning rate (discrete)


class VAE(nn.Module):
    """Conditional VAE of actions (in [-1, 1]) given states."""

    def __init__(self, obs_dim: int, action_dim: int, latent_dim: int, hidden: list[int]):
        super().__init__()
        self.latent_dim = latent_dim
        self.encoder = mlp(obs_dim + action_dim, hidden, 2 * latent_dim)
        self.decoder = mlp(obs_dim + latent_dim, hidden, action_dim, out_activation=nn.Tanh)

    def forward(self, obs: torch.Tensor, action: torch.Tensor, gen: torch.Generator):
        mean, log_std = self.encoder(torch.cat([obs, action], -1)).chunk(2, -1)
        std = log_std.clamp(-4, 15).exp()
        z = mean + std * normal(std, gen)
        return self.decode(obs, gen, z), mean, std

    def decode(self, obs: torch.Tensor, gen: torch.Generator, z: Optional[torch.Tensor] = None) -> torch.Tensor:
        if z is None:
            z = torch.randn(obs.shape[0], self.latent_dim, generator=gen, device=obs.device).clamp(-0.5, 0.5)
        return self.decoder(torch.cat([obs, z], -1))


class Perturbation(nn.Module):
    """xi(s, a) = clip(a + phi * tanh(f(s, a)), -1, 1)."""

    def __init__(self, obs_dim: int, action_dim: int, hidden: list[int], phi: float):
        super().__init__()
        self.net = mlp(obs_dim + action_dim, hidden, action_dim, out_activation=nn.Tanh)
        self.phi = phi

    def forward(self, obs: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        return (action + self.phi * self.net(torch.cat([obs, action], -1))).clamp(-1.0, 1.0)


class BCQ(Hooks):
    NETS = ("vae", "actor", "actor_target", "critic", "critic_target", "vae_opt", "actor_opt", "critic_opt")

    def __init__(self, cfg: BCQConfig, spec: EnvSpec, device: torch.device, rng: Optional[AgentRandom] = None):
        self.cfg, self.spec, self.device = cfg, spec, device
        self.rng = AgentRandom(0, device) if rng is None else rng
        o, a = spec.obs_dim, spec.action_dim
        self.scaler = ActionScaler(spec.action_low, spec.action_high).to(device)
        self.vae = VAE(o, a, cfg.latent_dim or 2 * a, cfg.vae_hidden).to(device)
        self.actor = Perturbation(o, a, cfg.actor_hidden, cfg.phi).to(device)
        self.actor_target = Perturbation(o, a, cfg.actor_hidden, cfg.phi).to(device)
        self.critic = Critic(2, o, a, cfg.critic_hidden).to(device)
        self.critic_target = Critic(2, o, a, cfg.critic_hidden).to(device)
        for net in (self.vae, self.actor, self.critic):
            init_(net, self.rng.init)
        for target, source in ((self.actor_target, self.actor), (self.critic_target, self.critic)):
            hard_update(target, source)
            target.requires_grad_(False)
        self.vae_opt = adam(self.vae.parameters(), cfg.lr)
        self.actor_opt = adam(self.actor.parameters(), cfg.lr)
        self.critic_opt = adam(self.critic.parameters(), cfg.lr)
        self.updates = 0

    def select(self, obs: torch.Tensor, n: int, actor: Perturbation, critic: Critic, gen: torch.Generator) -> torch.Tensor:
        """For each state, the best of ``n`` perturbed generator samples by Q_1; in [-1, 1], shape (B, |A|)."""
        b = obs.shape[0]
        obs_n = obs.repeat_interleave(n, dim=0)
        actions = actor(obs_n, self.vae.decode(obs_n, gen))
        best = critic(obs_n, actions)[0].view(b, n).argmax(dim=1)
        return actions.view(b, n, -1)[torch.arange(b, device=obs.device), best]

    @torch.inference_mode()
    def act(self, obs: torch.Tensor, deterministic: bool = False, generator: Optional[torch.Generator] = None) -> torch.Tensor:
        """For each of the observations ``(B, obs_dim)``, the best of ``n_act`` generated actions ``(B,
        action_dim)``: random even when deterministic (the generator's samples), drawn from ``generator``
        (evaluation passes its own), else from the agent's ``explore`` stream."""
        gen = self.rng.explore if generator is None else generator
        return self.scaler(self.select(obs, self.cfg.n_act, self.actor, self.critic, gen))

    def update(self, batch: Batch) -> dict[str, torch.Tensor]:
        c = self.cfg
        action = self.scaler.unit(batch.action)
        recon, mean, std = self.vae(batch.obs, action, self.rng.update)
        kl = -0.5 * (1 + (std * std).log() - mean * mean - std * std).mean()
        vae_loss = F.mse_loss(recon, action) + 0.5 * kl
        self.vae_opt.zero_grad(set_to_none=True)
        vae_loss.backward()
        self.vae_opt.step()

        with torch.no_grad():
            b, n = batch.obs.shape[0], c.n_target
            next_n = batch.next_obs.repeat_interleave(n, dim=0)
            q = self.critic_target(next_n, self.actor_target(next_n, self.vae.decode(next_n, self.rng.update)))  # (2, B*n)
            q = c.lmbda * q.min(dim=0).values + (1 - c.lmbda) * q.max(dim=0).values
            target_q = batch.reward + c.gamma * (1.0 - batch.terminated) * q.view(b, n).max(dim=1).values
        q = self.critic(batch.obs, action)
        critic_loss = F.mse_loss(q, target_q.expand_as(q), reduction="none").mean(dim=1).sum()
        minimize(self.critic_opt, critic_loss)

        with torch.no_grad():
            sampled = self.vae.decode(batch.obs, self.rng.update)
        # the actor maximises Q1; ``minimize`` gives gradients to the actor's parameters only
        actor_loss = -self.critic(batch.obs, self.actor(batch.obs, sampled), members=1)[0].mean()
        minimize(self.actor_opt, actor_loss)

        soft_update(self.critic_target, self.critic, c.tau)
        soft_update(self.actor_target, self.actor, c.tau)
        self.updates += 1
        return {"loss/vae": vae_loss.detach(), "loss/critic": critic_loss.detach(), "loss/actor": actor_loss.detach(),
                "train/q_mean": q.detach().mean()}

    def state_dict(self) -> dict:
        return {**state_of(self, self.NETS), "updates": self.updates}

    def load_state_dict(self, state: dict) -> None:
        load_state_of(self, self.NETS, state)
        self.updates = state["updates"]


class DiscreteBCQNet(nn.Module):
    def __init__(self, obs_dim: int, n_actions: int, hidden: list[int]):
        super().__init__()
        self.q = mlp(obs_dim, hidden, n_actions)
        self.g = mlp(obs_dim, hidden, n_actions)  # behaviour-cloning logits

    def forward(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.q(obs), self.g(obs)


class DiscreteBCQ(Hooks):
    NETS = ("net", "net_target", "opt")

    def __init__(self, cfg: BCQConfig, spec: EnvSpec, device: torch.device, rng: Optional[AgentRandom] = None):
        self.cfg, self.spec, self.device = cfg, spec, device
        self.rng = AgentRandom(0, device) if rng is None else rng
        self.net = init_(DiscreteBCQNet(spec.obs_dim, spec.n_actions, cfg.hidden).to(device), self.rng.init)
        self.net_target = DiscreteBCQNet(spec.obs_dim, spec.n_actions, cfg.hidden).to(device)
        hard_update(self.net_target, self.net)
        self.net_target.requires_grad_(False)
        self.opt = adam(self.net.parameters(), cfg.discrete_lr)
        self.updates = 0

    def best_allowed(self, q: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
        """argmax of Q over actions whose behaviour probability is above threshold x the most likely one's."""
        log_p = logits.log_softmax(dim=-1)
        allowed = (log_p - log_p.max(dim=-1, keepdim=True).values) > np.log(self.cfg.threshold)
        return q.masked_fill(~allowed, float("-inf")).argmax(dim=-1)

    @torch.inference_mode()
    def act(self, obs: torch.Tensor, deterministic: bool = False, generator: Optional[torch.Generator] = None) -> torch.Tensor:
        """The best allowed action ``(B,)`` for observations ``(B, obs_dim)`` (no draws)."""
        return self.best_allowed(*self.net(obs))

    def update(self, batch: Batch) -> dict[str, torch.Tensor]:
        c = self.cfg
        with torch.no_grad():
            next_a = self.best_allowed(*self.net(batch.next_obs))
            next_q = self.net_target(batch.next_obs)[0].gather(1, next_a[:, None]).squeeze(1)
            target_q = batch.reward + c.gamma * (1.0 - batch.terminated) * next_q
        q, logits = self.net(batch.obs)
        q_a = q.gather(1, batch.action[:, None]).squeeze(1)
        td_loss = F.smooth_l1_loss(q_a, target_q)
        bc_loss = F.cross_entropy(logits, batch.action) + 1e-2 * logits.pow(2).mean()
        loss = td_loss + bc_loss
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()
        soft_update(self.net_target, self.net, c.tau)
        self.updates += 1
        return {"loss/td": td_loss.detach(), "loss/bc": bc_loss.detach(), "train/q_mean": q_a.detach().mean()}

    def state_dict(self) -> dict:
        return {**state_of(self, self.NETS), "updates": self.updates}

    def load_state_dict(self, state: dict) -> None:
        load_state_of(self, self.NETS, state)
        self.updates = state["updates"]


def make_agent(cfg: BCQConfig, spec: EnvSpec, device: torch.device, rng: Optional[AgentRandom] = None):
    """Continuous BCQ for box actions, discrete BCQ for discrete ones."""
    return DiscreteBCQ(cfg, spec, device, rng) if spec.discrete else BCQ(cfg, spec, device, rng)


Config, Agent = BCQConfig, make_agent
