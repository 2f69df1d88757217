"""Offline SAC: SAC's update, unchanged, trained only on a fixed dataset (the baseline offline methods must beat).

Nothing stops its critics from valuing actions the data never shows; the policy climbs toward those
overestimated values (extrapolation error, Fujimoto et al. 2019; Kumar et al. 2019), which is what BCQ
and CQL are built to prevent. Same networks and settings as ``algo=sac``; trained by the ``offline`` loop.
"""

from __future__ import annotations

from dataclasses import dataclass

from rlbase.algos.sac import SAC, SACLoss
from rlbase.loops.offline import OfflineConfig

ACTION_SPACES = ("continuous",)
SAMPLES_POLICY = True  # act(deterministic=False) samples the learned policy (eval.sample, load_policy)
LOOP = "offline"
OFFLINE = True


@dataclass
class SACOfflineConfig(SACLoss, OfflineConfig):
    name: str = "sac_offline"


Config, Agent = SACOfflineConfig, SAC
