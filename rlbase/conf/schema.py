"""Config schemas, registered with Hydra's ConfigStore.

Every group option names its schema in its own defaults list (``- /schema/algo/dqn@_here_``), so a
wrong type, a misspelled key or another algorithm's key fails at composition, before anything runs.
Algorithm schemas live at the top of each algorithm's module; this file only registers them.
"""

from __future__ import annotations

import importlib
import os
from dataclasses import dataclass, field
from typing import Any, Optional

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING, OmegaConf

from rlbase import algos
from rlbase.conf import CONF
from rlbase.core.logger import LoggerConfig
from rlbase.core.settings import any_value, non_negative, one_of, positive
from rlbase.data import DatasetConfig
from rlbase.envs import EnvConfig


@dataclass
class HardwareConfig:
    device: str = "cpu"  # cpu | cuda | cuda:<index>
    threads: int = non_negative(0)  # torch intra-op threads; 0: auto (cores / joblib's parallel jobs; 1 for DQN)
    vector: str = one_of("sync", "sync", "async")  # sync: all envs in this process (fastest on 2 cores); async: one subprocess each
    workers: int = non_negative(0)  # A3C worker processes; 0: one per CPU core
    # K > 1: train K seeds of this configuration in this process, each in its own run directory (td3, ddpg):
    # seeds seed, seed+1, ..., seed+K-1; in a sweep, the swept seeds K at a time (README: several seeds in one process)
    seeds_per_process: int = positive(1)
    seed_list: list[int] = field(default_factory=list)  # a sweep's seeds, set by the command line for its groups


@dataclass
class EvalConfig:
    video: bool = False  # record one deterministic evaluation episode every video_every evaluations
    video_every: int = positive(5)  # evaluations between videos (the first evaluation is always recorded)
    fps: int = non_negative(0)  # frames per second of the videos; 0: the env's own render_fps (real time; else 30)
    # Evaluate with actions sampled from the policy instead of its mean or argmax (Tianshou's protocol for PPO and
    # A2C); algorithms with a stochastic policy only (a2c, a3c, ppo, sac, sac_offline, cql, iql). Videos: the mean.
    sample: bool = False


@dataclass
class RunConfig:
    seed: int = non_negative(0)  # every random stream of the run is spawned from it (algos/common/seeding.py)
    total_steps: int = positive(MISSING)  # env steps to train for (defaults to env.total_steps)
    total_updates: int = positive(100_000)  # offline algorithms (cql, bcq, bc, sac_offline): gradient updates to train for
    eval_every: int = positive(MISSING)  # env steps (offline: updates) between evaluations (defaults to env.eval_every)
    eval_episodes: int = positive(10)  # episodes per evaluation (deterministic unless eval.sample)
    checkpoint_every: int = positive(20_000)  # env steps between checkpoints (one is always written at the end)
    log_every: int = positive(1_000)  # env steps between rows of time/ and loss/ metrics
    # End the run at the first evaluation whose mean return reaches this (a solved task, e.g. 475 on CartPole-v1);
    # null: train for the whole budget. The run is then finished (checkpoint, done, summary) at that step.
    stop_return: Optional[float] = any_value(None)
    progress: bool = True  # show a progress bar
    # keep an off-policy run's replay/ chunks once it has finished (a finished run is never resumed, so by default
    # they are deleted: 5 MB for DQN CartPole at 100k, about 1.4 GB for 1M Humanoid steps); the data as a dataset:
    # dataset.record=true
    keep_replay: bool = False
    # the loop kind that drives the agent (rlbase/loops: off_policy, on_policy, offline, asynchronous); null: the
    # algorithm's own (its LOOP); another kind only where the algorithm's settings are that loop's (loops.kind_of)
    loop: Optional[str] = None
    eval: EvalConfig = field(default_factory=EvalConfig)
    algo: Any = MISSING
    env: EnvConfig = MISSING
    hardware: HardwareConfig = field(default_factory=HardwareConfig)
    logger: LoggerConfig = field(default_factory=LoggerConfig)
    dataset: DatasetConfig = field(default_factory=DatasetConfig)


_registered = False


def data_dir(name: Optional[str], dataset_id: Optional[str], path: Optional[str]) -> str:
    """``/<dataset>`` for a run trained on a dataset (its option name, Minari id or file stem), else ``""``."""
    if dataset_id:
        return "/" + str(dataset_id).replace("/", "_")
    if path:
        return "/" + (str(name) if name and name not in ("none", "minari") else os.path.splitext(os.path.basename(str(path)))[0])
    return ""


def variant(override_dirname: Optional[str], named: Optional[list] = None) -> str:
    """``/<swept settings>`` for a sweep job whose sweep varies settings other than algo, env, seed and dataset
    (``train.name_swept_settings`` sets ``exclude_keys`` so that only those are in ``override_dirname``), else
    ``""`` (also when nothing set ``exclude_keys``: then ``override_dirname`` is every override, not a variant).
    A name too long for a directory keeps its start and a digest of the rest."""
    if not override_dirname or not named:
        return ""
    name = str(override_dirname).replace("/", "_")
    if len(name) > 160:
        import hashlib

        name = f"{name[:150]}-{hashlib.sha1(name.encode()).hexdigest()[:8]}"
    return "/" + name


def register_launchers(store) -> None:
    """Point Hydra's ``hydra/launcher=submitit_local`` and ``submitit_slurm`` at ours (hydra_plugins/rlbase_submitit:
    Hydra instantiates launchers only from the hydra_plugins package)."""
    try:
        import hydra_plugins.hydra_submitit_launcher  # noqa: F401 - the plugin is optional
    except ImportError:
        return
    from hydra.core.plugins import Plugins

    Plugins.instance()  # Hydra's plugin scan runs each plugin's config module (once): it must not come after ours
    from hydra_plugins.hydra_submitit_launcher.config import LocalQueueConf, SlurmQueueConf

    store.store(group="hydra/launcher", name="submitit_local", provider="rlbase",
                node=LocalQueueConf(_target_="hydra_plugins.rlbase_submitit.LocalLauncher"))
    store.store(group="hydra/launcher", name="submitit_slurm", provider="rlbase",
                node=SlurmQueueConf(_target_="hydra_plugins.rlbase_submitit.SlurmLauncher"))


def register() -> None:
    global _registered
    if _registered:
        return
    cs = ConfigStore.instance()
    cs.store(name="run_schema", node=RunConfig)
    cs.store(group="schema", name="env", node=EnvConfig)
    cs.store(group="schema", name="hardware", node=HardwareConfig)
    cs.store(group="schema", name="logger", node=LoggerConfig)
    cs.store(group="schema", name="dataset", node=DatasetConfig)
    for name, module in algos.ALGOS.items():
        config = importlib.import_module(module).Config
        cs.store(group="schema/algo", name=name, node=config)
        if not (CONF / "algo" / f"{name}.yaml").is_file():  # the dataclass is the option: no file needed
            cs.store(group="algo", name=name, node=config)
    # submitit launchers that wait for every job even when one's process died (hydra_plugins/rlbase_submitit)
    register_launchers(cs)
    # ${pid:} in the default run directory: two runs started in the same second get different directories
    OmegaConf.register_new_resolver("pid", lambda: str(os.getpid()), replace=True)
    # ${data_dir:...} in run directories: an offline run's dataset is part of where it lives, so the same algo, env
    # and seed on two datasets never share a directory (in a sweep the second would be skipped as finished)
    OmegaConf.register_new_resolver("data_dir", data_dir, replace=True)
    # ${variant:...} in sweep job directories: jobs of `-m algo.lr=1e-3,1e-4 seed=0` get one directory each
    OmegaConf.register_new_resolver("variant", variant, replace=True)
    _registered = True


__all__ = ["HardwareConfig", "RunConfig", "register", "Optional"]
