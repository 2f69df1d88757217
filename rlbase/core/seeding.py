"""Seeding of every random source, and RNG state capture for checkpoints.

States are stored as plain python/torch values so checkpoints load with ``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import contextlib
import random
from typing import Any

import numpy as np
import torch

# Every random stream of a run has a name here; its seed is drawn from numpy.random.SeedSequence(run seed) with the
# stream's index (and an item's index: sub-env i, worker i, evaluation episode i) as spawn key. Seeds of different
# runs, streams or items so never coincide, unlike ``seed + i`` schemes, where run 1's sub-env 0 is run 0's sub-env 1.
# Append new names at the end: an index, once given, is part of every recorded run's trajectory.
STREAMS = ("python", "numpy", "torch", "train_env", "eval_env", "eval_episode", "eval_rng", "replay", "sub_env", "worker",
           "action_space", "observation_space")


def stream(seed: int, name: str, index: int = 0) -> int:
    """The 63-bit seed of stream ``name`` (item ``index``) of the run with seed ``seed``."""
    words = np.random.SeedSequence(int(seed), spawn_key=(STREAMS.index(name), int(index))).generate_state(2, np.uint32)
    return (int(words[0]) << 31) ^ int(words[1])  # below 2**63: fits torch's and gymnasium's seeds


def sub_env_seeds(seed: int, n: int) -> list[int]:
    """The reset seeds of a vector env's ``n`` sub-envs (gymnasium's own ``reset(seed=s)`` would give ``s + i``)."""
    return [stream(seed, "sub_env", i) for i in range(n)]


def seed_everything(seed: int) -> None:
    """Seed the process-global generators (network initialisation, exploration noise) from the run's streams."""
    random.seed(stream(seed, "python"))
    np.random.seed(stream(seed, "numpy") % 2**32)
    torch.manual_seed(stream(seed, "torch"))


@contextlib.contextmanager
def isolated(seed: int):
    """Run a block on generators of its own (seeded with ``seed``), leaving the global ones as they were: what the
    block draws (e.g. an evaluation's stochastic policy) never moves the training trajectory."""
    saved = global_rng_state()
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    try:
        yield
    finally:
        set_global_rng_state(saved)


class RunRandom:
    """One run's state of the global generators (python, numpy, torch, CUDA), when several runs share a process.

    Network initialisation, exploration noise and stochastic policies draw from the global generators (as
    ``torch.nn.init`` and ``torch.distributions`` do), so each run keeps its own copy of their state and
    :meth:`active` puts it in place while that run's code runs, then puts back what was there. A run alone in its
    process never needs this; interleaved runs (``loops.interleave``) each get one, and so draw exactly what they
    would draw alone. (Other streams, such as envs' and the replay sampler's, are generator objects of the run.)
    """

    def __init__(self):
        self.state: dict[str, Any] | None = None  # None until the run has first run (it seeds itself then)

    @contextlib.contextmanager
    def active(self):
        outer = global_rng_state()
        if self.state is not None:
            set_global_rng_state(self.state)
        try:
            yield
        finally:
            self.state = global_rng_state()
            set_global_rng_state(outer)


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
        # on GPU the CUDA generators too (dropout-free nets still draw exploration noise on the device)
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() and torch.cuda.is_initialized() else [],
    }


def set_global_rng_state(state: dict[str, Any]) -> None:
    random.setstate(_tuplify(state["python"]))
    name, keys, *rest = state["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), *rest))
    torch.set_rng_state(state["torch"])
    if state.get("cuda") and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _tuplify(x: Any) -> Any:
    return tuple(_tuplify(v) for v in x) if isinstance(x, (list, tuple)) else x


def env_rng_state(env) -> dict[str, Any]:
    """RNG states of an env and its action space (gymnasium keeps them as numpy Generators)."""
    return {"env": _np_generator_state(env.unwrapped.np_random),
            "action_space": _np_generator_state(env.action_space.np_random)}


def set_env_rng_state(env, state: dict[str, Any]) -> None:
    env.unwrapped.np_random.bit_generator.state = state["env"]
    env.action_space.np_random.bit_generator.state = state["action_space"]
