"""The on-policy loop (A2C, PPO): rollouts of ``num_envs`` vector envs x ``n_steps``, one update phase per rollout.

The :class:`~rlbase.loops.runner.Runner` does logging, evaluation, checkpoints and signals; this module holds the
rollout collection and the settings that belong to it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Generator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Optional

import numpy as np
import torch

from rlbase import envs
from rlbase.core import seeding
from rlbase.core.rollout import RolloutStorage
from rlbase.core.settings import AlgoConfig, positive, unit
from rlbase.loops.runner import Runner

if TYPE_CHECKING:
    from rlbase.loops import Context

log = logging.getLogger(__name__)


@dataclass
class OnPolicyConfig(AlgoConfig):
    """Settings every on-policy algorithm shares: the rollout (how many envs, how many steps each) and its returns."""

    num_envs: int = positive(16)  # parallel envs (one vector env); a rollout holds num_envs x n_steps transitions
    n_steps: int = positive(5)  # env steps per env per rollout
    gae_lambda: float = unit(1.0)  # 1: n-step returns; < 1: GAE(lambda)
    lr_anneal: bool = False  # decay the learning rate linearly to 0 over lr_anneal_steps
    # env steps over which the decay reaches 0 (None: total_steps). Longer than the budget: the run ends part-way
    # down the schedule, as the first 1M steps of Tianshou's 3M-step MuJoCo runs (lr_anneal_steps=3000000) do.
    lr_anneal_steps: Optional[int] = positive(None)
    # the critic learns the returns divided by the running std of the (GAE) returns it was given, no mean
    # subtracted; rewards and advantages stay in the env's units (Tianshou's reward_normalization, the setting
    # of its MuJoCo A2C and PPO). The other way to scale: env.normalize_reward (rewards before the advantages).
    return_norm: bool = False


def anneal_horizon(cfg, resume: Optional[dict[str, Any]]) -> int:
    """The env steps over which ``lr_anneal`` decays the learning rate to 0. Fixed when the run starts
    (``lr_anneal_steps``, else the budget): a resume with a longer ``total_steps`` continues the same schedule
    (then holds at its end) instead of jumping back up."""
    a = cfg.algo
    horizon = a.lr_anneal_steps or cfg.total_steps
    if a.lr_anneal_steps and not a.lr_anneal:
        log.warning("algo.lr_anneal_steps=%d does nothing without algo.lr_anneal=true", a.lr_anneal_steps)
    if resume is not None and resume.get("anneal_horizon") is not None:
        saved = resume["anneal_horizon"]
        if a.lr_anneal_steps and a.lr_anneal_steps != saved:
            log.warning("algo.lr_anneal_steps=%d is not this run's schedule: it keeps the %d steps it started with",
                        a.lr_anneal_steps, saved)
        horizon = saved
    return horizon


class ReturnScale:
    """``algo.return_norm``: the running variance of every return the critic is trained on (in the env's units);
    the critic's values are in units of its std. Part of the checkpoint."""

    def __init__(self):
        from gymnasium.wrappers.utils import RunningMeanStd

        self.rms = RunningMeanStd(shape=())

    @property
    def std(self) -> float:
        return float(np.sqrt(self.rms.var + 1e-8))  # the epsilon of envs.VecNormalize

    def update(self, batch) -> None:
        """With the returns of a rollout just built with :attr:`std` (so the next rollout uses the new one)."""
        self.rms.update((batch.returns * batch.value_scale).detach().cpu().double().numpy())

    def state_dict(self) -> dict[str, float]:
        return {"mean": float(self.rms.mean), "var": float(self.rms.var), "count": float(self.rms.count)}

    def load_state_dict(self, s: dict[str, float]) -> None:
        self.rms.mean, self.rms.var, self.rms.count = np.float64(s["mean"]), np.float64(s["var"]), s["count"]


def collect_rollout(agent, env, storage: RolloutStorage, obs: np.ndarray, gamma: float,
                    on_episode: Callable[[int, float, int], None], value_scale: float = 1.0) -> np.ndarray:
    """Step the vector env ``storage.n_steps`` times, filling ``storage``; returns the last observation.

    A sub-env cut by its time limit (truncated, not terminated) gets gamma * V(real final observation) added to
    its reward at that step, and the step is marked done: the return stops there but still bootstraps.
    ``on_episode(t, return, length)`` is called for each finished episode. ``value_scale``: the critic's unit
    (``algo.return_norm``), by which its values are multiplied to add them to a reward.
    """
    for t in range(storage.n_steps):
        action, env_action, value, log_prob = agent.step(obs)
        next_obs, reward, terminated, truncated, info = env.step(env_action)
        reward = reward.astype(np.float32)
        cut = truncated & ~terminated
        if cut.any():
            final = np.stack([info["final_obs"][i] for i in np.flatnonzero(cut)])
            reward[cut] += gamma * value_scale * agent.value(final).cpu().numpy()
        storage.add(obs, action, reward, terminated | truncated, value, log_prob)
        obs = next_obs
        if "final_info" in info and "episode" in info["final_info"]:
            ep = info["final_info"]["episode"]
            for i in np.flatnonzero(info["final_info"]["_episode"]):
                on_episode(t, float(ep["r"][i]), int(ep["l"][i]))
    return obs


def make_env(cfg):
    """The training env this loop kind steps (a vector env of ``algo.num_envs``)."""
    return envs.make_vector(cfg.env, cfg.seed, cfg.algo.num_envs, cfg.hardware.vector, cfg.algo.gamma)[0]


def loop(ctx: Context) -> Generator[int, None, dict[str, float]]:
    """``num_envs`` envs x ``n_steps`` per rollout, then ``agent.update(rollout)``; yields the env step after each.

    ``env`` is a vector env in SAME_STEP autoreset mode (see ``envs.make_vector``), with ``envs.VecNormalize`` on
    top when observations or rewards are normalised: its statistics are saved in the checkpoint and shared
    (read-only) with the evaluation env.
    """
    cfg, agent, env, eval_env, spec, logger, run_dir, device, resume = ctx.unpack()
    a, n = agent.cfg, env.num_envs
    storage = RolloutStorage(a.n_steps, n, spec.obs_shape, spec.action_shape, spec.discrete, device)
    norm = env if isinstance(env, envs.VecNormalize) else None
    # The episodes in flight: every sub-env's state and the observations the next rollout starts from.
    cur: dict[str, Any] = {"obs": None, "exact": False}

    horizon = anneal_horizon(cfg, resume)
    scale = ReturnScale() if a.return_norm else None

    def load_envs(state: Optional[dict[str, Any]]) -> None:
        if state is not None and envs.vector_state(env) is not None:
            # sync envs (then and now): continue every episode exactly where it was
            env.reset(seed=seeding.sub_env_seeds(cfg.seed, n))
            envs.load_vector_state(env, state)
            cur["exact"] = True
        else:  # async envs live in other processes: fresh episodes (resume is then not exact)
            cur["obs"], _ = env.reset(seed=seeding.sub_env_seeds(seeding.stream(cfg.seed, "train_env", run.step), n))
            log.warning("resume with hardware.vector=async restarts the episodes in flight (not an exact resume)")

    def load_obs(obs: torch.Tensor) -> None:
        if cur["exact"]:
            cur["obs"] = obs.numpy()

    run = Runner(cfg, agent, env, eval_env, logger, run_dir, resume, save_on_ctrl_c=False)
    run.track("agent", agent.state_dict, agent.load_state_dict)
    run.track("vector_env", lambda: envs.vector_state(env), load_envs, optional=True)
    run.track("obs", lambda: torch.as_tensor(cur["obs"]), load_obs)
    # after the envs' reset, which updated the statistics
    run.track("normalizer", lambda: norm.state_dict() if norm is not None else None,
              lambda s: norm.load_state_dict(s) if norm is not None else None, optional=True)
    run.track("obs_stats", lambda: envs.obs_stats(env))  # for readers (scripts/evaluate.py); the normalizer restores
    run.track("return_scale", lambda: scale.state_dict() if scale is not None else None,
              lambda s: scale.load_state_dict(s) if scale is not None and s is not None else None,
              optional=True)  # a checkpoint from before return_norm existed has no scale: it starts at 1
    run.track("anneal_horizon", lambda: horizon)  # read above, before the agent's schedule starts
    if not run.restore():
        cur["obs"], _ = env.reset(seed=seeding.sub_env_seeds(cfg.seed, n))
        rollout = a.n_steps * n
        if cfg.total_steps % rollout:
            log.info("total_steps=%d is not a whole number of rollouts (num_envs x n_steps = %d): the run ends at %d",
                     cfg.total_steps, rollout, -(-cfg.total_steps // rollout) * rollout)
    envs.share_obs_stats(env, eval_env)
    with run:
        while not run.done:
            unit = scale.std if scale is not None else 1.0
            obs = collect_rollout(agent, env, storage, cur["obs"], a.gamma,
                                  lambda t, r, length: run.episode(r, length, at_step=run.step + (t + 1) * n), unit)
            cur["obs"] = obs
            if not spec.discrete:
                run.check_finite("action (policy output; the agent's weights may have diverged)", storage.actions)
            run.check_finite("reward", storage.rewards)
            run.check_finite("observation", storage.obs)
            batch = storage.batch(agent.value(obs), a.gamma, a.gae_lambda, last_obs=obs, value_scale=unit)
            if scale is not None:
                scale.update(batch)
            agent.set_progress(run.step / horizon)
            metrics = agent.update(batch)
            if scale is not None:
                metrics["train/return_scale"] = unit
            run.advance(a.n_steps * n, metrics.pop("updates", 1), metrics)
            yield run.step
    return run.result()


CONFIG = OnPolicyConfig  # the settings every algorithm this loop drives extends (loops.kind_of)
