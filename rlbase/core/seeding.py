"""The run's random streams: every generator of a run is spawned from its seed here; none is process-global.

States are stored as plain python/torch values so checkpoints load with ``torch.load(weights_only=True)``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch

# Every random stream of a run has a name here; its seed is drawn from numpy.random.SeedSequence(run seed) with the
# stream's index (and an item's index: sub-env i, worker i, evaluation episode i) as spawn key. Seeds of different
# runs, streams or items so never coincide, unlike ``seed + i`` schemes, where run 1's sub-env 0 is run 0's sub-env 1.
# Append new names at the end: an index, once given, is part of every recorded run's trajectory.
# "python", "numpy" and "torch" seeded the process-global generators before agents owned theirs (AgentRandom).
STREAMS = ("python", "numpy", "torch", "train_env", "eval_env", "eval_episode", "eval_rng", "replay", "sub_env", "worker",
           "action_space", "observation_space", "init", "explore", "update")


def stream(seed: int, name: str, index: int = 0) -> int:
    """The 63-bit seed of stream ``name`` (item ``index``) of the run with seed ``seed``."""
    words = np.random.SeedSequence(int(seed), spawn_key=(STREAMS.index(name), int(index))).generate_state(2, np.uint32)
    return (int(words[0]) << 31) ^ int(words[1])  # below 2**63: fits torch's and gymnasium's seeds


def sub_env_seeds(seed: int, n: int) -> list[int]:
    """The reset seeds of a vector env's ``n`` sub-envs (gymnasium's own ``reset(seed=s)`` would give ``s + i``)."""
    return [stream(seed, "sub_env", i) for i in range(n)]


def generator(seed: int, name: str, index: int = 0, device: torch.device | str = "cpu") -> torch.Generator:
    """A torch generator on ``device`` seeded with stream ``name`` (item ``index``) of the run with seed ``seed``."""
    gen = torch.Generator(device=device)
    gen.manual_seed(stream(seed, name, index))
    return gen


def normal(like: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Standard normal noise shaped, typed and placed like ``like``, drawn from ``gen``."""
    return torch.randn(like.shape, generator=gen, dtype=like.dtype, device=like.device)


def uniform(shape: tuple[int, ...], gen: torch.Generator, device: torch.device | str = "cpu") -> torch.Tensor:
    """Uniform [0, 1) draws of ``shape`` from ``gen``."""
    return torch.rand(shape, generator=gen, device=device)


def epsilon_greedy(greedy: Callable[[], torch.Tensor], eps: list[float], n_actions: int, gen: torch.Generator,
                   device: torch.device | str) -> torch.Tensor:
    """Epsilon-greedy action indices ``(B,)`` on ``device`` for B rows, row i exploring with probability ``eps[i]``:
    ``greedy()`` gives the rows' greedy actions (not called when every row explores). The draws, from ``gen`` on its
    device: B uniforms first, each compared with its row's epsilon in double precision, then one random index for
    each exploring row (none when no row explores). One row so draws what DQN always drew for one observation,
    ``torch.rand(())`` then, if it explores, ``torch.randint(n_actions, ())`` (shape ``(1,)`` gives the same values)."""
    b = len(eps)
    u = torch.rand((b,), generator=gen, device=gen.device)
    explore = u.double() < torch.tensor(eps, dtype=torch.float64, device=gen.device)
    n = int(explore.sum())
    if n == 0:
        return greedy()
    random = torch.randint(n_actions, (n,), generator=gen, device=gen.device).to(device)
    if n == b:
        return random
    action = greedy().clone()
    action[explore.to(device)] = random
    return action


class AgentRandom:
    """The generators an agent draws from, each its own stream of the run's seed (none shared with another run, the
    env, the replay sampler or the evaluation):

    * ``init``: network initialisation, used once while the agent is built;
    * ``explore``: what acting during training draws (exploration noise, epsilon, sampled actions);
    * ``update``: what an update draws (target-policy smoothing noise, reparameterised samples, minibatch order,
      CQL's random actions, BCQ's latent samples).

    Agents take one at construction (``Agent(cfg, spec, device, rng)``) and draw only from it, so nothing of a run
    lives in the process-global generators and several runs (or agents) share a process without touching each
    other. ``explore`` and ``update`` are part of the checkpoint (:meth:`state_dict`); ``init`` is spent when the
    networks exist. Evaluation passes generators of its own to ``act`` (see ``core.evaluate``).
    """

    def __init__(self, seed: int, device: torch.device | str = "cpu"):
        self.seed = int(seed)
        self.init = generator(seed, "init", device=device)
        self.explore = generator(seed, "explore", device=device)
        self.update = generator(seed, "update", device=device)

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {"explore": self.explore.get_state(), "update": self.update.get_state()}

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        self.explore.set_state(state["explore"])
        self.update.set_state(state["update"])


def set_threads(threads: int) -> None:
    if threads > 0:
        torch.set_num_threads(threads)


def _np_generator_state(gen: np.random.Generator) -> dict:
    return gen.bit_generator.state  # a dict of ints and strings


def env_rng_state(env) -> dict[str, Any]:
    """RNG states of an env and its action space (gymnasium keeps them as numpy Generators)."""
    return {"env": _np_generator_state(env.unwrapped.np_random),
            "action_space": _np_generator_state(env.action_space.np_random)}


def set_env_rng_state(env, state: dict[str, Any]) -> None:
    env.unwrapped.np_random.bit_generator.state = state["env"]
    env.action_space.np_random.bit_generator.state = state["action_space"]
