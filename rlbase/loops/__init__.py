"""Training loops by kind; each module holds only its interaction logic, the Runner (``runner.py``) the rest.

``off_policy`` (``off_policy.py``) drives DQN, DDPG, TD3 and SAC: act -> step -> store -> update.
``on_policy`` (``on_policy.py``) drives A2C and PPO: rollouts of N vector envs, one update phase per rollout.
``offline`` (``offline.py``) drives CQL, BCQ, BC, TD3+BC, IQL and offline SAC: sample the fixed dataset -> update.
A3C brings its own loop (``rlbase/algos/a3c.py``: asynchronous workers) on the same Runner.

A loop is a generator: it yields after each step (or rollout, or update) and returns the run's result, so a
driver can run it to the end (:func:`drive`) or interleave several runs in one process (``rlbase.runtime.job.steps``).
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from dataclasses import dataclass
from types import ModuleType
from typing import Any, Optional

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
# yields after each step and returns the Runner's result). An algorithm names its kind in ``LOOP``, or brings its
# own loop function there (A3C), which trains on a single env.
KINDS: dict[str, ModuleType] = {"off_policy": _off_policy_mod, "on_policy": _on_policy_mod, "offline": _offline_mod}


def get(loop: str | Callable) -> Callable[[Context], Generator[int, None, dict[str, float]]]:
    """An algorithm module's ``LOOP``: a kind's name, or its own loop function."""
    if callable(loop):
        return loop
    if loop not in KINDS:
        raise ValueError(f"unknown loop kind {loop!r}; allowed: {', '.join(KINDS)} or a loop function")
    return KINDS[loop].loop


def make_env(loop: str | Callable, cfg):
    """The training env of a loop kind (a loop function of its own: one env, as the off-policy kind steps)."""
    return (_off_policy_mod if callable(loop) else KINDS[loop]).make_env(cfg)


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
           "Runner", "_first_non_finite", "collect_rollout", "drive", "get", "interleave", "make_env"]
