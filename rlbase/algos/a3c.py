"""A3C: asynchronous advantage actor-critic with Hogwild updates from worker processes.

Paper: Mnih et al., "Asynchronous Methods for Deep Reinforcement Learning", ICML 2016 (Algorithm S3).

Implementation details:
1. The global actor-critic (A2C's network) lives in shared memory; so do the optimizer's statistics
   (RMSprop's running average of squared gradients, or Adam's moments), shared by all workers as in the
   paper's "shared RMSProp".
2. ``hardware.workers`` processes (0: one per CPU core), each with its own env, seed and local copy of the
   network. A worker: copies the global weights, runs ``n_steps`` env steps, computes the A2C loss on its
   local copy, hands its gradients to the global parameters and steps the shared optimizer without any lock
   (Hogwild), then copies the global weights again. The workers, their queue and the main process's part are the
   "asynchronous" loop kind (``rlbase/loops/asynchronous.py``); this module holds the model (``worker_copy``: a
   worker's local one).
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

from dataclasses import dataclass
from typing import Optional

import numpy as np
import torch

from rlbase import envs
from rlbase.algos import a2c
from rlbase.algos.a2c import A2C, A2CConfig
from rlbase.core import seeding
from rlbase.core.settings import one_of, positive

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

    @staticmethod
    def worker_copy(cfg, spec: envs.EnvSpec, rng: seeding.AgentRandom) -> A2C:
        """A worker's local model (not shared): it computes the gradients the worker applies to the global one."""
        return A2C(cfg, spec, torch.device("cpu"), rng)


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


def check_config(a) -> list[str]:
    """Relations between settings: A3C's own, then A2C's (validate_algo reports each in one line)."""
    if a.num_envs != 1:
        return [f"algo.num_envs={a.num_envs}: each A3C worker steps one env; allowed: algo.num_envs=1 (set the "
                "number of workers with hardware.workers)"]
    return a2c.check_config(a)


LOOP = "asynchronous"  # rlbase/loops/asynchronous.py: the workers, the queue and the main process's Runner
Config, Agent = A3CConfig, A3C
__all__ = ["A3C", "A3CConfig", "np"]
