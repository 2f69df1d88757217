"""The offline loop (CQL, BCQ, BC, TD3+BC, IQL, offline SAC): sample the fixed dataset -> update.

The env is only ever used for evaluation (by the :class:`~rlbase.loops.runner.Runner`), and the x-axis (``step``)
counts gradient updates.
"""

from __future__ import annotations

import logging
from collections.abc import Generator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Optional

import torch

from rlbase import data, envs
from rlbase.core import seeding
from rlbase.core.buffer import ReplayBuffer
from rlbase.core.settings import MinibatchConfig
from rlbase.loops.runner import Runner

if TYPE_CHECKING:
    from rlbase.loops import Context

log = logging.getLogger(__name__)


@dataclass
class OfflineConfig(MinibatchConfig):
    """Settings every offline algorithm shares: no replay buffer, no random or learning starts (the dataset is the buffer)."""


def make_env(cfg):
    """The training env this loop kind steps (offline runs train on the dataset; the env is built
    alike for the Runner and never stepped in training)."""
    return envs.make(cfg.env, seeding.stream(cfg.seed, "train_env"))[0]


def loop(ctx: Context) -> Generator[int, None, dict[str, float]]:
    """``total_updates`` gradient updates on minibatches of the dataset, evaluation in the real env every
    ``eval_every`` updates (evaluation only: no transition of it is ever trained on). A checkpoint holds the agent
    and the sampler's RNG; the dataset itself is re-read (and its checksum verified) on resume, so checkpoints stay
    small. Yields the update count after each update."""
    cfg, agent, env, eval_env, spec, logger, run_dir, device, resume = ctx.unpack()
    arrays, meta = data.load(cfg.dataset, spec)
    agent.fit_dataset(arrays)  # statistics of the data the agent uses (state normalisation, reward scale)
    gen = torch.Generator(device=device)
    gen.manual_seed(seeding.stream(cfg.seed, "replay"))
    buffer = ReplayBuffer(meta["size"], spec.obs_shape, spec.action_shape, discrete=spec.discrete,
                          device=device, generator=gen)
    buffer.add_batch(arrays["observations"], arrays["actions"], arrays["rewards"], arrays["next_observations"],
                     arrays["terminations"], arrays["truncations"])
    del arrays  # the buffer holds its own copy for the whole run
    what = data.describe(cfg.dataset)
    log.info("%s: %d transitions, %s finished episodes (mean return %s)", what, meta["size"],
             meta["episodes"]["count"], meta["episodes"].get("return_mean"))

    def same_dataset(sha256: Optional[str]) -> None:
        if sha256 != meta["sha256"]:
            raise data.DatasetError(f"{what} differs from the one the checkpoint in {run_dir} "
                                    "was trained on; resume with the same dataset or start a new run")

    run = Runner(cfg, agent, env, eval_env, logger, run_dir, resume, total=cfg.total_updates)
    run.track("dataset_sha256", lambda: meta["sha256"], same_dataset, optional=True)  # checked first
    run.track("agent", agent.state_dict, agent.load_state_dict)
    run.track("sample_rng", gen.get_state, gen.set_state)
    run.score_ref = data.reference_returns(meta, spec.id)
    if run.score_ref is not None:
        log.info("normalised score: 100 * (return - %.2f) / (%.2f - %.2f)", run.score_ref[0], run.score_ref[1],
                 run.score_ref[0])
    run.restore()
    batch_size = cfg.algo.batch_size
    with run:
        while not run.done:
            run.advance(1, 1, agent.update(buffer.sample(batch_size)))
            yield run.step
    return run.result()


CONFIG = OfflineConfig  # the settings every algorithm this loop drives extends (loops.kind_of)
