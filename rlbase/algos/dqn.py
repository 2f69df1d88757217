"""DQN: deep Q-learning with replay memory and a target network.

Paper: Mnih et al., "Human-level control through deep reinforcement learning", Nature 2015.
Reference: the PyTorch "Reinforcement Learning (DQN) Tutorial" (CartPole), whose defaults we keep.

Implementation details:
1. Replay memory sampled uniformly; updates start once it holds ``learning_starts`` transitions
   (the tutorial starts as soon as one batch is available: ``learning_starts = batch_size``).
2. Epsilon-greedy exploration decaying exponentially from ``eps_start`` to ``eps_end`` with time
   constant ``eps_decay`` (counted in exploratory actions, as in the tutorial).
3. Target y = r + gamma * (1 - terminated) * max_a' Q_target(s', a'). Only *terminated* transitions
   stop bootstrapping; an episode cut by a time limit (truncated) still bootstraps from s'.
   With ``double=true`` the argmax comes from the online network (van Hasselt et al. 2016).
4. Huber (smooth L1) loss, AdamW with amsgrad and weight decay 0.01 (the tutorial's), gradients clipped by
   value (``grad_clip_value``) and/or by global norm (``grad_clip_norm``, as SB3's max_grad_norm).
5. Target network updated softly every update with ``tau`` (the tutorial), or copied every
   ``target_update_every`` updates when that is > 0 (Mnih et al.).

Defaults: the tutorial's settings (``algo=dqn_tutorial`` keeps them for every env). On CartPole-v1 they fail
one seed in five within 100k steps (seed 1 peaks at 230 and never recovers: a 10k-transition memory that
forgets, updates after every step from the first batch on), so ``conf/tuned/dqn_cartpole.yaml`` uses
RL-Zoo's tuned CartPole settings instead: 1000 random steps, a 100k memory, 128 updates of batch 64 every
256 env steps with the target copied after each phase, lr 2.3e-3, 256-256 network, global-norm clipping at 10.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Optional

import torch
import torch.nn.functional as F

from rlbase.algos.stacked import StackedDQN
from rlbase.core.agent import Hooks
from rlbase.core.buffer import Batch
from rlbase.core.nets import adam, hard_update, init_, minimize, mlp, soft_update
from rlbase.core.seeding import AgentRandom, epsilon_greedy
from rlbase.core.settings import any_value, at_least, non_negative, positive, unit
from rlbase.envs import EnvSpec
from rlbase.loops.off_policy import OffPolicyConfig

ACTION_SPACES = ("discrete",)
LOOP = "off_policy"
DEFAULT_THREADS = 1  # hardware.threads=0: one torch thread (as fast as two for these networks; docs/results.md)


@dataclass
class DQNConfig(OffPolicyConfig):
    name: str = "dqn"
    batch_size: int = positive(128)  # transitions per update
    buffer_size: int = positive(10_000)  # replay memory capacity
    learning_starts: int = at_least(1, 128)  # start updating once one batch is available
    lr: float = positive(1e-4)  # AdamW learning rate
    amsgrad: bool = True  # AdamW's amsgrad variant, as in the tutorial
    hidden: list[int] = field(default_factory=lambda: [128, 128])  # Q-network hidden sizes
    eps_start: float = unit(0.9)  # initial exploration rate
    eps_end: float = unit(0.05)  # final exploration rate
    eps_decay: float = positive(1000.0)  # time constant of the exponential decay, in exploratory actions
    tau: float = unit(0.005, low_open=True)  # soft target update rate (used when target_update_every == 0)
    target_update_every: int = non_negative(0)  # > 0: hard copy every this many updates instead of soft updates
    double: bool = False  # Double DQN target
    grad_clip_value: float = any_value(100.0)  # clip each gradient element to [-v, v]; <= 0 disables
    grad_clip_norm: float = non_negative(0.0)  # > 0: rescale gradients to at most this global L2 norm (after value clipping)
    weight_decay: float = non_negative(0.01)  # AdamW's decoupled weight decay (the tutorial's default); 0: plain Adam


class DQN(Hooks):
    def __init__(self, cfg: DQNConfig, spec: EnvSpec, device: torch.device, rng: Optional[AgentRandom] = None):
        self.cfg, self.spec, self.device = cfg, spec, device
        self.rng = AgentRandom(0, device) if rng is None else rng
        self.q = init_(mlp(spec.obs_dim, cfg.hidden, spec.n_actions).to(device), self.rng.init)
        self.q_target = mlp(spec.obs_dim, cfg.hidden, spec.n_actions).to(device)
        hard_update(self.q_target, self.q)
        self.q_target.requires_grad_(False)
        self.optimizer = adam(self.q.parameters(), cfg.lr, cfg.weight_decay, decoupled=True, amsgrad=cfg.amsgrad)
        self.explore_steps = 0  # exploratory actions taken so far (drives epsilon)
        self.updates = 0

    def epsilon(self, steps: Optional[int] = None) -> float:
        """The exploration rate after ``steps`` exploratory actions (default: those taken so far)."""
        c = self.cfg
        steps = self.explore_steps if steps is None else steps
        return c.eps_end + (c.eps_start - c.eps_end) * math.exp(-steps / c.eps_decay)

    @torch.inference_mode()
    def act(self, obs: torch.Tensor, deterministic: bool = False, generator: Optional[torch.Generator] = None) -> torch.Tensor:
        """Action indices ``(B,)`` for observations ``(B, obs_dim)``: the argmax of Q when ``deterministic``, else
        epsilon-greedy, row i with the epsilon of ``explore_steps + i`` (each row is one exploratory action), its
        draws from ``generator`` or ``rng.explore`` (``seeding.epsilon_greedy``: one row draws what one
        observation always drew)."""
        if deterministic:
            return self.q(obs).argmax(dim=1)
        b = obs.shape[0]
        eps = [self.epsilon(self.explore_steps + i) for i in range(b)]
        self.explore_steps += b
        gen = self.rng.explore if generator is None else generator
        return epsilon_greedy(lambda: self.q(obs).argmax(dim=1), eps, self.spec.n_actions, gen, self.device)

    def target(self, batch: Batch) -> torch.Tensor:
        """y = r + gamma * (1 - terminated) * Q_target(s', argmax) -- eq. (2) of Mnih et al. 2015."""
        with torch.no_grad():
            next_q_all = self.q_target(batch.next_obs)
            if self.cfg.double:
                best = self.q(batch.next_obs).argmax(dim=1, keepdim=True)
                next_q = next_q_all.gather(1, best).squeeze(1)
            else:
                next_q = next_q_all.max(dim=1).values
            return batch.reward + self.cfg.gamma * (1.0 - batch.terminated) * next_q

    def update(self, batch: Batch) -> dict[str, torch.Tensor]:
        target_q = self.target(batch)
        q = self.q(batch.obs).gather(1, batch.action.view(-1, 1)).squeeze(1)
        loss = F.smooth_l1_loss(q, target_q)
        minimize(self.optimizer, loss, clip_value=self.cfg.grad_clip_value, clip_norm=self.cfg.grad_clip_norm)
        self.updates += 1
        if self.cfg.target_update_every > 0:
            if self.updates % self.cfg.target_update_every == 0:
                hard_update(self.q_target, self.q)
        else:
            soft_update(self.q_target, self.q, self.cfg.tau)
        return {"loss/q": loss.detach(), "train/q_mean": q.detach().mean(), "train/epsilon": self.epsilon()}

    def state_dict(self) -> dict:
        return {"q": self.q.state_dict(), "q_target": self.q_target.state_dict(),
                "optimizer": self.optimizer.state_dict(), "explore_steps": self.explore_steps, "updates": self.updates}

    def load_state_dict(self, state: dict) -> None:
        self.q.load_state_dict(state["q"])
        self.q_target.load_state_dict(state["q_target"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.explore_steps, self.updates = state["explore_steps"], state["updates"]


Config, Agent = DQNConfig, DQN
STACKED = StackedDQN  # several seeds in one process (hardware.seeds_per_process; algos/stacked.py)
