"""What an agent is, by the loop that drives it: ``typing.Protocol`` classes, optional hooks included.

An algorithm module's ``Agent(cfg, spec, device, rng)`` satisfies the protocol of its ``LOOP`` kind
(``tests/test_core.py`` checks every registered algorithm). Hooks a loop calls on every agent of its kind have a
default in :class:`Hooks`, which agents inherit, so loops call them directly instead of probing with ``hasattr``.

``act`` works on tensors: a batch of observations on the agent's device in, a batch of actions out. Numpy exists only
at the env boundary, where :func:`to_batch` makes one env observation a batch of one and :func:`to_env` makes an
action batch of one what ``env.step`` takes (:func:`act_env` does both around one ``act``).
"""

from __future__ import annotations

from typing import Any, Optional, Protocol, runtime_checkable

import numpy as np
import torch

from rlbase.core.seeding import AgentRandom


@runtime_checkable
class Agent(Protocol):
    """Every agent: acts on a batch of observations, saves and restores itself, owns its random generators."""

    cfg: Any  # the algorithm's config dataclass
    device: torch.device  # where its networks live: ``act`` takes and returns tensors there
    rng: AgentRandom  # every draw of the agent comes from these (seeding.AgentRandom)

    def act(self, obs: torch.Tensor, deterministic: bool = False,
            generator: Optional[torch.Generator] = None) -> torch.Tensor:
        """Actions for a batch of observations ``obs`` (float32, ``[B, *obs_shape]``, on ``device``): ``[B,
        *action_shape]`` float32 (continuous) or a ``[B]`` int64 tensor of action indices (discrete), on ``device``.
        The policy's mean or argmax when ``deterministic``, else explored or sampled; random draws from
        ``generator`` when given (evaluation passes its own), else from ``rng``. A batch of one draws what one
        observation always drew (the same generator, the same draws in the same order). Observations from an env
        go through :func:`to_batch`, the actions back through :func:`to_env` (or both: :func:`act_env`)."""

    def update(self, batch: Any) -> dict[str, Any]:
        """One update (off-policy, offline: a minibatch; on-policy: a rollout); returns metrics by name."""

    def state_dict(self) -> dict: ...

    def load_state_dict(self, state: dict) -> None: ...


@runtime_checkable
class OffPolicyAgent(Agent, Protocol):
    """Driven one env step at a time (DQN, DDPG, TD3, SAC): ``act`` -> step -> store -> ``update`` on replayed
    minibatches; ``warmup_action`` (optional: :class:`Hooks`) during the uniform random steps."""

    def warmup_action(self, action: np.ndarray) -> np.ndarray:
        """A uniform warm-up action as the agent wants it stepped (TD3/DDPG may add their exploration noise)."""


@runtime_checkable
class OfflineAgent(Agent, Protocol):
    """Trained on minibatches of a fixed dataset (CQL, BCQ, BC, TD3+BC, IQL, offline SAC); the env only evaluates
    ``act``. ``fit_dataset`` (optional: :class:`Hooks`) sees the whole dataset before the first update."""

    def fit_dataset(self, arrays: dict[str, np.ndarray]) -> None:
        """Statistics of the dataset the agent uses (state normalisation, reward scale), before the first update."""


@runtime_checkable
class OnPolicyAgent(Agent, Protocol):
    """Driven by rollouts of vector envs (A2C, PPO): ``step`` a batch of observations, bootstrap from ``value``,
    ``set_progress`` then ``update`` once per rollout."""

    def step(self, obs: np.ndarray) -> tuple[torch.Tensor, np.ndarray, torch.Tensor, torch.Tensor]:
        """For a batch of observations: sampled actions (as stored), the env's actions, values, log-probabilities."""

    def value(self, obs: np.ndarray) -> torch.Tensor: ...

    def set_progress(self, fraction: float) -> None:
        """The share of the learning-rate schedule already run (for ``lr_anneal``)."""


@runtime_checkable
class AsynchronousAgent(Agent, Protocol):
    """The model that the asynchronous kind's worker processes update (Hogwild) and this process evaluates."""

    net: torch.nn.Module  # in shared memory: every worker reads and steps these parameters
    shared_state: list[dict[str, torch.Tensor]]  # the optimizer's per-parameter statistics, in shared memory

    @staticmethod
    def worker_copy(cfg: Any, spec: Any, rng: AgentRandom) -> OnPolicyAgent:
        """A worker's local model, built in the worker process from the algorithm's config (a DictConfig there): an
        on-policy agent with ``net``, ``optimizer`` and ``compute_grads(batch)`` (the loss's gradients in its
        ``net``'s ``.grad``, which the worker hands to the shared parameters)."""


def to_batch(obs: Any, device: torch.device | str) -> torch.Tensor:
    """One env observation (numpy, as ``env.reset``/``env.step`` give it) as ``act``'s input: a float32 batch of
    one, ``[1, *obs_shape]``, on ``device``."""
    return torch.as_tensor(obs, dtype=torch.float32, device=device).unsqueeze(0)


def to_env(action: torch.Tensor) -> np.ndarray | int:
    """``act``'s batch of one action as ``env.step`` takes it: an int for a discrete action (an integer tensor), a
    numpy array ``[*action_shape]`` (float32) for a continuous one."""
    a = action[0]
    return a.cpu().numpy() if a.is_floating_point() else int(a)


def act_env(agent: Agent, obs: Any, deterministic: bool = False,
            generator: Optional[torch.Generator] = None) -> np.ndarray | int:
    """``agent.act`` on one env observation, its action as ``env.step`` takes it (:func:`to_batch`, :func:`to_env`)."""
    return to_env(agent.act(to_batch(obs, agent.device), deterministic=deterministic, generator=generator))


class Hooks:
    """Defaults of the optional hooks: agents inherit them and override what they use."""

    def warmup_action(self, action: np.ndarray) -> np.ndarray:
        return action

    def fit_dataset(self, arrays: dict[str, np.ndarray]) -> None:
        return None


PROTOCOLS = {"off_policy": OffPolicyAgent, "offline": OfflineAgent, "on_policy": OnPolicyAgent,
             "asynchronous": AsynchronousAgent}
