"""A3C: asynchronous advantage actor-critic with Hogwild updates from worker processes.

Paper: Mnih et al., "Asynchronous Methods for Deep Reinforcement Learning", ICML 2016 (Algorithm S3).

Implementation details:
1. The global actor-critic (A2C's network) lives in shared memory; so do the optimizer's statistics
   (RMSprop's running average of squared gradients, or Adam's moments), shared by all workers as in the
   paper's "shared RMSProp".
2. ``hardware.workers`` processes (0: one per CPU core), each with its own env, seed and local copy of the
   network. A worker: copies the global weights, runs ``n_steps`` env steps, computes the A2C loss on its
   local copy, hands its gradients to the global parameters and steps the shared optimizer without any lock
   (Hogwild), then copies the global weights again.
3. Returns as in A2C (``algos/common/rollout.py``): n-step (or GAE) returns bootstrapped from the critic,
   through time limits but not through terminal states.
4. The main process owns evaluation, logging and checkpoints (``Runner``, as every loop): workers report
   finished episodes and step counts through a queue; the x-axis is env steps summed over workers.
5. Lifecycle: a stop event ends the workers after their current rollout; Ctrl-C/SIGTERM in the main process
   checkpoints and stops them; a worker that raises sends its traceback and the run fails with it; workers
   exit on their own if the main process disappears. No orphan processes.
Not exactly reproducible: worker interleaving depends on OS scheduling, so resume continues but cannot
replay the same run (docs/results.md).
"""

from __future__ import annotations

import logging
import os
import queue as queue_mod
import signal
import traceback
from dataclasses import dataclass
from typing import Optional

import numpy as np
import torch
import torch.multiprocessing as mp

from rlbase import envs
from rlbase.algos.a2c import A2C, A2CConfig
from rlbase.core import seeding
from rlbase.core.rollout import RolloutStorage
from rlbase.core.settings import one_of, positive
from rlbase.loops.on_policy import anneal_horizon, collect_rollout
from rlbase.loops.runner import Runner

log = logging.getLogger(__name__)
ACTION_SPACES = ("discrete", "continuous")
SAMPLES_POLICY = True  # act(deterministic=False) samples the learned policy (eval.sample, load_policy)


@dataclass
class A3CConfig(A2CConfig):
    name: str = "a3c"
    num_envs: int = positive(1)  # one env per worker (hardware.workers sets how many workers)
    n_steps: int = positive(5)  # t_max: env steps per worker rollout
    lr: float = positive(7e-4)  # shared optimizer learning rate
    optimizer: str = one_of("rmsprop", "rmsprop", "adam")  # rmsprop | adam (statistics shared across workers)


class A3C(A2C):
    """The global model and its shared optimizer (the main process evaluates and checkpoints this object)."""

    def __init__(self, cfg: A3CConfig, spec: envs.EnvSpec, device: torch.device, rng: Optional[seeding.AgentRandom] = None):
        super().__init__(cfg, spec, torch.device("cpu"), rng)  # shared memory is CPU memory
        self.net.share_memory()
        self.shared_state = share_optimizer_state(self.optimizer)

    def load_state_dict(self, state: dict) -> None:
        # Copy into the existing shared tensors so workers keep seeing the same memory.
        with torch.no_grad():
            for name, t in self.net.state_dict().items():
                t.copy_(state["net"][name])
        for own, saved in zip(self.shared_state, state["optimizer"]["state"].values()):
            for k, v in saved.items():
                own[k].copy_(v)


def share_optimizer_state(opt: torch.optim.Optimizer) -> list[dict[str, torch.Tensor]]:
    """Create the optimizer's per-parameter state now (one step on zero gradients) and move it to shared memory.

    A zero-gradient step leaves RMSprop's and Adam's parameters unchanged; the step counters are reset to 0.
    """
    params = [p for g in opt.param_groups for p in g["params"]]
    for p in params:
        p.grad = torch.zeros_like(p)
    opt.step()
    states = []
    for p in params:
        st = opt.state[p]
        for k, v in st.items():
            if not torch.is_tensor(v):
                st[k] = v = torch.tensor(float(v))
            if k == "step":
                v.zero_()
            v.share_memory_()
        states.append(st)
        p.grad = None
    return states


def _worker(rank: int, cfg: dict, spec: envs.EnvSpec, global_net, shared_state, counter, stop, queue, parent: int) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the whole group; the main process decides
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    torch.set_num_threads(1)
    try:
        from omegaconf import OmegaConf

        c = OmegaConf.create(cfg)
        a = c.algo
        seed = seeding.stream(c.seed, "worker", rank)  # apart from every other run's and stream's seeds
        local = A2C(a, spec, torch.device("cpu"), seeding.AgentRandom(seed))  # computes gradients; its own streams
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


def loop(ctx):
    """Asynchronous workers (``_worker``) update the shared model; this process evaluates and checkpoints it."""
    cfg, agent, env, eval_env, spec, logger, run_dir, device, resume = ctx.unpack()
    from omegaconf import OmegaConf

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
    workers = [ctx.Process(target=_worker, args=(r, plain, spec, agent.net, agent.shared_state, counter, stop, queue,
                                                 os.getpid()), daemon=True, name=f"a3c-worker-{r}")
               for r in range(n_workers)]
    running = set(range(n_workers))
    try:
        with run:  # entering makes an evaluation a signal left owed: on the restored weights, before any worker runs
            for w in workers:
                w.start()
            log.info("A3C: %d workers (pids %s)", n_workers, " ".join(str(w.pid) for w in workers))
            if run.done:
                stop.set()  # the owed evaluation reached stop_return: the workers exit at once
            while running:
                try:
                    msg = queue.get(timeout=1.0)
                except queue_mod.Empty:
                    dead = [r for r in running if not workers[r].is_alive()]
                    if dead:
                        raise RuntimeError(f"A3C worker {dead[0]} died (exit code {workers[dead[0]].exitcode})") from None
                    if run.signum is not None:
                        run.advance(0, 0)  # checkpoints and raises Interrupted
                    yield run.step
                    continue
                kind = msg[0]
                if kind == "error":
                    raise RuntimeError(f"A3C worker {msg[1]} failed: {msg[2].strip().splitlines()[-1]}\n{msg[2]}")
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


def check_config(a) -> list[str]:
    """Relations between settings that only A3C has (validate_algo reports each in one line)."""
    if a.num_envs != 1:
        return [f"algo.num_envs={a.num_envs}: each A3C worker steps one env; allowed: algo.num_envs=1 (set the "
                "number of workers with hardware.workers)"]
    return []


LOOP = loop
Config, Agent = A3CConfig, A3C
__all__ = ["A3C", "A3CConfig", "loop", "np"]
