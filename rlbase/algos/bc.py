"""BC: behaviour cloning, supervised imitation of the dataset's actions (the simplest offline baseline).

Implementation details:
1. Continuous actions: a deterministic MLP policy with tanh output mapped to the env's bounds, trained by
   MSE to the dataset's actions (in the action box rescaled to [-1, 1]).
2. Discrete actions: an MLP of logits trained by cross-entropy; acting takes the most likely action.
3. Rewards are ignored: BC reproduces the average behaviour of the data, good and bad episodes alike,
   which is the bar an offline RL method must clear on mixed data.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

import torch
import torch.nn.functional as F
from torch import nn

from rlbase.core.agent import Hooks
from rlbase.core.buffer import Batch
from rlbase.core.nets import ActionScaler, adam, init_, mlp
from rlbase.core.seeding import AgentRandom
from rlbase.core.settings import positive
from rlbase.envs import EnvSpec
from rlbase.loops.offline import OfflineConfig

ACTION_SPACES = ("continuous", "discrete")
LOOP = "offline"
OFFLINE = True


@dataclass
class BCConfig(OfflineConfig):
    name: str = "bc"
    lr: float = positive(3e-4)  # Adam learning rate
    hidden: list[int] = field(default_factory=lambda: [256, 256])  # policy hidden sizes


class BC(Hooks):
    def __init__(self, cfg: BCConfig, spec: EnvSpec, device: torch.device, rng: Optional[AgentRandom] = None):
        self.cfg, self.spec, self.device = cfg, spec, device
        self.rng = AgentRandom(0, device) if rng is None else rng
        if spec.discrete:
            self.policy = mlp(spec.obs_dim, cfg.hidden, spec.n_actions).to(device)
        else:
            self.policy = mlp(spec.obs_dim, cfg.hidden, spec.action_dim, out_activation=nn.Tanh).to(device)
            self.scaler = ActionScaler(spec.action_low, spec.action_high).to(device)
        init_(self.policy, self.rng.init)
        self.opt = adam(self.policy.parameters(), cfg.lr)
        self.updates = 0

    @torch.inference_mode()
    def act(self, obs: torch.Tensor, deterministic: bool = False, generator: Optional[torch.Generator] = None) -> torch.Tensor:
        """The policy's actions for observations ``(B, obs_dim)``, deterministic either way (no draws): the most
        likely action ``(B,)``, or the network's output scaled to the bounds ``(B, action_dim)``."""
        out = self.policy(obs)
        return out.argmax(dim=-1) if self.spec.discrete else self.scaler(out)

    def update(self, batch: Batch) -> dict[str, torch.Tensor]:
        out = self.policy(batch.obs)
        if self.spec.discrete:
            loss = F.cross_entropy(out, batch.action)
        else:
            loss = F.mse_loss(out, self.scaler.unit(batch.action))
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()
        self.updates += 1
        return {"loss/bc": loss.detach()}

    def state_dict(self) -> dict:
        return {"policy": self.policy.state_dict(), "opt": self.opt.state_dict(), "updates": self.updates}

    def load_state_dict(self, state: dict) -> None:
        self.policy.load_state_dict(state["policy"])
        self.opt.load_state_dict(state["opt"])
        self.updates = state["updates"]


Config, Agent = BCConfig, BC
