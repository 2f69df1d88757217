"""Checks that types cannot express, run right after composition and before anything is built.

Each failure is a :class:`ConfigError` whose message is one line naming the setting and what is allowed.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import torch
from omegaconf import DictConfig

import algos
import data
import envs
from algos.common.logger import MODES, has_wandb_key

DATASET_CONF = Path(__file__).resolve().parents[2] / "conf" / "dataset"


class ConfigError(ValueError):
    pass


def _check(ok: bool, msg: str) -> None:
    if not ok:
        raise ConfigError(msg)


def validate_keys(node: DictConfig, schema: type, prefix: str, top: bool = False) -> None:
    """Keys added with ``+`` bypass Hydra's struct check; refuse any key the schema does not declare."""
    allowed = {f.name for f in dataclasses.fields(schema)}
    for key in node.keys():
        name = key if top else f"{prefix}.{key}"
        _check(key in allowed, f"{name} is not a setting of {prefix} "
               f"({schema.__name__}); allowed: {', '.join(sorted(allowed))}")


def validate_run(cfg: DictConfig) -> None:
    for key in ("total_steps", "total_updates", "eval_every", "eval_episodes", "checkpoint_every", "log_every"):
        v = cfg[key]
        _check(v > 0, f"{key}={v} must be a positive integer")
    _check(cfg.seed >= 0, f"seed={cfg.seed} must be >= 0")


def validate_algo(a: DictConfig) -> None:
    for key, v in a.items():
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            continue
        name = f"algo.{key}"
        if key == "gamma":
            _check(0.0 <= v <= 1.0, f"{name}={v} is out of range; allowed: 0 <= gamma <= 1")
        elif key == "tau":
            _check(0.0 < v <= 1.0, f"{name}={v} is out of range; allowed: 0 < tau <= 1")
        elif key == "lr" or key.endswith("_lr"):
            _check(v > 0, f"{name}={v} must be > 0")
        elif key in ("batch_size", "buffer_size", "gradient_steps", "train_every", "n_steps", "policy_freq", "num_envs",
                     "n_epochs", "n_minibatches"):
            _check(v > 0, f"{name}={v} must be a positive integer")
        elif key.endswith(("_steps", "_every", "_size", "_freq")):
            _check(v >= 0, f"{name}={v} must be >= 0")
    if "batch_size" in a and "buffer_size" in a:
        _check(a.batch_size <= a.buffer_size,
               f"algo.batch_size={a.batch_size} is larger than algo.buffer_size={a.buffer_size}; allowed: batch_size <= buffer_size")
    if "clip_range" in a:
        _check(a.clip_range > 0, f"algo.clip_range={a.clip_range} must be > 0")
    if a.name == "a3c":
        _check(a.num_envs == 1, f"algo.num_envs={a.num_envs}: each A3C worker steps one env; allowed: algo.num_envs=1 "
               "(set the number of workers with hardware.workers)")
    if "learning_starts" in a:
        _check(a.learning_starts >= 1, f"algo.learning_starts={a.learning_starts} must be >= 1")


STARTS = ("random_steps", "learning_starts")
STARTS_SHARE = 0.1  # defaults above this share of total_steps are scaled down to it


def fit_starts(cfg: DictConfig, explicit: set[str]) -> list[str]:
    """Random and learning starts that fit the budget.

    The algorithms' defaults follow the 1M-step protocol (TD3/DDPG 25k, SAC 10k). A default that exceeds
    ``STARTS_SHARE`` of ``total_steps`` is scaled down to that share (at least one batch), and each change is
    returned as one line to print; values set on the command line (``explicit``, as ``algo.<key>``) are kept, but one that is not below ``total_steps`` -- a run that would never update or
    only act at random -- is refused. Offline and on-policy configs have no starts and are left alone.
    """
    a, total, notes = cfg.algo, cfg.total_steps, []
    if getattr(algos.get(a.name), "OFFLINE", False):  # CQL and offline SAC inherit SAC's fields; unused offline
        return notes
    for key in STARTS:
        if key not in a:
            continue
        if f"algo.{key}" in explicit:
            _check(a[key] < total, f"algo.{key}={a[key]} is not below total_steps={total}: the run would "
                   f"{'never update' if key == 'learning_starts' else 'act at random throughout'}; "
                   f"allowed: algo.{key} < total_steps")
        elif a[key] > STARTS_SHARE * total:
            new = max(int(STARTS_SHARE * total), min(a.get("batch_size", 1), a[key]), 1)
            notes.append(f"algo.{key}: the default {a[key]} is over {STARTS_SHARE:.0%} of total_steps={total}; "
                         f"using {new} (set algo.{key} to choose)")
            a[key] = new
    return notes


def validate_hardware(h: DictConfig) -> None:
    dev = str(h.device)
    _check(dev == "cpu" or dev.startswith("cuda"), f"hardware.device={dev} is not supported; allowed: cpu, cuda, cuda:<index>")
    if dev.startswith("cuda"):
        _check(torch.cuda.is_available(), f"hardware.device={dev} but no CUDA device is available; use hardware=cpu")
    _check(h.threads >= 0, f"hardware.threads={h.threads} must be >= 0 (0: auto)")
    _check(h.vector in ("sync", "async"), f"hardware.vector={h.vector} is not supported; allowed: sync, async")
    _check(h.workers >= 0, f"hardware.workers={h.workers} must be >= 0 (0: one per CPU core)")


def validate_logger(lg: DictConfig) -> None:
    _check(lg.backend in ("wandb", "none"), f"logger.backend={lg.backend} is not supported; allowed: wandb, none")
    _check(lg.mode in MODES, f"logger.mode={lg.mode} is not supported; allowed: {', '.join(MODES)}")
    if lg.backend == "wandb" and lg.mode == "online":
        _check(has_wandb_key(), "logger.mode=online needs a W&B API key (set WANDB_API_KEY or run `wandb login`); "
               "allowed without one: logger.mode=offline (sync later with `wandb sync`) or logger=none")


def validate_dataset(cfg: DictConfig, module, spec: envs.EnvSpec) -> None:
    d = cfg.dataset
    offline = getattr(module, "OFFLINE", False)
    if d.record:
        _check(module.LOOP == "off_policy", f"dataset.record=true records the replay buffer of off-policy runs; "
               f"allowed with: dqn, ddpg, td3, sac (not algo={cfg.algo.name})")
        _check(cfg.algo.buffer_size >= cfg.total_steps, f"dataset.record=true needs algo.buffer_size "
               f"({cfg.algo.buffer_size}) >= total_steps ({cfg.total_steps}) so no transition is overwritten")
        if d.id is not None:  # also written as a Minari dataset: refuse a taken id now, not after the run
            _check(d.id not in data.local_minari_ids(), f"dataset.id={d.id}: a Minari dataset of that id already "
                   f"exists in {data.minari_root()}; pick another id (or delete it: `minari delete {d.id}`)")
        return
    if offline:
        named = sorted(p.stem for p in DATASET_CONF.glob("*.yaml") if p.stem not in ("none", "minari"))
        if d.name == "minari":
            _check(d.id is not None, f"dataset=minari needs dataset.id=<id> (local datasets: "
                   f"{', '.join(data.local_minari_ids()) or 'none'}; fetch one with `minari download <id>`)")
        _check(d.path is not None or d.id is not None, f"algo={cfg.algo.name} learns from a fixed dataset; set "
               f"dataset=<name> (allowed: {', '.join(named)}), dataset.path=<file>.npz or dataset=minari "
               "dataset.id=<Minari id>")
        _check(d.path is None or d.id is None, f"dataset.path={d.path} and dataset.id={d.id} name two datasets; "
               "set one of them")
    if d.path is not None or d.id is not None:
        _check(offline, f"dataset={d.name or d.path or d.id} is training data for offline algorithms; algo={cfg.algo.name} "
               "learns online (to record an online run use dataset.record=true)")
        try:
            if d.id is not None:
                data.check_minari(data.open_minari(d.id), d.id, spec)
            else:
                data.read(d.path, spec)
        except data.DatasetError as e:
            raise ConfigError(str(e)) from e


def validate(cfg: DictConfig) -> envs.EnvSpec:
    """Validate the composed config; returns the env's spec (the env is built once and closed)."""
    validate_run(cfg)
    try:
        module = algos.get(cfg.algo.name)
    except algos.UnknownAlgo as e:
        raise ConfigError(str(e)) from e
    from algos.common.logger import LoggerConfig
    from conf.schema import EvalConfig, HardwareConfig, RunConfig

    validate_keys(cfg, RunConfig, "the run config", top=True)  # a `+key=...` nowhere in a schema is refused
    validate_keys(cfg.algo, module.Config, "algo")
    validate_keys(cfg.env, envs.EnvConfig, "env")
    validate_keys(cfg.hardware, HardwareConfig, "hardware")
    validate_keys(cfg.logger, LoggerConfig, "logger")
    validate_keys(cfg.dataset, data.DatasetConfig, "dataset")
    validate_keys(cfg.eval, EvalConfig, "eval")
    validate_algo(cfg.algo)
    validate_hardware(cfg.hardware)
    validate_logger(cfg.logger)
    try:
        spec = envs.probe(cfg.env)
    except envs.EnvError as e:
        raise ConfigError(str(e)) from e
    allowed = module.ACTION_SPACES
    _check(spec.kind in allowed,
           f"algo={cfg.algo.name} needs {' or '.join(allowed)} actions, but env={cfg.env.name} ({spec.id}) has "
           f"{spec.kind} actions; pick an env with {' or '.join(allowed)} actions")
    validate_dataset(cfg, module, spec)
    if module.LOOP not in ("off_policy", "on_policy"):
        _check(not cfg.env.normalize_obs, f"env.normalize_obs=true is not supported with algo={cfg.algo.name} yet; "
               "allowed with: dqn, ddpg, td3, sac, a2c, ppo")
    if module.LOOP != "on_policy":
        _check(not cfg.env.normalize_reward, f"env.normalize_reward=true scales rewards by the running std of the "
               f"return in on-policy rollouts; allowed with: a2c, ppo (not algo={cfg.algo.name})")
    return spec
