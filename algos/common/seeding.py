"""Seeding of every random source, and RNG state capture for checkpoints.

States are stored as plain python/torch values so checkpoints load with ``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import random
from typing import Any

import numpy as np
import torch


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def set_threads(threads: int) -> None:
    if threads > 0:
        torch.set_num_threads(threads)


def _np_generator_state(gen: np.random.Generator) -> dict:
    return gen.bit_generator.state  # a dict of ints and strings


def global_rng_state() -> dict[str, Any]:
    np_state = np.random.get_state()
    return {
        "python": random.getstate(),
        "numpy": [np_state[0], torch.from_numpy(np_state[1].astype(np.int64)), *np_state[2:]],
        "torch": torch.get_rng_state(),
    }


def set_global_rng_state(state: dict[str, Any]) -> None:
    random.setstate(_tuplify(state["python"]))
    name, keys, *rest = state["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), *rest))
    torch.set_rng_state(state["torch"])


def _tuplify(x: Any) -> Any:
    return tuple(_tuplify(v) for v in x) if isinstance(x, (list, tuple)) else x


def env_rng_state(env) -> dict[str, Any]:
    """RNG states of an env and its action space (gymnasium keeps them as numpy Generators)."""
    return {"env": _np_generator_state(env.unwrapped.np_random),
            "action_space": _np_generator_state(env.action_space.np_random)}


def set_env_rng_state(env, state: dict[str, Any]) -> None:
    env.unwrapped.np_random.bit_generator.state = state["env"]
    env.action_space.np_random.bit_generator.state = state["action_space"]
