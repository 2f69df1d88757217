"""One run in this process, as the command line and ``rlbase.run`` both make it: the run directory's lock, the
checks against what a resumed run recorded, and the training itself (:func:`steps`, :func:`run`).

Failures a run reports in one line are the exceptions in :data:`KNOWN_FAILURES`; :func:`exit_code` is the one place
that maps them to the process's exit code.
"""

from __future__ import annotations

import errno
import logging
import os
import shutil
import signal
import time
from collections.abc import Generator
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import torch
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

from rlbase import algos, data, envs, loops
from rlbase.core import checkpoint, provenance, seeding
from rlbase.core.logger import Logger
from rlbase.loops import seeds
from rlbase.runtime.validate import ConfigError

log = logging.getLogger("train")


class BadInput(ValueError):
    """Input a run cannot start with (exit code 2), found once the run's config is composed."""


def exit_code(e: BaseException) -> int:
    if isinstance(e, (BadInput, ConfigError, RunDirBusy)):
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
                  data.DatasetError, envs.EnvFailed, DiskError, RunDirBusy)


def own(run_dir: Path) -> None:
    """Make this process the one writer of ``run_dir``: an exclusive lock on ``run_dir/.lock``, held until the
    process exits (the OS drops it on any exit, SIGKILL included, so a crashed run leaves nothing stuck). A
    second live run aimed at the same directory is refused before it writes anything there. The lock file gets
    this process's pid only when the run is accepted (:func:`accept`): a refused attempt changes no byte there."""
    import fcntl

    key = str(run_dir.resolve())
    if key in _LOCKS:
        return
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
    _LOCKS[key] = f


def release(run_dir: Path) -> None:
    f = _LOCKS.pop(str(run_dir.resolve()), None)
    if f is not None:
        try:
            f.close()  # flushes the pid: may fail on a full disk, and the lock goes with the descriptor anyway
        except OSError:
            pass


class SweepChanged(BadInput):
    """A sweep asks a finished job's directory for other settings than the job ran with: the sweep stops (exit 2)."""


@dataclass
class Record:
    """What an accepted run writes into ``.hydra/``: the command line's overrides (plus the fitted starts, so a
    resume keeps them) and Hydra's own config (run directory, group choices; None: not written)."""

    overrides: list[str]
    hydra: Optional[DictConfig] = None
    extra: Optional[dict[str, str]] = None  # more files for .hydra/, by name (a seed group's SEED_GROUP)


class _Held(logging.Handler):
    """Log records of a run before it is accepted: written to its train.log once it is, dropped if it is refused
    (a refused attempt adds no line to an existing run's log)."""

    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


_HANDLERS: dict[str, list[logging.Handler]] = {}  # per run directory: the log handlers this module added


def _write_text(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def accept(cfg: DictConfig, run_dir: Path, record: Record) -> None:
    """The run passed every check: from here on it writes its directory. Its record (``.hydra/config.yaml``,
    ``overrides.yaml``, ``hydra.yaml``), its pid in the lock file and its ``train.log`` (with the lines logged
    before this point) are written now, and only by the run that owns the directory (Hydra writes none of them:
    ``hydra.output_subdir`` is null in conf/config.yaml)."""
    key = str(run_dir.resolve())
    try:
        lock = _LOCKS.get(key)
        if lock is not None:  # first: a disk that cannot take these few bytes stops the run before its record
            lock.truncate(0)
            lock.write(f"{os.getpid()}\n")
            lock.flush()
        hydra_dir = run_dir / ".hydra"
        tmp_dir = run_dir / ".hydra.tmp"
        tmp_dir.mkdir(parents=True, exist_ok=True)
        _write_text(tmp_dir / "config.yaml", OmegaConf.to_yaml(cfg))
        _write_text(tmp_dir / "overrides.yaml", OmegaConf.to_yaml(OmegaConf.create(list(record.overrides))))
        if record.hydra is not None:
            _write_text(tmp_dir / "hydra.yaml", OmegaConf.to_yaml(OmegaConf.create({"hydra": record.hydra})))
        for name, text in (record.extra or {}).items():
            _write_text(tmp_dir / name, text)
        hydra_dir.mkdir(exist_ok=True)
        for f in sorted(tmp_dir.iterdir()):
            os.replace(f, hydra_dir / f.name)
        tmp_dir.rmdir()
        root = logging.getLogger()
        log_file = str((run_dir / "train.log").resolve())
        if not any(isinstance(h, logging.FileHandler) and h.baseFilename == log_file for h in root.handlers):
            handler = logging.FileHandler(log_file)
            handler.setFormatter(logging.Formatter("[%(asctime)s][%(name)s][%(levelname)s] - %(message)s"))
            handler.addFilter(_OwnLines(str(run_dir)))
            for held in [h for h in _HANDLERS.get(key, []) if isinstance(h, _Held)]:
                for rec in held.records:
                    handler.handle(rec)
            root.addHandler(handler)
            _HANDLERS.setdefault(key, []).append(handler)
    except OSError as e:
        raise disk_error(e, str(run_dir)) from None
    finally:
        for held in [h for h in _HANDLERS.get(key, []) if isinstance(h, _Held)]:
            logging.getLogger().removeHandler(held)
            _HANDLERS[key].remove(held)


class _OwnLines(logging.Filter):
    """A run's train.log takes its own lines and lines of no run in particular: with several seeds in one process
    (loops/seeds.py names the run whose loop is running), each seed's log holds only its lines."""

    def __init__(self, run_dir: str) -> None:
        super().__init__()
        self.run_dir = run_dir

    def filter(self, record: logging.LogRecord) -> bool:
        current = seeds.CURRENT["run"]
        return current is None or current == self.run_dir


def _hold_logs(run_dir: Path) -> None:
    root = logging.getLogger()
    held = _Held()
    held.addFilter(_OwnLines(str(run_dir)))
    root.addHandler(held)
    _HANDLERS.setdefault(str(run_dir.resolve()), []).append(held)
    if root.level > logging.INFO:
        root.setLevel(logging.INFO)


def _drop_logs(run_dir: Path) -> None:
    for h in _HANDLERS.pop(str(run_dir.resolve()), []):
        logging.getLogger().removeHandler(h)
        h.close()


RERUN_SAFE = ("hardware", "logger", "progress", "keep_replay", "checkpoint_every")  # settings a sweep rerun may change


def final_return(run_dir: Path) -> float:
    from rlbase.core.logger import read_metrics

    final = [r["eval/return_mean"] for r in read_metrics(run_dir / "metrics.jsonl") if "eval/return_mean" in r]
    return final[-1] if final else float("nan")


def execute(cfg: DictConfig, run_dir: Path, overrides: list[str], hydra_cfg: Optional[DictConfig] = None,
            sweep: bool = False) -> float:
    """One run as the command line and ``rlbase.run`` both make it: validate and fit the starts, check the
    directory (finished, in use, another run's settings), lock it, train, and return the final evaluation return.
    Nothing is written into ``run_dir`` until every check has passed (:func:`accept`); a refused attempt leaves an
    existing directory as it was and removes one that was made for it. In a sweep (``sweep=True``) a finished job
    with the same settings is skipped, and one with other settings stops the sweep (:class:`SweepChanged`)."""
    run_dir = Path(run_dir)
    held_run = (run_dir / ".hydra").is_dir()  # the directory held a run before this attempt (a resume, a requeue)
    _hold_logs(run_dir)
    locked = False
    try:
        admitted = admit(cfg, run_dir, overrides, hydra_cfg, sweep)
        if admitted is None:
            return final_return(run_dir)
        locked = True
        spec, notes, fitted, resumed = admitted
        if not resumed:
            for note in notes:  # a resume takes the starts its checkpoint has
                log.warning("%s", note)
            if not sweep and not held_run:
                for twin in unfinished_twins(run_dir, [*overrides, *fitted])[-1:]:
                    log.warning("starting a new run from step 0, but %s is an unfinished run of these settings; "
                                "to continue it instead: python train.py resume=%s", twin, twin)
        return run(cfg, spec, run_dir, Record([*overrides, *fitted], hydra_cfg))
    except BaseException:
        if not (run_dir / ".hydra").is_dir():  # not accepted: leave nothing behind in a directory made for it
            _remove_if_fresh(run_dir)
        raise
    finally:
        data.forget()  # a dataset validation held for a run that was refused or skipped (the loop let go of its own)
        _drop_logs(run_dir)
        if locked:
            release(run_dir)


def admit(cfg: DictConfig, run_dir: Path, overrides: list[str], hydra_cfg: Optional[DictConfig], sweep: bool
          ) -> Optional[tuple[envs.EnvSpec, list[str], list[str], bool]]:
    """The checks of a run before it may touch ``run_dir``: validate and fit the starts, refuse a finished run (in a
    sweep: None, skip it, when it has this sweep's settings; :class:`SweepChanged` when not), then lock the
    directory. Returns the env spec, the fitting notes, the fitted starts as overrides and whether it resumes."""
    from rlbase.runtime.validate import fit_schedule, fit_starts, validate, validate_tuned

    explicit = {o.partition("=")[0].lstrip("+~") for o in overrides}
    if hydra_cfg is not None and OmegaConf.select(hydra_cfg, "runtime.choices") is not None:
        validate_tuned(dict(hydra_cfg.runtime.choices))
    spec = validate(cfg)
    notes = fit_starts(cfg, explicit) + fit_schedule(cfg, explicit)
    if checkpoint.is_done(run_dir):
        if not sweep:
            raise BadInput(f"{run_dir} holds a finished run (results in {run_dir}/metrics.jsonl); start a new run "
                           "without hydra.run.dir or pick another directory")
        changed = resume_changes(cfg, run_dir, safe=RERUN_SAFE)
        if changed:
            raise SweepChanged(
                f"{run_dir} is a finished job of this sweep run with other settings: {'; '.join(changed)}; "
                "nothing was run. To run these settings, give the sweep a new directory (hydra.sweep.dir=...) "
                "or sweep the setting with more than one value (each value gets its own directory)")
        log.info("skipping finished job %s (same settings)", run_dir)
        return None
    own(run_dir)
    resumed = checkpoint.exists(run_dir)
    fitted = [f"algo.{k}={cfg.algo[k]}" for k in ("random_steps", "learning_starts")
              if k in cfg.algo and notes and not resumed]
    return spec, notes, fitted, resumed


SEED_GROUP = "seed_group.yaml"  # in .hydra/ of each seed trained with others in one process: the group's seeds and dirs
DIVERGED = "diverged"  # in a seed's directory whose run stopped on a non-finite value while others of its group went on


def execute_group(cfgs: list[DictConfig], run_dirs: list[Path], overrides: list[list[str]],
                  hydra_cfgs: Optional[list[Optional[DictConfig]]] = None, sweep: bool = False) -> list[float]:
    """K seeds of one configuration in this process (``hardware.seeds_per_process``): each seed a run of its own in
    its own directory, admitted as :func:`execute` admits one run (validated, finished ones refused or, in a sweep,
    skipped, locked), trained together by ``loops.seeds.drive`` on a stacked agent (``algos/stacked.py``). Returns
    each seed's final evaluation return. A seed whose loss diverges stops alone; once the others have finished its
    ``NonFiniteError`` is raised (exit code 3)."""
    run_dirs = [Path(d) for d in run_dirs]
    k = len(cfgs)
    hydra_cfgs = hydra_cfgs or [None] * k
    module = algos.get(cfgs[0].algo.name)
    stacked = getattr(module, "STACKED", None)
    if stacked is None:
        supported = ", ".join(n for n in algos.ALGOS if getattr(algos.get(n), "STACKED", None) is not None)
        raise BadInput(f"hardware.seeds_per_process={k}: algo={cfgs[0].algo.name} trains one seed per process; "
                       f"allowed with several seeds in one process: {supported}")
    if len(set(run_dirs)) < k:
        raise BadInput(f"hardware.seeds_per_process={k}: the seeds' run directories coincide ({run_dirs[0]}); the run "
                       "directory must depend on ${seed} (as hydra.run.dir's and hydra.sweep.subdir's defaults do)")
    members = OmegaConf.to_yaml(OmegaConf.create([{"seed": int(c.seed), "run_dir": str(d)} for c, d in zip(cfgs, run_dirs)]))
    finals: list[float] = [float("nan")] * k
    admitted: list[tuple[int, envs.EnvSpec, Record]] = []
    locked: list[Path] = []
    held_runs = [(d / ".hydra").is_dir() for d in run_dirs]
    for d in run_dirs:
        _hold_logs(d)
    try:
        for j, (cfg, run_dir, over, hc) in enumerate(zip(cfgs, run_dirs, overrides, hydra_cfgs)):
            if (run_dir / DIVERGED).exists():  # it stopped alone; the group goes on without it
                log.warning("skipping seed %d: its run diverged (%s; see its train.log)", cfg.seed,
                            (run_dir / DIVERGED).read_text().strip())
                continue
            admission = admit(cfg, run_dir, over, hc, sweep)
            if admission is None:
                finals[j] = final_return(run_dir)
                continue
            locked.append(run_dir)
            spec, notes, fitted, resumed = admission
            if not resumed and j == 0:
                for note in notes:
                    log.warning("%s", note)
            admitted.append((j, spec, Record([*over, *fitted], hc, {SEED_GROUP: members})))
        if not admitted:
            return finals
        align_checkpoints([run_dirs[j] for j, _, _ in admitted])
        for j, _, _ in admitted:  # a resume keeps the starts its run began with (as steps() does), before the agents
            if checkpoint.exists(run_dirs[j]):
                for key, value in (checkpoint.load(run_dirs[j]).get("algo_starts") or {}).items():
                    cfgs[j].algo[key] = value
        device = torch.device(cfgs[0].hardware.device)
        spec = admitted[0][1]
        group = stacked([module.Agent(OmegaConf.to_object(cfgs[j].algo), spec, device,
                                      seeding.AgentRandom(cfgs[j].seed, device)) for j, _, _ in admitted])
        views = group.views()
        for i, (j, _, _) in enumerate(admitted):
            if i > 0:  # one progress bar for the group (the first seed's); the others write progress lines
                cfgs[j].progress = False
        runs = [steps(cfgs[j], s, run_dirs[j], rec, agent=views[i]) for i, (j, s, rec) in enumerate(admitted)]
        results, errors = seeds.drive(group, runs, [str(run_dirs[j]) for j, _, _ in admitted])
        for i, (j, _, _) in enumerate(admitted):
            if results[i] is not None:
                finals[j] = results[i]
        for i, (j, _, _) in enumerate(admitted):
            if errors[i] is not None:
                (run_dirs[j] / DIVERGED).write_text(f"{errors[i]}\n")
        failed = [e for e in errors if e is not None]
        if failed:
            raise failed[0]
        return finals
    except BaseException:
        for d, held in zip(run_dirs, held_runs):
            if not held and not (d / ".hydra").is_dir():
                _remove_if_fresh(d)
        raise
    finally:
        for d in run_dirs:
            _drop_logs(d)
        for d in locked:
            release(d)


def execute_seeds(cfg: DictConfig, hc: DictConfig, run_dir: Path, multirun: bool) -> list[float]:
    """``hardware.seeds_per_process=K``: this job's K seeds in this process (:func:`execute_group`), each in the
    directory its own job would have had (``run_dir`` is the first seed's); returns each seed's final evaluation
    return. A resumed seed brings back its whole group, recorded in its ``.hydra/seed_group.yaml``."""
    k = int(cfg.hardware.seeds_per_process)
    recorded = run_dir / ".hydra" / SEED_GROUP
    if recorded.exists():  # a resume (resume=<any seed's dir>) or a sweep's rerun: the group as it was
        members = OmegaConf.to_container(OmegaConf.load(recorded))
        seeds, dirs = [int(m["seed"]) for m in members], [Path(m["run_dir"]) for m in members]
        own_dir = next((d for s, d in zip(seeds, dirs) if s == cfg.seed), None)
        if own_dir is not None and own_dir != run_dir:  # the group was moved or copied: the others beside it as before
            dirs = [Path(os.path.normpath(run_dir / os.path.relpath(d, own_dir))) for d in dirs]
    else:
        listed = list(cfg.hardware.seed_list)
        swept = multirun and any(o.lstrip("+~").partition("=")[0] == "seed" for o in hc.overrides.task)
        if swept and not listed:  # seeds from a preset's sweeper params: the jobs' groups would overlap
            raise BadInput(f"hardware.seeds_per_process={k} in a sweep groups the seeds given on the command line "
                           "(-m seed=0,1,2,3,4 hardware.seeds_per_process=K); this sweep's seeds come from elsewhere "
                           "(a +sweep preset?): give them as seed=... on the command line")
        if listed and cfg.seed not in listed:
            raise BadInput(f"seed={cfg.seed} is not in hardware.seed_list={listed}")
        seeds = listed[listed.index(cfg.seed):][:k] if listed else [cfg.seed + i for i in range(k)]
        dirs = [run_dir if s == cfg.seed else seed_dir(cfg, hc, run_dir, s, multirun) for s in seeds]
    task = [o for o in hc.overrides.task if o.lstrip("+~").partition("=")[0] != "seed"]
    cfgs, overrides, hcs = [], [], []
    for s, d in zip(seeds, dirs):
        c = cfg.copy()
        c.seed = s
        cfgs.append(c)
        overrides.append([*task, f"seed={s}"])
        h = OmegaConf.to_container(hc, resolve=False)
        h["runtime"]["output_dir"] = str(d)
        hcs.append(OmegaConf.create(h))
    # a resumed group skips its finished seeds (one that reached stop_return) as a sweep's rerun does
    return execute_group(cfgs, dirs, overrides, hcs, sweep=multirun or recorded.exists())


def seed_dir(cfg: DictConfig, hc: DictConfig, run_dir: Path, seed: int, multirun: bool) -> Path:
    """The directory seed ``seed``'s own job would get: the run directory's template resolved with that seed (in a
    sweep, this job's sweep directory with the subdirectory resolved for that seed)."""
    full = OmegaConf.create({**OmegaConf.to_container(cfg, resolve=False), "hydra": OmegaConf.to_container(hc, resolve=False)})

    def resolve(key: str, s: int) -> str:
        full.seed = s
        return str(OmegaConf.select(full, key))

    key = "hydra.sweep.subdir" if multirun else "hydra.run.dir"
    mine, theirs = resolve(key, cfg.seed), resolve(key, seed)  # one config root: ${now} resolves once for both
    base = str(run_dir)
    if multirun and base.endswith(mine):
        return Path(os.path.abspath(base[: len(base) - len(mine)] + theirs))
    if not multirun and os.path.abspath(mine) == base:
        return Path(os.path.abspath(theirs))
    # Hydra resolved the directory a clock tick earlier: put the seed where the template puts it
    i = next((n for n, (a, b) in enumerate(zip(mine, theirs)) if a != b), min(len(mine), len(theirs)))
    tail = 0
    while tail < min(len(mine), len(theirs)) - i and mine[-1 - tail] == theirs[-1 - tail]:
        tail += 1
    old, new = mine[i:len(mine) - tail], theirs[i:len(theirs) - tail]
    if not old or base.count(old) != 1:
        raise BadInput(f"hardware.seeds_per_process: cannot place seed {seed} beside {run_dir}: the run directory "
                       "must depend on ${seed} (as the default hydra.run.dir and hydra.sweep.subdir do)")
    return Path(os.path.abspath(base.replace(old, new)))


def align_checkpoints(run_dirs: list[Path]) -> None:
    """Seeds trained together checkpoint at the same steps, one after another; a SIGKILL between two of them leaves
    some one checkpoint ahead. Put them back on one common step before they resume: a seed ahead goes back to its
    previous checkpoint (the newer one is dropped, and its metrics rows are dropped by the resume), and when some
    seed has no checkpoint at all, the others' are set aside (``checkpoint.ahead.pt``) and every seed starts anew."""
    found: dict[Path, list[int]] = {}
    for d in run_dirs:
        steps_here = []
        for name in (checkpoint.NAME, checkpoint.PREV):
            try:
                steps_here.append(int(checkpoint._read(d / name)["step"]) if (d / name).exists() else None)
            except checkpoint.CheckpointError:
                steps_here.append(None)
        found[d] = steps_here
    with_ckpt = [d for d in run_dirs if any(s is not None for s in found[d])]
    if not with_ckpt:
        return
    if len(with_ckpt) < len(run_dirs):
        for d in with_ckpt:
            for name in (checkpoint.NAME, checkpoint.PREV):
                if (d / name).exists():
                    os.replace(d / name, d / name.replace(".pt", ".ahead.pt"))
        log.warning("seeds %s had a checkpoint and the others none: every seed starts from step 0 (their checkpoints "
                    "are kept as checkpoint.ahead.pt)", ", ".join(str(d) for d in with_ckpt))
        return
    common = min(max(s for s in found[d] if s is not None) for d in run_dirs)
    for d in run_dirs:
        newest, prev = found[d]
        if newest is not None and newest > common:
            if prev != common:
                raise checkpoint.CheckpointError(f"{d}: no checkpoint at step {common}, where the other seeds of its "
                                                 "group resume; resume it alone or start the group anew")
            os.replace(d / checkpoint.PREV, d / checkpoint.NAME)
            log.warning("%s goes back to its checkpoint at step %d, where the other seeds of its group are", d, common)


# What a resume may change: the budget, the schedule of logs and checkpoints, logging, hardware and video.
RESUME_SAFE = ("total_steps", "total_updates", "log_every", "checkpoint_every", "eval_every", "progress", "keep_replay", "logger", "hardware",
               "eval", "stop_return")


RESUME_FIXED = ("eval.sample",)  # in a safe group, but a run's evaluations must all be of one kind (its curve, best, stop)


def _flat(node, prefix: str = "") -> dict[str, object]:
    if isinstance(node, dict):
        out: dict[str, object] = {}
        for k, v in node.items():
            out.update(_flat(v, f"{prefix}{k}."))
        return out
    return {prefix[:-1]: node}


def resume_changes(cfg: DictConfig, run_dir: Path, saved: Optional[dict] = None,
                   safe: Optional[tuple[str, ...]] = None) -> list[str]:
    """Settings of this resume that differ from those the run's checkpoint was trained with (``saved``: the config
    stored in the checkpoint; older checkpoints: the run's recorded .hydra/config.yaml), safe ones aside. A key only
    one side has is a change too (a key added under ``env.kwargs`` changes the task), except a setting the code
    gained since the run started, given at its default (the run trained with what that default keeps). ``safe``:
    the top-level settings that may differ (default :data:`RESUME_SAFE`; a sweep's rerun over finished jobs passes
    :data:`RERUN_SAFE`, and then every other difference counts, starts and dataset path included)."""
    rerun = safe is not None
    safe = RESUME_SAFE if safe is None else safe
    if saved is None:
        recorded = run_dir / ".hydra" / "config.yaml"
        if not recorded.exists():
            return []
        saved = OmegaConf.to_container(OmegaConf.load(recorded), resolve=True)
    old, new = _flat(saved), _flat(OmegaConf.to_container(cfg, resolve=True))
    changed = []
    first = ("algo.name", "env.name", "env.id", "seed")  # another algorithm or task is named before its settings
    for key in sorted(set(old) & set(new), key=lambda k: (k not in first, first.index(k) if k in first else 0, k)):
        if (key.split(".")[0] in safe and (rerun or key not in RESUME_FIXED)) or old[key] == new[key]:
            continue
        if rerun:
            pass
        elif key == "dataset.path":
            continue  # a moved dataset is fine; its checksum against the checkpoint's decides (loops.offline)
        elif key.startswith("algo.") and key[5:] in ("random_steps", "learning_starts"):
            continue  # fitted to the first budget and restored from the checkpoint (train.run), whatever is given now
        changed.append(f"{key}={new[key]} (the run has {old[key]})")
    defaults = _flat(_schema_defaults(cfg))
    for key in sorted(set(old) ^ set(new)):
        if key.split(".")[0] in safe and (rerun or key not in RESUME_FIXED):
            continue
        if key in new and key in defaults and defaults[key] == new[key]:
            continue  # a setting added to the code since the run started, at its default
        changed.append(f"{key}={new[key]} (the run has no {key})" if key in new else f"no {key} (the run has {key}={old[key]})")
    return changed


def _schema_defaults(cfg: DictConfig) -> dict:
    """Every setting's default for this config's algorithm (the schemas' dataclasses), as a plain nested dict."""
    from rlbase.conf.schema import EvalConfig, HardwareConfig
    from rlbase.core.logger import LoggerConfig

    out = {}
    schemas = {"algo": algos.get(cfg.algo.name).Config, "env": envs.EnvConfig, "eval": EvalConfig,
               "hardware": HardwareConfig, "logger": LoggerConfig, "dataset": data.DatasetConfig}
    for name, schema in schemas.items():
        try:
            out[name] = OmegaConf.to_container(OmegaConf.structured(schema), resolve=False)
        except Exception:  # noqa: BLE001 - a schema with a mandatory field: no defaults to offer
            out[name] = {}
    import dataclasses

    from rlbase.conf.schema import RunConfig

    for f in dataclasses.fields(RunConfig):  # top-level settings (e.g. loop, added after runs that lack it)
        if f.name not in out and f.default is not dataclasses.MISSING and not isinstance(f.default, (dict, list)):
            out[f.name] = f.default
    return out


def _remove_if_fresh(run_dir: Path) -> None:
    """Delete a run directory Hydra made for a run that failed validation (nothing of value in it)."""
    if run_dir.exists() and all(p.name in (".hydra", "train.log", ".lock") for p in run_dir.iterdir()):
        shutil.rmtree(run_dir, ignore_errors=True)
        parents = list(run_dir.parents)[:5]
        if not any(p.name in ("runs", "multirun") for p in list(run_dir.parents)[:6]):
            return  # a directory given by hand: the folders above it are the user's
        for parent in parents:  # runs/<algo>/<env>[/<dataset>]/seed<k>/ made for it, if now empty
            try:
                parent.rmdir()  # runs/ itself too, when this refused run was all it would have held
            except OSError:
                break
            if parent.name in ("runs", "multirun"):
                break


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


def crowded(threads: int) -> Optional[str]:
    """One line when other processes seem to hold the cores this run's ``threads`` need (the 1-minute load average,
    taken before this run does any work, at least ``cores - threads + 0.75``): torch threads that share cores
    with another busy process run several times slower. Only said, never acted on: the thread count can change a
    run's floating-point sums, so it must not depend on what else the machine happens to run."""
    if threads < 2 or not hasattr(os, "getloadavg"):
        return None
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    load = os.getloadavg()[0]
    if load < cores - threads + 0.75:
        return None
    return (f"the load average is {load:.1f} on {cores} cores: other processes seem to use them, and {threads} torch "
            f"threads that share cores with them can run several times slower; hardware.threads=1 (or fewer jobs) "
            "avoids that")


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


def run(cfg: DictConfig, spec: envs.EnvSpec, run_dir: Path, record: Optional[Record] = None) -> float:
    """Train one run in this process (a fresh one, or a resume from ``run_dir``'s checkpoint); returns the final
    evaluation return. It never exits the process: failures are raised (:data:`KNOWN_FAILURES`)."""
    return loops.drive(steps(cfg, spec, run_dir, record))


def replay_intact(run_dir: Path):
    """A check for :func:`checkpoint.load`: the replay chunks an off-policy checkpoint lists are all readable (a
    damaged newest chunk then falls back to the previous checkpoint, which does not need it)."""
    from rlbase.core.buffer import ReplayBuffer

    def check(state: dict) -> None:
        manifest = state.get("buffer")
        if isinstance(manifest, dict) and "chunks" in manifest:
            ReplayBuffer.verify_chunks(run_dir / "replay", manifest)
    return check


def steps(cfg: DictConfig, spec: envs.EnvSpec, run_dir: Path, record: Optional[Record] = None, agent=None
          ) -> Generator[int, None, float]:
    """:func:`run` one step at a time: yields after each step of its loop, returns the final evaluation return.
    Several runs can so share a process, one step each in turn (:func:`loops.interleave`). With a ``record``, the
    run is accepted (:func:`accept`: its .hydra/ record and train.log written) after the checks against its
    checkpoint, the dataset's and the env's construction, before anything else is written. ``agent``: one already
    built (a seed of a stacked agent, :func:`execute_group`), instead of the algorithm's own."""
    module = algos.get(cfg.algo.name)
    threads, why = auto_threads(cfg, module)
    seeding.set_threads(threads)
    log.info("torch threads: %d (%s)", threads, why)
    if (busy := crowded(threads)) is not None:
        log.warning(busy)
    device = torch.device(cfg.hardware.device)
    resume = checkpoint.load(run_dir, check=replay_intact(run_dir), set_aside=True)
    if resume is not None:
        changed = resume_changes(cfg, run_dir, resume.get("config"))
        if changed:  # before anything of the run is touched (a sweep's rerun included: it has no recorded copy)
            raise BadInput(f"resuming {run_dir} would change {'; '.join(changed)}; a resume may change only "
                           f"{', '.join(RESUME_SAFE[:6])} and the logger.*, hardware.* and eval.* settings (not eval.sample); start a "
                           "new run (without resume= / hydra.run.dir) for other settings")
    if resume is not None and resume.get("algo_starts"):
        for k, v in resume["algo_starts"].items():  # the starts the run began with, whatever total_steps is now
            cfg.algo[k] = v
    key = "total_updates" if getattr(module, "OFFLINE", False) else "total_steps"
    if resume is not None and resume["step"] > cfg[key]:
        raise BadInput(f"{key}={cfg[key]} is below the step of the checkpoint in {run_dir} ({resume['step']}); "
                       f"allowed: {key} >= {resume['step']}")
    if resume is not None and getattr(module, "OFFLINE", False) and resume.get("dataset_sha256"):
        _, meta = data.load(cfg.dataset, spec, keep=True)  # the checkpoint's dataset, checked before the run records anything
        if meta["sha256"] != resume["dataset_sha256"]:
            raise BadInput(f"{data.describe(cfg.dataset)} differs from the one the checkpoint in {run_dir} was trained "
                           "on; resume with the same dataset or start a new run")
    kind = loops.kind_of(module, cfg)  # the algorithm's LOOP unless the run sets loop=<kind> (validate checked it)
    env = loops.make_env(kind, cfg)
    eval_env, _ = envs.make(cfg.env, seeding.stream(cfg.seed, "eval_env"), train=False)
    # The algorithm's own dataclass, not the DictConfig: agents read settings in every update, and an OmegaConf
    # attribute costs microseconds (a third of a DQN run's time; docs/results.md, Speed).
    # Every random draw of the agent comes from its own generators (seeding.AgentRandom), spawned from the seed.
    try:
        if agent is None:
            agent = module.Agent(OmegaConf.to_object(cfg.algo), spec, device, seeding.AgentRandom(cfg.seed, device))
        if record is not None:
            accept(cfg, run_dir, record)  # every check has passed: from here on the run writes its directory
    except BaseException:
        env.close()
        eval_env.close()
        raise
    old = run_dir / "metrics.jsonl"
    if resume is None and old.exists() and old.stat().st_size > 0:  # a failed attempt with no checkpoint: start clean
        n = 1 + len(list(run_dir.glob("metrics.failed-*.jsonl")))
        old.rename(run_dir / f"metrics.failed-{n}.jsonl")
        log.warning("no checkpoint in %s: starting from step 0; the earlier attempt's rows are in metrics.failed-%d.jsonl",
                    run_dir, n)
    try:
        # W&B: the group is <algo>-<env> plus a sweep job's varied settings (or logger.group); the run's name
        # repeats it, so runs listed outside their group (W&B's runs table) are told apart by name too
        group = f"{cfg.algo.name}-{cfg.env.name}{swept_settings(run_dir, '-')}"
        name = f"{cfg.logger.group + '-' if cfg.logger.group else ''}{group}-seed{cfg.seed}"
        logger = Logger(cfg.logger, run_dir, config=OmegaConf.to_container(cfg, resolve=True), group=group, name=name,
                        tags=[cfg.algo.name, cfg.env.name, f"seed{cfg.seed}"],
                        run_id=resume["wandb_id"] if resume else None, resume_step=resume["step"] if resume else None)
    except OSError as e:
        env.close()
        eval_env.close()
        if e.errno in DISK_ERRNOS:
            raise disk_error(e, str(run_dir)) from None
        raise
    log.info("run dir: %s", run_dir)
    try:  # which code, packages and machine made the run (a resume adds its own line)
        rec = provenance.record(run_dir, resumed=resume is not None, threads=threads)
        log.info("code: commit %s%s", (rec["git"]["commit"] or "unknown")[:12], " (dirty tree)" if rec["git"]["dirty"] else "")
    except OSError as e:
        log.warning("could not write the run's provenance record: %s", e)
    exit_code, start = 1, time.time()
    try:
        result = yield from loops.get(kind)(loops.Context(cfg, agent, env, eval_env, spec, logger, run_dir, device,
                                                                 resume))
        logger.summary({"eval/final_return": result["final"], "eval/best_return": result["best"],
                        "time/total_s": time.time() - start})
        if cfg.logger.artifacts:
            log_artifacts(cfg, logger, run_dir)
        checkpoint.mark_done(run_dir)
        if not cfg.get("keep_replay", False) and (run_dir / "replay").is_dir():
            shutil.rmtree(run_dir / "replay", ignore_errors=True)  # a finished run is never resumed (keep_replay=true keeps it)
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


def unfinished_twins(run_dir: Path, overrides: list[str]) -> list[Path]:
    """Other run directories beside ``run_dir`` (same algo, env and seed) with a checkpoint, not finished, whose
    recorded overrides are ``overrides`` (this run's): the run a researcher probably meant to continue."""
    if not run_dir.parent.is_dir():
        return []
    mine = set(overrides)
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
