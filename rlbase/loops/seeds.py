"""Several seeds in one process: K off-policy runs stepped in lockstep, their acting and updates batched.

Each seed's run is the ordinary off-policy loop (``off_policy.loop``) with its own Runner, env, replay buffer,
logger, checkpoints and evaluation. Given a seed of a stacked agent (``rlbase/algos/stacked.py``) the loop does not
call the agent for training steps: it yields a request (:class:`Act`, :class:`Update`) and :func:`drive` answers the
requests of all K seeds with one batched call, then sends each seed its part. Everything else a seed does (env
steps, evaluation, logging, checkpoints, a signal, a non-finite value) happens in its own loop, as it would alone.

Lockstep: the seeds step together, so they are always at the same env step (a resume starts them at one common
checkpoint step: ``rlbase.runtime.job.align_checkpoints``), and every seed checkpoints at the same step, mid-episode;
the loop then resumes its episode exactly by replaying the episode's actions from the replay buffer
(``off_policy.replay_episode``). A seed whose run stops (a non-finite loss, a reached ``stop_return``, the end of
its budget) leaves the others going; its slice of the stacked networks is fed zeros from then on and ignored.
"""

from __future__ import annotations

import logging
from collections.abc import Generator
from dataclasses import dataclass
from typing import Any, Optional

import numpy as np
import torch

from rlbase.core.buffer import Batch
from rlbase.loops.runner import SIGNALS, Interrupted, NonFiniteError

log = logging.getLogger(__name__)


@dataclass
class Act:
    """A seed asks for its exploring action on ``obs``."""

    obs: np.ndarray


@dataclass
class Update:
    """A seed asks for ``gradient_steps`` updates on minibatches of ``batch_size`` from its ``buffer``."""

    buffer: Any
    batch_size: int
    gradient_steps: int


# The run whose loop is running now (its run directory, as a string): a run's train.log handler takes the lines of
# its own run and the lines of no run (rlbase.runtime.job.accept), so K runs in one process keep K separate logs.
CURRENT: dict[str, Optional[str]] = {"run": None}


def drive(group, runs: list[Generator[Any, Any, Any]], names: list[str]) -> tuple[list[Any], list[Optional[BaseException]]]:
    """Run K seeds' loops (``job.steps`` generators whose agents are ``group``'s seeds) to their ends; returns
    each run's result (None where it failed) and each run's failure (a ``NonFiniteError``; None where it finished).
    After a signal every run checkpoints at the same step and the first :class:`Interrupted` is raised; any other
    failure closes every run and is raised."""
    k = len(runs)
    results: list[Any] = [None] * k
    errors: list[Optional[BaseException]] = [None] * k
    live = [True] * k
    replies: list[Any] = [None] * k
    stopped: list[Interrupted] = []

    def advance(j: int) -> Any:
        CURRENT["run"] = names[j]
        reply, replies[j] = replies[j], None
        try:
            return runs[j].send(reply)
        except StopIteration as stop:
            results[j] = stop.value
        except Interrupted as e:
            stopped.append(e)
        except NonFiniteError as e:  # this seed diverged (its log has the line): it stops, the others go on
            errors[j] = e
            log.error("seed run %s stopped: %s; the other seeds go on", names[j], e)
        finally:
            CURRENT["run"] = None
        live[j] = False
        return None

    SIGNALS.held += 1  # a signal reaches every seed at the same step (SIGNALS.deliver at each step's start)
    try:
        while any(live) and not stopped:
            SIGNALS.deliver()
            waiting = {}
            for j in range(k):
                if live[j]:
                    request = advance(j)
                    if isinstance(request, (Act, Update)):
                        waiting[j] = request
            while waiting:
                acts = {j: r for j, r in waiting.items() if isinstance(r, Act)}
                if acts:
                    first = next(iter(acts.values())).obs
                    obs = np.zeros((k, *np.shape(first)), dtype=np.float32)
                    for j, r in acts.items():
                        obs[j] = r.obs
                    # the env boundary: the K observations in as one tensor, the K actions back as numpy rows
                    actions = group.act_all(torch.from_numpy(obs).to(group.device), [j in acts for j in range(k)])
                    actions = actions.cpu().numpy()
                    served = {j: actions[j] for j in acts}
                else:
                    first = next(iter(waiting.values()))
                    if any(r.gradient_steps != first.gradient_steps for r in waiting.values()):
                        raise RuntimeError("seeds in one process asked for different numbers of updates")
                    buffers = [waiting[j].buffer if j in waiting else first.buffer for j in range(k)]
                    on = [j in waiting for j in range(k)]
                    metrics: dict[str, Any] = {}
                    for _ in range(first.gradient_steps):
                        metrics = group.update(stack_batches(buffers, first.batch_size, on))
                    served = {j: {key: value[j] for key, value in metrics.items()} for j in waiting}
                for j, reply in served.items():
                    del waiting[j]
                    replies[j] = reply
                    request = advance(j)
                    if isinstance(request, (Act, Update)):
                        waiting[j] = request
        for j in range(k):  # a second Ctrl-C stopped one seed at once: the others keep their last checkpoints
            if live[j]:
                runs[j].close()
    except BaseException:
        for j in range(k):
            if live[j]:
                runs[j].close()
        raise
    finally:
        SIGNALS.held -= 1
        if not SIGNALS.held and SIGNALS.waiting is not None:  # arrived after the last step: the usual way
            SIGNALS.deliver()
    if stopped:
        raise stopped[0]
    return results, errors


def stack_batches(buffers: list, batch_size: int, live: list[bool]) -> Batch:
    """One minibatch per seed from its own replay buffer (and its own sampling generator), stacked: (K, B, ...).
    A seed that is no longer live gets zeros (its slice is computed and ignored; no operation mixes seeds)."""
    rows, discrete = [], []
    for buf, on in zip(buffers, live):
        if on:
            idx = torch.randint(0, buf.size, (batch_size,), generator=buf.generator, device=buf.device)
            rows.append(buf.table.index_select(0, idx))
            if buf.discrete:  # discrete actions live in their own int64 column
                discrete.append(buf.action.index_select(0, idx))
        else:
            rows.append(torch.zeros(batch_size, buf.table.shape[1], device=buf.device))
            if buf.discrete:
                discrete.append(torch.zeros(batch_size, dtype=torch.int64, device=buf.device))
    t = torch.stack(rows)
    c = buffers[0]._cols
    r = c["reward"][0]
    action = torch.stack(discrete) if discrete else t[..., c["action"][0]:c["action"][1]]
    return Batch(t[..., c["obs"][0]:c["obs"][1]], action, t[..., r], t[..., c["next_obs"][0]:c["next_obs"][1]],
                 t[..., r + 1], t[..., r + 2])
