"""Training loops by kind; each module holds only its interaction logic, the Runner (``runner.py``) the rest.

``off_policy`` (``off_policy.py``) drives DQN, DDPG, TD3 and SAC: act -> step -> store -> update.
``on_policy`` (``on_policy.py``) drives A2C and PPO: rollouts of N vector envs, one update phase per rollout.
``offline`` (``offline.py``) drives CQL, BCQ, BC, TD3+BC, IQL and offline SAC: sample the fixed dataset -> update.
A3C brings its own loop (``algos/a3c.py``: asynchronous workers) on the same Runner.

A loop is a generator: it yields after each step (or rollout, or update) and returns the run's result, so a
driver can run it to the end (:func:`drive`) or interleave several runs in one process (``train.steps``).
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from typing import Any

from rlbase.loops.off_policy import OffPolicyConfig
from rlbase.loops.off_policy import loop as off_policy
from rlbase.loops.offline import OfflineConfig
from rlbase.loops.offline import loop as offline
from rlbase.loops.on_policy import OnPolicyConfig, collect_rollout
from rlbase.loops.on_policy import loop as on_policy
from rlbase.loops.runner import Interrupted, NonFiniteError, Runner, _first_non_finite

KINDS: dict[str, Callable[..., Generator[int, None, dict[str, float]]]] = {
    "off_policy": off_policy, "on_policy": on_policy, "offline": offline}


def get(loop: str | Callable) -> Callable[..., Generator[int, None, dict[str, float]]]:
    """An algorithm module's ``LOOP``: a kind's name, or its own loop function."""
    return loop if callable(loop) else KINDS[loop]


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


__all__ = ["KINDS", "Interrupted", "NonFiniteError", "OffPolicyConfig", "OfflineConfig", "OnPolicyConfig", "Runner",
           "_first_non_finite", "collect_rollout", "drive", "get", "interleave", "offline", "off_policy", "on_policy"]
