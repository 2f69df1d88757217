"""Hyperparameter search over seeds, with Optuna: every trial runs the same seeds and scores their mean.

    python scripts/tune.py algo=td3 env=hopper total_steps=100000 --space td3 --trials 20 --seeds 3 \\
        --study runs/tune/td3-hopper
    python scripts/tune.py --study runs/tune/td3-hopper --report        # the table and the best command line

The positional arguments are overrides for every run (Hydra's grammar, as ``python train.py``); ``--space`` is the
search space: a YAML mapping, from a file, a name in ``rlbase/conf/tune/`` (default: the algorithm's name) or
inline::

    algo.lr: {type: float, low: 1.0e-4, high: 1.0e-3, log: true}      # also step: ...; type: int likewise
    algo.batch_size: {type: categorical, choices: [128, 256]}          # or the list alone: [128, 256]
    algo.actor_lr,algo.critic_lr: {type: float, low: 1.0e-4, high: 1.0e-3, log: true}   # one value for both

Keys are ``algo.<setting>`` of the algorithm's config or ``env.<setting>`` (the budget, schedule and seeds are fixed
for a study). The space is checked against the composed config before anything runs: an unknown key, a type the
setting cannot take, a range outside what the setting allows (``rlbase.core.settings``) or a malformed range is one
line (exit 2), and no study directory is made.

Trial ``k`` runs seeds ``seed_base .. seed_base + seeds - 1`` (the same for every trial, so trials are compared on
the same seeds, and pruning between seeds compares like with like) through :func:`rlbase.run`, in this process, one
after the other, each in ``<study>/trial<k>/seed<s>``. A run's score is ``--stat``: ``last3`` (default: the mean of
its last three evaluations, less noisy than the last one), ``last<k>``, ``final`` or ``best``; the trial's objective
is the mean of its seeds' scores (maximised), each seed's score a user attr ``seed<s>`` of the trial.

The study lives in ``<study>/journal.log`` (Optuna's JournalFileBackend: a file, no database server), so several
processes running the same command, on one machine or as Slurm jobs on a shared file system, work on one study;
``--trials`` is the study's total, counted across them. Re-running the command continues the study; nothing of a
finished trial is run again. A trial whose process was stopped (Ctrl-C, SIGTERM/SIGUSR1/SIGUSR2, SIGKILL, a crash)
is marked failed (user attr ``interrupted``) and retried with the same parameters as a new trial that works in the
stopped trial's directory: its finished seeds are read, not rerun, and its unfinished runs resume from their
checkpoints (``rlbase.run`` on the same directory; a run stopped before its first checkpoint starts again there, its
earlier rows kept in ``metrics.failed-<n>.jsonl``). A live trial holds ``<study>/.locks/trial<k>``; a running
trial whose lock is free has lost its process. A trial whose sampled combination the config refuses (e.g. a batch
larger than the buffer) fails for good in one line; one whose run diverges (a NaN) is pruned, as RL-Zoo does.

``--workers N`` (N > 1) or ``--launcher joblib|submitit_local|submitit_slurm`` starts the study's workers through that
Hydra launcher, one job each, and waits for them before the report::

    python scripts/tune.py algo=dqn env=cartpole --trials 20 --seeds 3 --study runs/tune/dqn --workers 4 \\
        [--launcher submitit_slurm hydra.launcher.partition=<yours>]

Everything is checked first, as above (the launcher, its ``hydra.launcher.<key>=<value>`` settings on the command
line, Slurm's ``sbatch`` on PATH: one line, exit 2, no study made); then the study is made or opened, and
``rlbase/tune_app.py`` (config ``conf/tune_launch.yaml``) runs in multirun mode with ``worker=range(N)``, its sweep in
``<study>/launch/<time>_<pid>/`` (``launch.json``: what the workers run; ``worker<i>/result.json``: each one's exit
code). Each job is this module's loop above, in its process, on the same journal (:func:`work`). The launcher is
``joblib`` by default (``n_jobs`` = N), ``submitit_slurm`` under ``hardware=slurm`` (with its launcher settings);
``submitit_local`` jobs get a week's ``timeout_min``. On this machine each worker's runs get ``hardware.threads`` =
cores // workers (at most what the algorithm gains from) unless the command line sets it; on Slurm, each job's own
cores. A signal to the command stops the local workers as Ctrl-C stops one (their trials are retried on the next
start); under Slurm it stops the waiting only. A worker that fails or dies (its trial is marked failed and retried,
by another worker or the next start) makes the exit code 1 with one line naming it, after the report; under joblib a
worker's death breaks joblib's pool and stops the others too, submitit_local's jobs go on. No more workers are
started than trials are left. A job stopped by Slurm's time-limit signal requeues itself through submitit
(``max_num_timeout``; ``hardware=slurm`` allows 20) and continues the study.

The study records what it was made with (the composed config, the space, the seeds, the statistic): a re-run with
other settings is refused in one line; only settings that do not change results (``hardware.*``, ``logger.*``,
``progress``, ``keep_replay``, ``checkpoint_every``) and ``--trials`` may differ.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import dataclasses
import datetime
import fcntl
import json
import logging
import math
import os
import re
import shlex
import shutil
import signal
import sys
from pathlib import Path
from typing import Any, Optional

import yaml

SPACES = Path(__file__).resolve().parent / "conf" / "tune"
JOURNAL = "journal.log"
STUDY_NAME = "tune"
SEED_BASE = 100  # apart from the seeds everyday runs use (0-4) and from the protocols' fresh ones (1000s-4000s)
TYPES = {"float": ("low", "high", "log", "step"), "int": ("low", "high", "log", "step"), "categorical": ("choices",)}
# env settings a space may search: those that shape the data, not the task, its budget or its schedule
ENV_FIXED = ("name", "id", "max_episode_steps", "total_steps", "eval_every", "kwargs")
FITTED = ("algo.random_steps", "algo.learning_starts")  # a run records these when it fits them to the budget
NUMBER = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?")


class TuneError(ValueError):
    """Input a study cannot start or continue with: one line, exit code 2, nothing run."""


class Stopped(Exception):
    """A signal asked this worker to stop between runs."""

    def __init__(self, signum: int):
        super().__init__(f"stopped by {signal.Signals(signum).name}")
        self.signum = signum


# ----------------------------------------------------------------------------------------------- the search space


@dataclasses.dataclass(frozen=True)
class Param:
    """One dimension of the space: the space's key (one setting, or several comma-separated that share its value)."""

    name: str
    type: str
    low: Any = None
    high: Any = None
    log: bool = False
    step: Any = None
    choices: Optional[tuple] = None  # Optuna's primitives; a list choice is kept as its override text "[256,256]"

    @property
    def settings(self) -> list[str]:
        return self.name.split(",")

    def suggest(self, trial) -> Any:
        if self.type == "categorical":
            return trial.suggest_categorical(self.name, list(self.choices))
        if self.type == "int":
            return trial.suggest_int(self.name, self.low, self.high, step=self.step or 1, log=self.log)
        return trial.suggest_float(self.name, self.low, self.high, step=self.step, log=self.log)

    def overrides(self, value: Any) -> list[str]:
        return [f"{s}={override_text(value)}" for s in self.settings]

    def as_dict(self) -> dict:
        d = {"name": self.name, "type": self.type}
        if self.type == "categorical":
            d["choices"] = list(self.choices)
        else:
            d.update(low=self.low, high=self.high, log=self.log, step=self.step)
        return d


def override_text(v: Any) -> str:
    """A value as Hydra's override grammar reads it back (floats round-trip through ``repr``)."""
    if isinstance(v, bool):
        return "true" if v else "false"
    if v is None:
        return "null"
    if isinstance(v, (list, tuple)):
        return "[" + ",".join(override_text(x) for x in v) + "]"
    return repr(v) if isinstance(v, float) else str(v)


def _number(v: Any) -> Any:
    """PyYAML reads ``1e-4`` as text (YAML 1.1); Hydra's loader reads it as a number, and so do we."""
    if isinstance(v, str) and NUMBER.fullmatch(v.strip()):
        return float(v) if any(c in v for c in ".eE") else int(v)
    if isinstance(v, list):
        return [_number(x) for x in v]
    return v


def read_space(source: Optional[str], algo_name: str) -> tuple[str, Any]:
    """(label, parsed YAML) of ``--space``: a file, a name in rlbase/conf/tune/, an inline mapping, or (None) the
    algorithm's own file."""
    shipped = sorted(p.stem for p in SPACES.glob("*.yaml"))
    if source is None:
        path = SPACES / f"{algo_name}.yaml"
        if not path.is_file():
            raise TuneError(f"no --space given and rlbase/conf/tune/ has no {algo_name}.yaml; give --space <file, "
                            f"name or inline mapping> (shipped: {', '.join(shipped)})")
        source = str(path)
    if source.lstrip().startswith("{"):
        label, text = "(inline)", source
    elif Path(source).is_file():
        label, text = source, Path(source).read_text()
    elif re.fullmatch(r"[\w-]+", source) and (SPACES / f"{source}.yaml").is_file():
        label, text = f"rlbase/conf/tune/{source}.yaml", (SPACES / f"{source}.yaml").read_text()
    else:
        raise TuneError(f"--space {source}: no such file, not a shipped space ({', '.join(shipped)}) and not an "
                        "inline mapping ('{algo.lr: {type: float, low: 1.0e-4, high: 1.0e-3, log: true}}')")
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise TuneError(f"space {label}: not YAML: {' '.join(str(e).split())}") from None
    return label, raw


def _schema_fields(cfg, prefix: str) -> dict[str, dataclasses.Field]:
    from rlbase import algos, envs

    if prefix == "algo":
        return {f.name: f for f in dataclasses.fields(algos.get(cfg.algo.name).Config) if f.name != "name"}
    return {f.name: f for f in dataclasses.fields(envs.EnvConfig) if f.name not in ENV_FIXED}


def _kind(f: dataclasses.Field) -> str:
    """int, float, bool, text or structure, from the field's annotation (a string under postponed annotations)."""
    t = str(f.type)
    for kind, pattern in (("structure", r"\b(list|dict|tuple|List|Dict|Any)\b"), ("bool", r"\bbool\b"),
                          ("text", r"\bstr\b"), ("int", r"\bint\b"), ("float", r"\bfloat\b")):
        if re.search(pattern, t):
            return kind
    return "structure"


def _check_value(v: Any, fields: dict[str, dataclasses.Field], cfg, label: str) -> None:
    """Every setting of a space key can take ``v`` (its type), within what the setting allows (its declared range)."""
    from rlbase.core import settings

    for s, f in fields.items():
        prefix, _, field = s.partition(".")
        node = copy.deepcopy(cfg[prefix])
        try:
            node[field] = v
        except Exception as e:  # noqa: BLE001 - OmegaConf's type conversion
            raise TuneError(f"space {label}: {s}={override_text(v)}: {str(e).splitlines()[0]}") from None
        a = settings.allowed(f)
        if a is not None and not (isinstance(v, bool) and a.choices is None) and not a.ok(node[field]):
            raise TuneError(f"space {label}: {a.message(s, override_text(v))}")


def parse_space(raw: Any, label: str, cfg, fixed: list[str]) -> list[Param]:
    """The space, checked against the composed base config ``cfg`` (one line for the first problem)."""
    if not isinstance(raw, dict) or not raw:
        raise TuneError(f"space {label}: expected a mapping of setting -> {{type: float|int|categorical, ...}} "
                        "(e.g. algo.lr: {type: float, low: 1.0e-4, high: 1.0e-3, log: true})")
    fixed_keys = {o.partition("=")[0].lstrip("+~"): o for o in fixed}
    seen: set[str] = set()
    params = []
    for key, spec in raw.items():
        name = ",".join(s.strip() for s in str(key).split(","))
        where = f"space {label}: {name}"
        fields = {}
        for s in name.split(","):
            prefix, _, field = s.partition(".")
            if prefix not in ("algo", "env") or not field or "." in field:
                raise TuneError(f"space {label}: {s} cannot be searched: a study fixes the task, budget, schedule and "
                                f"seeds; allowed: algo.<setting> of algo={cfg.algo.name} or env.<setting> "
                                f"({', '.join('env.' + k for k in _schema_fields(cfg, 'env'))})")
            own = _schema_fields(cfg, prefix)
            if field not in own:
                what = f"algo={cfg.algo.name}" if prefix == "algo" else "env"
                raise TuneError(f"space {label}: {s} is not a setting of {what} that a study can search; allowed: "
                                f"{', '.join(f'{prefix}.{k}' for k in sorted(own))}")
            if s in fixed_keys:
                raise TuneError(f"space {label}: {s} is also set on the command line ({fixed_keys[s]}); a setting is "
                                "either fixed or searched")
            if s in seen:
                raise TuneError(f"space {label}: {s} appears twice in the space")
            seen.add(s)
            fields[s] = own[field]
        if isinstance(spec, list):
            spec = {"type": "categorical", "choices": spec}
        forms = "{type: float|int, low: L, high: H[, log: true][, step: S]} or {type: categorical, choices: [...]}"
        if isinstance(spec, dict) and "type" not in spec:
            raise TuneError(f"{where}: no type (fields given: {', '.join(map(str, spec))}); allowed: {forms} (YAML "
                            "needs a space after each colon)")
        if not isinstance(spec, dict) or spec.get("type") not in TYPES:
            got = spec.get("type") if isinstance(spec, dict) else spec
            raise TuneError(f"{where}: type {got!r} is not supported; allowed: {forms}")
        kind = spec["type"]
        extra = sorted(set(spec) - {"type", *TYPES[kind]})
        if extra:
            raise TuneError(f"{where}: unknown field {', '.join(map(str, extra))}; allowed for type {kind}: "
                            f"{', '.join(TYPES[kind])}")

        if kind == "categorical":
            choices = _number(spec.get("choices"))
            texts = [json.dumps(c, sort_keys=True) for c in choices] if isinstance(choices, list) else []
            if not texts or len(set(texts)) != len(texts):
                raise TuneError(f"{where}: choices must be a non-empty list without repeats (have {choices!r})")
            for c in choices:
                ok = c is None or isinstance(c, (bool, int, float, str)) or (
                    isinstance(c, list) and all(isinstance(x, (bool, int, float, str)) for x in c))
                if not ok:
                    raise TuneError(f"{where}: choice {c!r} is not a number, text, true/false, null or a list of those")
                _check_value(c, fields, cfg, label)
            params.append(Param(name, kind, choices=tuple(override_text(c) if isinstance(c, list) else c
                                                          for c in choices)))
            continue
        for s, f in fields.items():
            k = _kind(f)
            if k in ("bool", "text", "structure"):
                what = {"bool": "a true/false", "text": "a text", "structure": "a list"}[k]
                raise TuneError(f"space {label}: {s} is {what} setting; search it with type: categorical, choices: [...]")
            if k == "int" and kind == "float":
                raise TuneError(f"space {label}: {s} is an integer setting; use type: int (or categorical)")
        low, high, step, log = (_number(spec.get(k)) for k in ("low", "high", "step", "log"))
        if low is None or high is None:
            raise TuneError(f"{where}: type {kind} needs low and high")
        for k, v in (("low", low), ("high", high), *((("step", step),) if step is not None else ())):
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
                raise TuneError(f"{where}: {k}={v!r} is not a finite number")
            if kind == "int" and not float(v).is_integer():
                raise TuneError(f"{where}: type int needs whole numbers (have {k}={v})")
        if log is not None and not isinstance(log, bool):
            raise TuneError(f"{where}: log={log!r} must be true or false")
        log = bool(log)
        if kind == "int":
            low, high, step = int(low), int(high), (int(step) if step is not None else None)
        else:
            low, high, step = float(low), float(high), (float(step) if step is not None else None)
        if not low < high:
            raise TuneError(f"{where}: low={low:g} is not below high={high:g} (one value is a fixed setting: put it "
                            "on the command line)")
        if log and low <= 0:
            raise TuneError(f"{where}: log=true needs low > 0 (have low={low:g})")
        if step is not None and (step <= 0 or log):
            raise TuneError(f"{where}: step={step:g} must be > 0 and cannot be combined with log=true")
        _check_value(low, fields, cfg, label)
        _check_value(high, fields, cfg, label)
        params.append(Param(name, kind, low=low, high=high, log=log, step=step))
    return params


# ------------------------------------------------------------------------------------------------ the study setup


@dataclasses.dataclass
class Setup:
    study_dir: Path
    overrides: list[str]  # for every run (the command line's positional arguments)
    space: list[Param]
    seeds: list[int]
    stat: str
    trials: int
    prune: bool = False
    extra: list[str] = dataclasses.field(default_factory=list)  # run-only settings (hardware.*): not the study's

    def definition(self, cfg) -> dict:
        return {"overrides": self.overrides, "config": comparable(cfg), "space": [p.as_dict() for p in self.space],
                "seeds": self.seeds, "stat": self.stat}


def _safe(key: str) -> bool:
    from rlbase.runtime.job import RERUN_SAFE

    return key.split(".")[0] in RERUN_SAFE


def _flat(node: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(node, dict):
        out: dict[str, Any] = {}
        for k, v in node.items():
            out.update(_flat(v, f"{prefix}{k}."))
        return out
    return {prefix[:-1]: node}


def comparable(cfg) -> dict[str, Any]:
    """The composed config's settings that change results (the seed is the study's), flat and JSON-clean."""
    from omegaconf import OmegaConf

    flat = _flat(OmegaConf.to_container(cfg, resolve=True))
    return json.loads(json.dumps({k: v for k, v in sorted(flat.items()) if not _safe(k) and k != "seed"}))


def check_overrides(overrides: list[str]) -> None:
    for o in overrides:
        key = o.partition("=")[0].lstrip("+~")
        if o.startswith("-"):
            raise TuneError(f"{o}: unknown option (overrides are key=value; see --help)")
        if "=" not in o and not o.startswith("~"):
            raise TuneError(f"{o}: not an override (key=value, as python train.py takes)")
        if key in ("seed", "resume") or key.startswith("hydra.") or key in ("hydra", "sweep"):
            raise TuneError(f"{o}: set by the tuner (seeds: --seeds and --seed-base; run directories: "
                            "<study>/trial<k>/seed<s>)")


def compose_base(overrides: list[str], choices: Optional[dict] = None):
    """The composed config of every run's fixed settings, validated as a run would be (one line on failure);
    ``choices``, if given, receives Hydra's group choices (``hardware``, ``hydra/launcher``, ...)."""
    from rlbase.runtime.api import compose
    from rlbase.runtime.validate import ConfigError, validate, validate_tuned

    try:
        cfg, hydra_cfg = compose(overrides)
        validate_tuned(dict(hydra_cfg.runtime.choices))
        validate(cfg)
    except ConfigError as e:
        raise TuneError(str(e)) from None
    finally:
        from rlbase import data

        data.forget()  # the trials read an offline dataset themselves
    if choices is not None:
        choices.update({k: v for k, v in hydra_cfg.runtime.choices.items()})
    return cfg


def describe_stat(stat: str) -> str:
    """What a run's score is, after "each run's score, ..."."""
    if stat == "final":
        return "final: its last evaluation's mean return"
    if stat == "best":
        return "best: its best evaluation's mean return"
    return f"{stat}: the average of its last {stat[4:]} evaluations' mean returns"


def run_score(run_dir: Path, stat: str) -> float:
    """A run's score from its ``metrics.jsonl``: ``final``, ``best`` or ``last<k>`` (mean of the last k evaluations)."""
    from rlbase.core.logger import read_metrics

    evals = [float(r["eval/return_mean"]) for r in read_metrics(run_dir / "metrics.jsonl") if "eval/return_mean" in r]
    if not evals:
        return float("nan")
    if stat == "final":
        return evals[-1]
    if stat == "best":
        return max(evals)
    tail = evals[-int(stat[4:]):]
    return sum(tail) / len(tail)


def parse_stat(stat: str) -> str:
    if stat in ("final", "best") or (re.fullmatch(r"last[1-9]\d*", stat) is not None):
        return "final" if stat == "last1" else stat
    raise TuneError(f"--stat {stat}: allowed: last3 (default), last<k>, final, best")


# ------------------------------------------------------------------------------------------------ locks and study


@contextlib.contextmanager
def study_lock(study_dir: Path):
    """One worker at a time recovers stopped trials, counts and starts a trial (the journal's own lock guards each
    write; this one makes the count and the start one step)."""
    f = open(study_dir / ".tune.lock", "a+")
    try:
        try:
            fcntl.flock(f, fcntl.LOCK_EX)
        except OSError as e:  # a file system without flock: one worker at a time, then
            logging.getLogger("tune").warning("cannot lock %s (%s): run one worker per study here", f.name, e)
        yield
    finally:
        f.close()


def hold_trial(study_dir: Path, number: int):
    d = study_dir / ".locks"
    d.mkdir(exist_ok=True)
    f = open(d / f"trial{number}", "a+")
    try:
        fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        f.truncate(0)
        f.write(f"{os.getpid()}\n")
        f.flush()
    except OSError:
        pass  # no flock here: stale trials are then not told apart from live ones (alive() says live)
    return f


def alive(study_dir: Path, number: int) -> bool:
    """Whether a process still holds trial ``number`` (the OS drops the lock on any exit, SIGKILL included)."""
    path = study_dir / ".locks" / f"trial{number}"
    if not path.exists():
        return False
    with open(path, "a+") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        except OSError:
            return True  # cannot tell: never take a live worker's trial
        return False


def open_study(study_dir: Path, prune: bool = False):
    import optuna
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage = JournalStorage(JournalFileBackend(str(study_dir / JOURNAL)))
    pruner = optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=0) if prune else optuna.pruners.NopPruner()
    study = optuna.create_study(study_name=STUDY_NAME, storage=storage, direction="maximize",
                                sampler=optuna.samplers.TPESampler(), pruner=pruner, load_if_exists=True)
    return study, storage


def definition_changes(old: dict, new: dict) -> list[str]:
    out = []
    oc, nc = old.get("config", {}), new["config"]
    for k in sorted(set(oc) | set(nc)):
        if oc.get(k, "<unset>") != nc.get(k, "<unset>"):
            out.append(f"{k}={nc.get(k, '<unset>')} (the study has {oc.get(k, '<unset>')})")
    for k in ("space", "seeds", "stat"):
        if old.get(k) != new[k]:
            out.append(f"{k} differs (the study has {json.dumps(old.get(k))})")
    return out


def _retry_pending(trials) -> set[int]:
    return {t.user_attrs["retry_of"] for t in trials if "retry_of" in t.user_attrs}


def recover(study, storage, study_dir: Path) -> list[str]:
    """Running trials whose process is gone are marked failed (``interrupted``); each interrupted trial not yet
    retried is enqueued again with its parameters, to work in its directory. Call under :func:`study_lock`."""
    from optuna.trial import TrialState

    notes = []
    study_id = storage.get_study_id_from_name(STUDY_NAME)
    trials = study.get_trials(deepcopy=False)
    retried = _retry_pending(trials)
    for t in trials:
        if t.state == TrialState.RUNNING and not alive(study_dir, t.number):
            tid = storage.get_trial_id_from_study_id_trial_number(study_id, t.number)
            storage.set_trial_user_attr(tid, "interrupted", "its process ended without finishing it")
            storage.set_trial_state_values(tid, TrialState.FAIL)
            t = storage.get_trial(tid)
            notes.append(f"trial {t.number} was running with no live process: marked failed")
        if t.state == TrialState.FAIL and t.user_attrs.get("interrupted") and t.number not in retried:
            where = t.user_attrs.get("dir", f"trial{t.number}")
            study.enqueue_trial(t.params, user_attrs={"retry_of": t.number, "dir": where})
            notes.append(f"trial {t.number} was interrupted: retried with its parameters in {where}/ (finished seeds "
                         "are kept, unfinished runs resume from their checkpoints)")
    return notes


def counted(trials) -> tuple[int, int]:
    """(trials that count toward --trials, waiting retries): an interrupted trial counts through its retry."""
    from optuna.trial import TrialState

    waiting = sum(t.state == TrialState.WAITING for t in trials)
    done = sum(t.state != TrialState.WAITING and not (t.state == TrialState.FAIL and t.user_attrs.get("interrupted"))
               for t in trials)
    return done, waiting


# ------------------------------------------------------------------------------------------------------ the trials


def _same_run(recorded: list[str], ours: list[str]) -> bool:
    key = lambda o: o.partition("=")[0].lstrip("+~")  # noqa: E731
    mine = {o for o in ours if not _safe(key(o))}
    theirs = {o for o in recorded if not _safe(key(o))}
    return mine <= theirs and all(key(o) in FITTED for o in theirs - mine)


def run_trial(setup: Setup, study, trial, params: dict, stop: dict) -> None:
    """The trial's seeds one after the other, then ``study.tell``: complete with the mean score, pruned (between
    seeds, or on a diverged run), or failed for good when the config refuses the combination. An interruption or an
    unexpected failure is raised (the caller marks the trial interrupted)."""
    from omegaconf import OmegaConf
    from optuna.trial import TrialState

    import rlbase
    from rlbase.core import checkpoint
    from rlbase.loops import NonFiniteError
    from rlbase.runtime.validate import ConfigError

    where = trial.user_attrs.get("dir", f"trial{trial.number}")
    overrides = [*setup.overrides, *setup.extra, *(o for p in setup.space for o in p.overrides(params[p.name]))]
    if not any(o.lstrip("+").startswith("logger.group=") for o in overrides):  # W&B: one group per trial, its seeds
        overrides.append("logger.group=" + re.sub(r"[^\w.-]", "_", f"{setup.study_dir.name}-{where}"))
    scores: list[float] = []
    for i, seed in enumerate(setup.seeds):
        if stop.get("sig") is not None:
            raise Stopped(stop["sig"])
        run_dir = setup.study_dir / where / f"seed{seed}"
        args = [*overrides, f"seed={seed}"]
        try:
            if checkpoint.is_done(run_dir):  # a stopped trial's finished seed: read, not rerun
                recorded = list(OmegaConf.load(run_dir / ".hydra" / "overrides.yaml"))
                if not _same_run([str(o) for o in recorded], args):
                    raise TuneError(f"{run_dir} holds a finished run of other settings than trial {trial.number} asks; "
                                    "a study directory holds only its own runs (give a new --study)")
            else:
                rlbase.run(args, run_dir=run_dir)
        except ConfigError as e:
            trial.set_user_attr("error", f"seed {seed}: {e}")
            study.tell(trial, state=TrialState.FAIL)
            print(f"trial {trial.number} failed: the config refuses its combination: {e}", flush=True)
            return
        except NonFiniteError as e:
            trial.set_user_attr("diverged", f"seed {seed}: {str(e).splitlines()[0]}")
            study.tell(trial, state=TrialState.PRUNED)
            print(f"trial {trial.number} pruned: seed {seed} diverged ({str(e).splitlines()[0]})", flush=True)
            return
        score = run_score(run_dir, setup.stat)
        if not math.isfinite(score):
            trial.set_user_attr("error", f"seed {seed}: no evaluation in {run_dir}/metrics.jsonl")
            study.tell(trial, state=TrialState.FAIL)
            print(f"trial {trial.number} failed: seed {seed} logged no evaluation", flush=True)
            return
        scores.append(score)
        trial.set_user_attr(f"seed{seed}", score)
        mean = sum(scores) / len(scores)
        print(f"trial {trial.number} seed {seed}: {setup.stat} {score:.2f} (mean so far {mean:.2f}; "
              f"{run_dir})", flush=True)
        trial.report(mean, i)
        if setup.prune and i < len(setup.seeds) - 1 and trial.should_prune():
            study.tell(trial, state=TrialState.PRUNED)
            print(f"trial {trial.number} pruned after {i + 1} seed(s): mean {mean:.2f} is below the median of "
                  "earlier trials on the same seeds", flush=True)
            return
    study.tell(trial, sum(scores) / len(scores))
    print(f"trial {trial.number} complete: {setup.stat} mean {sum(scores) / len(scores):.2f} over "
          f"{len(scores)} seeds", flush=True)


def _signals(stop: dict) -> dict:
    """SIGTERM/SIGUSR1/SIGUSR2 stop the worker like Ctrl-C: during a run the run checkpoints and raises
    ``Interrupted`` (our handler, chained after its checkpoint, only takes note); between runs it raises here."""
    from rlbase.loops.runner import SIGNALS

    def handler(signum, frame):
        stop["sig"] = signum
        if not SIGNALS.active:
            raise Stopped(signum)

    old = {}
    for s in (signal.SIGTERM, signal.SIGUSR1, signal.SIGUSR2):
        try:
            old[s] = signal.signal(s, handler)
        except ValueError:  # not the main thread
            pass
    return old


def prepare(setup: Setup, cfg):
    """Create the study, or open it and check that it was made with these settings (one line if not); returns
    (study, storage)."""
    setup.study_dir.mkdir(parents=True, exist_ok=True)
    with study_lock(setup.study_dir):
        study, storage = open_study(setup.study_dir, setup.prune)
        new = json.loads(json.dumps(setup.definition(cfg)))
        old = study.user_attrs.get("definition")
        if old is None:
            study.set_user_attr("definition", new)
        else:
            changed = definition_changes(old, new)
            if changed:
                raise TuneError(f"{setup.study_dir} is a study of other settings: {'; '.join(changed)}; continue it "
                                "with its settings or give a new --study directory")
    return study, storage


def header(setup: Setup, study) -> str:
    seeds = f"{setup.seeds[0]}-{setup.seeds[-1]}" if len(setup.seeds) > 1 else str(setup.seeds[0])
    so_far = counted(study.get_trials(deepcopy=False))[0]
    return (f"study {setup.study_dir}: {setup.trials} trials ({so_far} so far) x seeds {seeds}; objective (maximised): "
            f"the mean over seeds of each run's score, {describe_stat(setup.stat)}")


def optimize(setup: Setup, cfg, quiet: bool = False) -> int:
    """Work on the study until it has ``setup.trials`` trials; returns the exit code (0, or 128 + signal).
    ``quiet``: no header line (a launched worker: the launching command printed it)."""
    from optuna.trial import TrialState

    from rlbase.loops import Interrupted

    study, storage = prepare(setup, cfg)
    if not quiet:
        print(header(setup, study), flush=True)
    stop: dict = {"sig": None}
    old_handlers = _signals(stop)
    try:
        while True:
            with study_lock(setup.study_dir):
                for note in recover(study, storage, setup.study_dir):
                    print(note, flush=True)
                done, waiting = counted(study.get_trials(deepcopy=False))
                if not waiting and done >= setup.trials:
                    break
                trial = study.ask()
                if "dir" not in trial.user_attrs:
                    trial.set_user_attr("dir", f"trial{trial.number}")
                params = {p.name: p.suggest(trial) for p in setup.space}
                lock = hold_trial(setup.study_dir, trial.number)
            retry = trial.user_attrs.get("retry_of")
            print(f"trial {trial.number}{f' (retry of trial {retry})' if retry is not None else ''}: "
                  + " ".join(o for p in setup.space for o in p.overrides(params[p.name])), flush=True)
            try:
                run_trial(setup, study, trial, params, stop)
            except (Interrupted, Stopped, KeyboardInterrupt) as e:
                signum = getattr(e, "signum", signal.SIGINT)
                trial.set_user_attr("interrupted", f"stopped by {signal.Signals(signum).name}")
                study.tell(trial, state=TrialState.FAIL)
                print(f"trial {trial.number} interrupted ({signal.Signals(signum).name}): the study's next start "
                      "retries it, resuming its runs", flush=True)
                return 128 + signum
            except TuneError:
                trial.set_user_attr("interrupted", "refused (see the error)")
                study.tell(trial, state=TrialState.FAIL)
                raise
            except Exception as e:  # the machine or the code, not the parameters: stop, retry on the next start
                line = str(e).splitlines()[0] if str(e) else type(e).__name__
                trial.set_user_attr("interrupted", f"{type(e).__name__}: {line}")
                study.tell(trial, state=TrialState.FAIL)
                print(f"error: trial {trial.number}: {line}; the study's next start retries it", file=sys.stderr,
                      flush=True)
                return 1
            finally:
                lock.close()
    finally:
        for s, h in old_handlers.items():
            signal.signal(s, h)
    return 0


# ----------------------------------------------------------------------------------------------------- the report


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    return override_text(v)


def report(study_dir: Path) -> tuple[str, Optional[str]]:
    """The markdown table of the study's trials (best first) and the best trial's ``python train.py`` command."""
    from optuna.trial import TrialState

    study, _ = open_study(study_dir)
    d = study.user_attrs.get("definition")
    if d is None:
        raise TuneError(f"{study_dir}: the study has no trials yet")
    names = [p["name"] for p in d["space"]]
    seeds, stat = d["seeds"], d["stat"]
    trials = study.get_trials(deepcopy=False)
    retried_as = {t.user_attrs["retry_of"]: t.number for t in trials if "retry_of" in t.user_attrs}

    def state(t) -> str:
        if t.state == TrialState.COMPLETE:
            return "complete"
        if t.state == TrialState.PRUNED:
            return "diverged" if "diverged" in t.user_attrs else "pruned"
        if t.state == TrialState.FAIL:
            if t.user_attrs.get("interrupted"):
                return f"interrupted (retried as {retried_as[t.number]})" if t.number in retried_as else "interrupted"
            return "failed"
        return t.state.name.lower()

    def mean(t) -> Optional[float]:
        vals = [t.user_attrs[f"seed{s}"] for s in seeds if f"seed{s}" in t.user_attrs]
        return t.value if t.state == TrialState.COMPLETE else (sum(vals) / len(vals) if vals else None)

    order = {TrialState.COMPLETE: 0, TrialState.PRUNED: 1, TrialState.RUNNING: 2, TrialState.WAITING: 3,
             TrialState.FAIL: 4}
    rows = sorted(trials, key=lambda t: (order.get(t.state, 5), -(mean(t) if mean(t) is not None else -math.inf),
                                          t.number))
    head = ["rank", "trial", "state", *names, *(f"seed {s}" for s in seeds), f"mean {stat}", "runs"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    rank = 0
    for t in rows:
        rank += t.state == TrialState.COMPLETE
        m = mean(t)
        cells = [str(rank) if t.state == TrialState.COMPLETE else "", str(t.number), state(t),
                 *(_fmt(t.params[n]) if n in t.params else "" for n in names),
                 *(f"{t.user_attrs[f'seed{s}']:.2f}" if f"seed{s}" in t.user_attrs else "" for s in seeds),
                 f"{m:.2f}" if m is not None else "", t.user_attrs.get("dir", "") + "/"]
        lines.append("| " + " | ".join(cells) + " |")
        why = t.user_attrs.get("error") or t.user_attrs.get("diverged")
        if why and t.state != TrialState.COMPLETE:
            lines.append(f"| | | {why} |" + " |" * (len(head) - 3))
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    span = f"{seeds[0]}-{seeds[-1]}" if len(seeds) > 1 else str(seeds[0])
    text = [f"# Study {study_dir}", "",
            f"{len(complete)} complete of {len(trials)} trials; objective (maximised): the mean over seeds {span} of "
            f"each run's score, {describe_stat(stat)}. Fixed overrides: `{' '.join(d['overrides']) or '(none)'}`.", "",
            *lines, ""]
    if not complete:
        return "\n".join(text), None
    best = max(complete, key=lambda t: (t.value, -t.number))
    space = {p["name"]: p for p in d["space"]}
    param_overrides = [f"{s}={override_text(best.params[n])}" for n in names if n in best.params
                       for s in space[n]["name"].split(",")]
    command = shlex.join(["python", "train.py", *d["overrides"], *param_overrides])
    text += [f"Best: trial {best.number}, {stat} mean {best.value:.2f} over seeds {span}:", "", "```",
             command, "```", "", caution(seeds, len(complete)), ""]
    path, name = write_tuned(study_dir, d, best, len(complete))
    pair = "_".join(c.partition("=")[2] for c in _choices(d))
    text += [f"The same values as a tuned file: {path}. `tuned=` takes a file name in rlbase/conf/tuned/, not a path, "
             f"and only a name of this pair ({pair} or {pair}_<suffix>): copy it there to use it, e.g.", "", "```",
             f"cp {shlex.quote(str(path))} rlbase/conf/tuned/{name}.yaml",
             shlex.join(["python", "train.py", *_choices(d), f"tuned={name}"]), "```", "",
             f"(copied over rlbase/conf/tuned/{pair}.yaml instead, it becomes the pair's default).", ""]
    return "\n".join(text), command


def _choices(d: dict) -> list[str]:
    """The study's ``algo=`` and ``env=`` (its defaults when the command line left them out)."""
    given = {o.partition("=")[0]: o for o in d["overrides"] if o.partition("=")[0] in ("algo", "env")}
    return [given.get("algo", f"algo={d['config'].get('algo.name')}"), given.get("env", f"env={d['config'].get('env.name')}")]


def write_tuned(study_dir: Path, d: dict, best, complete: int) -> tuple[Path, str]:
    """The best trial's values as a ``conf/tuned/``-style file, ``<study>/tuned_<algo>_<env>.yaml``: the pair's own
    tuned file that the study's runs used (if any), with the study's fixed ``algo.*``/``env.*`` overrides and the
    best trial's values over it, under a comment naming the study, its statistic and seeds and the caution that those
    seeds chose it. Returns (path, the name to give it in rlbase/conf/tuned/: ``<algo>_<env>_<study>``)."""
    algo, env = (c.partition("=")[2] for c in _choices(d))
    tuned = next((o.partition("=")[2] for o in d["overrides"] if o.partition("=")[0] == "tuned"), f"{algo}_{env}")
    shipped = SPACES.parent / "tuned" / f"{tuned}.yaml"
    body = (yaml.safe_load(shipped.read_text()) or {}) if shipped.is_file() else {}

    def put(setting: str, value: Any) -> None:
        group, _, key = setting.lstrip("+").partition(".")
        if isinstance(value, str) and value.startswith("["):  # a list choice, kept as its override text
            value = _number(yaml.safe_load(value))
        body.setdefault(group, {})[key] = value

    for o in d["overrides"]:
        key, _, value = o.partition("=")
        if key.lstrip("+").split(".")[0] in ("algo", "env") and "." in key and not key.startswith("~"):
            put(key, _number(yaml.safe_load(value)) if value else value)
    space = {p["name"]: p for p in d["space"]}
    for n, value in best.params.items():
        for setting in space.get(n, {"name": n})["name"].split(","):
            put(setting, value)
    seeds, stat = d["seeds"], d["stat"]
    span = f"{seeds[0]}-{seeds[-1]}" if len(seeds) > 1 else str(seeds[0])
    import textwrap

    header = [
        "@package _global_",
        *textwrap.wrap(f"Tuned by scripts/tune.py, study {study_dir}: the best of {complete} complete trials (trial "
                       f"{best.number}), {stat} mean {best.value:.2f} over seeds {span}; each run's score: "
                       f"{describe_stat(stat)}. The study's fixed overrides: {' '.join(d['overrides']) or '(none)'}; "
                       "of those only the algo.* and env.* settings are written here (not the budget or schedule).", 115),
        *textwrap.wrap((f"Starts from conf/tuned/{tuned}.yaml, which the study's runs used. " if shipped.is_file() else "")
                       + f"Caution: seeds {span} chose these values (the best of {complete} trials on them), so their "
                       "scores on those seeds are biased upward: measure them on seeds no trial used (e.g. "
                       f"-m seed={','.join(str(s) for s in range(5) if s not in seeds) or '<fresh seeds>'}) before "
                       "claiming a result.", 115)]
    name = re.sub(r"\W+", "_", f"{algo}_{env}_{study_dir.resolve().name}").strip("_")
    path = study_dir / f"tuned_{algo}_{env}.yaml"
    path.write_text("".join(f"# {line}\n" for line in header) + yaml.safe_dump(body, sort_keys=False,
                                                                                default_flow_style=None))
    return path, name


def caution(seeds: list[int], n: int) -> str:
    span = f"{seeds[0]}-{seeds[-1]}" if len(seeds) > 1 else str(seeds[0])
    fresh = ",".join(str(s) for s in range(5) if s not in seeds) or "<seeds no trial used>"
    return (f"Caution: this setting was chosen as the best of {n} trials on seeds {span}, so its mean on those seeds "
            f"is biased upward; a claim needs fresh seeds: run the command with seeds no trial used (`-m ... "
            f"seed={fresh}`), or pre-register a protocol (benchmarks/<name>/protocol.yaml, "
            "python scripts/protocol.py run ...) and report its numbers.")


# ----------------------------------------------------------------------------------------------- launched workers

LAUNCHERS = {"joblib": "processes on this machine", "submitit_local": "submitit's local jobs",
             "submitit_slurm": "one Slurm job per worker"}
LAUNCH_SPEC = "launch.json"  # in the launch's sweep directory: what every worker runs
RESULT = "result.json"  # in each worker's job directory: its exit code, written when it ends
LOCAL_TIMEOUT_MIN = 7 * 24 * 60  # submitit_local's own default (60 min) would stop a worker after an hour


@dataclasses.dataclass
class Launch:
    """Workers started through a Hydra launcher: the app ``rlbase/tune_app.py`` (config ``conf/tune_launch.yaml``)
    in multirun mode, one job per worker (``worker=range(N)``), its sweep directory ``<study>/launch/<time>_<pid>``."""

    launcher: str
    workers: int
    given: list[str]  # the command line's hydra.launcher.* overrides
    extra: list[str]  # run-only settings every worker's runs get (hardware.threads)
    dir: Path
    hardware_slurm: bool = False  # the runs use hardware=slurm: its launcher settings (partition, time, GPUs) apply

    def overrides(self, sweep: bool = True) -> list[str]:
        keys = {o.partition("=")[0].lstrip("+~") for o in self.given}
        out = [f"worker=range({self.workers})" if sweep else "worker=0", f"hydra/launcher={self.launcher}",
               f"hydra.sweep.dir={_hydra_quoted(str(self.dir))}"]
        if self.hardware_slurm:
            out.append("+hardware=slurm")
        if self.launcher == "joblib" and "hydra.launcher.n_jobs" not in keys:
            out.append(f"hydra.launcher.n_jobs={self.workers}")
        if self.launcher == "submitit_local" and "hydra.launcher.timeout_min" not in keys:
            out.append(f"hydra.launcher.timeout_min={LOCAL_TIMEOUT_MIN}")
        return out + self.given


def _hydra_quoted(text: str) -> str:
    """``text`` as a quoted value of Hydra's override grammar (checked by parsing it back)."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    quoted = "'" + re.sub(r"(\\*)'", lambda m: m.group(1) * 2 + "\\'", text) + "'"
    try:
        ok = "${" not in text and OverridesParser.create().parse_override(f"k={quoted}").value() == text
    except Exception:  # noqa: BLE001 - Hydra's parse errors
        ok = False
    if not ok:
        raise TuneError(f"--study {text}: a launch cannot name this directory to Hydra; use a path without quotes, "
                        "backslashes or '${'")
    return quoted


def _cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def plan_launch(args, cfg, choices: dict, given: list[str], workers: int) -> Launch:
    """The launch of ``workers`` workers, checked before anything is made: the launcher, its settings (the
    command line's hydra.launcher.*, composed with it: an unknown or ill-typed one is one line), Slurm's presence,
    and each worker's torch threads: on this machine, the cores divided among the workers running at once (at most
    what the algorithm gains from; hardware.threads on the command line wins); on Slurm, each job's own cores."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    from rlbase.conf.schema import register
    from rlbase.runtime.api import CONF

    name = args.launcher or ("submitit_slurm" if choices.get("hydra/launcher") == "submitit_slurm" else "joblib")
    asked = f"--launcher {name}" if args.launcher else (
        "hardware=slurm (launcher submitit_slurm)" if name == "submitit_slurm" else f"--workers {workers} (launcher {name})")
    if name == "submitit_slurm":
        missing = [tool for tool in ("sbatch", "srun") if shutil.which(tool) is None]
        if missing:
            raise TuneError(f"{asked} submits each worker as a Slurm job, but {' and '.join(missing)} "
                            f"{'is' if len(missing) == 1 else 'are'} not on PATH (no Slurm on this machine); to run "
                            "here, use --launcher joblib (or submitit_local)")
    stamp = f"{datetime.datetime.now():%Y-%m-%d_%H-%M-%S}_{os.getpid()}"
    plan = Launch(name, workers, list(given), [], args.study.absolute() / "launch" / stamp,
                  hardware_slurm=name == "submitit_slurm" and choices.get("hardware") == "slurm")
    register()
    GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
            launcher = compose(config_name="tune_launch", overrides=plan.overrides(sweep=False),
                               return_hydra_config=True).hydra.launcher
    except Exception as e:  # noqa: BLE001 - Hydra's and OmegaConf's composition errors
        parts = [str(e).splitlines()[0].rstrip(".")] if str(e) else [type(e).__name__]
        if e.__cause__ is not None and str(e.__cause__):
            parts.append(str(e.__cause__).splitlines()[0])
        hint = f" (is {name}'s Hydra plugin installed?)" if "hydra/launcher" in parts[0] else ""
        raise TuneError(f"{asked}: {': '.join(parts)}{hint}") from None
    finally:
        GlobalHydra.instance().clear()
    own = any(o.partition("=")[0].lstrip("+~") == "hardware.threads" for o in args.overrides)
    if name != "submitit_slurm" and not own and cfg.hardware.threads == 0:
        cores = _cores()
        at_once = workers
        if name == "joblib":
            n_jobs = int(launcher.n_jobs)
            at_once = min(workers, n_jobs if n_jobs > 0 else max(1, cores + 1 + n_jobs))
        from rlbase import algos

        threads = max(1, cores // at_once)
        small = getattr(algos.get(cfg.algo.name), "DEFAULT_THREADS", None)
        plan.extra = [f"hardware.threads={min(threads, small) if small else threads}"]
    return plan


def launch(plan: Launch, argv: list[str]) -> tuple[dict[int, Optional[int]], int, Optional[int]]:
    """Start the workers (each runs :func:`work` with ``argv``, the command line less the launch's options) and wait
    for them. Returns ({worker: its exit code, None if it ended without one}, the launcher's exit code, the signal
    that stopped this command, if any: it is passed on to the workers, which stop their trials as Ctrl-C does)."""
    import subprocess

    plan.dir.mkdir(parents=True, exist_ok=True)
    spec = {"argv": argv, "extra": plan.extra, "cwd": os.getcwd(), "workers": plan.workers, "launcher": plan.launcher}
    (plan.dir / LAUNCH_SPEC).write_text(json.dumps(spec, indent=1) + "\n")
    env = dict(os.environ)
    root = Path(__file__).resolve().parents[1]
    # -P below drops the implicit current directory from the launcher's sys.path, so that this checkout (a source
    # checkout: the jobs import it and its hydra plugin from here) comes before it, also where the venv has another
    # checkout installed and the command runs from that one's directory; the current directory follows it (modules
    # there, e.g. an env.id's, stay importable)
    first = [str(root)] if (root / "hydra_plugins" / "rlbase_submitit").is_dir() else []
    env["PYTHONPATH"] = os.pathsep.join(p for p in (*first, os.getcwd(), env.get("PYTHONPATH")) if p)
    # its own session: a signal here is passed on by us, as SIGTERM to the local jobs (they stop their trials, the
    # launcher waits for them) or as SIGINT to the launcher of Slurm jobs (it stops waiting; the jobs go on)
    proc = subprocess.Popen([sys.executable, "-P", "-m", "rlbase.tune_app", "--multirun", *plan.overrides()],
                            start_new_session=True, env=env)
    got: dict = {"sig": None}

    def forward(signum, frame):
        got["sig"] = got["sig"] or signum
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGINT if plan.launcher == "submitit_slurm" else signal.SIGTERM)

    old = {}
    for s in (signal.SIGINT, signal.SIGTERM, signal.SIGUSR1, signal.SIGUSR2):
        with contextlib.suppress(ValueError):  # not the main thread
            old[s] = signal.signal(s, forward)
    try:
        rc = proc.wait()
    finally:
        for s, h in old.items():
            signal.signal(s, h)
    codes: dict[int, Optional[int]] = {}
    for i in range(plan.workers):
        result = plan.dir / f"worker{i}" / RESULT
        codes[i] = json.loads(result.read_text())["code"] if result.is_file() else None
    return codes, rc, got["sig"]


def _exit_text(code: Optional[int]) -> str:
    if code is None:
        return "gave no result (its process died, or never started)"
    if code > 128 and code - 128 in signal.Signals._value2member_map_:
        return f"exit {code}: stopped by {signal.Signals(code - 128).name}"
    return f"exit {code}"


def work(launch_dir: Path, worker: int, out_dir: Path) -> int:
    """One launched worker (``rlbase/tune_app.py`` calls it in each job): the command line in
    ``<launch_dir>/launch.json``, worked as one process of the study does (:func:`optimize`), its exit code written
    to ``<out_dir>/result.json``. Stopped by a submitit job's time-limit or preemption signal, it hands that signal
    to submitit's handler afterwards, which requeues the job (up to hydra.launcher.max_num_timeout times): the
    requeued worker continues the study, retrying its interrupted trial from the runs' checkpoints."""
    spec = json.loads((launch_dir / LAUNCH_SPEC).read_text())
    with contextlib.suppress(OSError):
        os.chdir(spec["cwd"])  # relative paths (--space, overrides) as the launching command read them
    _warnings_to_stderr()
    try:
        args = parser().parse_intermixed_args(spec["argv"])
        setup, cfg = build(args)
        setup.extra = list(spec.get("extra", []))
        code = optimize(setup, cfg, quiet=True)
    except TuneError as e:
        print(f"error: worker {worker}: {e}", file=sys.stderr, flush=True)
        code = 2
    except (Stopped, KeyboardInterrupt) as e:
        code = 128 + getattr(e, "signum", signal.SIGINT)
    except SystemExit as e:  # argparse
        code = e.code if isinstance(e.code, int) else 2
    except Exception as e:  # noqa: BLE001 - one line; the trial itself is marked by optimize
        line = str(e).splitlines()[0] if str(e) else ""
        print(f"error: worker {worker}: {type(e).__name__}: {line}", file=sys.stderr, flush=True)
        code = 1
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / RESULT).write_text(json.dumps({"worker": worker, "code": code, "pid": os.getpid()}) + "\n")
    if code - 128 in (signal.SIGUSR1, signal.SIGUSR2):
        handler = signal.getsignal(code - 128)
        if getattr(handler, "__name__", "") == "checkpoint_and_try_requeue":  # submitit's (restored by optimize)
            with contextlib.suppress(Exception):  # it raises when it does not requeue: the code stands
                handler(code - 128, None)  # requeues the job and exits the process
    return code


# ------------------------------------------------------------------------------------------------- command line


class _Once(logging.Filter):
    """Each warning once per worker: every run of a study says the same (e.g. the starts fitted to the budget)."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: set[str] = set()

    def filter(self, record: logging.LogRecord) -> bool:
        msg = record.getMessage()
        if msg in self.seen:
            return False
        self.seen.add(msg)
        return True


def _warnings_to_stderr() -> None:
    if not logging.getLogger().handlers:  # the runs' warnings and errors on stderr; their full logs in train.log
        h = logging.StreamHandler(sys.stderr)
        h.setLevel(logging.WARNING)
        h.addFilter(_Once())
        h.setFormatter(logging.Formatter("[%(asctime)s][%(name)s][%(levelname)s] - %(message)s"))
        logging.getLogger().addHandler(h)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="scripts/tune.py", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("overrides", nargs="*", help="overrides for every run (python train.py's), e.g. algo=td3 env=hopper; "
                   "with --workers, also the launcher's hydra.launcher.<key>=<value>")
    p.add_argument("--space", default=None, help="search space: a YAML file, a name in rlbase/conf/tune/ or an inline "
                   "mapping (default: rlbase/conf/tune/<algo>.yaml)")
    p.add_argument("--trials", type=int, default=20, help="trials in the study, across all its workers (default 20)")
    p.add_argument("--seeds", type=int, default=3, help="seeds per trial (default 3)")
    p.add_argument("--seed-base", type=int, default=SEED_BASE,
                   help=f"trials run seeds seed-base .. seed-base + seeds - 1 (default {SEED_BASE})")
    p.add_argument("--stat", default="last3", help="each run's score: last3 (default), last<k>, final or best")
    p.add_argument("--prune", action="store_true",
                   help="prune between seeds: stop a trial whose running mean is below the median of earlier trials "
                        "at the same seed (Optuna's MedianPruner, after 5 trials)")
    p.add_argument("--study", type=Path, required=True, help="the study's directory (journal.log, trial<k>/seed<s>/)")
    p.add_argument("--workers", type=int, default=None, metavar="N",
                   help="start N workers on the study through a Hydra launcher, wait for them, then report (default: "
                        "work in this process)")
    p.add_argument("--launcher", default=None,
                   help="the workers' Hydra launcher: joblib (default; submitit_slurm under hardware=slurm), "
                        "submitit_local or submitit_slurm; settings as hydra.launcher.<key>=<value>")
    p.add_argument("--report", action="store_true", help="print the study's table and best command; run nothing")
    return p


def build(args) -> tuple[Setup, Any]:
    """The study's setup from the command line, checked (one line for the first problem), and the composed config."""
    setup, cfg, _ = _build(args)
    return setup, cfg


def _build(args, elsewhere: bool = False) -> tuple[Setup, Any, dict]:
    """``elsewhere``: the runs will run on other machines (Slurm jobs): a GPU is not asked of this one."""
    if args.trials < 1 or args.seeds < 1 or args.seed_base < 0:
        raise TuneError("--trials and --seeds must be at least 1, --seed-base at least 0")
    stat = parse_stat(args.stat)
    check_overrides(args.overrides)
    choices: dict = {}
    import torch

    here = ["hardware.device=cpu"] if elsewhere and not torch.cuda.is_available() else []  # hardware.*: not the study's
    cfg = compose_base([*args.overrides, *here], choices)
    label, raw = read_space(args.space, cfg.algo.name)
    space = parse_space(raw, label, cfg, args.overrides)
    setup = Setup(args.study, list(args.overrides), space, list(range(args.seed_base, args.seed_base + args.seeds)),
                  stat, args.trials, args.prune)
    return setup, cfg, choices


def worker_argv(args) -> list[str]:
    """The command line each launched worker works with: this one, less the launch's options."""
    out = [*args.overrides, "--trials", str(args.trials), "--seeds", str(args.seeds), "--seed-base",
           str(args.seed_base), "--stat", args.stat, "--study", str(args.study.absolute())]
    return out + (["--space", args.space] if args.space is not None else []) + (["--prune"] if args.prune else [])


def main(argv: Optional[list[str]] = None) -> int:
    args = parser().parse_intermixed_args(argv)
    _warnings_to_stderr()
    failed = None
    try:
        launching = not args.report and (args.launcher is not None or (args.workers or 1) > 1)
        given = [o for o in args.overrides if o.lstrip("+~").startswith("hydra.launcher.")]
        if args.workers is not None and args.workers < 1:
            raise TuneError("--workers must be at least 1")
        if args.launcher is not None and args.launcher not in LAUNCHERS:
            raise TuneError(f"--launcher {args.launcher}: allowed: "
                            f"{', '.join(f'{k} ({v})' for k, v in LAUNCHERS.items())}")
        if given and not launching:
            raise TuneError(f"{given[0]}: a launcher setting; it goes with --workers N (or --launcher)")
        args.overrides = [o for o in args.overrides if o not in given]
        if args.report:
            if not (args.study / JOURNAL).is_file():
                raise TuneError(f"{args.study}: no study here ({JOURNAL} is missing)")
        elif not launching:
            setup, cfg = build(args)
            code = optimize(setup, cfg)
            if code != 0:
                return code
        else:
            slurm = args.launcher == "submitit_slurm" or (
                args.launcher is None and any(o.lstrip("+") == "hardware=slurm" for o in args.overrides))
            setup, cfg, choices = _build(args, elsewhere=slurm)
            plan = plan_launch(args, cfg, choices, given, args.workers or 1)  # every refusal before the study is made
            study, storage = prepare(setup, cfg)
            print(header(setup, study), flush=True)
            with study_lock(setup.study_dir):
                for note in recover(study, storage, setup.study_dir):
                    print(note, flush=True)
                done, waiting = counted(study.get_trials(deepcopy=False))
            left = max(0, setup.trials - done) + waiting
            if left:
                if left < plan.workers:  # a worker per trial left at most
                    plan = plan_launch(args, cfg, choices, given, left)
                threads = f", hardware.threads={plan.extra[0].partition('=')[2]} each" if plan.extra else ""
                print(f"launching {plan.workers} worker{'s' if plan.workers > 1 else ''} through hydra/launcher="
                      f"{plan.launcher}{threads} (their jobs: {plan.dir})", flush=True)
                codes, rc, sig = launch(plan, worker_argv(args))
                if sig is not None:
                    name = signal.Signals(sig).name
                    where = ("the Slurm jobs go on (squeue; --report shows the study)" if plan.launcher ==
                             "submitit_slurm" else "the workers marked their trials interrupted")
                    print(f"stopped by {name}: {where}; run the same command to continue the study", file=sys.stderr)
                    return 128 + sig
                bad = {i: c for i, c in codes.items() if c != 0}
                if bad or rc != 0:
                    with study_lock(setup.study_dir):  # a worker that died left its trial running: marked failed
                        for note in recover(study, storage, setup.study_dir):
                            print(note, flush=True)
                        done, waiting = counted(study.get_trials(deepcopy=False))
                    which = "; ".join(f"worker {i} {_exit_text(c)}" for i, c in bad.items())
                    launcher = f"the launcher exited {rc} (its message above)" if rc != 0 else ""
                    after = ("the other workers finished the study" if not waiting and done >= setup.trials else
                             "run the same command to continue the study (interrupted trials are retried)")
                    failed = (f"{len(bad)} of {plan.workers} workers failed: " if bad else "") + "; ".join(
                        x for x in (which, launcher) if x) + f"; their jobs: {plan.dir}; {after}"
        text, command = report(args.study)
    except TuneError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except (Stopped, KeyboardInterrupt) as e:  # between trials: nothing of a trial is lost
        signum = getattr(e, "signum", signal.SIGINT)
        print(f"stopped by {signal.Signals(signum).name}; run the same command to continue the study", file=sys.stderr)
        return 128 + signum
    (args.study / "report.md").write_text(text)
    print(text)
    if failed is not None:
        print(f"error: {failed}", file=sys.stderr)
        return 1
    return 0
