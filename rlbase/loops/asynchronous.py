"""The asynchronous loop (A3C): Hogwild worker processes update a shared model; this process evaluates it.

Each of ``hardware.workers`` processes (0: one per CPU core) has its own env, seed and local copy of the agent
(``worker_copy``): it copies the shared weights, collects ``n_steps`` env steps, computes the loss's gradients on its
copy, hands them to the shared parameters and steps the shared optimizer without any lock, then copies the shared
weights again. The :class:`~rlbase.loops.runner.Runner` in the main process owns evaluation, logging and checkpoints:
workers report finished episodes and step counts through a queue; the x-axis is env steps summed over workers.

Lifecycle: a stop event ends the workers after their current rollout; Ctrl-C/SIGTERM in the main process checkpoints
and stops them; a worker that raises sends its traceback and the run fails with it; workers exit on their own if the
main process disappears. No orphan processes. Not exactly reproducible: worker interleaving depends on OS scheduling.
The agent's side of the contract is :class:`rlbase.core.agent.AsynchronousAgent`.
"""

from __future__ import annotations

import logging
import os
import queue as queue_mod
import signal
import traceback
from collections.abc import Generator
from typing import TYPE_CHECKING

import torch
import torch.multiprocessing as mp

from rlbase import envs
from rlbase.core import seeding
from rlbase.core.rollout import RolloutStorage
from rlbase.loops.on_policy import anneal_horizon, collect_rollout
from rlbase.loops.runner import Runner

if TYPE_CHECKING:
    from rlbase.loops import Context


def make_env(cfg):
    """The training env of the main process: built alike for the Runner, never stepped (the workers build their
    own, one each)."""
    return envs.make(cfg.env, seeding.stream(cfg.seed, "train_env"))[0]


def _worker(rank: int, cfg: dict, spec: envs.EnvSpec, agent_cls, global_net, shared_state, counter, stop, queue,
            parent: int) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the whole group; the main process decides
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    torch.set_num_threads(1)
    try:
        from omegaconf import OmegaConf

        c = OmegaConf.create(cfg)
        a = c.algo
        seed = seeding.stream(c.seed, "worker", rank)  # apart from every other run's and stream's seeds
        local = agent_cls.worker_copy(a, spec, seeding.AgentRandom(seed))  # computes gradients; its own streams
        params = list(global_net.parameters())
        opt = type(local.optimizer)(params, **local.optimizer.defaults)  # steps the global parameters...
        for p, st in zip(params, shared_state):
            opt.state[p] = st  # ...with the statistics every worker shares
        env, _ = envs.make_vector(c.env, seed, 1)
        storage = RolloutStorage(a.n_steps, 1, spec.obs_shape, spec.action_shape, spec.discrete, torch.device("cpu"))
        obs, _ = env.reset(seed=seeding.sub_env_seeds(seed, 1))
        total = c.total_steps
        while not stop.is_set() and os.getppid() == parent:
            with counter.get_lock():
                if counter.value >= total:
                    break
                counter.value += a.n_steps
                done_before = counter.value
            local.net.load_state_dict(global_net.state_dict())
            episodes: list[tuple[int, float, int]] = []
            obs = collect_rollout(local, env, storage, obs, a.gamma,
                                  lambda t, r, length, out=episodes: out.append((t, r, length)))
            batch = storage.batch(local.value(obs), a.gamma, a.gae_lambda)
            if a.lr_anneal:
                for g in opt.param_groups:
                    g["lr"] = a.lr * max(1.0 - done_before / a.lr_anneal_steps, 0.0)  # the loop set the horizon
            metrics = local.compute_grads(batch)
            for gp, lp in zip(params, local.net.parameters()):
                gp.grad = lp.grad
            opt.step()  # Hogwild: no lock around the shared parameters
            metrics["train/lr"] = opt.param_groups[0]["lr"]  # this worker's (its own schedule, its own optimizer)
            queue.put(("rollout", rank, a.n_steps, episodes, {k: float(v) for k, v in metrics.items()}))
        env.close()
        queue.put(("exit", rank))
    except Exception:  # noqa: BLE001 - report any failure to the main process
        queue.put(("error", rank, traceback.format_exc()))


def loop(ctx: Context) -> Generator[int, None, dict[str, float]]:
    """Asynchronous workers (``_worker``) update the shared model; this process evaluates and checkpoints it."""
    cfg, agent, env, eval_env, spec, logger, run_dir, device, resume = ctx.unpack()
    from omegaconf import OmegaConf

    name = cfg.algo.name.upper()  # "A3C": the workers' log lines, process names and failures name the algorithm
    log = logging.getLogger(type(agent).__module__)  # ...as does the logger of its lines in train.log
    n_workers = cfg.hardware.workers or os.cpu_count() or 1
    ctx = mp.get_context("spawn")
    counter = ctx.Value("q", 0)
    stop = ctx.Event()
    queue = ctx.Queue()

    run = Runner(cfg, agent, env, eval_env, logger, run_dir, resume)
    run.track("agent", agent.state_dict, agent.load_state_dict)
    horizon = anneal_horizon(cfg, resume)
    run.track("anneal_horizon", lambda: horizon, optional=True)  # optional: checkpoints from before it was kept
    if run.restore():
        counter.value = run.step
    plain = OmegaConf.to_container(cfg, resolve=True)
    plain["algo"]["lr_anneal_steps"] = horizon  # the workers' schedule: the one the run started with
    workers = [ctx.Process(target=_worker, args=(r, plain, spec, type(agent), agent.net, agent.shared_state, counter,
                                                 stop, queue, os.getpid()), daemon=True,
                           name=f"{cfg.algo.name}-worker-{r}")
               for r in range(n_workers)]
    running = set(range(n_workers))
    try:
        with run:  # entering makes an evaluation a signal left owed: on the restored weights, before any worker runs
            for w in workers:
                w.start()
            log.info("%s: %d workers (pids %s)", name, n_workers, " ".join(str(w.pid) for w in workers))
            if run.done:
                stop.set()  # the owed evaluation reached stop_return: the workers exit at once
            while running:
                try:
                    msg = queue.get(timeout=1.0)
                except queue_mod.Empty:
                    dead = [r for r in running if not workers[r].is_alive()]
                    if dead:
                        raise RuntimeError(f"{name} worker {dead[0]} died (exit code {workers[dead[0]].exitcode})") from None
                    if run.signum is not None:
                        run.advance(0, 0)  # checkpoints and raises Interrupted
                    yield run.step
                    continue
                kind = msg[0]
                if kind == "error":
                    raise RuntimeError(f"{name} worker {msg[1]} failed: {msg[2].strip().splitlines()[-1]}\n{msg[2]}")
                if kind == "exit":
                    running.discard(msg[1])
                    continue
                _, rank, steps, episodes, metrics = msg
                for t, r, length in episodes:
                    run.episode(r, length, at_step=run.step + t + 1)
                if not run.done:
                    run.advance(steps, 1, metrics)
                    if run.done:
                        stop.set()  # stop_return reached: the workers finish their rollout and exit
                yield run.step
    finally:
        stop.set()
        workers = [w for w in workers if w.pid is not None]  # started ones
        for w in workers:
            w.join(timeout=10)
        for w in workers:
            if w.is_alive():
                w.terminate()
                w.join(timeout=5)
        queue.close()
        queue.join_thread()
    return run.result()
