"""DDPG: Deep Deterministic Policy Gradient, as TD3 with its three tricks switched off.

Paper: Lillicrap et al., "Continuous control with deep reinforcement learning", ICLR 2016.
Reference implementation: Fujimoto's re-implementation "OurDDPG" (github.com/sfujim/TD3, OurDDPG.py),
whose defaults we keep: actor and critic 400-300, action entering the critic at the input, Adam 3e-4,
batch 256, tau 0.005, Gaussian exploration 0.1 x max_action, 25k random steps on MuJoCo.

Implementation details:
1. One critic (no clipped double Q), no target policy smoothing, actor and targets updated every step:
   with those set, TD3's update *is* DDPG's (y = r + gamma * (1 - terminated) * Q'(s', pi'(s'))),
   so this subclass only changes defaults instead of copying the update.
2. The original Lillicrap variant (action at the critic's second layer, critic weight decay 1e-2,
   tau 0.001, lr 1e-4 / 1e-3, batch 64) is ``algo=ddpg_lillicrap``.
3. ``precision`` (fp32 by default, or bf16) is TD3's setting, inherited unchanged (algos/td3.py, detail 7).
Deviations from Lillicrap: no batch normalisation and no Ornstein-Uhlenbeck noise (as in OurDDPG,
which found Gaussian noise works as well).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from rlbase.algos.td3 import STACKED, TD3, TD3Config, check_config  # noqa: F401 - STACKED: several seeds in one process; check_config: the same relations
from rlbase.core.settings import non_negative, positive

ACTION_SPACES = ("continuous",)
LOOP = "off_policy"


@dataclass
class DDPGConfig(TD3Config):
    name: str = "ddpg"
    actor_hidden: list[int] = field(default_factory=lambda: [400, 300])
    critic_hidden: list[int] = field(default_factory=lambda: [400, 300])
    twin: bool = False  # one critic
    policy_noise: float = non_negative(0.0)  # no target policy smoothing
    policy_freq: int = positive(1)  # no delayed updates


class DDPG(TD3):
    """TD3 with ``twin=False``, ``policy_noise=0`` and ``policy_freq=1``: exactly DDPG's update."""


Config, Agent = DDPGConfig, DDPG
