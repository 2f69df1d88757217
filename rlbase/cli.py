"""The one entrypoint: compose -> validate -> seed -> build -> dispatch -> finish.

    python train.py                                  # DQN on CartPole-v1
    python train.py algo=ddpg env=walker2d
    python train.py -m algo=td3,sac env=hopper,walker2d seed=0,1,2
"""

from __future__ import annotations

import errno
import logging
import os
import re
import shutil
import signal
import sys
import time
from collections.abc import Generator
from pathlib import Path
from typing import Optional

os.environ.setdefault("MUJOCO_GL", "egl")  # before anything can import mujoco

import hydra  # noqa: E402
import torch  # noqa: E402
from hydra.core.hydra_config import HydraConfig  # noqa: E402
from hydra.types import RunMode  # noqa: E402
from omegaconf import DictConfig, OmegaConf  # noqa: E402

from rlbase import (
    algos,  # noqa: E402
    data,  # noqa: E402
    envs,  # noqa: E402
    loops,  # noqa: E402
)
from rlbase.conf.schema import register  # noqa: E402
from rlbase.core import (
    checkpoint,  # noqa: E402
    seeding,  # noqa: E402
)
from rlbase.core.logger import Logger, read_metrics  # noqa: E402
from rlbase.report import sweep  # noqa: E402
from rlbase.runs.validate import ConfigError, fit_starts, validate, validate_tuned  # noqa: E402

log = logging.getLogger("train")
# A log line that cannot be written (train.log on a full disk) is dropped, not printed as a "--- Logging error ---"
# block with its traceback for every later line: the failure itself is reported once, in one line.
logging.raiseExceptions = False
CONF = Path(__file__).resolve().parent / "conf"  # rlbase/conf
GROUPS = ("algo", "env", "hardware", "logger", "dataset")
_SCI_INT = re.compile(r"^[+-]?\d+(\.\d*)?[eE]\+?\d+$")


def fail(msg: str, code: int = 2) -> None:
    """The command-line layer's refusal (before Hydra starts, or at a job's top level): one line, then exit."""
    print(f"error: {msg}", file=sys.stderr)
    sys.exit(code)


class BadInput(ValueError):
    """Input a run cannot start with (exit code 2), found once the run's config is composed."""


def exit_code(e: BaseException) -> int:
    if isinstance(e, (BadInput, ConfigError)):
        return 2
    if isinstance(e, loops.NonFiniteError):
        return 3
    if isinstance(e, loops.Interrupted):
        return 128 + e.signum
    return 1


_LOCKS: dict[str, object] = {}


class RunDirBusy(RuntimeError):
    pass


class DiskError(RuntimeError):
    """The run's files cannot be written (disk full, quota, read-only file system): one line, exit 1."""


DISK_ERRNOS = (errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES)


def disk_error(e: OSError, what: str) -> DiskError:
    where = e.filename or what
    return DiskError(f"cannot write {where}: {e.strerror or e}; free space or fix the permissions there, "
                     "or pick another directory (hydra.run.dir=...)")


# Failures a run reports in one line (no traceback), and the process's exit code for each: the one place they map.
KNOWN_FAILURES = (BadInput, ConfigError, loops.NonFiniteError, loops.Interrupted, checkpoint.CheckpointError,
                  data.DatasetError, envs.EnvFailed, DiskError)


def own(run_dir: Path) -> None:
    """Make this process the one writer of ``run_dir``: an exclusive lock on ``run_dir/.lock``, held until the
    process exits (the OS drops it on any exit, SIGKILL included, so a crashed run leaves nothing stuck). A
    second live run aimed at the same directory is refused before it writes anything there."""
    import fcntl

    key = str(run_dir.resolve())
    if key in _LOCKS:
        return
    existed = run_dir.exists()
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        f = open(run_dir / ".lock", "a+")
    except OSError as e:
        raise disk_error(e, str(run_dir)) from None
    try:
        fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as e:
        if not isinstance(e, BlockingIOError):  # a file system without flock (some cluster mounts): go on unlocked
            log.warning("cannot lock %s (%s); a second run in this directory would not be refused", run_dir, e)
            f.close()
            _LOCKS[key] = None
            return
        f.seek(0)
        pid = f.read().strip() or "?"
        f.close()
        raise RunDirBusy(f"{run_dir} is in use by another live run (pid {pid}); wait for it to end, "
                         "or pick another directory") from None
    try:
        f.truncate(0)
        f.write(f"{os.getpid()}\n")
        f.flush()
    except OSError as e:
        try:
            f.close()  # flushes again: may fail the same way
        except OSError:
            pass
        if not existed:
            shutil.rmtree(run_dir, ignore_errors=True)
        raise disk_error(e, str(run_dir / ".lock")) from None
    _LOCKS[key] = f


def release(run_dir: Path) -> None:
    f = _LOCKS.pop(str(run_dir.resolve()), None)
    if f is not None:
        f.close()


def precheck(argv: list[str]) -> list[str]:
    """Checks on the raw command line, before Hydra creates a run directory.

    Unknown group options get one line listing the allowed ones; integral step counts written as
    ``1e6`` become ``1000000``; a finished run's directory is refused.
    """
    argv = expand_resume(argv)
    out = []
    for arg in argv:
        key, sep, value = arg.partition("=")
        if arg.startswith("-") or not sep or "(" in value:
            out.append(arg)
            continue
        bare = key.lstrip("+~")
        items = value.split(",")
        if bare in GROUPS:
            allowed = sorted(p.stem for p in (CONF / bare).glob("*.yaml"))
            for choice in items:
                if choice not in allowed:
                    fail(f"unknown {bare} option {choice!r}; allowed: {', '.join(allowed)}")
        items = [str(int(float(v))) if _SCI_INT.match(v) and float(v).is_integer() else v for v in items]
        value = ",".join(items)
        if bare == "hydra.run.dir" and checkpoint.is_done(unquote(value)):
            value = unquote(value)
            fail(f"{value} holds a finished run (results in {value}/metrics.jsonl); "
                 "start a new run without hydra.run.dir or pick another directory")
        out.append(f"{key}={value}")
    compose_check(out)
    out = name_swept_settings(out)
    check_writable(out)
    run_dir = next((unquote(a.partition("=")[2]) for a in out if a.startswith("hydra.run.dir=")), None)
    if run_dir and "${" not in run_dir and not any(a in ("-m", "--multirun", "--cfg", "-c") for a in out):
        try:
            own(Path(run_dir))  # before Hydra writes the run's .hydra/ files there
        except (RunDirBusy, DiskError) as e:
            fail(str(e), 2 if isinstance(e, RunDirBusy) else 1)
        if (Path(run_dir) / ".hydra").is_dir():
            _REUSED.add(str(Path(run_dir).resolve()))
        keep_recorded_config(Path(run_dir))
    return out


def check_writable(argv: list[str]) -> None:
    """Where the run (or sweep) will write must be writable: a read-only file system or a directory without
    permission is one line before Hydra tries to create anything there."""
    if any(a in ("--cfg", "-c", "--help", "-h", "--info") for a in argv):
        return
    multirun = is_multirun(argv)
    key = "hydra.sweep.dir=" if multirun else "hydra.run.dir="
    given = next((unquote(a.partition("=")[2]) for a in argv if a.startswith(key)), None)
    if multirun and given is None and any(a.lstrip("+").startswith("sweep=") for a in argv):
        return  # a preset names its own sweep directory (under multirun/, checked when Hydra makes it)
    target = Path(given if given and "${" not in given else ("multirun" if multirun else "runs"))
    existing = target.absolute()
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if existing.exists() and not os.access(existing, os.W_OK):
        fail(f"cannot write {target}: {existing} is read-only or not writable by this user; pick another directory "
             f"({key}...)", 1)
    probe = existing / f".rlbase-space-check-{os.getpid()}"  # room for the run's config, logs and first rows?
    try:
        with open(probe, "wb") as f:
            f.write(bytes(SPACE_NEEDED))
    except OSError as e:
        fail(f"cannot write {target}: {e.strerror or e} in {existing} (a run needs at least "
             f"{SPACE_NEEDED // 1024} KiB to start); free space or pick another directory ({key}...)", 1)
    finally:
        probe.unlink(missing_ok=True)


SPACE_NEEDED = 1 << 20  # bytes a run must be able to write before it starts (config, train.log, metrics, W&B files)


# Settings that name a sweep job's directory already (its algo/env/seed/dataset part; a preset names its sweep dir).
IDENTITY_KEYS = ("algo", "env", "seed", "dataset", "dataset.name", "dataset.id", "dataset.path", "sweep")


def is_multirun(argv: list[str]) -> bool:
    """``-m``, or a sweep preset (``+sweep=<name>`` sets hydra.mode=MULTIRUN), or that mode given directly."""
    return any(a in ("-m", "--multirun") or a.lstrip("+").startswith("sweep=") or a == "hydra.mode=MULTIRUN"
               for a in argv)
_EXCLUDE = "hydra.job.config.override_dirname.exclude_keys"


def name_swept_settings(argv: list[str]) -> list[str]:
    """In a sweep, every setting swept besides algo, env, seed and dataset becomes part of each job's directory
    (``hydra.job.override_dirname``, read by ``${variant:}`` in the sweep subdir), so ``-m algo.lr=1e-3,1e-4`` runs
    two jobs in two directories instead of the second finding the first's and being skipped as finished. Settings
    given one value are left out: the directories of ordinary sweeps stay ``<algo>/<env>/seed<k>``."""
    if not any(a in ("-m", "--multirun") for a in argv) or any(a.lstrip("+~").startswith(_EXCLUDE) for a in argv):
        return argv
    identity = (*IDENTITY_KEYS, "env.id") if "env=gym" in argv else IDENTITY_KEYS  # env=gym's directory is its id
    keep, drop = set(), set(identity)
    for a in argv:
        key, sep, value = a.partition("=")
        key = key.lstrip("+~")
        if a.startswith("~") and not sep:  # a deletion names no directory
            drop.add(key)
            continue
        if a.startswith("-") or not sep or key.startswith(("hydra.", "hydra/")):
            continue
        swept = "(" in value or len(_split_sweep(value)) > 1
        (keep if swept and key not in identity else drop).add(key)
    drop -= keep
    return [*argv, f"{_EXCLUDE}=[{','.join(sorted(drop))}]"]


# A resumed run's recorded config, read before Hydra rewrites .hydra/: the settings the checkpoint was trained with,
# and what to put back if this resume is refused (so the next plain resume still works).
_RECORDED: dict[str, dict[str, str]] = {}
_REUSED: set[str] = set()  # run directories given on the command line that already held a run
# What a resume may change: the budget, the schedule of logs and checkpoints, logging, hardware and video.
RESUME_SAFE = ("total_steps", "total_updates", "log_every", "checkpoint_every", "eval_every", "progress", "logger", "hardware",
               "eval", "stop_return")
RESUME_FIXED = ("eval.sample",)  # in a safe group, but a run's evaluations must all be of one kind (its curve, best, stop)


def keep_recorded_config(run_dir: Path) -> None:
    hydra_dir = run_dir / ".hydra"
    if checkpoint.exists(run_dir) and (hydra_dir / "config.yaml").exists():
        _RECORDED[str(run_dir.resolve())] = {p.name: p.read_text() for p in hydra_dir.glob("*.yaml")}


def restore_recorded_config(run_dir: Path) -> None:
    for name, text in _RECORDED.get(str(run_dir.resolve()), {}).items():
        (run_dir / ".hydra" / name).write_text(text)


def _flat(node, prefix: str = "") -> dict[str, object]:
    if isinstance(node, dict):
        out: dict[str, object] = {}
        for k, v in node.items():
            out.update(_flat(v, f"{prefix}{k}."))
        return out
    return {prefix[:-1]: node}


def resume_changes(cfg: DictConfig, run_dir: Path, saved: Optional[dict] = None) -> list[str]:
    """Settings of this resume that differ from those the run's checkpoint was trained with (``saved``: the config
    stored in the checkpoint; older checkpoints: the run's recorded .hydra/config.yaml), safe ones aside. A key only
    one side has (a setting added or removed since the run started) is not a change."""
    if saved is None:
        recorded = _RECORDED.get(str(run_dir.resolve()))
        if recorded is None:
            return []
        saved = OmegaConf.to_container(OmegaConf.create(recorded["config.yaml"]), resolve=True)
    old, new = _flat(saved), _flat(OmegaConf.to_container(cfg, resolve=True))
    changed = []
    first = ("algo.name", "env.name", "env.id", "seed")  # another algorithm or task is named before its settings
    for key in sorted(set(old) & set(new), key=lambda k: (k not in first, first.index(k) if k in first else 0, k)):
        if (key.split(".")[0] in RESUME_SAFE and key not in RESUME_FIXED) or old[key] == new[key]:
            continue
        if key == "dataset.path":
            continue  # a moved dataset is fine; its checksum against the checkpoint's decides (loops.offline)
        if key.startswith("algo.") and key[5:] in ("random_steps", "learning_starts"):
            continue  # fitted to the first budget and restored from the checkpoint (train.run), whatever is given now
        changed.append(f"{key}={new[key]} (the run has {old[key]})")
    return changed


def _first_choice(value: str) -> str:
    """The first item of a sweep ``a,b,c`` (commas inside brackets or quotes belong to the item)."""
    depth, quote = 0, None
    for i, ch in enumerate(value):
        if quote:
            quote = None if ch == quote else quote
        elif ch in "'\"":
            quote = ch
        elif ch in "[{(":
            depth += 1
        elif ch in "]})":
            depth -= 1
        elif ch == "," and depth == 0:
            return value[:i]
    return value


def compose_check(argv: list[str]) -> None:
    """Compose the config as Hydra will (the first value of each sweep), so a wrong type or an unknown key fails
    in one line before Hydra starts, instead of Hydra's multi-line report."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    overrides = [a for a in argv if not a.startswith("-") and "=" in a
                 and not a.lstrip("+~").startswith(("hydra.", "hydra/"))]
    multirun = any(a in ("-m", "--multirun") for a in argv)
    if multirun:
        overrides = [f"{a.partition('=')[0]}={_first_choice(a.partition('=')[2])}" for a in overrides]
    register()
    GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
            if multirun:
                check_sweep(compose, [a for a in argv if not a.startswith("-") and "=" in a
                                      and not a.lstrip("+~").startswith(("hydra.", "hydra/"))])
            try:
                cfg = compose(config_name="config", overrides=overrides)
            except Exception as e:  # Hydra's and OmegaConf's composition errors
                parts = [str(e).splitlines()[0].rstrip(".")] if str(e) else []
                if e.__cause__ is not None and str(e.__cause__):
                    parts.append(str(e.__cause__).splitlines()[0])
                if parts and parts[0].startswith("Ambiguous value for argument"):
                    parts.append("to sweep over these values add --multirun (-m); for a list write key=[a,b]")
                allowed = _allowed_keys(compose, overrides, " ".join(parts))
                fail(": ".join(parts) + (f"; allowed keys there: {allowed}" if allowed else ""))
            from omegaconf.errors import InterpolationToMissingValueError, MissingMandatoryValue

            try:
                OmegaConf.to_container(cfg, resolve=True, throw_on_missing=True)
            except (MissingMandatoryValue, InterpolationToMissingValueError) as e:
                key = "env.id" if str(e.full_key).startswith("env.") and OmegaConf.is_missing(cfg.env, "id") else e.full_key
                hint = "; env=gym needs a gymnasium id, e.g. env.id=MountainCar-v0" if key == "env.id" else ""
                fail(f"{key} must be set (it has no default){hint}")
    finally:
        GlobalHydra.instance().clear()


def _split_sweep(value: str) -> list[str]:
    """All items of a sweep ``a,b,c`` (commas inside brackets or quotes belong to the item)."""
    items, rest = [], value
    while True:
        first = _first_choice(rest)
        items.append(first)
        if len(first) == len(rest):
            return items
        rest = rest[len(first) + 1:]


MAX_SWEEP_CHECKS = 400  # combinations composed and validated before a sweep starts (beyond: the first value only)


def check_sweep(compose, overrides: list[str]) -> None:
    """Compose and validate every combination of a sweep before its first job: one line per invalid combination,
    and the sweep is refused (exit 2) if there is any. Sweeps written with Hydra's functions (range(), glob(),
    choice()) or with more than ``MAX_SWEEP_CHECKS`` combinations are checked at their first value only."""
    import itertools

    if any("(" in o.partition("=")[2] for o in overrides):
        return
    axes = [[f"{o.partition('=')[0]}={v}" for v in _split_sweep(o.partition("=")[2])] for o in overrides]
    combos = list(itertools.product(*axes)) if axes else [()]
    if len(combos) < 2 or len(combos) > MAX_SWEEP_CHECKS:
        return
    try:  # a setting wrong in every combination is reported once, by compose_check's one line
        compose(config_name="config", overrides=list(combos[0]))
    except Exception:  # noqa: BLE001
        return
    varying = [i for i, axis in enumerate(axes) if len(axis) > 1]
    problems: list[str] = []
    for combo in combos:
        try:
            cfg = compose(config_name="config", overrides=list(combo))
            validate(cfg)
            fit_starts(cfg, {c.partition("=")[0].lstrip("+~") for c in combo})
        except Exception as e:  # noqa: BLE001 - composition, missing values, validation: one line each
            what = str(e).splitlines()[0] if str(e) else type(e).__name__
            if e.__cause__ is not None and str(e.__cause__):
                what += f": {str(e.__cause__).splitlines()[0]}"
            line = f"{' '.join(combo[i] for i in varying)}: {what}"
            if line not in problems:
                problems.append(line)
    if problems:
        print("\n".join(f"error: {p}" for p in problems), file=sys.stderr)
        fail(f"{len(problems)} of {len(combos)} combinations of this sweep are invalid (above); nothing was run")


def _allowed_keys(compose, overrides: list[str], message: str) -> str:
    """For an unknown key ``a.b.c``: the keys that ``a.b`` does have."""
    m = re.search(r"override '([\w.]+)'", message)
    if not m or "." not in m.group(1):
        return ""
    parent = m.group(1).rsplit(".", 1)[0]
    rest = [o for o in overrides if o.partition("=")[0].lstrip("+~") != m.group(1)]
    try:
        node = OmegaConf.select(compose(config_name="config", overrides=rest), parent)
        return ", ".join(sorted(node.keys())) if node is not None else ""
    except Exception:
        return ""


def expand_resume(argv: list[str]) -> list[str]:
    """``resume=<run dir>`` becomes that run's own overrides plus ``hydra.run.dir=<run dir>``."""
    rest = [a for a in argv if not a.startswith("resume=")]
    if len(rest) == len(argv):
        return argv
    run_dir = Path(next(a for a in argv if a.startswith("resume=")).partition("=")[2])
    saved = run_dir / ".hydra" / "overrides.yaml"
    if not saved.exists():
        fail(f"resume={run_dir}: no run there ({saved} not found); pass the directory of an unfinished run")
    if checkpoint.is_done(run_dir):
        fail(f"resume={run_dir}: that run is finished (results in {run_dir}/metrics.jsonl); nothing to resume")
    from omegaconf import OmegaConf

    try:
        recorded = OmegaConf.to_container(OmegaConf.load(saved))
    except Exception as e:  # noqa: BLE001 - YAML errors of any kind
        recorded = f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"
    if not isinstance(recorded, list) or not all(isinstance(a, str) and "=" in a for a in recorded):
        why = recorded if isinstance(recorded, str) else "not a list of key=value overrides"
        fail(f"resume={run_dir}: {saved} is damaged ({why}); nothing was changed. To resume, give the run's "
             f"settings again with hydra.run.dir={run_dir} (the checkpoint refuses any that differ)")
    if not checkpoint.exists(run_dir):
        fail(f"resume={run_dir}: no checkpoint there (the run stopped before its first); nothing was changed. To "
             f"start it again: python train.py {' '.join(recorded)}")
    merged: dict[str, str] = {}  # later overrides of the same key win
    for arg in [*recorded, *rest]:
        merged[arg.partition("=")[0]] = arg
    merged["hydra.run.dir"] = f"hydra.run.dir={quote(str(run_dir))}"  # a sweep job's dir may hold = , [ ]
    return list(merged.values())


def quote(value: str) -> str:
    """A value Hydra's override grammar reads back as it is (single-quoted, single quotes escaped)."""
    return "'" + value.replace("'", "\\'") + "'"


def unquote(value: str) -> str:
    """The path a (possibly quoted) ``hydra.run.dir`` value names."""
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
        return value[1:-1].replace("\\" + value[0], value[0])
    return value


def _remove_if_fresh(run_dir: Path) -> None:
    """Delete a run directory Hydra made for a run that failed validation (nothing of value in it)."""
    if run_dir.exists() and all(p.name in (".hydra", "train.log", ".lock") for p in run_dir.iterdir()):
        shutil.rmtree(run_dir, ignore_errors=True)
        for parent in list(run_dir.parents)[:4]:  # runs/<algo>/<env>[/<dataset>]/seed<k>/ made for it, if now empty
            if parent.name in ("runs", "multirun"):
                break
            try:
                parent.rmdir()
            except OSError:
                break


def explicit_keys() -> set[str]:
    """Keys set on this run's command line (a tuned file's values count as defaults: they were not chosen here)."""
    return {o.partition("=")[0].lstrip("+~") for o in HydraConfig.get().overrides.task}


def log_artifacts(cfg: DictConfig, logger: Logger, run_dir: Path) -> None:
    """``logger.artifacts=true``: the final checkpoint (type model) and a recorded dataset (type dataset)."""
    base = f"{cfg.algo.name}-{cfg.env.name}-seed{cfg.seed}"
    logger.artifact(f"{base}-checkpoint", "model", [run_dir / checkpoint.NAME], {"algo": cfg.algo.name, "env": cfg.env.id})
    if cfg.dataset.record:
        logger.artifact(f"{base}-dataset", "dataset", [run_dir / "dataset.npz", run_dir / "dataset.json"],
                        {"env": cfg.env.id})


def auto_threads(cfg: DictConfig, module) -> tuple[int, str]:
    """``hardware.threads=0``: the cores divided among the joblib launcher's parallel jobs (two-thread jobs that
    share cores with another process run several times slower), and one thread for algorithms whose networks
    are too small to gain from a second (``DEFAULT_THREADS`` in their module; DQN: 1081 vs 1028 env steps/s)."""
    if cfg.hardware.threads > 0:
        return cfg.hardware.threads, "hardware.threads"
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    threads, why = cores, f"{cores} cores"
    try:
        hc = HydraConfig.get()
        launcher = hc.launcher
        if hc.mode == RunMode.MULTIRUN and "joblib" in str(launcher.get("_target_", "")):
            n_jobs = int(launcher.n_jobs)
            n_jobs = n_jobs if n_jobs > 0 else max(1, cores + 1 + n_jobs)  # joblib: -1 is all cores, -2 all but one
            threads, why = max(1, cores // n_jobs), f"{cores} cores / {n_jobs} joblib jobs"
    except ValueError:  # no Hydra context (called in-process)
        pass
    small = getattr(module, "DEFAULT_THREADS", None)
    if small is not None and small < threads:
        threads, why = small, f"algo={cfg.algo.name}'s small networks gain nothing from more"
    return threads, why


VARIANT_FILE = "variant.txt"  # in a sweep job's .hydra/: the swept settings it ran with (see swept_settings)


def swept_settings(run_dir: Path, prefix: str = "") -> str:
    """The settings this sweep job varies besides algo, env, seed and dataset (see :func:`name_swept_settings`),
    after ``prefix``; "" outside a sweep or when there are none. Recorded in ``.hydra/variant.txt`` at the job's
    start, so a resume of the job (``resume=``, a plain run) keeps its W&B group and its report row."""
    path = run_dir / ".hydra" / VARIANT_FILE
    if HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN:
        named = OmegaConf.select(HydraConfig.get(), "job.config.override_dirname.exclude_keys")
        dirname = HydraConfig.get().job.override_dirname
        found = dirname if named and dirname else ""
        if found and path.parent.is_dir():
            path.write_text(found + "\n")
    else:
        found = path.read_text().strip() if path.exists() else ""
    return f"{prefix}{found}" if found else ""


def run(cfg: DictConfig, spec: envs.EnvSpec, run_dir: Path) -> float:
    """Train one run in this process (a fresh one, or a resume from ``run_dir``'s checkpoint); returns the final
    evaluation return. It never exits the process: failures are raised (:data:`KNOWN_FAILURES`)."""
    return loops.drive(steps(cfg, spec, run_dir))


def replay_intact(run_dir: Path):
    """A check for :func:`checkpoint.load`: the replay chunks an off-policy checkpoint lists are all readable (a
    damaged newest chunk then falls back to the previous checkpoint, which does not need it)."""
    from rlbase.core.buffer import ReplayBuffer

    def check(state: dict) -> None:
        manifest = state.get("buffer")
        if isinstance(manifest, dict) and "chunks" in manifest:
            ReplayBuffer.verify_chunks(run_dir / "replay", manifest)
    return check


def steps(cfg: DictConfig, spec: envs.EnvSpec, run_dir: Path) -> Generator[int, None, float]:
    """:func:`run` one step at a time: yields after each step of its loop, returns the final evaluation return.
    Several runs can so share a process, one step each in turn (:func:`loops.interleave`)."""
    module = algos.get(cfg.algo.name)
    threads, why = auto_threads(cfg, module)
    seeding.set_threads(threads)
    log.info("torch threads: %d (%s)", threads, why)
    device = torch.device(cfg.hardware.device)
    resume = checkpoint.load(run_dir, check=replay_intact(run_dir), set_aside=True)
    if resume is not None:
        changed = resume_changes(cfg, run_dir, resume.get("config"))
        if changed:  # before anything of the run is touched (a sweep's rerun included: it has no recorded copy)
            restore_recorded_config(run_dir)
            raise BadInput(f"resuming {run_dir} would change {'; '.join(changed)}; a resume may change only "
                           f"{', '.join(RESUME_SAFE[:6])} and the logger.*, hardware.* and eval.* settings (not eval.sample); start a "
                           "new run (without resume= / hydra.run.dir) for other settings")
    old = run_dir / "metrics.jsonl"
    if resume is None and old.exists() and old.stat().st_size > 0:  # a failed attempt with no checkpoint: start clean
        n = 1 + len(list(run_dir.glob("metrics.failed-*.jsonl")))
        old.rename(run_dir / f"metrics.failed-{n}.jsonl")
        log.warning("no checkpoint in %s: starting from step 0; the earlier attempt's rows are in metrics.failed-%d.jsonl",
                    run_dir, n)
    if resume is not None and resume.get("algo_starts"):
        for k, v in resume["algo_starts"].items():  # the starts the run began with, whatever total_steps is now
            cfg.algo[k] = v
    key = "total_updates" if getattr(module, "OFFLINE", False) else "total_steps"
    if resume is not None and resume["step"] > cfg[key]:
        restore_recorded_config(run_dir)
        raise BadInput(f"{key}={cfg[key]} is below the step of the checkpoint in {run_dir} ({resume['step']}); "
                       f"allowed: {key} >= {resume['step']}")
    if module.LOOP == "on_policy":
        env, _ = envs.make_vector(cfg.env, cfg.seed, cfg.algo.num_envs, cfg.hardware.vector, cfg.algo.gamma)
    else:
        env, _ = envs.make(cfg.env, seeding.stream(cfg.seed, "train_env"))
    eval_env, _ = envs.make(cfg.env, seeding.stream(cfg.seed, "eval_env"), train=False)
    # The algorithm's own dataclass, not the DictConfig: agents read settings in every update, and an OmegaConf
    # attribute costs microseconds (a third of a DQN run's time; docs/results.md, Speed).
    # Every random draw of the agent comes from its own generators (seeding.AgentRandom), spawned from the seed.
    agent = module.Agent(OmegaConf.to_object(cfg.algo), spec, device, seeding.AgentRandom(cfg.seed, device))
    try:
        logger = Logger(cfg.logger, run_dir, config=OmegaConf.to_container(cfg, resolve=True),
                        group=f"{cfg.algo.name}-{cfg.env.name}{swept_settings(run_dir, '-')}", name=f"seed{cfg.seed}",
                        tags=[cfg.algo.name, cfg.env.name, f"seed{cfg.seed}"],
                        run_id=resume["wandb_id"] if resume else None, resume_step=resume["step"] if resume else None)
    except OSError as e:
        env.close()
        eval_env.close()
        if e.errno in DISK_ERRNOS:
            raise disk_error(e, str(run_dir)) from None
        raise
    log.info("run dir: %s", run_dir)
    exit_code, start = 1, time.time()
    try:
        result = yield from loops.get(module.LOOP)(cfg, agent, env, eval_env, spec, logger, run_dir, device, resume)
        logger.summary({"eval/final_return": result["final"], "eval/best_return": result["best"],
                        "time/total_s": time.time() - start})
        if cfg.logger.artifacts:
            log_artifacts(cfg, logger, run_dir)
        checkpoint.mark_done(run_dir)
        exit_code = 0
        log.info("finished: final eval return %.2f (best %.2f) after %d steps; results in %s",
                 result["final"], result["best"], result["steps"], run_dir)
        return result["final"]
    except loops.NonFiniteError as e:
        log.error("%s", e)
        exit_code = 3
        raise
    except loops.Interrupted as e:
        log.warning("%s at a checkpoint; resume with: python train.py resume=%s", e, run_dir)
        exit_code = 128 + e.signum
        raise
    except envs.EnvFailed as e:  # the env's own error: one line on the console, its traceback in train.log
        import traceback

        for h in logging.getLogger().handlers:
            if isinstance(h, logging.FileHandler):
                h.stream.write("".join(traceback.format_exception(e.__cause__ or e)))
                h.flush()
        raise envs.EnvFailed(f"{e}; its traceback is in {run_dir / 'train.log'}") from e.__cause__
    except OSError as e:  # metrics, checkpoints, videos: a full disk or a read-only file system is one line
        if e.errno not in DISK_ERRNOS:
            raise
        raise disk_error(e, str(run_dir)) from None
    except KeyboardInterrupt:  # a second Ctrl-C before the first was acted on: stop now, no traceback
        if checkpoint.exists(run_dir):
            log.warning("stopped at once by a second Ctrl-C; resume from its last checkpoint with: "
                        "python train.py resume=%s", run_dir)
        else:
            log.warning("stopped at once by a second Ctrl-C, before the run's first checkpoint: nothing to resume")
        exit_code = 128 + signal.SIGINT
        raise loops.Interrupted(signal.SIGINT) from None
    finally:
        logger.close(exit_code)
        env.close()
        eval_env.close()


@hydra.main(version_base="1.3", config_path="conf", config_name="config")
def main(cfg: DictConfig) -> float:
    run_dir = Path(HydraConfig.get().runtime.output_dir)
    multirun = HydraConfig.get().mode == RunMode.MULTIRUN
    if multirun and checkpoint.is_done(run_dir):
        final = [r["eval/return_mean"] for r in read_metrics(run_dir / "metrics.jsonl") if "eval/return_mean" in r]
        log.info("skipping finished job %s", run_dir)
        return final[-1] if final else float("nan")
    try:
        own(run_dir)
    except (RunDirBusy, DiskError) as e:
        if not multirun:
            fail(str(e), 2 if isinstance(e, RunDirBusy) else 1)
        log.error("%s", e)
        return float("nan")
    try:
        return _job(cfg, run_dir, multirun)
    finally:
        if multirun:
            release(run_dir)  # the next job of a sequential sweep runs in this process


def unfinished_twins(run_dir: Path) -> list[Path]:
    """Other run directories beside ``run_dir`` (same algo, env and seed) with a checkpoint, not finished, whose
    recorded overrides are this run's: the run a researcher probably meant to continue."""
    own_overrides = run_dir / ".hydra" / "overrides.yaml"
    if not own_overrides.exists() or not run_dir.parent.is_dir():
        return []
    mine = set(OmegaConf.load(own_overrides))
    twins = []
    for d in sorted(run_dir.parent.iterdir()):
        o = d / ".hydra" / "overrides.yaml"
        if d == run_dir or not o.exists() or not checkpoint.exists(d) or checkpoint.is_done(d):
            continue
        try:
            if set(OmegaConf.load(o)) == mine:
                twins.append(d)
        except Exception:  # noqa: BLE001 - a damaged file beside us is not this run's problem
            continue
    return twins


def _job(cfg: DictConfig, run_dir: Path, multirun: bool) -> float:
    """One job: failures in :data:`KNOWN_FAILURES` become one line and their exit code here (in a sweep: a log
    line, and the job counts as failed); anything else is a bug and keeps its traceback."""
    try:
        return _checked_run(cfg, run_dir, multirun)
    except Exception as e:
        known = isinstance(e, KNOWN_FAILURES)
        if isinstance(e, loops.Interrupted):
            sys.exit(exit_code(e))  # a signal stops the process, sweep or not (submitit requeues it)
        if multirun:
            if known:
                log.error("%s", e)
            else:  # one failed job must not take the sweep down; the end-of-sweep report lists it
                log.exception("job failed: %s", run_dir)
            return float("nan")
        if not known:
            raise
        if not isinstance(e, loops.NonFiniteError):  # that one was logged in one line where it happened
            print(f"error: {e}", file=sys.stderr)
        sys.exit(exit_code(e))


def _checked_run(cfg: DictConfig, run_dir: Path, multirun: bool) -> float:
    try:
        if HydraConfig.initialized():
            validate_tuned(dict(HydraConfig.get().runtime.choices))
        spec = validate(cfg)
        notes = fit_starts(cfg, explicit_keys())
    except ConfigError:
        _remove_if_fresh(run_dir)
        restore_recorded_config(run_dir)
        raise
    if notes:
        for note in notes if not checkpoint.exists(run_dir) else []:  # a resume takes the starts its checkpoint has
            log.warning("%s", note)
        # Record what runs: the config, and the overrides a resume (resume=<dir>) re-applies, so a resume with a
        # longer total_steps keeps these starts instead of scaling them anew.
        saved = run_dir / ".hydra" / "overrides.yaml"
        if saved.exists():  # absent with hydra.output_subdir=null
            OmegaConf.save(cfg, run_dir / ".hydra" / "config.yaml")
            fitted = [f"algo.{k}={cfg.algo[k]}" for k in ("random_steps", "learning_starts") if k in cfg.algo]
            OmegaConf.save(OmegaConf.create([*OmegaConf.load(saved), *fitted]), saved)
    reused = str(run_dir.resolve()) in _REUSED  # a requeue of this run, not a new one: its twins are not news
    if not multirun and not reused and not checkpoint.exists(run_dir):  # after the fitted starts joined the overrides
        for twin in unfinished_twins(run_dir)[-1:]:
            log.warning("starting a new run from step 0, but %s is an unfinished run of these settings; "
                        "to continue it instead: python train.py resume=%s", twin, twin)
    return run(cfg, spec, run_dir)


def cli(argv: list[str]) -> int:
    """``python train.py <argv>`` in this process; returns the exit code it would have. Nothing of one call stays
    behind for the next (run-directory locks, recorded configs, Hydra's global state, its log file handlers), so
    tests and scripts can call it many times in one process."""
    from hydra.core.global_hydra import GlobalHydra

    register()
    saved = sys.argv
    try:
        sys.argv = [saved[0] if saved else "train.py", *precheck(list(argv))]
        main()
        return 1 if sweep.finish_open_sweeps() else 0
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
        if code >= 128:  # a signal stopped the sweep: the user (or the cluster) is stopping it, no report now
            return code
        return max(code, 1) if sweep.finish_open_sweeps() else code
    finally:
        sweep._OPEN.clear()
        sys.argv = saved
        for key in list(_LOCKS):
            release(Path(key))
        _RECORDED.clear()
        _REUSED.clear()
        GlobalHydra.instance().clear()
        root = logging.getLogger()
        for h in list(root.handlers):
            if isinstance(h, logging.FileHandler):  # the run's train.log
                root.removeHandler(h)
                h.close()


def main_entry() -> None:
    """The ``rlbase-train`` console script: ``python train.py`` from any directory."""
    sys.exit(cli(sys.argv[1:]))


if __name__ == "__main__":
    main_entry()
