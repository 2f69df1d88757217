"""Algorithm registry: name -> module. Each module defines ``Config``, ``Agent``, ``LOOP`` and ``ACTION_SPACES``."""

from __future__ import annotations

import importlib
from types import ModuleType

ALGOS: dict[str, str] = {
    "dqn": "algos.dqn",
    "ddpg": "algos.ddpg",
    "td3": "algos.td3",
    "sac": "algos.sac",
    "a2c": "algos.a2c",
    "a3c": "algos.a3c",
}


class UnknownAlgo(ValueError):
    pass


def get(name: str) -> ModuleType:
    if name not in ALGOS:
        raise UnknownAlgo(f"unknown algo {name!r}; allowed: {', '.join(sorted(ALGOS))}")
    return importlib.import_module(ALGOS[name])
