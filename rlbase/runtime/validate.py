"""Checks that types cannot express, run right after composition and before anything is built.

Each failure is a :class:`ConfigError` whose message is one line naming the setting and what is allowed.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import torch
from omegaconf import DictConfig, ListConfig

from rlbase import algos, data, envs, loops
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
    for key in hidden_keys(a):  # no declared range can say "each entry" (the schema makes them integers)
        _check(all(h >= 1 for h in a[key]), f"algo.{key}=[{','.join(map(str, a[key]))}]: every hidden size must be a positive "
               "integer; allowed: a list of them, e.g. [256,256] ([] for no hidden layer)")
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
        _check(loops.kind_of(module, cfg) == "off_policy", f"dataset.record=true records the replay buffer of off-policy runs; "
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
        try:  # read in full (Minari's as ours): a non-finite value is refused now, not at the loss; held for the run
            data.load(d, spec, keep=True)
        except data.DatasetError as e:
            raise ConfigError(str(e)) from e


# ---- will the networks fit in memory?

def hidden_keys(a: DictConfig) -> list[str]:
    """The algorithm's hidden-size settings: its keys ending in ``hidden`` whose value is a list."""
    return [str(key) for key in a.keys() if str(key).endswith("hidden") and isinstance(a[key], (list, tuple, ListConfig))]


def _mlp_params(in_dim: int, hidden, out_dim: int) -> int:
    dims = [in_dim, *[int(h) for h in hidden], out_dim]
    return sum(a * b + b for a, b in zip(dims[:-1], dims[1:]))


def network_sizes(a: DictConfig, module, spec: envs.EnvSpec) -> list[tuple[str, int, int]]:
    """The networks ``algo`` builds from its hidden-size settings, as (setting, parameters trained by an optimizer,
    parameters of target copies), from the config and the env's sizes alone (nothing is built). Every MLP is counted
    with the observation and action sizes at its input and the widest output any of them has: rough at the edges,
    exact in the hidden-by-hidden matrices that make a network large."""
    in_dim = spec.obs_dim + spec.action_dim
    out_dim = max(spec.n_actions, 2 * spec.action_dim, 1)

    def p(key: str) -> int:
        return _mlp_params(in_dim, a[key], out_dim)

    kind = module.__name__.rsplit(".", 1)[-1]
    if kind == "dqn":
        return [("hidden", p("hidden"), p("hidden"))]
    if kind in ("td3", "ddpg", "td3_bc"):
        k = 2 if a.get("twin", True) else 1
        return [("actor_hidden", p("actor_hidden"), p("actor_hidden")),
                ("critic_hidden", k * p("critic_hidden"), k * p("critic_hidden"))]
    if kind in ("sac", "cql", "sac_offline"):
        return [("actor_hidden", p("actor_hidden"), 0), ("critic_hidden", 2 * p("critic_hidden"), 2 * p("critic_hidden"))]
    if kind in ("a2c", "a3c", "ppo"):
        return [("hidden", (1 if a.get("shared_trunk", False) else 2) * p("hidden"), 0)]
    if kind == "bcq":
        if spec.discrete:
            return [("hidden", 2 * p("hidden"), 2 * p("hidden"))]
        return [("vae_hidden", 2 * p("vae_hidden"), 0), ("actor_hidden", p("actor_hidden"), p("actor_hidden")),
                ("critic_hidden", 2 * p("critic_hidden"), 2 * p("critic_hidden"))]
    if kind == "iql":  # policy and V trained alone, twin critics with their target
        return [("hidden", 4 * p("hidden"), 2 * p("hidden"))]
    # an algorithm this table does not know: each hidden-size list one trained network
    return [(key, p(key), 0) for key in hidden_keys(a)]


def estimate_bytes(a: DictConfig, module, spec: envs.EnvSpec) -> tuple[int, int]:
    """(parameters, bytes) of the agent's networks: float32 parameters, their gradients and the optimizer's state
    (Adam's two moments, a third with amsgrad) for trained networks, one more copy for each target network.
    Activations, the replay buffer and the rollouts come on top."""
    moments = 3 if a.get("amsgrad", False) else 2
    sizes = network_sizes(a, module, spec)
    trained, targets = sum(t for _, t, _ in sizes), sum(t for _, _, t in sizes)
    return trained + targets, 4 * (trained * (2 + moments) + targets)


def available_memory(device: str = "cpu") -> tuple[int, str] | None:
    """Bytes free for the networks, and a phrase saying where (``{}``: the amount): for a CUDA device its total memory (its free memory
    would need a CUDA context, which a sweep's launching process must not hold for the whole sweep); otherwise
    psutil's (if installed) or /proc/meminfo's MemAvailable, capped by a cgroup (v2) memory limit when one is set.
    None when none of them can be read (the check is then skipped)."""
    if device.startswith("cuda"):
        try:
            return int(torch.cuda.get_device_properties(torch.device(device)).total_memory), f"{device} has {{}} in all"
        except Exception:  # noqa: BLE001 - no driver, a device that cannot be queried: no check
            return None
    found: tuple[int, str] | None = None
    try:
        import psutil  # noqa: PLC0415 - optional

        found = int(psutil.virtual_memory().available), "this machine has {} available"
    except Exception:  # noqa: BLE001 - not installed, or cannot read
        try:
            with open("/proc/meminfo") as f:
                for line in f:
                    if line.startswith("MemAvailable:"):
                        found = int(line.split()[1]) * 1024, "this machine has {} available (MemAvailable)"
                        break
        except (OSError, ValueError, IndexError):
            pass
    try:  # a container's own limit, below what the machine has free
        limit = Path("/sys/fs/cgroup/memory.max").read_text().strip()
        if limit != "max":
            left = int(limit) - int(Path("/sys/fs/cgroup/memory.current").read_text().strip())
            if found is None or left < found[0]:
                found = max(left, 0), "this container has {} left under its memory limit (cgroup memory.max)"
    except (OSError, ValueError):
        pass
    return found


def _gib(n: float) -> str:
    return f"{n / 2**30:,.1f} GiB" if n >= 2**30 else f"{n / 2**20:,.0f} MiB"


def _count(n: int) -> str:
    return f"{n / 1e9:,.1f} billion" if n >= 1e9 else f"{n / 1e6:,.1f} million" if n >= 1e6 else f"{n:,}"


def check_memory(cfg: DictConfig, module, spec: envs.EnvSpec) -> None:
    """Refuse, before anything is built, networks whose parameters (with gradients, optimizer state and target
    copies) would not fit in the memory available, instead of an allocation error's traceback."""
    sizes = network_sizes(cfg.algo, module, spec)
    if not sizes:
        return
    params, need = estimate_bytes(cfg.algo, module, spec)
    free = available_memory(str(cfg.hardware.device))
    if free is None or need <= free[0]:
        return
    settings_ = ", ".join(f"algo.{key}={list(cfg.algo[key])}" for key in dict.fromkeys(k for k, _, _ in sizes))
    raise ConfigError(f"{settings_}: the networks of algo={cfg.algo.name} on {spec.id} would have about "
                      f"{_count(params)} parameters, about {_gib(need)} with their gradients, optimizer state and "
                      f"target copies, but {free[1].format(_gib(free[0]))}; allowed: smaller hidden sizes whose "
                      "networks fit")


# ---- resume=


def resume_algo_change(run_dir: str | Path, args: list[str]) -> str | None:
    """``resume=<run dir>`` with another ``algo=`` than the run was trained with: one line saying so (for
    ``cli.expand_resume`` to refuse with), or None when the algorithm is the same, not given, or unknown. Without
    this the run's recorded overrides (``algo.random_steps=...``) meet the other algorithm's schema and the user
    reads about a key they never typed."""
    from omegaconf import OmegaConf

    new = None
    for arg in args:
        key, sep, value = arg.partition("=")
        if sep and key.lstrip("+") in ("algo", "algo.name"):
            new = value.strip("'\"")
    if new is None:
        return None
    run_dir = Path(run_dir)
    old = None
    try:
        old = OmegaConf.load(run_dir / ".hydra" / "config.yaml").algo.name
    except Exception:  # noqa: BLE001 - no or a damaged recorded config: the recorded overrides, else the default
        try:
            recorded = OmegaConf.to_container(OmegaConf.load(run_dir / ".hydra" / "overrides.yaml"))
            old = next((a.partition("=")[2] for a in recorded if a.partition("=")[0].lstrip("+") == "algo"), None)
        except Exception:  # noqa: BLE001
            return None
    if old is None or str(old) == new:
        return None
    return (f"resume={run_dir}: a resume cannot change the algorithm (the run was trained with algo={old}, not "
            f"algo={new}); resume it without algo=, or start a new run with algo={new} (without resume=)")


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
    try:
        loop_kind = loops.kind_of(module, cfg)  # the algorithm's LOOP, or the run's `loop=` override
    except ValueError as e:
        raise ConfigError(str(e)) from e
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
    if cfg.eval.video:  # the env exists (probed above): refuse videos it cannot draw now, not after the first evaluation
        missing = envs.render_missing(cfg.env.id)
        _check(missing is None, f"eval.video=true: rendering {cfg.env.id} needs {missing}, which is not installed; "
               "allowed: install it (pip install -r requirements.txt: pygame-ce) or eval.video=false")
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
    check_memory(cfg, module, spec)  # before the dataset is read (a checksum over all of it)
    validate_dataset(cfg, module, spec)
    if loop_kind not in ("off_policy", "on_policy"):
        _check(not cfg.env.normalize_obs, f"env.normalize_obs=true is not supported with algo={cfg.algo.name} yet; "
               "allowed with: dqn, ddpg, td3, sac, a2c, ppo")
    if loop_kind != "on_policy":
        _check(not cfg.env.normalize_reward, f"env.normalize_reward=true scales rewards by the running std of the "
               f"return in on-policy rollouts; allowed with: a2c, ppo (not algo={cfg.algo.name})")
    _check(not cfg.eval.sample or cfg.algo.name in SAMPLED_POLICIES, f"eval.sample=true samples the policy's actions, "
           f"but algo={cfg.algo.name} has no stochastic policy to sample; allowed with: {', '.join(SAMPLED_POLICIES)}")
    if cfg.algo.get("return_norm", False):
        _check(loop_kind == "on_policy", f"algo.return_norm=true is not supported with algo={cfg.algo.name} "
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
    if "/" in tuned or tuned.endswith((".yaml", ".yml")):  # a path, e.g. the tuned file a study wrote
        stem = Path(tuned).stem
        name = stem[len("tuned_"):] if stem.startswith("tuned_") else stem
        _check("/" in tuned or name not in own, f"tuned={tuned}: pass the name without .yaml: tuned={name}")
        _check(name == pair or name.startswith(pair + "_"), f"tuned={tuned}: its name says {name}, not this run's "
               f"pair algo={algo} env={env} (a study writes tuned_<algo>_<env>.yaml for the pair it tuned); {allowed}")
        name = pair + "_mine" if name == pair else name  # never in place of the pair's own file
        _check(False, f"tuned={tuned}: tuned= takes a name in rlbase/conf/tuned/, not a path; copy the file there "
               f"as rlbase/conf/tuned/{name}.yaml and pass tuned={name}; {allowed}")
    _check((tuned_dir / f"{tuned}.yaml").is_file(), f"tuned={tuned}: there is no conf/tuned/{tuned}.yaml; {allowed}")
    _check(tuned in own, f"tuned={tuned} holds another pair's values than algo={algo} env={env}; {allowed}")
