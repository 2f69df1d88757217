"""What every training loop shares: the schedule of periodic work and the state that saves itself.

A loop builds a :class:`Runner`, registers the stateful parts of its run with :meth:`Runner.track` (agent, replay,
samplers, env state, ...), calls :meth:`Runner.restore` once, then reports progress with :meth:`Runner.episode` and
:meth:`Runner.advance`. The Runner decides when to log, evaluate (and record video) and checkpoint, and it alone
writes and reads checkpoints: one save path and one restore path for every loop kind. A checkpoint is the Runner's
counters, the run's random state, the logger's id and config, and one entry per tracked part under its name.

Signals (SIGTERM, SIGINT, SIGUSR1, SIGUSR2) are caught by one handler per process (:class:`ProcessSignals`), which
tells every Runner in the process; each checkpoints at its next step and raises :class:`Interrupted`.
"""

from __future__ import annotations

import contextlib
import io
import logging
import math
import os
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Optional

import numpy as np
import torch
from omegaconf import OmegaConf
from tqdm import tqdm

from rlbase import data, envs
from rlbase.core import checkpoint, seeding
from rlbase.core.evaluate import evaluate
from rlbase.loops.video import record_episode

log = logging.getLogger(__name__)


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


class ProcessSignals:
    """The process's one handler for SIGTERM/SIGINT/SIGUSR1/SIGUSR2 while any Runner is active.

    Installed when the first Runner enters and put back when the last one leaves, so several runs can share a
    process. A signal is handed to every active Runner (``runner.signum``); once each has checkpointed, the handler
    that was there before ours gets it too (e.g. submitit's requeue on SIGUSR2 at a Slurm time limit, which exits).
    """

    SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGUSR1, signal.SIGUSR2)

    def __init__(self):
        self.active: list[Runner] = []
        self.pending: set[int] = set()  # ids of Runners that have a signal to act on
        self._old: dict[int, Any] = {}
        # Seeds trained together (loops/seeds.py) must all checkpoint at one step: while ``held`` a signal waits
        # in ``waiting`` until the driver hands it to every Runner at once, between two steps (:meth:`deliver`).
        self.held = 0
        self.waiting: Optional[int] = None

    def enter(self, runner: Runner) -> None:
        if not self.active:
            self._old = {}
            for s in self.SIGNALS:
                try:
                    self._old[s] = signal.signal(s, self._handle)
                except ValueError:  # not in the main thread
                    pass
        self.active.append(runner)

    def leave(self, runner: Runner) -> None:
        self.active.remove(runner)
        self.pending.discard(id(runner))
        if not self.active:
            for s, h in self._old.items():
                signal.signal(s, h)
            self._old = {}

    def _handle(self, signum, frame):
        if signum == signal.SIGINT and (self.waiting is not None or any(r.signum is not None for r in self.active)):
            raise KeyboardInterrupt  # a second Ctrl-C: stop now
        if self.held:
            self.waiting = signum
            return
        self.deliver(signum)

    def deliver(self, signum: Optional[int] = None) -> None:
        """Hand ``signum`` (default: the one waiting, if any) to every active Runner."""
        if signum is None:
            signum, self.waiting = self.waiting, None
            if signum is None:
                return
        for r in self.active:
            r.signum = signum
            self.pending.add(id(r))

    def handled(self, runner: Runner) -> None:
        """``runner`` has checkpointed after its signal; when no Runner is left to do so, chain the old handler."""
        self.pending.discard(id(runner))
        old = self._old.get(runner.signum)
        if not self.pending and callable(old) and old is not signal.default_int_handler:
            old(runner.signum, None)


SIGNALS = ProcessSignals()


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


_COUNTERS = ("step", "updates", "episodes", "evals")
PROGRESS_EVERY = 300.0  # seconds between progress lines in train.log when the progress bar is off

BEST_POLICY = "best_policy.pt"  # the policy of the run's best evaluation so far, beside checkpoint.pt


def policy_state(agent_state: dict[str, Any]) -> dict[str, Any]:
    """An agent's state without its optimizers (entries that are an optimizer's state_dict; Adam's moments are twice
    the size of the networks they train): what acting needs. A reader fills those entries from a freshly built agent."""
    return {k: v for k, v in agent_state.items() if not (isinstance(v, dict) and "param_groups" in v and "state" in v)}


def optimizers(agent) -> dict[str, torch.optim.Optimizer]:
    """The agent's torch optimizers, found among its attributes, by the key their learning rate is logged under:
    ``train/lr`` for an agent with one (or for the one named ``optimizer`` or ``opt``), else ``train/lr_<name>``
    with the attribute's ``_opt`` / ``_optimizer`` suffix dropped (SAC: ``train/lr_actor``, ``train/lr_critic``,
    ``train/lr_alpha``). An optimizer whose parameters live in shared memory is stepped by other processes (A3C's
    workers, each with its own copy and schedule): its learning rate here is not the one in use, so it is left out."""
    found = [(name, opt) for name, opt in vars(agent).items() if isinstance(opt, torch.optim.Optimizer)]
    found = [(name, opt) for name, opt in found
             if not any(p.device.type == "cpu" and p.is_shared() for g in opt.param_groups for p in g["params"])]
    out: dict[str, torch.optim.Optimizer] = {}
    for name, opt in found:
        stem = name.removesuffix("_optimizer").removesuffix("_opt")
        key = "train/lr" if len(found) == 1 or stem in ("optimizer", "opt") else f"train/lr_{stem}"
        out.setdefault(key, opt)
    return out


def learning_rates(opts: dict[str, torch.optim.Optimizer]) -> dict[str, float]:
    """Each optimizer's current learning rate (its first parameter group's: the one every algorithm here sets)."""
    return {key: float(opt.param_groups[0]["lr"]) for key, opt in opts.items() if opt.param_groups}


class Runner:
    """Counters, periodic logging, evaluation (and video), checkpoints, signals and the progress bar.

    ``resume`` is the checkpoint to continue from (None: a fresh run); ``total`` the budget when it is not
    ``cfg.total_steps`` (offline: updates). ``episode_aligned``: periodic checkpoints wait for the current episode's
    end (see :meth:`episode_boundary`), where a resume replays the uninterrupted run exactly. ``save_on_ctrl_c``:
    a second Ctrl-C lands anywhere, e.g. mid-rollout; loops whose state is only whole between chunks keep their last
    checkpoint instead of writing one there.
    """

    def __init__(self, cfg, agent, env, eval_env, logger, run_dir: Path, resume: Optional[dict[str, Any]] = None,
                 episode_aligned: bool = False, total: Optional[int] = None, save_on_ctrl_c: bool = True):
        self.total = cfg.total_steps if total is None else total  # env steps (online) or updates (offline)
        self.cfg, self.agent, self.env, self.eval_env, self.logger, self.run_dir = cfg, agent, env, eval_env, logger, run_dir
        self.resume = resume
        self.unit = "step" if total is None else "update"
        self.save_on_ctrl_c, self.episode_aligned = save_on_ctrl_c, episode_aligned
        self.parts: dict[str, tuple[Callable[[], Any], Optional[Callable[[Any], None]], bool]] = {}
        self.on_saved: list[Callable[[dict[str, Any]], None]] = []  # after a checkpoint is safely on disk
        self.pending_since: Optional[int] = None
        self.step = self.updates = self.episodes = self.evals = 0
        self.solved = False  # an evaluation reached cfg.stop_return: the run ends at this step
        self.best = self.last = float("-inf")
        self.best_write_failed = False  # a best_policy.pt write failed: warned once, later new bests try again
        self.signum: Optional[int] = None  # set by ProcessSignals
        self.eval_pending = False  # a signal stopped the evaluation of this step: the resumed run makes it first
        # Read once: an OmegaConf attribute costs microseconds, and advance() runs every env step.
        self.log_every, self.eval_every, self.checkpoint_every = cfg.log_every, cfg.eval_every, cfg.checkpoint_every
        # On the CPU reading a loss costs about 3 us (a DQN update: hundreds); on a GPU it would wait for the device
        # at every update, so there losses are checked when they are logged.
        self.check_every_update = str(cfg.hardware.device) == "cpu"
        self.last_saved: Optional[int] = None
        self.video_on = cfg.eval.video
        self.score_ref: Optional[tuple[float, float]] = None  # (random, expert) returns: eval/normalized_score
        self.metrics: dict[str, Any] = {}
        self.optimizers = optimizers(agent)  # their learning rates are logged with each log_every row
        self._ep: list[tuple[float, int]] = []  # episodes ending at step _ep_step, not logged yet
        self._ep_step: Optional[int] = None
        self.sps = 0.0
        self.step_rate, self.update_rate = Rate(), Rate()
        self.bar: Optional[tqdm] = None
        # Without the progress bar (a Slurm job's log, `progress=false`): one line to train.log and stdout every
        # PROGRESS_EVERY seconds, so `tail -f` shows the run moving.
        self.next_line = time.monotonic() + PROGRESS_EVERY
        self.started = (time.monotonic(), 0)
        # The agent's generators (exploration, update noise): part of every run. A checkpoint from before agents
        # owned them lacks the entry: its run resumes on fresh streams (not an exact resume).
        rng = agent.rng
        self.track("agent_rng", rng.state_dict, lambda s: rng.load_state_dict(s) if s is not None else None,
                   optional=True)

    # -- state -------------------------------------------------------------------------------------------------
    def track(self, name: str, save: Callable[[], Any], load: Optional[Callable[[Any], None]] = None,
              optional: bool = False) -> None:
        """Register a stateful part: ``save()`` gives its checkpoint entry ``name``; on resume ``load(entry)`` puts it
        back, in the order parts were registered (None: saved for readers, nothing to put back). ``optional``: a
        checkpoint from before the part existed lacks it; ``load`` then gets None."""
        if name in self.parts or name in _COUNTERS:
            raise ValueError(f"checkpoint part {name!r} is registered twice")
        self.parts[name] = (save, load, optional)

    def restore(self) -> bool:
        """Put every tracked part and the counters back from the checkpoint the run resumes from, if any; True then."""
        resume = self.resume
        if resume is None:
            return False
        for key in _COUNTERS:
            setattr(self, key, resume[key])
        self.best, self.last = resume["best_eval"], resume["last_eval"]
        self.eval_pending = bool(resume.get("eval_pending", False))
        self.last_saved = self.step
        self.step_rate, self.update_rate = Rate(self.step), Rate(self.updates)
        for name, (_, load, optional) in self.parts.items():
            if load is None:
                continue
            if name not in resume and not optional:
                raise checkpoint.CheckpointError(f"the checkpoint in {self.run_dir} has no {name!r} entry "
                                                 "(written by another kind of run?); start a new run")
            load(resume.get(name))
        log.info("resumed from step %d of %d", self.step, self.total)
        return True

    def state(self) -> dict[str, Any]:
        return {"step": self.step, "updates": self.updates, "episodes": self.episodes, "evals": self.evals,
                "best_eval": self.best, "last_eval": self.last, "eval_pending": self.eval_pending,
                "algo_starts": {k: int(self.cfg.algo[k]) for k in ("random_steps", "learning_starts") if k in self.cfg.algo},
                "wandb_id": self.logger.run_id, "config": OmegaConf.to_container(self.cfg, resolve=True),
                **{name: save() for name, (save, _, _) in self.parts.items()}}

    def save(self) -> None:
        self.pending_since = None
        state = self.state()
        bad = _first_non_finite(state.get("agent"))
        if bad is not None:  # never write NaN weights over the last good checkpoint
            self.fail(f"agent state {bad}")
        checkpoint.save(self.run_dir, state)
        self.last_saved = self.step
        for hook in self.on_saved:
            hook(state)

    def episode_boundary(self) -> None:
        """Called between an episode's end and the next reset: the place where a checkpoint resumes exactly."""
        if self.pending_since is not None:
            self.save()

    # -- checks ------------------------------------------------------------------------------------------------
    @property
    def done(self) -> bool:
        return self.step >= self.total or self.solved

    def fail(self, quantity: str, at_step: Optional[int] = None) -> None:
        where = (f"the last good checkpoint is {self.run_dir / checkpoint.NAME} (step {self.last_saved})"
                 if self.last_saved is not None else "no checkpoint was written")
        raise NonFiniteError(f"non-finite {quantity} at env step {self.step if at_step is None else at_step}; {where}")

    def check_finite(self, name: str, value, at_step: Optional[int] = None) -> None:
        """Stop the run when an observation or reward from the env is NaN or infinite."""
        finite = bool(torch.isfinite(value).all()) if torch.is_tensor(value) else bool(np.all(np.isfinite(value)))
        if not finite:
            self.fail(name, at_step)

    # -- progress ----------------------------------------------------------------------------------------------
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
        self.eval_pending = True  # until it has finished: a checkpoint taken on the way (a second Ctrl-C) owes it
        # On a generator of its own (the same draws at every evaluation): what a stochastic policy draws there never
        # moves the training trajectory, so eval_every and eval_episodes leave training exactly as it was.
        result = evaluate(self.agent, self.eval_env, self.cfg.eval_episodes, self.cfg.seed,
                          stop=lambda: self.signum is not None, sample=self.cfg.eval.sample,
                          generator=seeding.generator(self.cfg.seed, "eval_rng", device=self.cfg.hardware.device))
        if result is None:  # a signal: stop now; the checkpoint remembers that this step's evaluation is owed
            log.warning("%s during the evaluation at step %d: it is made first when the run resumes",
                        signal.Signals(self.signum).name, self.step)
            return
        self.eval_pending = False
        if self.score_ref is not None:
            result["eval/normalized_score"] = data.normalized_score(result["eval/return_mean"], self.score_ref)
        self.last = result["eval/return_mean"]
        new_best = self.last > self.best
        self.best = max(self.best, self.last)
        if self.cfg.get("stop_return") is not None and self.last >= self.cfg.stop_return and not self.solved:
            self.solved = True
            log.info("evaluation return %.1f reached stop_return=%g at step %d: the run ends here",
                     self.last, self.cfg.stop_return, self.step)
        self.logger.log(self.step, result)
        if new_best:
            self.keep_best(result)
        if self.video_on and self.evals % self.cfg.eval.video_every == 0:
            video = record_episode(self.agent, self.cfg.env, self.cfg.seed, self.run_dir / "videos" / f"step{self.step}",
                                   self.cfg.eval.fps, envs.obs_stats(self.env))
            if video is None:
                self.video_on = False  # warned once; keep training without videos
            else:
                self.logger.video(self.step, "eval/video", video, self.cfg.eval.fps or 30)  # a file: W&B reads its own fps
        self.evals += 1

    def keep_best(self, result: dict[str, float]) -> None:
        """Write ``best_policy.pt``: the policy that just made the run's best evaluation (its agent state without
        optimizers, the observation statistics this evaluation normalised with, the step, the evaluation row and
        the run config), for ``rlbase.load_policy(run_dir, which="best")``. Written to a temporary file and renamed,
        so a reader never sees half a file. Nothing reads it on resume. A failed write (a full disk) removes the
        older file, which is no longer the best, warns once and leaves the run going; a later new best tries again."""
        path = self.run_dir / BEST_POLICY
        tmp = path.with_name(BEST_POLICY + ".tmp")
        state = {"format": 1, "step": self.step, "eval_return": self.last, "eval": dict(result),
                 "agent": policy_state(self.agent.state_dict()), "obs_stats": envs.obs_stats(self.eval_env),
                 "config": OmegaConf.to_container(self.cfg, resolve=True)}
        buf = io.BytesIO()
        torch.save(state, buf)
        try:
            with open(tmp, "wb") as f:
                f.write(buf.getvalue())
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except OSError as e:
            for stale in (tmp, path):
                with contextlib.suppress(OSError):
                    stale.unlink(missing_ok=True)
            if not self.best_write_failed:
                log.warning("could not write %s (%s); the run goes on without it: which='best' is unavailable until "
                            "a later best evaluation is written (checkpoint.pt, which='last', is unaffected)",
                            path, e.strerror or e)
            self.best_write_failed = True

    def advance(self, steps: int, updates: int, metrics: Optional[dict[str, Any]] = None) -> None:
        """``steps`` env steps (offline: updates) and ``updates`` gradient updates happened: log, evaluate and
        checkpoint when their intervals are crossed, and act on a signal."""
        self._flush_episodes()
        before = self.step
        self.step += steps
        self.updates += updates
        if metrics:
            self.metrics = metrics
            if self.check_every_update:  # a diverged loss is named at the update it happened, not log_every later
                self._check_metrics()
        if crossed(before, self.step, self.log_every):
            self.sps = self.step_rate.read(self.step)
            if not self.cfg.progress and time.monotonic() >= self.next_line:
                self.progress_line()
            self._check_metrics()
            # The learning rates in use now (lr_anneal changes them; an algorithm's own train/lr* metric wins).
            self.logger.log(self.step, {**learning_rates(self.optimizers), **self.metrics, "time/sps": self.sps,
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
        if self.bar is not None:
            if crossed(before, self.step, self.log_every) or crossed(before, self.step, self.eval_every):
                shown = f"{self.last:.1f}" if self.evals else "-"  # formatted only when it changes, not every step
                self.bar.set_postfix_str(f"sps={self.sps:.0f} eval={shown}", refresh=False)
            self.bar.update(steps)
        if self.signum is not None:
            self.on_signal()

    def progress_line(self) -> None:
        """``step 120000/1000000 (12%), 96 steps/s, last eval 2714.3 at 115000, about 2h33m left``."""
        now = time.monotonic()
        self.next_line = now + PROGRESS_EVERY
        t0, s0 = self.started
        rate = (self.step - s0) / max(now - t0, 1e-9)  # this segment's average (a resume starts its own)
        left = (self.total - self.step) / rate if rate > 0 else float("inf")
        last = f"last eval {self.last:.1f}" if self.evals else "no eval yet"
        eta = f"about {int(left // 3600)}h{int(left % 3600 // 60):02d}m left" if math.isfinite(left) else ""
        log.info("%s %d/%d (%.0f%%), %.0f %ss/s, %s, %s", self.unit, self.step, self.total, 100 * self.step / self.total,
                 rate, self.unit, last, eta)

    def _check_metrics(self) -> None:
        for key, value in self.metrics.items():
            if not math.isfinite(float(value)):
                self.fail(key)

    def on_signal(self) -> None:
        """Checkpoint, hand the signal on (e.g. to submitit's requeue handler, which exits) and stop the run."""
        self.save()
        log.warning("%s: checkpoint written at step %d", signal.Signals(self.signum).name, self.step)
        SIGNALS.handled(self)
        raise Interrupted(self.signum)

    def __enter__(self) -> Runner:
        self.started, self.next_line = (time.monotonic(), self.step), time.monotonic() + PROGRESS_EVERY
        self.bar = tqdm(total=self.total, initial=self.step, disable=not self.cfg.progress, unit=self.unit,
                        dynamic_ncols=True, desc=f"{self.cfg.algo.name} {self.cfg.env.name}", mininterval=1.0)
        SIGNALS.enter(self)
        if self.eval_pending:  # owed by the segment a signal stopped mid-evaluation; made on the restored agent
            try:
                self.evaluate()
                if self.eval_pending and self.signum is not None:  # stopped again: still owed, stop here too
                    self.on_signal()
            except BaseException:
                self.__exit__(*sys.exc_info())
                raise
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        try:
            if exc_type is KeyboardInterrupt and self.save_on_ctrl_c:
                self.save()
        finally:
            self.bar.close()
            SIGNALS.leave(self)

    def result(self) -> dict[str, float]:
        return {"final": self.last, "best": self.best, "steps": self.step, "updates": self.updates}
