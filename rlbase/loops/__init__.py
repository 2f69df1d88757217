"""Training loops by kind; each module holds only its interaction logic, the Runner (``runner.py``) the rest.

``off_policy`` (``off_policy.py``) drives DQN, DDPG, TD3 and SAC: act -> step -> store -> update.
``on_policy`` (``on_policy.py``) drives A2C and PPO: rollouts of N vector envs, one update phase per rollout.
``offline`` (``offline.py``) drives CQL, BCQ, BC, TD3+BC, IQL and offline SAC: sample the fixed dataset -> update.
``asynchronous`` (``asynchronous.py``) drives A3C: Hogwild worker processes update a shared model, this process
evaluates and checkpoints it.

An algorithm module names its kind in ``LOOP``; a run's ``loop=<kind>`` setting overrides it (:func:`kind_of`).

A loop is a generator: it yields after each step (or rollout, or update) and returns the run's result, so a
driver can run it to the end (:func:`drive`) or interleave several runs in one process (``rlbase.runtime.job.steps``).
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from dataclasses import dataclass
from types import ModuleType
from typing import Any, Optional

from omegaconf import OmegaConf

from rlbase.loops import asynchronous as _asynchronous_mod
from rlbase.loops import off_policy as _off_policy_mod
from rlbase.loops import offline as _offline_mod
from rlbase.loops import on_policy as _on_policy_mod
from rlbase.loops.off_policy import OffPolicyConfig
from rlbase.loops.offline import OfflineConfig
from rlbase.loops.on_policy import OnPolicyConfig, collect_rollout
from rlbase.loops.runner import Interrupted, NonFiniteError, Runner, _first_non_finite


@dataclass
class Context:
    """Everything a loop needs from the run that starts it, in one object instead of nine arguments."""

    cfg: Any  # the run's DictConfig
    agent: Any  # the algorithm's Agent (its own generators inside)
    env: Any  # the training env (``make_env`` of the loop kind)
    eval_env: Any
    spec: Any  # envs.EnvSpec
    logger: Any
    run_dir: Any  # Path
    device: Any  # torch.device
    resume: Optional[dict[str, Any]] = None  # the checkpoint to continue from; None: a fresh run

    def unpack(self) -> tuple:
        return (self.cfg, self.agent, self.env, self.eval_env, self.spec, self.logger, self.run_dir, self.device,
                self.resume)


# A loop kind is a module with ``make_env(cfg)`` (the training env it steps) and ``loop(ctx)`` (a generator that
# yields after each step and returns the Runner's result). An algorithm names its kind in ``LOOP``.
KINDS: dict[str, ModuleType] = {"off_policy": _off_policy_mod, "on_policy": _on_policy_mod, "offline": _offline_mod,
                                "asynchronous": _asynchronous_mod}


def _kind(loop: str) -> ModuleType:
    if loop not in KINDS:
        raise ValueError(f"unknown loop kind {loop!r}; allowed: {', '.join(KINDS)}")
    return KINDS[loop]


def kind_of(module: ModuleType, cfg: Any) -> str:
    """The loop kind a run uses: the algorithm module's ``LOOP``, unless the run config sets ``loop`` (not null),
    which must name a kind of :data:`KINDS` (else ValueError, one line naming the allowed kinds)."""
    override = OmegaConf.select(cfg, "loop", default=None) if cfg is not None else None
    if override is None:
        return module.LOOP
    if override not in KINDS:
        raise ValueError(f"loop={override} is not a loop kind; allowed: {', '.join(KINDS)}")
    settings = getattr(KINDS[override], "CONFIG", None)  # the settings a kind's algorithms extend
    if override != module.LOOP and (settings is None or not issubclass(module.Config, settings)):
        fits = [k for k, m in KINDS.items() if k == module.LOOP or (getattr(m, "CONFIG", None) is not None
                                                                     and issubclass(module.Config, m.CONFIG))]
        raise ValueError(f"loop={override} cannot drive algo={module.Config.name}: its settings are not that loop's; "
                         f"allowed for it: {', '.join(fits)}")
    return override


def get(loop: str) -> Callable[[Context], Generator[int, None, dict[str, float]]]:
    """The loop function of a kind (a name from :func:`kind_of`)."""
    return _kind(loop).loop


def make_env(loop: str, cfg):
    """The training env of a loop kind."""
    return _kind(loop).make_env(cfg)


def drive(steps: Generator[Any, None, Any]) -> Any:
    """Run a loop (or any generator) to its end and return what it returns."""
    while True:
        try:
            next(steps)
        except StopIteration as stop:
            return stop.value


def interleave(runs: list[Generator[Any, None, Any]]) -> list[Any]:
    """Run several loops (e.g. ``train.steps`` of several configs) in this process, one step of each in turn, and
    return their results. Each run draws only from generators it owns (``seeding.AgentRandom``, its envs',
    its replay sampler's), so each does exactly what it would do alone. After a signal every run checkpoints and stops, then the first
    :class:`Interrupted` is raised; any other failure closes the other runs (their logs and envs) and is raised."""
    results: list[Any] = [None] * len(runs)
    stopped: list[Interrupted] = []
    live = list(range(len(runs)))
    try:
        while live:
            for i in list(live):
                try:
                    next(runs[i])
                except StopIteration as stop:
                    results[i] = stop.value
                    live.remove(i)
                except Interrupted as e:
                    stopped.append(e)
                    live.remove(i)
    finally:
        for i in live:
            runs[i].close()
    if stopped:
        raise stopped[0]
    return results


__all__ = ["KINDS", "Context", "Interrupted", "NonFiniteError", "OffPolicyConfig", "OfflineConfig", "OnPolicyConfig",
           "Runner", "_first_non_finite", "collect_rollout", "drive", "get", "interleave", "kind_of", "make_env"]
