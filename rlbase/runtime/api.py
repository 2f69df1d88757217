"""``rlbase.run``: one run from Python, made exactly as ``python train.py <overrides>`` makes it.

    import rlbase
    r = rlbase.run(["algo=td3", "env=hopper", "total_steps=20000"])
    r.final_return, r.best_return, r.run_dir, r.checkpoint

The same steps as the command line, in the same order: compose ``rlbase/conf`` with the overrides (Hydra's own
grammar), then :func:`rlbase.runtime.job.execute`, the function each command-line job calls: validate, fit the
random and learning starts to the budget, check and lock the run directory, record ``.hydra/config.yaml``,
``overrides.yaml``, ``hydra.yaml`` and ``train.log`` once the run is accepted, train (or resume the checkpoint
already in ``run_dir``), and return a :class:`Result`. It never exits the process: bad input raises
``ConfigError`` or ``BadInput``, other failures the exceptions in ``rlbase.runtime.job.KNOWN_FAILURES``.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Union

os.environ.setdefault("MUJOCO_GL", "egl")  # before anything can import mujoco

from omegaconf import DictConfig, OmegaConf, open_dict  # noqa: E402

from rlbase.core import checkpoint  # noqa: E402
from rlbase.core.logger import read_metrics  # noqa: E402
from rlbase.runtime import job  # noqa: E402
from rlbase.runtime.validate import ConfigError  # noqa: E402

log = logging.getLogger("train")
CONF = Path(__file__).resolve().parents[1] / "conf"


@dataclass
class Result:
    """What a run returns: its directory, evaluation returns and checkpoint."""

    run_dir: Path
    final_return: float  # the last evaluation's mean return
    best_return: float  # the best evaluation's mean return
    steps: int  # env steps (offline: gradient updates) at the end
    checkpoint: Path  # the final checkpoint (rlbase.load_policy reads it)
    config: DictConfig  # the config the run trained with (fitted starts included)


def compose(overrides: Sequence[str] = ()) -> tuple[DictConfig, DictConfig]:
    """The run config for ``overrides`` (Hydra's grammar) and Hydra's own config for it (run directory, choices);
    a composition error is one line (``ConfigError``)."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    from rlbase.conf.schema import register

    register()
    GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
            full = hydra_compose(config_name="config", overrides=list(overrides), return_hydra_config=True)
    except Exception as e:  # Hydra's and OmegaConf's composition errors
        parts = [str(e).splitlines()[0].rstrip(".")] if str(e) else [type(e).__name__]
        if e.__cause__ is not None and str(e.__cause__):
            parts.append(str(e.__cause__).splitlines()[0])
        raise ConfigError(": ".join(parts)) from None
    finally:
        GlobalHydra.instance().clear()
    hydra_cfg = full.hydra
    with open_dict(full):
        del full["hydra"]
    return full, hydra_cfg


def _default_dir(hydra_cfg: DictConfig) -> Path:
    return Path(OmegaConf.to_container(hydra_cfg.run, resolve=True)["dir"])


def run(overrides: Union[Sequence[str], None] = None, run_dir: Optional[Union[str, Path]] = None) -> Result:
    """Train one run in this process from command-line style ``overrides`` (``["algo=td3", "env=hopper"]``);
    ``run_dir`` defaults to the command line's ``runs/<algo>/<env>/seed<k>/<time>_<pid>``. A ``run_dir`` holding an
    unfinished run's checkpoint is resumed (with the settings it recorded: pass the same overrides)."""
    if isinstance(overrides, (str, bytes)):
        raise TypeError("overrides must be a list of key=value strings, e.g. ['algo=td3', 'env=hopper']")
    overrides = list(overrides or [])
    cfg, hydra_cfg = compose(overrides)
    if cfg.hardware.seeds_per_process > 1:
        raise ConfigError(f"hardware.seeds_per_process={cfg.hardware.seeds_per_process}: rlbase.run trains one seed; "
                          "rlbase.run_seeds trains several in one process and returns one Result per seed")
    run_dir = Path(run_dir) if run_dir is not None else _default_dir(hydra_cfg)
    with open_dict(hydra_cfg):
        hydra_cfg.runtime.output_dir = str(run_dir.absolute())
    job.execute(cfg, run_dir, overrides, hydra_cfg)
    return _result(run_dir, cfg)


def run_seeds(overrides: Union[Sequence[str], None] = None, seeds: int = 2,
              run_dir: Optional[Union[str, Path]] = None) -> list[Result]:
    """``seeds`` seeds of one configuration trained together in this process (``hardware.seeds_per_process``; DQN,
    DDPG, TD3, SAC): seeds seed, seed+1, ... each in the directory the command line gives it (the first one in
    ``run_dir`` when given, the others beside it as seed<k>). Returns one :class:`Result` per seed; a seed whose
    loss diverged raises ``NonFiniteError`` once the others have finished."""
    overrides = [o for o in (overrides or []) if not o.startswith("hardware.seeds_per_process=")]
    overrides.append(f"hardware.seeds_per_process={int(seeds)}")
    cfg, hydra_cfg = compose(overrides)
    if run_dir is not None:  # the others beside it, one directory per seed
        run_dir = Path(run_dir).absolute()
        with open_dict(hydra_cfg):
            hydra_cfg.run.dir = str(run_dir.parent / (run_dir.name + "_seed${seed}"))
        run_dir = run_dir.parent / f"{run_dir.name}_seed{cfg.seed}"
    else:
        run_dir = _default_dir(hydra_cfg).absolute()
    with open_dict(hydra_cfg):
        hydra_cfg.runtime.output_dir = str(run_dir)
        hydra_cfg.overrides.task = overrides
    job.execute_seeds(cfg, hydra_cfg, run_dir, multirun=False)
    members = OmegaConf.load(run_dir / ".hydra" / job.SEED_GROUP)
    return [_result(Path(m["run_dir"]), OmegaConf.load(Path(m["run_dir"]) / ".hydra" / "config.yaml")) for m in members]


def _result(run_dir: Path, cfg: DictConfig) -> Result:
    returns = [(int(r["step"]), float(r["eval/return_mean"])) for r in read_metrics(run_dir / "metrics.jsonl")
               if "eval/return_mean" in r]
    state_step = returns[-1][0] if returns else 0
    return Result(run_dir=run_dir, final_return=returns[-1][1] if returns else float("nan"),
                  best_return=max(r for _, r in returns) if returns else float("nan"), steps=state_step,
                  checkpoint=run_dir / checkpoint.NAME, config=cfg)
