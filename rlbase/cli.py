"""The one entrypoint: compose -> validate -> seed -> build -> dispatch -> finish.

    python train.py                                  # DQN on CartPole-v1
    python train.py algo=ddpg env=walker2d
    python train.py -m algo=td3,sac env=hopper,walker2d seed=0,1,2
"""

from __future__ import annotations

import logging
import os
import re
import sys
from pathlib import Path
from typing import Any

os.environ.setdefault("MUJOCO_GL", "egl")  # before anything can import mujoco

from rlbase.helptext import print_help, wants_help  # noqa: E402 - light: no torch, Hydra or gymnasium

if wants_help(sys.argv[1:]) and Path(getattr(sys.modules.get("__main__"), "__file__", None) or "").name in (
        "train.py", "rlbase-train", "cli.py"):  # the command line itself: exit before the imports below
    sys.exit(print_help(sys.argv[1:]))


import hydra  # noqa: E402
from hydra.core.hydra_config import HydraConfig  # noqa: E402
from hydra.experimental.callback import Callback  # noqa: E402
from hydra.types import RunMode  # noqa: E402
from omegaconf import DictConfig, OmegaConf  # noqa: E402

from rlbase import data, loops  # noqa: E402
from rlbase.conf import options  # noqa: E402
from rlbase.conf.schema import register  # noqa: E402
from rlbase.core import checkpoint  # noqa: E402
from rlbase.report import sweep  # noqa: E402
from rlbase.runtime import job  # noqa: E402
from rlbase.runtime.job import _LOCKS, KNOWN_FAILURES, exit_code, release  # noqa: E402
from rlbase.runtime.validate import fit_starts, resume_algo_change, validate  # noqa: E402

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


# Hydra's flags that take the next argument as their value (``--info``'s value is optional: one of _INFO)
_VALUED = {"-c", "--cfg", "-p", "--package", "-cp", "--config-path", "-cn", "--config-name", "-cd", "--config-dir",
           "--experimental-rerun"}
_INFO = {"all", "config", "defaults", "defaults-tree", "plugins", "searchpath"}


def flags_first(argv: list[str]) -> list[str]:
    """The command line with Hydra's flags (``-m``, ``--cfg job``, ...) moved in front of the overrides, each
    order kept. Hydra reads the overrides as one run of positional arguments, so ``train.py algo=td3 -m seed=0,1``
    would otherwise stop at ``-m`` and refuse ``seed=0,1`` as unrecognised. An override never starts with ``-``."""
    flags, overrides, i = [], [], 0
    while i < len(argv):
        arg = argv[i]
        if not arg.startswith("-"):
            overrides.append(arg)
        elif (arg in _VALUED or (arg in ("-i", "--info") and i + 1 < len(argv) and argv[i + 1] in _INFO)) \
                and i + 1 < len(argv) and not argv[i + 1].startswith("-"):
            flags += argv[i:i + 2]
            i += 1
        else:
            flags.append(arg)
        i += 1
    return [*flags, *overrides]


def precheck(argv: list[str]) -> list[str]:
    """Checks on the raw command line, before Hydra creates a run directory.

    Unknown group options get one line listing the allowed ones; integral step counts written as
    ``1e6`` become ``1000000``; an argument Hydra's grammar refuses is one line (exit 2). The run directory's
    checks (finished, in use, a resume's settings) are the job's (:func:`rlbase.runtime.job.execute`), on the
    directory Hydra resolved: Hydra itself writes nothing there (``hydra.output_subdir: null``).
    """
    argv = flags_first(expand_resume(argv))  # resume= puts the saved overrides first: sort after it
    check_grammar(argv)
    out = []
    for arg in argv:
        key, sep, value = arg.partition("=")
        items = values(arg) if sep and not arg.startswith("-") else None
        if items is None:
            out.append(arg)
            continue
        bare = key.lstrip("+~")
        if bare in GROUPS:
            allowed = options(bare)
            for choice in items:
                if choice not in allowed:
                    fail(f"unknown {bare} option {choice!r}; allowed: {', '.join(allowed)}")
        raw = value.split(",")  # a plain value or a plain a,b sweep of numbers: integral 1e6 becomes 1000000
        if len(raw) == len(items) and any(_SCI_INT.match(v) and float(v).is_integer() for v in raw):
            arg = f"{key}={','.join(str(int(float(v))) if _SCI_INT.match(v) and float(v).is_integer() else v for v in raw)}"
        out.append(arg)
    out = group_seeds(out)
    compose_check(out)
    return name_swept_settings(out)


def group_seeds(argv: list[str]) -> list[str]:
    """``-m ... seed=0,1,2,3,4 hardware.seeds_per_process=2``: the swept seeds run two at a time in one process.
    The seed sweep becomes a sweep over each group's first seed, and ``hardware.seed_list`` names all of them, so
    the job of seed 0 trains seeds 0 and 1, the job of seed 2 seeds 2 and 3, the job of seed 4 seed 4 alone."""
    if not any(a in ("-m", "--multirun") for a in argv):
        return argv
    per = [a.partition("=")[2] for a in argv if a.lstrip("+").partition("=")[0] == "hardware.seeds_per_process"]
    seed_args = [a for a in argv if a.lstrip("+~").partition("=")[0] == "seed"]
    if not per or not seed_args or not per[-1].isdigit() or int(per[-1]) < 2:
        return argv
    from hydra.core.override_parser.overrides_parser import OverridesParser

    k = int(per[-1])
    parsed = OverridesParser.create().parse_overrides([seed_args[-1]])[0]
    values = [int(v) for v in (parsed.sweep_string_iterator() if parsed.is_sweep_override() else [parsed.value()])]
    if len(values) == 1:  # one seed: it and the K-1 after it, as a plain run does
        values = list(range(values[0], values[0] + k))
    firsts = values[::k]
    out = [a for a in argv if a not in seed_args and a.lstrip("+").partition("=")[0] != "hardware.seed_list"]
    return [*out, f"seed={','.join(map(str, firsts))}", f"hardware.seed_list=[{','.join(map(str, values))}]"]


def check_slurm(config: DictConfig) -> None:
    """``hardware=slurm`` (or ``hydra/launcher=submitit_slurm``) on a machine without Slurm: one line naming what is
    missing and how to run here, instead of submitit's traceback once Hydra has started the sweep."""
    import shutil

    choices = config.hydra.runtime.choices
    asked = next((f"{group}={choices.get(group)}" for group in ("hardware", "hydra/launcher")
                  if choices.get(group) in ("slurm", "submitit_slurm")), None)
    missing = [tool for tool in ("sbatch", "srun") if shutil.which(tool) is None]
    if asked is not None and missing:
        fail(f"{asked} submits each run as a Slurm job, but {' and '.join(missing)} "
             f"{'is' if len(missing) == 1 else 'are'} not on PATH (no Slurm on this machine); to run here, drop "
             f"{asked} (hardware=gpu for a GPU), or run a sweep as local processes with -m "
             "hydra/launcher=submitit_local")


def check_grammar(argv: list[str]) -> None:
    """Every ``key=value`` argument as Hydra's override grammar reads it: an error is one line, exit 2, before
    Hydra starts (nothing is created), instead of Hydra's lexer report and exit 1."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    parser = OverridesParser.create()
    for arg in argv:
        if arg.startswith("-") or "=" not in arg:
            continue
        try:
            parser.parse_override(arg)
        except Exception as e:  # noqa: BLE001 - Hydra's OverrideParseException and lexer errors
            first = str(e).splitlines()[0] if str(e) else type(e).__name__
            key = arg.partition("=")[0]
            hint = " (quote a value with spaces or special characters: key='a value')" if key.startswith("hydra.") else ""
            fail(f"cannot read {arg!r}: {first}{hint}")


def check_writable(target: Path, key: str) -> None:
    """Where the run (or sweep) will write must be writable: a read-only file system or a directory without
    permission is one line before Hydra tries to create anything there."""
    existing = target.absolute()
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if existing.exists() and not os.access(existing, os.W_OK):
        fail(f"cannot write {target}: {existing} is read-only or not writable by this user; pick another directory "
             f"({key}=...)", 1)
    probe = existing / f".rlbase-space-check-{os.getpid()}"  # room for the run's config, logs and first rows?
    try:
        with open(probe, "wb") as f:
            f.write(bytes(SPACE_NEEDED))
    except OSError as e:
        fail(f"cannot write {target}: {e.strerror or e} in {existing} (a run needs at least "
             f"{SPACE_NEEDED // 1024} KiB to start); free space or pick another directory ({key}=...)", 1)
    finally:
        probe.unlink(missing_ok=True)


class Checks(Callback):
    """Hydra's start-of-run and start-of-sweep checks (``hydra.callbacks.checks`` in conf/config.yaml). They run once
    Hydra has composed the config and before it creates any directory or starts any job: Slurm where a launcher needs
    it, every combination of a sweep composed and validated, the run's or sweep's directory writable."""

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        check_slurm(config)
        check_writable(Path(config.hydra.run.dir), "hydra.run.dir")

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        check_slurm(config)
        from hydra import compose

        saved = HydraConfig.instance().cfg  # composing the combinations must leave this sweep's Hydra config as it is
        try:
            check_sweep(compose, [o for o in config.hydra.overrides.task
                                  if "=" in o and not o.lstrip("+~").startswith(("hydra.", "hydra/"))])
        finally:
            HydraConfig.instance().cfg = saved
        check_writable(Path(config.hydra.sweep.dir), "hydra.sweep.dir")


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
        swept = "(" in value or len(values(a) or [value]) > 1
        (keep if swept and key not in identity else drop).add(key)
    drop -= keep
    return [*argv, f"{_EXCLUDE}=[{','.join(sorted(drop))}]"]


def compose_check(argv: list[str]) -> None:
    """Compose the config as Hydra will (the first value of each sweep), so a wrong type or an unknown key fails
    in one line before Hydra starts, instead of Hydra's multi-line report."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    overrides = [a for a in argv if not a.startswith("-") and "=" in a
                 and not a.lstrip("+~").startswith(("hydra.", "hydra/"))]
    multirun = any(a in ("-m", "--multirun") for a in argv)
    if multirun:
        overrides = [(sweep_values(a) or [a])[0] for a in overrides]
    register()
    GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
            try:
                cfg = compose(config_name="config", overrides=overrides)
            except Exception as e:  # Hydra's and OmegaConf's composition errors
                parts = [str(e).splitlines()[0].rstrip(".")] if str(e) else []
                if e.__cause__ is not None and str(e.__cause__):
                    parts.append(str(e.__cause__).splitlines()[0])
                if parts and parts[0].startswith("Ambiguous value for argument"):
                    parts.append("to sweep over these values add --multirun (-m); for a list write key=[a,b]")
                allowed = _allowed_keys(compose, overrides, e)
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


def values(arg: str) -> list[str] | None:
    """The values one ``key=value`` argument stands for, read with Hydra's own override parser: one for a plain value
    (a list ``[a,b]`` is one value), each of a sweep's (``a,b``, ``range()``, ``choice()``, ``glob()`` over a group's
    options); None for a sweep that cannot be listed (``interval()``) or an argument Hydra's grammar refuses."""
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.core.override_parser.types import Glob

    try:
        override = OverridesParser.create().parse_override(arg)
        if not override.is_sweep_override():
            return [override.get_value_element_as_str(override.value())] if override.value() is not None else [""]
        if isinstance(override.value(), Glob):
            return override.value().filter(options(override.key_or_group))
        return list(override.sweep_string_iterator())
    except Exception:  # noqa: BLE001 - grammar errors (check_grammar reports them) and sweeps that cannot be listed
        return None


def sweep_values(arg: str) -> list[str] | None:
    """The ``key=value`` overrides a sweep argument stands for (:func:`values`); ``[]`` for a plain argument, None
    for a sweep that cannot be listed or an argument Hydra's grammar refuses (Hydra then says so)."""
    listed = values(arg)
    if listed is None or "=" not in arg:
        return None
    from hydra.core.override_parser.overrides_parser import OverridesParser

    if not OverridesParser.create().parse_override(arg).is_sweep_override():
        return []
    key = arg.partition("=")[0]
    return [f"{key}={v}" for v in listed]


MAX_SWEEP_CHECKS = 400  # combinations composed and validated before a sweep starts (beyond: the first value only)


def check_sweep(compose, overrides: list[str]) -> None:
    """Compose and validate every combination of a sweep before its first job: one line per invalid combination,
    and the sweep is refused (exit 2) if there is any. Values are listed by Hydra's own parser (``a,b``, range(),
    choice(), glob() over a group's options); sweeps it cannot list (interval()) or with more than
    ``MAX_SWEEP_CHECKS`` combinations are checked at their first value only."""
    import itertools

    axes = [sweep_values(o) for o in overrides]
    if any(axis is None for axis in axes):
        return
    axes = [axis or [o] for axis, o in zip(axes, overrides)]
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
    data.forget()  # an offline sweep's dataset, read once for all combinations: its jobs read it themselves
    if problems:
        print("\n".join(f"error: {p}" for p in problems), file=sys.stderr)
        fail(f"{len(problems)} of {len(combos)} combinations of this sweep are invalid (above); nothing was run")


def _allowed_keys(compose, overrides: list[str], error: Exception) -> str:
    """For an unknown key ``a.b.c`` (the key OmegaConf's error names, ``full_key``): the keys ``a.b`` does have."""
    from omegaconf.errors import ConfigAttributeError, ConfigKeyError

    cause = error.__cause__
    full_key = getattr(cause, "full_key", None) if isinstance(cause, (ConfigAttributeError, ConfigKeyError)) else None
    if not full_key or "." not in full_key:
        return ""
    parent = full_key.rsplit(".", 1)[0]
    rest = [o for o in overrides if not o.partition("=")[0].lstrip("+~").startswith(full_key)]
    try:
        node = OmegaConf.select(compose(config_name="config", overrides=rest), parent)
        return ", ".join(sorted(node.keys())) if node is not None else ""
    except Exception:  # noqa: BLE001 - the hint is optional
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
    group = run_dir / ".hydra" / job.SEED_GROUP
    if checkpoint.is_done(run_dir) and group.exists():  # a finished seed of a group: resume the group's others
        from omegaconf import OmegaConf as _OC

        others = [Path(m["run_dir"]) for m in _OC.to_container(_OC.load(group))]
        unfinished = [d for d in others if checkpoint.exists(d) and not checkpoint.is_done(d)
                      and not (d / job.DIVERGED).exists()]
        if unfinished:
            run_dir, saved = unfinished[0], unfinished[0] / ".hydra" / "overrides.yaml"
    if checkpoint.is_done(run_dir):
        fail(f"resume={run_dir}: that run is finished (results in {run_dir}/metrics.jsonl); nothing to resume")
    from omegaconf import OmegaConf

    try:
        recorded = OmegaConf.to_container(OmegaConf.load(saved))
    except Exception as e:  # noqa: BLE001 - YAML errors of any kind
        recorded = f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"
    if not isinstance(recorded, list) or not all(isinstance(a, str) and ("=" in a or a.startswith("~")) for a in recorded):
        why = recorded if isinstance(recorded, str) else "not a list of key=value overrides"
        fail(f"resume={run_dir}: {saved} is damaged ({why}); nothing was changed. To resume, give the run's "
             f"settings again with hydra.run.dir={run_dir} (the checkpoint refuses any that differ)")
    if not checkpoint.exists(run_dir):
        fail(f"resume={run_dir}: no checkpoint there (the run stopped before its first); nothing was changed. To "
             f"start it again: python train.py {' '.join(recorded)}")
    if (why := resume_algo_change(run_dir, rest)) is not None:  # before its overrides meet another algo's schema
        fail(why)
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


def explicit_keys() -> set[str]:
    """Keys set on this run's command line (a tuned file's values count as defaults: they were not chosen here)."""
    return {o.partition("=")[0].lstrip("+~") for o in HydraConfig.get().overrides.task}


@hydra.main(version_base="1.3", config_path="conf", config_name="config")
def main(cfg: DictConfig) -> float:
    from rlbase.core.nets import compiler_marks_skipped

    hc = HydraConfig.get()
    with compiler_marks_skipped():  # a job compiles nothing: no compiler import for torch's optimizer marks
        return _job(cfg, hc, Path(hc.runtime.output_dir), hc.mode == RunMode.MULTIRUN)


def _job(cfg: DictConfig, hc: DictConfig, run_dir: Path, multirun: bool) -> float:
    """One job (:func:`rlbase.runtime.job.execute`): failures in :data:`KNOWN_FAILURES` become one line and their
    exit code here (in a sweep: a log line, and the job counts as failed, except a finished job asked for other
    settings, which stops the sweep); anything else is a bug and keeps its traceback."""
    try:
        if cfg.hardware.seeds_per_process > 1:
            finals = job.execute_seeds(cfg, hc, run_dir, multirun)
            done = [f for f in finals if f == f]  # the seeds' mean final return (NaN: a seed without one)
            return sum(done) / len(done) if done else float("nan")
        return job.execute(cfg, run_dir, list(hc.overrides.task), hc, sweep=multirun)
    except Exception as e:
        known = isinstance(e, KNOWN_FAILURES)
        if isinstance(e, loops.Interrupted):
            sys.exit(exit_code(e))  # a signal stops the process, sweep or not (submitit requeues it)
        if multirun and not isinstance(e, job.SweepChanged):
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


def cli(argv: list[str]) -> int:
    """``python train.py <argv>`` in this process; returns the exit code it would have. Nothing of one call stays
    behind for the next (run-directory locks, recorded configs, Hydra's global state, its log file handlers), so
    tests and scripts can call it many times in one process."""
    from hydra.core.global_hydra import GlobalHydra

    if wants_help(argv):  # answered from the config files, without Hydra (see print_help)
        return print_help(list(argv))
    register()
    saved = sys.argv
    try:
        sweep.COMMAND = [saved[0] if saved else "train.py", *argv]  # the report names the command as typed
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
        sweep.COMMAND = None
        sys.argv = saved
        for key in list(_LOCKS):
            release(Path(key))
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
