"""Algorithm registry: name -> module. Each module defines ``Config``, ``Agent``, ``LOOP`` and ``ACTION_SPACES``
(offline ones also ``OFFLINE = True``). A named variant (``conf/algo/<variant>.yaml`` with ``name: <variant>``) maps
to its base algorithm's module."""

from __future__ import annotations

import importlib
from types import ModuleType

ALGOS: dict[str, str] = {
    "dqn": "rlbase.algos.dqn",
    "dqn_tutorial": "rlbase.algos.dqn",  # variants: their own name, so their own run directory, W&B group and report row
    "ddpg": "rlbase.algos.ddpg",
    "ddpg_lillicrap": "rlbase.algos.ddpg",
    "td3": "rlbase.algos.td3",
    "sac": "rlbase.algos.sac",
    "a2c": "rlbase.algos.a2c",
    "a3c": "rlbase.algos.a3c",
    "ppo": "rlbase.algos.ppo",
    # offline (trained from a dataset; the env is used for evaluation only)
    "cql": "rlbase.algos.cql",
    "bcq": "rlbase.algos.bcq",
    "bc": "rlbase.algos.bc",
    "td3_bc": "rlbase.algos.td3_bc",
    "iql": "rlbase.algos.iql",
    "sac_offline": "rlbase.algos.sac_offline",
}


class UnknownAlgo(ValueError):
    pass


def get(name: str) -> ModuleType:
    if name not in ALGOS:
        raise UnknownAlgo(f"unknown algo {name!r}; allowed: {', '.join(sorted(ALGOS))}")
    return importlib.import_module(ALGOS[name])
