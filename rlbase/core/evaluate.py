"""Evaluation: the deterministic policy (or, with ``sample``, the sampled one) on its own environment, N episodes,
mean and spread."""

from __future__ import annotations

import numpy as np
import torch

from rlbase.core import seeding
from rlbase.core.agent import act_env


def evaluate(agent, env, episodes: int, seed: int, stop=None, sample: bool = False,
             generator: torch.Generator | None = None) -> dict[str, float] | None:
    """Run ``episodes`` deterministic episodes of the run with seed ``seed``; episode ``i`` starts from
    ``reset(seed=seeding.stream(seed, "eval_episode", i))`` (no two runs' evaluation episodes share a seed).

    The same seeds are used at every evaluation, so successive evaluations differ only by the policy.
    Returns are the environment's own rewards (evaluation envs have no reward reshaping). ``stop()``, asked
    before every step, ends the evaluation early (a signal arrived): it then returns None. ``sample`` draws each
    action from the policy's distribution instead of taking its mean or argmax (Tianshou's test collector does
    this for PPO and A2C); what the policy draws (sampled actions, BCQ's generated candidates) comes from
    ``generator`` (default: one seeded from the run's ``eval_rng`` stream), never from the agent's training streams.
    """
    if generator is None:
        generator = seeding.generator(seed, "eval_rng")
    returns, lengths = [], []
    for i in range(episodes):
        obs, _ = env.reset(seed=seeding.stream(seed, "eval_episode", i))
        done, ret, length = False, 0.0, 0
        while not done:
            if stop is not None and stop():
                return None
            action = act_env(agent, obs, deterministic=not sample, generator=generator)
            obs, reward, terminated, truncated, _ = env.step(action)
            ret += float(reward)
            length += 1
            done = terminated or truncated
        returns.append(ret)
        lengths.append(length)
    r = np.asarray(returns)
    return {"eval/return_mean": float(r.mean()), "eval/return_std": float(r.std()),
            "eval/return_min": float(r.min()), "eval/return_max": float(r.max()),
            "eval/length_mean": float(np.mean(lengths))}
