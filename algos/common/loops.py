"""Training loops. Agents never step envs, log or write files: the loop does all three.

``off_policy`` drives DQN, DDPG, TD3 and SAC: act -> step -> store -> update -> evaluate -> log -> checkpoint.
``on_policy`` drives A2C and PPO (rollouts of N vector envs, one update phase per rollout).
``offline`` drives CQL, BCQ, BC and offline SAC: sample the fixed dataset -> update -> evaluate; the env is
only ever used for evaluation, and the x-axis (``step``) counts gradient updates.
"""

from __future__ import annotations

import logging
import math
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import numpy as np
import torch
from omegaconf import MISSING, OmegaConf
from tqdm import tqdm

import data
import envs
from algos.common import checkpoint, seeding
from algos.common.buffer import ReplayBuffer
from algos.common.evaluate import evaluate
from algos.common.rollout import RolloutStorage
from algos.common.settings import at_least, non_negative, positive, unit
from algos.common.video import record_episode

log = logging.getLogger(__name__)


@dataclass
class OffPolicyConfig:
    """Settings every off-policy algorithm shares; each algorithm's config extends it."""

    name: str = MISSING
    gamma: float = unit(0.99)  # discount
    batch_size: int = positive(256)  # transitions per gradient update
    buffer_size: int = positive(1_000_000)  # replay capacity (transitions)
    learning_starts: int = at_least(1, 1_000)  # updates begin once the buffer holds this many transitions
    random_steps: int = non_negative(0)  # uniform random actions for the first random_steps env steps
    train_every: int = positive(1)  # env steps between update phases (SB3's train_freq); 1: after every env step
    gradient_steps: int = positive(1)  # gradient updates in each update phase, once learning has started


@dataclass
class OnPolicyConfig:
    """Settings every on-policy algorithm shares: the rollout (how many envs, how many steps each) and its returns."""

    name: str = MISSING
    gamma: float = unit(0.99)  # discount
    num_envs: int = positive(16)  # parallel envs (one vector env); a rollout holds num_envs x n_steps transitions
    n_steps: int = positive(5)  # env steps per env per rollout
    gae_lambda: float = unit(1.0)  # 1: n-step returns; < 1: GAE(lambda)


@dataclass
class OfflineConfig:
    """Settings every offline algorithm shares: no replay buffer, no random or learning starts (the dataset is the buffer)."""

    name: str = MISSING
    gamma: float = unit(0.99)  # discount
    batch_size: int = positive(256)  # transitions per gradient update


class NonFiniteError(RuntimeError):
    """A loss, gradient statistic, reward, observation or weight became NaN or infinite."""


def _first_non_finite(tree, prefix: str = "") -> Optional[str]:
    if torch.is_tensor(tree):
        return prefix if tree.is_floating_point() and not bool(torch.isfinite(tree).all()) else None
    if isinstance(tree, dict):
        for k, v in tree.items():
            found = _first_non_finite(v, f"{prefix}.{k}" if prefix else str(k))
            if found:
                return found
    return None


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

    def chain(self) -> None:
        """After our checkpoint, hand the signal to the handler that was there before (e.g. submitit's requeue
        on SIGUSR2 at a Slurm time limit), so both coexist."""
        old = self._old.get(self.signum)
        if callable(old) and old not in (signal.default_int_handler,):
            old(self.signum, None)


class Rate:
    """Counts events since the last read and returns events per second."""

    def __init__(self, count: int = 0):
        self.count, self.t = count, time.perf_counter()

    def read(self, count: int) -> float:
        now = time.perf_counter()
        rate = (count - self.count) / max(now - self.t, 1e-9)
        self.count, self.t = count, now
        return rate


def crossed(before: int, after: int, every: int) -> bool:
    """True when a multiple of ``every`` lies in (before, after]: loops that advance by N steps at a time
    still evaluate, log and checkpoint once per interval."""
    return after // every > before // every


class Runner:
    """What every loop shares: counters, periodic logging, evaluation (and video), checkpoints, signals and the
    progress bar. A loop builds one, calls :meth:`episode` at each episode end and :meth:`advance` after each
    chunk of env steps; ``loop_state`` returns the loop's own part of a checkpoint (agent, storage, env RNGs)."""

    def __init__(self, cfg, agent, env, eval_env, logger, run_dir: Path, loop_state: Callable[[], dict[str, Any]],
                 resume: Optional[dict[str, Any]] = None, episode_aligned: bool = False, total: Optional[int] = None,
                 save_on_ctrl_c: bool = True):
        self.total = cfg.total_steps if total is None else total  # env steps (online) or updates (offline)
        self.cfg, self.agent, self.env, self.eval_env, self.logger, self.run_dir = cfg, agent, env, eval_env, logger, run_dir
        self.loop_state = loop_state
        self.on_saved: Optional[Callable[[dict[str, Any]], None]] = None  # after a checkpoint is safely on disk
        # A second Ctrl-C lands anywhere, e.g. mid-rollout, where the loop's state is not consistent: loops whose
        # state is only whole between chunks (on-policy rollouts) keep their last checkpoint instead.
        self.save_on_ctrl_c = save_on_ctrl_c
        # Periodic checkpoints wait for the current episode's end (see episode_boundary): resuming then
        # replays the uninterrupted run exactly, since a fresh reset from the saved RNG state is what it did next.
        self.episode_aligned = episode_aligned
        self.pending_since: Optional[int] = None
        self.step = self.updates = self.episodes = self.evals = 0
        self.solved = False  # an evaluation reached cfg.stop_return: the run ends at this step
        self.best = self.last = float("-inf")
        if resume is not None:
            for key in ("step", "updates", "episodes", "evals"):
                setattr(self, key, resume[key])
            self.best, self.last = resume["best_eval"], resume["last_eval"]
            log.info("resumed from step %d of %d", self.step, self.total)
        # Read once: an OmegaConf attribute costs microseconds, and advance() runs every env step.
        self.log_every, self.eval_every, self.checkpoint_every = cfg.log_every, cfg.eval_every, cfg.checkpoint_every
        self.last_saved: Optional[int] = self.step if resume is not None else None
        self.video_on = cfg.eval.video
        self.score_ref: Optional[tuple[float, float]] = None  # (random, expert) returns: eval/normalized_score
        self.metrics: dict[str, Any] = {}
        self._ep: list[tuple[float, int]] = []  # episodes ending at step _ep_step, not logged yet
        self._ep_step: Optional[int] = None
        self.sps = 0.0
        self.step_rate, self.update_rate = Rate(self.step), Rate(self.updates)
        self.guard = SignalGuard()
        self.bar = tqdm(total=self.total, initial=self.step, disable=not cfg.progress, unit="step" if total is None else "update",
                        dynamic_ncols=True, desc=f"{cfg.algo.name} {cfg.env.name}", mininterval=1.0)

    @property
    def done(self) -> bool:
        return self.step >= self.total or self.solved

    def state(self) -> dict[str, Any]:
        return {"step": self.step, "updates": self.updates, "episodes": self.episodes, "evals": self.evals,
                "best_eval": self.best, "last_eval": self.last, "rng": seeding.global_rng_state(),
                "algo_starts": {k: int(self.cfg.algo[k]) for k in ("random_steps", "learning_starts") if k in self.cfg.algo},
                "wandb_id": self.logger.run_id, "config": OmegaConf.to_container(self.cfg, resolve=True),
                **self.loop_state()}

    def episode_boundary(self) -> None:
        """Called between an episode's end and the next reset: the place where a checkpoint resumes exactly."""
        if self.pending_since is not None:
            self.save()

    def save(self) -> None:
        self.pending_since = None
        state = self.state()
        bad = _first_non_finite(state["agent"])
        if bad is not None:  # never write NaN weights over the last good checkpoint
            self.fail(f"agent state {bad}")
        checkpoint.save(self.run_dir, state)
        self.last_saved = self.step
        if self.on_saved is not None:
            self.on_saved(state)

    def fail(self, quantity: str, at_step: Optional[int] = None) -> None:
        where = (f"the last good checkpoint is {self.run_dir / checkpoint.NAME} (step {self.last_saved})"
                 if self.last_saved is not None else "no checkpoint was written")
        raise NonFiniteError(f"non-finite {quantity} at env step {self.step if at_step is None else at_step}; {where}")

    def check_finite(self, name: str, value, at_step: Optional[int] = None) -> None:
        """Stop the run when an observation or reward from the env is NaN or infinite."""
        finite = bool(torch.isfinite(value).all()) if torch.is_tensor(value) else bool(np.all(np.isfinite(value)))
        if not finite:
            self.fail(name, at_step)

    def episode(self, ret: float, length: int, at_step: int) -> None:
        """A finished training episode at the env step that ended it. Episodes that end at the same step (sub-envs
        of a vector env) are logged as one row, their mean, with ``train/episodes_at_step`` when more than one:
        W&B keeps one value per key and step, so separate rows would lose all but the last."""
        self.episodes += 1
        if self._ep_step is not None and at_step != self._ep_step:
            self._flush_episodes()
        self._ep_step = at_step
        self._ep.append((float(ret), int(length)))

    def _flush_episodes(self) -> None:
        if not self._ep:
            return
        rets, lens = zip(*self._ep)
        row = {"train/episode_return": rets[0] if len(rets) == 1 else float(np.mean(rets)),
               "train/episode_length": lens[0] if len(lens) == 1 else float(np.mean(lens)), "train/episodes": self.episodes}
        if len(rets) > 1:
            row["train/episodes_at_step"] = len(rets)
        self.logger.log(self._ep_step, row)
        self._ep, self._ep_step = [], None

    def evaluate(self) -> None:
        # On generators of its own: what a stochastic part of the policy draws (BCQ's samples) never moves the
        # training trajectory, so eval_every and eval_episodes leave training exactly as it was.
        with seeding.isolated(seeding.stream(self.cfg.seed, "eval_rng")):
            self._evaluate()

    def _evaluate(self) -> None:
        result = evaluate(self.agent, self.eval_env, self.cfg.eval_episodes, self.cfg.seed)
        if self.score_ref is not None:
            result["eval/normalized_score"] = data.normalized_score(result["eval/return_mean"], self.score_ref)
        self.last = result["eval/return_mean"]
        self.best = max(self.best, self.last)
        if self.cfg.get("stop_return") is not None and self.last >= self.cfg.stop_return and not self.solved:
            self.solved = True
            log.info("evaluation return %.1f reached stop_return=%g at step %d: the run ends here",
                     self.last, self.cfg.stop_return, self.step)
        self.logger.log(self.step, result)
        if self.video_on and self.evals % self.cfg.eval.video_every == 0:
            video = record_episode(self.agent, self.cfg.env, self.cfg.seed, self.run_dir / "videos" / f"step{self.step}",
                                   self.cfg.eval.fps, envs.obs_stats(self.env))
            if video is None:
                self.video_on = False  # warned once; keep training without videos
            else:
                self.logger.video(self.step, "eval/video", video, self.cfg.eval.fps)
        self.evals += 1

    def advance(self, steps: int, updates: int, metrics: Optional[dict[str, Any]] = None) -> None:
        self._flush_episodes()
        before = self.step
        self.step += steps
        self.updates += updates
        if metrics:
            self.metrics = metrics
        if crossed(before, self.step, self.log_every):
            self.sps = self.step_rate.read(self.step)
            for key, value in self.metrics.items():
                if not math.isfinite(float(value)):
                    self.fail(key)
            self.logger.log(self.step, {**self.metrics, "time/sps": self.sps,
                                        "time/updates_per_s": self.update_rate.read(self.updates),
                                        "train/updates": self.updates})
        if crossed(before, self.step, self.eval_every) or self.done:
            self.evaluate()
        if self.done:
            self.save()
        elif crossed(before, self.step, self.checkpoint_every):
            if self.episode_aligned:
                self.pending_since = self.step if self.pending_since is None else self.pending_since
            else:
                self.save()
        if self.pending_since is not None and self.step - self.pending_since >= self.checkpoint_every:
            self.save()  # an episode that never ends must not starve checkpoints (resume is then not exact)
        if crossed(before, self.step, self.log_every) or crossed(before, self.step, self.eval_every):
            shown = f"{self.last:.1f}" if self.evals else "-"  # formatted only when it changes, not every step
            self.bar.set_postfix_str(f"sps={self.sps:.0f} eval={shown}", refresh=False)
        self.bar.update(steps)
        if self.guard.signum is not None:
            self.save()
            log.warning("%s: checkpoint written at step %d", signal.Signals(self.guard.signum).name, self.step)
            self.guard.chain()  # e.g. submitit's requeue handler, which exits the process
            raise Interrupted(self.guard.signum)

    def __enter__(self) -> Runner:
        self.guard.__enter__()
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        try:
            if exc_type is KeyboardInterrupt and self.save_on_ctrl_c:
                self.save()
        finally:
            self.bar.close()
            self.guard.__exit__(exc_type, exc, tb)

    def result(self) -> dict[str, float]:
        return {"final": self.last, "best": self.best, "steps": self.step, "updates": self.updates}


def off_policy(cfg, agent, env, eval_env, spec: envs.EnvSpec, logger, run_dir: Path, device: torch.device,
               resume: Optional[dict[str, Any]] = None) -> dict[str, float]:
    a = agent.cfg  # the algorithm's dataclass (train.run converts it once): plain attributes in the hot loop
    gen = torch.Generator(device=device)
    gen.manual_seed(seeding.stream(cfg.seed, "replay"))
    buffer = ReplayBuffer(a.buffer_size, spec.obs_shape, spec.action_shape, discrete=spec.discrete,
                          device=device, generator=gen)

    # The replay rows go to chunk files in replay/, each written once (ReplayBuffer.save_chunks); the checkpoint
    # holds their manifest. Chunks are deleted once neither checkpoint on disk (current, previous) names them.
    replay_dir = run_dir / "replay"
    on_disk: list[dict] = [resume["buffer"]] if resume is not None else []

    def loop_state() -> dict[str, Any]:
        return {"agent": agent.state_dict(), "buffer": buffer.save_chunks(replay_dir), "sample_rng": gen.get_state(),
                "env_rng": seeding.env_rng_state(env), "obs_stats": envs.obs_stats(env)}

    def on_saved(state: dict[str, Any]) -> None:
        on_disk[:] = [*on_disk[-1:], state["buffer"]]
        ReplayBuffer.prune(replay_dir, on_disk)

    run = Runner(cfg, agent, env, eval_env, logger, run_dir, loop_state, resume, episode_aligned=True)
    run.on_saved = on_saved
    discrete = spec.discrete
    if resume is not None:
        agent.load_state_dict(resume["agent"])
        if resume["buffer"].get("format") == "chunks":
            buffer.load_chunks(replay_dir, resume["buffer"])
        else:  # a checkpoint from before chunked replay: the rows are inside it
            buffer.load_state_dict(resume["buffer"])
        seeding.set_global_rng_state(resume["rng"])
        gen.set_state(resume["sample_rng"])
        seeding.set_env_rng_state(env, resume["env_rng"])
        envs.load_obs_stats(env, resume.get("obs_stats"))
        # Periodic checkpoints are taken between an episode's end and the next reset, so this reset is the one the
        # uninterrupted run made. (After a signal the checkpoint is mid-episode: that episode is dropped.)
        obs, _ = env.reset()
    else:
        obs, _ = env.reset(seed=seeding.stream(cfg.seed, "train_env"))
    envs.share_obs_stats(env, eval_env)

    with run:
        while not run.done:
            if run.step < a.random_steps:
                action = env.action_space.sample()
            else:
                action = agent.act(obs, deterministic=False)
                if not discrete:  # NaN weights show first here: name the policy, not the env's reward
                    run.check_finite("action (policy output; the agent's weights may have diverged)", action, run.step + 1)
            next_obs, reward, terminated, truncated, info = env.step(action)
            run.check_finite("reward", reward, run.step + 1)
            run.check_finite("observation", next_obs, run.step + 1)
            buffer.add(obs, action, reward, next_obs, terminated, truncated)
            obs = next_obs
            metrics, n = None, 0
            if len(buffer) >= a.learning_starts and (run.step + 1) % a.train_every == 0:
                for _ in range(a.gradient_steps):
                    metrics = agent.update(buffer.sample(a.batch_size))
                n = a.gradient_steps
            if terminated or truncated:
                run.episode(info["episode"]["r"], info["episode"]["l"], at_step=run.step + 1)
            run.advance(1, n, metrics)
            if (terminated or truncated) and not run.done:
                run.episode_boundary()
                obs, _ = env.reset()
    if cfg.dataset.record:
        path = data.from_buffer(buffer, run_dir / "dataset", env_id=spec.id, discrete=spec.discrete,
                                source={"kind": "online run", "run_dir": str(run_dir),
                                        "config": OmegaConf.to_container(cfg, resolve=True)})
        log.info("recorded %d transitions: %s", len(buffer), path)
        if cfg.dataset.id is not None:
            arrays, meta = data.read(path)
            log.info("and as Minari dataset %s: %s", cfg.dataset.id,
                     data.to_minari(arrays, meta, cfg.dataset.id, description=f"replay of {cfg.algo.name} on {spec.id}"))
    return run.result()


def offline(cfg, agent, env, eval_env, spec: envs.EnvSpec, logger, run_dir: Path, device: torch.device,
            resume: Optional[dict[str, Any]] = None) -> dict[str, float]:
    """Offline RL: ``total_updates`` gradient updates on minibatches of the dataset, evaluation in the real env
    every ``eval_every`` updates (evaluation only: no transition of it is ever trained on). Logged ``step``
    counts updates. A checkpoint holds the agent and the sampler's RNG; the dataset itself is re-read (and its
    checksum verified) on resume, so checkpoints stay small."""
    arrays, meta = data.load(cfg.dataset, spec)
    if hasattr(agent, "fit_dataset"):  # statistics of the data the agent uses (state normalisation, reward scale)
        agent.fit_dataset(arrays)
    gen = torch.Generator(device=device)
    gen.manual_seed(seeding.stream(cfg.seed, "replay"))
    buffer = ReplayBuffer(meta["size"], spec.obs_shape, spec.action_shape, discrete=spec.discrete,
                          device=device, generator=gen)
    buffer.add_batch(arrays["observations"], arrays["actions"], arrays["rewards"], arrays["next_observations"],
                     arrays["terminations"], arrays["truncations"])
    what = data.describe(cfg.dataset)
    log.info("%s: %d transitions, %s finished episodes (mean return %s)", what, meta["size"],
             meta["episodes"]["count"], meta["episodes"].get("return_mean"))

    def loop_state() -> dict[str, Any]:
        return {"agent": agent.state_dict(), "sample_rng": gen.get_state(), "dataset_sha256": meta["sha256"]}

    run = Runner(cfg, agent, env, eval_env, logger, run_dir, loop_state, resume, total=cfg.total_updates)
    run.score_ref = data.reference_returns(meta, spec.id)
    if run.score_ref is not None:
        log.info("normalised score: 100 * (return - %.2f) / (%.2f - %.2f)", run.score_ref[0], run.score_ref[1],
                 run.score_ref[0])
    if resume is not None:
        if resume.get("dataset_sha256") != meta["sha256"]:
            raise data.DatasetError(f"{what} differs from the one the checkpoint in {run_dir} "
                                    "was trained on; resume with the same dataset or start a new run")
        agent.load_state_dict(resume["agent"])
        seeding.set_global_rng_state(resume["rng"])
        gen.set_state(resume["sample_rng"])
    batch_size = cfg.algo.batch_size
    with run:
        while not run.done:
            run.advance(1, 1, agent.update(buffer.sample(batch_size)))
    return run.result()


def collect_rollout(agent, env, storage: RolloutStorage, obs: np.ndarray, gamma: float,
                    on_episode: Callable[[int, float, int], None]) -> np.ndarray:
    """Step the vector env ``storage.n_steps`` times, filling ``storage``; returns the last observation.

    A sub-env cut by its time limit (truncated, not terminated) gets gamma * V(real final observation) added to
    its reward at that step, and the step is marked done: the return stops there but still bootstraps.
    ``on_episode(t, return, length)`` is called for each finished episode.
    """
    for t in range(storage.n_steps):
        action, env_action, value, log_prob = agent.step(obs)
        next_obs, reward, terminated, truncated, info = env.step(env_action)
        reward = reward.astype(np.float32)
        cut = truncated & ~terminated
        if cut.any():
            final = np.stack([info["final_obs"][i] for i in np.flatnonzero(cut)])
            reward[cut] += gamma * agent.value(final).cpu().numpy()
        storage.add(obs, action, reward, terminated | truncated, value, log_prob)
        obs = next_obs
        if "final_info" in info and "episode" in info["final_info"]:
            ep = info["final_info"]["episode"]
            for i in np.flatnonzero(info["final_info"]["_episode"]):
                on_episode(t, float(ep["r"][i]), int(ep["l"][i]))
    return obs


def on_policy(cfg, agent, env, eval_env, spec: envs.EnvSpec, logger, run_dir: Path, device: torch.device,
              resume: Optional[dict[str, Any]] = None) -> dict[str, float]:
    """A2C's and PPO's loop: ``num_envs`` envs x ``n_steps`` per rollout, then ``agent.update(rollout)``.

    ``env`` is a vector env in SAME_STEP autoreset mode (see ``envs.make_vector``), with ``envs.VecNormalize`` on
    top when observations or rewards are normalised: its statistics are saved in the checkpoint and shared
    (read-only) with the evaluation env.
    """
    a, n = agent.cfg, env.num_envs
    storage = RolloutStorage(a.n_steps, n, spec.obs_shape, spec.action_shape, spec.discrete, device)
    norm = env if isinstance(env, envs.VecNormalize) else None

    obs = None

    # The learning-rate schedule's horizon is the budget the run started with: a resume with a longer
    # total_steps continues the same schedule (then holds at its end) instead of jumping back up.
    horizon = resume.get("anneal_horizon", cfg.total_steps) if resume is not None else cfg.total_steps

    def loop_state() -> dict[str, Any]:
        return {"agent": agent.state_dict(), "vector_env": envs.vector_state(env), "obs": torch.as_tensor(obs),
                "normalizer": norm.state_dict() if norm is not None else None, "obs_stats": envs.obs_stats(env),
                "anneal_horizon": horizon}

    run = Runner(cfg, agent, env, eval_env, logger, run_dir, loop_state, resume, save_on_ctrl_c=False)
    if resume is not None:
        agent.load_state_dict(resume["agent"])
        seeding.set_global_rng_state(resume["rng"])
        if resume.get("vector_env") is not None and envs.vector_state(env) is not None:
            # sync envs (then and now): continue every episode exactly where it was
            env.reset(seed=seeding.sub_env_seeds(cfg.seed, n))
            envs.load_vector_state(env, resume["vector_env"])
            obs = resume["obs"].numpy()
        else:  # async envs live in other processes: fresh episodes (resume is then not exact)
            obs, _ = env.reset(seed=seeding.sub_env_seeds(seeding.stream(cfg.seed, "train_env", run.step), n))
            log.warning("resume with hardware.vector=async restarts the episodes in flight (not an exact resume)")
        if norm is not None:
            norm.load_state_dict(resume["normalizer"])  # after the reset, which updated the statistics
    else:
        obs, _ = env.reset(seed=seeding.sub_env_seeds(cfg.seed, n))
    envs.share_obs_stats(env, eval_env)
    with run:
        while not run.done:
            obs = collect_rollout(agent, env, storage, obs, a.gamma,
                                  lambda t, r, length: run.episode(r, length, at_step=run.step + (t + 1) * n))
            if not spec.discrete:
                run.check_finite("action (policy output; the agent's weights may have diverged)", storage.actions)
            run.check_finite("reward", storage.rewards)
            run.check_finite("observation", storage.obs)
            batch = storage.batch(agent.value(obs), a.gamma, a.gae_lambda)
            agent.set_progress(run.step / horizon)
            metrics = agent.update(batch)
            run.advance(a.n_steps * n, metrics.pop("updates", 1), metrics)
    return run.result()
