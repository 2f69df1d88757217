"""Algorithm registry: name -> module. Each module defines ``Config``, ``Agent``, ``LOOP`` and ``ACTION_SPACES``
(offline ones also ``OFFLINE = True``). A named variant (``conf/algo/<variant>.yaml`` with ``name: <variant>``) maps
to its base algorithm's module."""

from __future__ import annotations

import importlib
from types import ModuleType

ALGOS: dict[str, str] = {
    "dqn": "algos.dqn",
    "dqn_tutorial": "algos.dqn",  # variants: their own name, so their own run directory, W&B group and report row
    "ddpg": "algos.ddpg",
    "ddpg_lillicrap": "algos.ddpg",
    "td3": "algos.td3",
    "sac": "algos.sac",
    "a2c": "algos.a2c",
    "a3c": "algos.a3c",
    "ppo": "algos.ppo",
    # offline (trained from a dataset; the env is used for evaluation only)
    "cql": "algos.cql",
    "bcq": "algos.bcq",
    "bc": "algos.bc",
    "td3_bc": "algos.td3_bc",
    "iql": "algos.iql",
    "sac_offline": "algos.sac_offline",
}


class UnknownAlgo(ValueError):
    pass


def get(name: str) -> ModuleType:
    if name not in ALGOS:
        raise UnknownAlgo(f"unknown algo {name!r}; allowed: {', '.join(sorted(ALGOS))}")
    return importlib.import_module(ALGOS[name])
