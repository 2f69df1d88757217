"""Training loops. Agents never step envs, log or write files: the loop does all three.

``off_policy`` drives DQN, DDPG, TD3 and SAC: act -> step -> store -> update -> evaluate -> log -> checkpoint.
"""

from __future__ import annotations

import logging
import signal
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import torch
from omegaconf import MISSING
from tqdm import tqdm

import envs
from algos.common import checkpoint, seeding
from algos.common.buffer import ReplayBuffer
from algos.common.evaluate import evaluate
from algos.common.video import record_episode

log = logging.getLogger(__name__)

EVAL_SEED_OFFSET = 10_000  # evaluation episodes use seeds distinct from the training env's


@dataclass
class OffPolicyConfig:
    """Settings every off-policy algorithm shares; each algorithm's config extends it."""

    name: str = MISSING
    gamma: float = 0.99  # discount
    batch_size: int = 256  # transitions per gradient update
    buffer_size: int = 1_000_000  # replay capacity (transitions)
    learning_starts: int = 1_000  # updates begin once the buffer holds this many transitions
    random_steps: int = 0  # uniform random actions for the first random_steps env steps
    updates_per_step: int = 1  # gradient updates per env step once learning has started


class Interrupted(Exception):
    """Raised by the loop after a signal asked it to stop (a checkpoint has been written)."""

    def __init__(self, signum: int):
        super().__init__(f"stopped by {signal.Signals(signum).name}")
        self.signum = signum


class SignalGuard:
    """Turns SIGTERM/SIGINT/SIGUSR1/SIGUSR2 into a flag the loop checks between steps."""

    SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGUSR1, signal.SIGUSR2)

    def __init__(self):
        self.signum: Optional[int] = None
        self._old = {}

    def __enter__(self):
        for s in self.SIGNALS:
            try:
                self._old[s] = signal.signal(s, self._handle)
            except ValueError:  # not in the main thread
                pass
        return self

    def _handle(self, signum, frame):
        if self.signum is not None and signum == signal.SIGINT:  # a second Ctrl-C: stop now
            raise KeyboardInterrupt
        self.signum = signum

    def __exit__(self, *exc):
        for s, h in self._old.items():
            signal.signal(s, h)


class Rate:
    """Counts events since the last read and returns events per second."""

    def __init__(self, count: int = 0):
        self.count, self.t = count, time.perf_counter()

    def read(self, count: int) -> float:
        now = time.perf_counter()
        rate = (count - self.count) / max(now - self.t, 1e-9)
        self.count, self.t = count, now
        return rate


def off_policy(cfg, agent, env, eval_env, spec: envs.EnvSpec, logger, run_dir: Path, device: torch.device,
               resume: Optional[dict[str, Any]] = None) -> dict[str, float]:
    a = cfg.algo
    gen = torch.Generator(device=device)
    gen.manual_seed(cfg.seed)
    buffer = ReplayBuffer(a.buffer_size, spec.obs_shape, spec.action_shape, discrete=spec.discrete,
                          device=device, generator=gen)
    step = updates = episodes = evals = 0
    best = last = float("-inf")
    if resume is not None:
        agent.load_state_dict(resume["agent"])
        buffer.load_state_dict(resume["buffer"])
        step, updates, episodes = resume["step"], resume["updates"], resume["episodes"]
        evals = resume.get("evals", 0)
        best, last = resume["best_eval"], resume["last_eval"]
        seeding.set_global_rng_state(resume["rng"])
        gen.set_state(resume["sample_rng"])
        seeding.set_env_rng_state(env, resume["env_rng"])
        envs.load_obs_stats(env, resume.get("obs_stats"))
        log.info("resumed from step %d of %d (a new episode starts at the resume point)", step, cfg.total_steps)
        obs, _ = env.reset()
    else:
        obs, _ = env.reset(seed=cfg.seed)
    envs.share_obs_stats(env, eval_env)
    eval_seed = cfg.seed + EVAL_SEED_OFFSET

    def state() -> dict[str, Any]:
        return {"step": step, "updates": updates, "episodes": episodes, "evals": evals, "best_eval": best, "last_eval": last,
                "agent": agent.state_dict(), "buffer": buffer.state_dict(), "rng": seeding.global_rng_state(),
                "sample_rng": gen.get_state(), "env_rng": seeding.env_rng_state(env),
                "obs_stats": envs.obs_stats(env), "wandb_id": logger.run_id}

    step_rate, update_rate = Rate(step), Rate(updates)
    metrics: dict[str, Any] = {}
    sps = 0.0
    video_on = cfg.eval.video
    bar = tqdm(total=cfg.total_steps, initial=step, disable=not cfg.progress, unit="step", dynamic_ncols=True,
               desc=f"{a.name} {cfg.env.name}", mininterval=1.0)
    with SignalGuard() as guard:
        try:
            while step < cfg.total_steps:
                if step < a.random_steps:
                    action = env.action_space.sample()
                else:
                    action = agent.act(obs, deterministic=False)
                next_obs, reward, terminated, truncated, info = env.step(action)
                buffer.add(obs, action, reward, next_obs, terminated, truncated)
                obs = next_obs
                step += 1
                if terminated or truncated:
                    episodes += 1
                    ep = info["episode"]
                    logger.log(step, {"train/episode_return": float(ep["r"]), "train/episode_length": int(ep["l"]),
                                      "train/episodes": episodes})
                    obs, _ = env.reset()
                if len(buffer) >= a.learning_starts:
                    for _ in range(a.updates_per_step):
                        metrics = agent.update(buffer.sample(a.batch_size))
                        updates += 1
                if step % cfg.log_every == 0:
                    sps = step_rate.read(step)
                    logger.log(step, {**metrics, "time/sps": sps, "time/updates_per_s": update_rate.read(updates),
                                      "train/updates": updates})
                    bar.set_postfix_str(f"sps={sps:.0f} eval={last:.1f}", refresh=False)
                if step % cfg.eval_every == 0 or step == cfg.total_steps:
                    result = evaluate(agent, eval_env, cfg.eval_episodes, eval_seed)
                    last = result["eval/return_mean"]
                    best = max(best, last)
                    logger.log(step, result)
                    if video_on and evals % cfg.eval.video_every == 0:
                        video = record_episode(agent, cfg.env, eval_seed, run_dir / "videos" / f"step{step}",
                                               cfg.eval.fps, envs.obs_stats(env))
                        if video is None:
                            video_on = False  # warned once; keep training without videos
                        else:
                            logger.video(step, "eval/video", video, cfg.eval.fps)
                    evals += 1
                    bar.set_postfix_str(f"sps={sps:.0f} eval={last:.1f}", refresh=False)
                if step % cfg.checkpoint_every == 0 or step == cfg.total_steps:
                    checkpoint.save(run_dir, state())
                bar.update(1)
                if guard.signum is not None:
                    checkpoint.save(run_dir, state())
                    raise Interrupted(guard.signum)
        except KeyboardInterrupt:
            checkpoint.save(run_dir, state())
            raise
        finally:
            bar.close()
    return {"final": last, "best": best, "steps": step, "updates": updates}
