"""Checks that types cannot express, run right after composition and before anything is built.

Each failure is a :class:`ConfigError` whose message is one line naming the setting and what is allowed.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import torch
from omegaconf import DictConfig

from rlbase import algos, data, envs
from rlbase.core import settings
from rlbase.core.logger import MODES, has_wandb_key

DATASET_CONF = Path(__file__).resolve().parents[1] / "conf" / "dataset"
TUNED_CONF = Path(__file__).resolve().parents[1] / "conf" / "tuned"


class ConfigError(ValueError):
    pass


# Algorithms whose act(deterministic=False) samples the learned policy (not exploration noise or epsilon-greedy):
# those whose module declares SAMPLES_POLICY = True.
SAMPLED_POLICIES = tuple(sorted(n for n in algos.ALGOS if getattr(algos.get(n), "SAMPLES_POLICY", False)))


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


def check_declared(node: DictConfig, schema: type, prefix: str) -> None:
    """Every value against what its field declares (``rlbase.core.settings``): one generic check for all schemas."""
    msg = settings.check(node, schema, prefix)
    _check(msg is None, msg or "")


def validate_algo(a: DictConfig, schema: type) -> None:
    """The declared ranges, then what no single field can say: relations between settings."""
    check_declared(a, schema, "algo.")
    if "batch_size" in a and "buffer_size" in a:
        _check(a.batch_size <= a.buffer_size,
               f"algo.batch_size={a.batch_size} is larger than algo.buffer_size={a.buffer_size}; allowed: batch_size <= buffer_size")
    module = algos.get(a.name)
    for problem in module.check_config(a) if hasattr(module, "check_config") else []:  # the algorithm's own relations
        _check(False, problem)


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
    if getattr(algos.get(a.name), "OFFLINE", False):  # offline configs have no starts
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
            if new == a[key]:  # already as low as one batch: nothing to scale
                continue
            notes.append(f"algo.{key}: the default {a[key]} is over {STARTS_SHARE:.0%} of total_steps={total}; "
                         f"using {new} (set algo.{key} to choose)")
            a[key] = new
    return notes


def fit_schedule(cfg: DictConfig, explicit: set[str]) -> list[str]:
    """One line when an ``eval_every`` a tuned file sets (PPO's MuJoCo files: 50k) leaves fewer than two
    evaluations in the budget (the run then evaluates at its end only, and its curve is one point); the schedule is
    kept as it is, so a run means the same with or without the line. Values set on the command line, and the env
    file's own schedule, say nothing. Offline runs count updates."""
    total = cfg.total_updates if getattr(algos.get(cfg.algo.name), "OFFLINE", False) else cfg.total_steps
    from_tuned_file = cfg.eval_every != cfg.env.eval_every  # the top-level default is ${env.eval_every}
    if {"eval_every", "env.eval_every"} & explicit or not from_tuned_file or cfg.eval_every * 2 <= total:
        return []
    return [f"eval_every={cfg.eval_every} (from the tuned file) leaves {total // cfg.eval_every} evaluation(s) "
            f"before the end of a {total}-step budget: the run evaluates at its end only; set eval_every for a curve "
            f"(e.g. eval_every={max(total // 10, 1)})"]


def validate_hardware(h: DictConfig) -> None:
    dev = str(h.device)
    _check(dev == "cpu" or dev.startswith("cuda"), f"hardware.device={dev} is not supported; allowed: cpu, cuda, cuda:<index>")
    if dev.startswith("cuda"):
        _check(torch.cuda.is_available(), f"hardware.device={dev} but no CUDA device is available; use hardware=cpu")


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
    try:
        module = algos.get(cfg.algo.name)
    except algos.UnknownAlgo as e:
        raise ConfigError(str(e)) from e
    from rlbase.conf.schema import EvalConfig, HardwareConfig, RunConfig
    from rlbase.core.logger import LoggerConfig

    validate_keys(cfg, RunConfig, "the run config", top=True)  # a `+key=...` nowhere in a schema is refused
    validate_keys(cfg.algo, module.Config, "algo")
    validate_keys(cfg.env, envs.EnvConfig, "env")
    validate_keys(cfg.hardware, HardwareConfig, "hardware")
    validate_keys(cfg.logger, LoggerConfig, "logger")
    validate_keys(cfg.dataset, data.DatasetConfig, "dataset")
    validate_keys(cfg.eval, EvalConfig, "eval")
    check_declared(cfg, RunConfig, "")
    validate_algo(cfg.algo, module.Config)
    for node, schema, prefix in ((cfg.env, envs.EnvConfig, "env."), (cfg.hardware, HardwareConfig, "hardware."),
                                 (cfg.logger, LoggerConfig, "logger."), (cfg.eval, EvalConfig, "eval.")):
        check_declared(node, schema, prefix)
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
    if not spec.discrete:
        import numpy as np

        bounds = np.concatenate([np.ravel(spec.action_low), np.ravel(spec.action_high)])
        _check(bool(np.all(np.isfinite(bounds))),
               f"env={cfg.env.name} ({spec.id}) has an action space without finite bounds (low {np.ravel(spec.action_low)}, "
               f"high {np.ravel(spec.action_high)}); algo={cfg.algo.name} scales and clips its actions to the bounds, so "
               "they must be finite: give the env a bounded Box (e.g. gymnasium.wrappers.ClipAction after a Box with "
               "finite low/high)")
    validate_dataset(cfg, module, spec)
    if module.LOOP not in ("off_policy", "on_policy"):
        _check(not cfg.env.normalize_obs, f"env.normalize_obs=true is not supported with algo={cfg.algo.name} yet; "
               "allowed with: dqn, ddpg, td3, sac, a2c, ppo")
    if module.LOOP != "on_policy":
        _check(not cfg.env.normalize_reward, f"env.normalize_reward=true scales rewards by the running std of the "
               f"return in on-policy rollouts; allowed with: a2c, ppo (not algo={cfg.algo.name})")
    _check(not cfg.eval.sample or cfg.algo.name in SAMPLED_POLICIES, f"eval.sample=true samples the policy's actions, "
           f"but algo={cfg.algo.name} has no stochastic policy to sample; allowed with: {', '.join(SAMPLED_POLICIES)}")
    if cfg.algo.get("return_norm", False):
        _check(module.LOOP == "on_policy", f"algo.return_norm=true is not supported with algo={cfg.algo.name} "
               "(its workers keep no shared return statistics); allowed with: a2c, ppo")
        _check(not cfg.env.normalize_reward, "algo.return_norm=true and env.normalize_reward=true are two ways to "
               "scale returns (the critic's targets; the rewards before the advantages); pick one")
    return spec


def validate_tuned(choices: dict, tuned_dir: Path = TUNED_CONF) -> None:
    """``tuned=<file>`` on the command line: Hydra's tuned group is optional, so a misspelt name would silently run
    without any tuned values, and another pair's file would quietly tune the wrong task. Refuse both; the pair's own
    file (the default choice, ``<algo>_<env>``) may be absent."""
    algo, env, tuned = choices.get("algo"), choices.get("env"), choices.get("tuned")
    pair = f"{algo}_{env}"
    if not tuned or tuned == pair:
        return
    own = sorted(p.stem for p in tuned_dir.glob(f"{pair}*.yaml") if p.stem == pair or p.stem.startswith(pair + "_"))
    allowed = f"allowed for algo={algo} env={env}: {', '.join(own) if own else 'none (no conf/tuned file names this pair)'}"
    _check((tuned_dir / f"{tuned}.yaml").is_file(), f"tuned={tuned}: there is no conf/tuned/{tuned}.yaml; {allowed}")
    _check(tuned in own, f"tuned={tuned} holds another pair's values than algo={algo} env={env}; {allowed}")
