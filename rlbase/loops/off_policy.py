"""The off-policy loop (DQN, DDPG, TD3, SAC): act -> step -> store -> update, one env step at a time.

The :class:`~rlbase.loops.runner.Runner` does the rest (logging, evaluation, checkpoints, signals); this module holds
only the interaction with the env and the replay buffer, and the settings that belong to it.
"""

from __future__ import annotations

import logging
from collections.abc import Generator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from omegaconf import OmegaConf

from rlbase import data, envs
from rlbase.core import seeding
from rlbase.core.agent import act_env
from rlbase.core.buffer import ReplayBuffer
from rlbase.core.settings import MinibatchConfig, at_least, non_negative, positive
from rlbase.loops.runner import Runner
from rlbase.loops.seeds import Act, Update

if TYPE_CHECKING:
    from rlbase.loops import Context

log = logging.getLogger(__name__)


@dataclass
class OffPolicyConfig(MinibatchConfig):
    """Settings every off-policy algorithm shares; each algorithm's config extends it."""

    buffer_size: int = positive(1_000_000)  # replay capacity (transitions)
    learning_starts: int = at_least(1, 1_000)  # updates begin once the buffer holds this many transitions
    random_steps: int = non_negative(0)  # uniform random actions for the first random_steps env steps
    train_every: int = positive(1)  # env steps between update phases (SB3's train_freq); 1: after every env step
    gradient_steps: int = positive(1)  # gradient updates in each update phase, once learning has started


def make_env(cfg):
    """The training env this loop kind steps."""
    return envs.make(cfg.env, seeding.stream(cfg.seed, "train_env"))[0]


def loop(ctx: Context) -> Generator[int, None, dict[str, float]]:
    """Train until the budget is spent, yielding the env step after each one; returns the Runner's result."""
    cfg, agent, env, eval_env, spec, logger, run_dir, device, resume = ctx.unpack()
    a = agent.cfg  # the algorithm's dataclass (train.run converts it once): plain attributes in the hot loop
    gen = torch.Generator(device=device)
    gen.manual_seed(seeding.stream(cfg.seed, "replay"))
    buffer = ReplayBuffer(a.buffer_size, spec.obs_shape, spec.action_shape, discrete=spec.discrete,
                          device=device, generator=gen)

    # The replay rows go to chunk files in replay/, each written once (ReplayBuffer.save_chunks); the checkpoint
    # holds their manifest. Chunks are deleted once neither checkpoint on disk (current, previous) names them.
    replay_dir = run_dir / "replay"
    on_disk: list[dict] = [resume["buffer"]] if resume is not None else []

    def load_buffer(manifest: dict[str, Any]) -> None:
        if manifest.get("format") == "chunks":
            buffer.load_chunks(replay_dir, manifest)
        else:  # a checkpoint from before chunked replay: the rows are inside it
            buffer.load_state_dict(manifest)

    def prune(state: dict[str, Any]) -> None:
        on_disk[:] = [*on_disk[-1:], state["buffer"]]
        ReplayBuffer.prune(replay_dir, on_disk)

    # A seed of a stacked agent (hardware.seeds_per_process > 1): acting and updates are asked of the driver
    # (loops/seeds.py), which batches them over the seeds; checkpoints are then taken at the step they fall on,
    # mid-episode, and a resume replays the episode so far (replay_episode).
    group = getattr(agent, "seed_group", None)
    run = Runner(cfg, agent, env, eval_env, logger, run_dir, resume, episode_aligned=group is None)
    run.track("agent", agent.state_dict, agent.load_state_dict)
    run.track("buffer", lambda: buffer.save_chunks(replay_dir), load_buffer)
    run.track("sample_rng", gen.get_state, gen.set_state)
    run.track("env_rng", lambda: seeding.env_rng_state(env), lambda s: seeding.set_env_rng_state(env, s))
    run.track("obs_stats", lambda: envs.obs_stats(env), lambda s: envs.load_obs_stats(env, s), optional=True)
    episode = {"seed": seeding.stream(cfg.seed, "train_env"), "rng": None, "length": 0, "ended": False}
    if group is not None:
        run.track("episode", lambda: dict(episode), None, optional=True)  # put back by replay_episode
    run.on_saved.append(prune)
    if run.restore():
        if group is not None and resume.get("episode") is not None and not resume["episode"]["ended"]:
            episode.update(resume["episode"])
            obs = replay_episode(env, buffer, episode, resume)
        else:
            # Periodic checkpoints are taken between an episode's end and the next reset, so this reset is the one
            # the uninterrupted run made. (After a signal the checkpoint is mid-episode: that episode is dropped.)
            episode.update(seed=None, rng=seeding.env_rng_state(env), length=0, ended=False)
            obs, _ = env.reset()
    else:
        obs, _ = env.reset(seed=episode["seed"])
    envs.share_obs_stats(env, eval_env)

    discrete = spec.discrete
    with run:
        while not run.done:
            if run.step < a.random_steps:
                action = agent.warmup_action(env.action_space.sample())  # TD3/DDPG may add their noise
            else:
                action = (yield Act(obs)) if group is not None else act_env(agent, obs, deterministic=False)
                if not discrete:  # NaN weights show first here: name the policy, not the env's reward
                    run.check_finite("action (policy output; the agent's weights may have diverged)", action, run.step + 1)
            next_obs, reward, terminated, truncated, info = env.step(action)
            run.check_finite("reward", reward, run.step + 1)
            run.check_finite("observation", next_obs, run.step + 1)
            buffer.add(obs, action, reward, next_obs, terminated, truncated)
            obs = next_obs
            episode["length"] += 1
            episode["ended"] = terminated or truncated
            metrics, n = None, 0
            if len(buffer) >= a.learning_starts and (run.step + 1) % a.train_every == 0:
                if group is not None:
                    metrics = yield Update(buffer, a.batch_size, a.gradient_steps)
                else:
                    for _ in range(a.gradient_steps):
                        metrics = agent.update(buffer.sample(a.batch_size))
                n = a.gradient_steps
            if terminated or truncated:
                run.episode(info["episode"]["r"], info["episode"]["l"], at_step=run.step + 1)
            run.advance(1, n, metrics)
            if (terminated or truncated) and not run.done:
                run.episode_boundary()
                episode.update(seed=None, rng=seeding.env_rng_state(env), length=0, ended=False)
                obs, _ = env.reset()
            yield run.step
    if cfg.dataset.record:
        record(cfg, buffer, spec, run_dir)
    return run.result()


def replay_episode(env, buffer: ReplayBuffer, episode: dict[str, Any], resume: dict[str, Any]):
    """Bring a freshly made env back to the mid-episode state a checkpoint was taken in: reset it as the episode
    began (its reset seed, or its RNG state before the reset) and step the episode's actions, the last
    ``episode["length"]`` rows of the replay buffer. MuJoCo and classic-control envs are deterministic given their
    actions, so the state is the one the uninterrupted run had; the env's RNG and the observation statistics are
    then set to the checkpoint's. Returns the observation the run continues from (the last row's next_obs)."""
    n = episode["length"]
    if n > buffer.size:  # the episode's first actions are no longer in the buffer: drop it, as after a signal alone
        log.warning("the episode the checkpoint was taken in (%d steps) is longer than the replay buffer holds; "
                    "it is dropped and a new one starts (this resume is not exact)", n)
        seeding.set_env_rng_state(env, resume["env_rng"])
        episode.update(seed=None, rng=seeding.env_rng_state(env), length=0, ended=False)
        return env.reset()[0]
    if episode["seed"] is not None:
        first, _ = env.reset(seed=episode["seed"])
    else:
        seeding.set_env_rng_state(env, episode["rng"])
        first, _ = env.reset()
    last = None
    for i in range(n):
        row = (buffer.ptr - n + i) % buffer.capacity
        last, *_ = env.step(buffer.action[row].cpu().numpy())
    seeding.set_env_rng_state(env, resume["env_rng"])
    envs.load_obs_stats(env, resume.get("obs_stats"))
    if n == 0:  # checkpointed right after the reset (a second Ctrl-C): the reset's observation
        return first
    obs = buffer.next_obs[(buffer.ptr - 1) % buffer.capacity].cpu().numpy()
    if last is not None and envs.obs_stats(env) is None and not np.array_equal(np.asarray(last, np.float32), obs):
        log.warning("replaying the episode the checkpoint was taken in did not reach the same state (a "
                    "non-deterministic env?); the run goes on from the stored observation")
    return obs


def record(cfg, buffer: ReplayBuffer, spec: envs.EnvSpec, run_dir: Path) -> None:
    """``dataset.record=true``: the run's replay as a dataset (and as a Minari dataset when ``dataset.id`` is set)."""
    path = data.from_buffer(buffer, run_dir / "dataset", env_id=spec.id, discrete=spec.discrete,
                            source={"kind": "online run", "run_dir": str(run_dir),
                                    "config": OmegaConf.to_container(cfg, resolve=True)})
    log.info("recorded %d transitions: %s", len(buffer), path)
    if cfg.dataset.id is not None:
        arrays, meta = data.read(path)
        log.info("and as Minari dataset %s: %s", cfg.dataset.id,
                 data.to_minari(arrays, meta, cfg.dataset.id, description=f"replay of {cfg.algo.name} on {spec.id}"))


CONFIG = OffPolicyConfig  # the settings every algorithm this loop drives extends (loops.kind_of)
