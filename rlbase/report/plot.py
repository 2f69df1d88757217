"""Summarise runs from their local files: a markdown report (one table row per experiment) and learning curves.

    python scripts/plot.py runs/results                 # every run dir below (any dir with metrics.jsonl)
    python scripts/plot.py multirun/2026-11-21/10-00-00 --out report --threshold 475 --format png,pdf
    python scripts/plot.py runs/results/offline --max-step 10000    # offline runs: steps are gradient updates

Reads each run's ``.hydra/config.yaml``, ``.hydra/overrides.yaml``, ``.hydra/hydra.yaml`` (the recorded group
choices, ``tuned`` among them), ``metrics.jsonl`` and its ``done`` marker (:func:`rlbase.core.checkpoint.is_done`).

What is one row
---------------
Runs share a row only when their whole recorded config (resolved, settings added to the code since a run started
taken at their defaults, as ``rlbase.report.evaluate.recorded_config`` does) is the same, apart from the seed and
the settings that cannot change results (:data:`IGNORED`: ``logger.*``, ``hardware.*``, ``progress``,
``checkpoint_every``, ``log_every``, ``eval.video*``/``eval.fps``; run-directory paths are in ``.hydra/hydra.yaml``
and the overrides, never in the config). A setting one run's config has and another's lacks (and no default fills)
is a difference (``unset``). A row is labelled ``algo · env`` (env id, its ``gym.make`` kwargs, the
dataset of an offline run) followed by what tells it from the other rows of that algo and env: the recorded group
choice that explains the differing values (``tuned=ppo_halfcheetah_zoo`` instead of its fifteen values), the
differing settings its runs' command lines set (``algo.lr=0.001``), and any other differing setting. At most
:data:`LABEL_SETTINGS` settings are shown; a longer list is cut (``+N more (row k)``) and given in full below the
table. The evaluation protocol (``eval_episodes``, ``eval.sample``) is named in every row that differs from the
report's most common protocol, even across algorithms and envs.

What is not pooled (one line each below the table, and a warning on stderr)
----------------------------------------------------------------------------
* Unfinished runs (no ``done`` marker): listed with their last step and last evaluation, never tabled, never in
  the curves.
* Duplicate seeds in a row: the finished run that reached the latest evaluation step is kept (then the most
  recently written); the others are listed as "not tabled".
* Mixed budgets: a row tables only its runs whose final evaluation step is the row's most common one (on a tie,
  the latest step); the others are listed as "not tabled" and warned about. Exception: a row whose config sets
  ``stop_return`` also tables the runs that reached it earlier (that is what ``stop_return`` does); the steps
  column then lists each final step.

Columns (each explained under the table): number of seeds, final evaluation step, final return (mean over seeds
with its 95% interval from :func:`rlbase.report.stats.mean_ci`, method t+Hall), IQM over seeds
(:func:`rlbase.report.stats.iqm`), the highest point of the seed-mean curve (the TD3 paper's and Tianshou's
protocol), best single evaluation, median ``time/sps`` once updates started, and with ``--threshold`` the first
step at which each seed reached it. Offline runs with reference returns are reported by normalised score.

Curves (matplotlib, one figure per env, ``--format png,pdf,svg``): per row, the mean over seeds at the evaluation
steps all its seeds share, a marker on each evaluation, and a band: the same t+Hall 95% interval of the mean at
each step. Rows with one seed, or whose seeds share too few evaluation steps (see :func:`figure`), are drawn seed
by seed (no band), and the legend says so.

The report's header names the command that made it, the commit of the repository holding this file (and whether
its tree was dirty; "unknown" without git) and the evaluation protocol (episodes per evaluation, deterministic or
sampled actions).
"""

from __future__ import annotations

import argparse
import json
import math
import re
import shlex
import subprocess
import sys
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

import numpy as np
from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException

from rlbase.core.checkpoint import is_done
from rlbase.core.logger import scan_metrics
from rlbase.report import stats

# Settings that cannot change a run's results: a key equal to one of these, or below it, is not part of a row's key.
IGNORED = ("seed", "logger", "hardware", "progress", "checkpoint_every", "log_every", "eval.video", "eval.video_every",
           "eval.fps")
PROTOCOL = ("eval_episodes", "eval.sample")  # named in a row's label whenever it differs from the report's usual one
LABEL_SETTINGS = 4  # settings shown in a row label; more are cut and listed in full below the table
FORMATS = ("png", "pdf", "svg")
BAND = "95% t+Hall CI of the mean over seeds"
_UNSET = "unset"  # a setting a run's recorded config lacks (and that no default fills)
_NOT_CHOICES = ("hydra", "hydra/", "logger", "hardware")  # recorded group choices never named in a label


def bootstrap_ci(values, n_boot: int = 10_000, level: float = 0.95, seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap CI of the mean over ``values``. Kept for compatibility only (``evaluate.py`` and
    ``parity.py`` import it): it under-covers with few seeds (74% at n=3); use :func:`rlbase.report.stats.mean_ci`."""
    v = np.asarray(values, dtype=float)
    if len(v) < 2:
        return float(v.mean()), float(v.mean())
    rng = np.random.default_rng(seed)
    means = v[rng.integers(0, len(v), size=(n_boot, len(v)))].mean(axis=1)
    lo, hi = np.quantile(means, [(1 - level) / 2, 1 - (1 - level) / 2])
    return float(lo), float(hi)


def iqm(values) -> float:
    """Interquartile mean (Agarwal et al. 2021): :func:`rlbase.report.stats.iqm` (floor(n/4) cut from each end);
    nan when there is no value or a value is not finite."""
    v = np.asarray(values, dtype=float).ravel()
    return stats.iqm(v) if v.size and np.all(np.isfinite(v)) else float("nan")


def _mean_ci(values) -> tuple[float, float, float]:
    """:func:`stats.mean_ci` (t+Hall), nan where there are no finite values."""
    v = [x for x in values if math.isfinite(x)]
    return stats.mean_ci(v) if v else (math.nan, math.nan, math.nan)


# ---------------------------------------------------------------------------------------------------------------
# Reading runs
# ---------------------------------------------------------------------------------------------------------------


def _hashable(v):
    if isinstance(v, (list, tuple)):
        return tuple(_hashable(x) for x in v)
    if isinstance(v, dict):
        return tuple(sorted((str(k), _hashable(x)) for k, x in v.items()))
    return v


def _flat(node, prefix: str = "") -> dict:
    if isinstance(node, dict):
        out = {}
        for k, v in node.items():
            out.update(_flat(v, f"{prefix}{k}."))
        return out
    return {prefix[:-1]: _hashable(node)}


def ignored(key: str) -> bool:
    """Whether ``key`` (dotted) is a setting that cannot change results (:data:`IGNORED`)."""
    return any(key == k or key.startswith(k + ".") for k in IGNORED)


@cache
def _schema_defaults(schema) -> dict:
    """The settings of a config dataclass that have a default, a scalar or list (nested groups have their own)."""
    node = OmegaConf.structured(schema)
    return {name: OmegaConf.to_container(node[name]) if OmegaConf.is_list(node[name]) else node[name]
            for name in node.keys() if not OmegaConf.is_missing(node, name) and not OmegaConf.is_dict(node[name])}


def _fill_defaults(cfg) -> None:
    """Settings added to the code since the run started, at their defaults (what the run ran with)."""
    schemas = []
    try:
        from rlbase import algos

        schemas.append(("algo", algos.get(str(cfg.algo.name)).Config))
    except Exception:  # noqa: BLE001 - an unknown or missing algo: compare what was recorded
        pass
    from rlbase.conf.schema import EvalConfig, RunConfig
    from rlbase.data import DatasetConfig
    from rlbase.envs import EnvConfig

    schemas += [("env", EnvConfig), ("eval", EvalConfig), ("dataset", DatasetConfig), (None, RunConfig)]
    for key, schema in schemas:
        if key is not None and key not in cfg:
            cfg[key] = {}
        node = cfg if key is None else cfg[key]
        if not OmegaConf.is_dict(node):
            continue
        for name, value in _schema_defaults(schema).items():
            if name not in node:
                node[name] = value


def recorded_config(run_dir: Path) -> dict:
    """The run's ``.hydra/config.yaml``, resolved (unresolvable interpolations kept as text), defaults filled in."""
    cfg = OmegaConf.load(run_dir / ".hydra" / "config.yaml")
    _fill_defaults(cfg)
    try:
        return OmegaConf.to_container(cfg, resolve=True)
    except OmegaConfBaseException:
        return OmegaConf.to_container(cfg, resolve=False)


def _recorded_choices_and_overrides(run_dir: Path) -> tuple[dict, list[str]]:
    """The group choices Hydra recorded (``hydra.runtime.choices``: ``tuned``, ``env``, ...) and the command-line
    keys (``.hydra/overrides.yaml``) of a run; empty where the files are missing."""
    choices, keys = {}, []
    hydra_yaml, overrides_yaml = run_dir / ".hydra" / "hydra.yaml", run_dir / ".hydra" / "overrides.yaml"
    try:
        if hydra_yaml.exists():
            node = OmegaConf.select(OmegaConf.load(hydra_yaml), "hydra.runtime.choices")
            if node is not None:
                choices = {str(k): (None if v is None else str(v))
                           for k, v in OmegaConf.to_container(node, resolve=False).items()
                           if not any(str(k) == p or str(k).startswith(p) for p in _NOT_CHOICES)}
        if overrides_yaml.exists():
            for item in OmegaConf.to_container(OmegaConf.load(overrides_yaml)) or []:
                key = str(item).partition("=")[0].lstrip("+~")
                if key and not key.startswith(("hydra.", "hydra/")) and key != "resume":
                    keys.append(key)
    except Exception as e:  # noqa: BLE001 - a damaged hydra file only costs the label its names
        print(f"warning: {run_dir / '.hydra'}: {e}", file=sys.stderr)
    return choices, keys


def load_run(run_dir: Path, max_step: int | None = None) -> dict | None:
    if not (run_dir / ".hydra" / "config.yaml").exists():
        return None
    cfg = recorded_config(run_dir)
    rows, damaged = scan_metrics(run_dir / "metrics.jsonl")
    if damaged:
        print(f"warning: {run_dir / 'metrics.jsonl'}: skipped {len(damaged)} damaged line(s) "
              f"(line {', '.join(str(i) for i, _ in damaged[:5])}{', ...' if len(damaged) > 5 else ''})", file=sys.stderr)
    ds = cfg.get("dataset") or {}
    offline = bool(ds.get("path") or ds.get("id")) and not ds.get("record", False)
    # Offline runs with reference returns are reported by normalised score (D4RL's 0-100 scale), the others by return.
    key = "eval/normalized_score" if offline and any("eval/normalized_score" in r for r in rows) else "eval/return_mean"
    evals = [(r["step"], r[key]) for r in rows if r.get(key) is not None and (max_step is None or r["step"] <= max_step)]
    sps = [r["time/sps"] for r in rows if r.get("time/sps") and r.get("train/updates", 0) > 0]
    env_cfg = cfg.get("env") or {}
    env = env_cfg.get("id") or env_cfg.get("name")
    kwargs = env_cfg.get("kwargs") or {}
    if kwargs:  # another task than the registered one (e.g. Ant-v5 without its contact forces)
        env = f"{env} ({', '.join(f'{k}={v}' for k, v in kwargs.items())})"
    if offline:  # the same env with other data is another experiment
        env = f"{env} / {ds.get('id') or Path(ds.get('path')).stem}"
    choices, override_keys = _recorded_choices_and_overrides(run_dir)
    ev = cfg.get("eval") or {}
    metrics = run_dir / "metrics.jsonl"
    return {"dir": run_dir, "algo": (cfg.get("algo") or {}).get("name"), "env": env, "seed": cfg.get("seed"),
            "metric": key, "evals": evals, "sps": float(np.median(sps)) if sps else float("nan"),
            "done": is_done(run_dir), "offline": offline,
            "last_step": max((r["step"] for r in rows if isinstance(r.get("step"), (int, float))), default=None),
            "eval_episodes": cfg.get("eval_episodes"), "sample": bool(ev.get("sample", False)),
            "stop_return": cfg.get("stop_return"),
            "config": {k: v for k, v in _flat(cfg).items() if not ignored(k)},
            "choices": choices, "overrides": override_keys,
            "mtime": metrics.stat().st_mtime if metrics.exists() else 0.0}


def find_runs(paths: list[Path], max_step: int | None = None) -> list[dict]:
    """Every run under ``paths``; a run that cannot count (no recorded config, no evaluation yet, an empty or
    damaged metrics file) is named on stderr, never dropped silently."""
    runs = []
    for p in paths:
        for m in sorted(p.rglob("metrics.jsonl")):
            run = load_run(m.parent, max_step)
            if run is None:
                print(f"warning: skipped {m.parent}: no .hydra/config.yaml beside its metrics.jsonl", file=sys.stderr)
            elif not run["evals"]:
                why = "metrics.jsonl is empty" if m.stat().st_size == 0 else "no evaluation row yet"
                print(f"warning: skipped {m.parent}: {why}", file=sys.stderr)
            else:
                runs.append(run)
    return runs


# ---------------------------------------------------------------------------------------------------------------
# Rows: which runs may be pooled
# ---------------------------------------------------------------------------------------------------------------


@dataclass
class Row:
    """One experiment: runs with the same recorded config but the seed (and :data:`IGNORED`)."""

    algo: str
    env: str
    config: dict
    runs: list = field(default_factory=list)
    settings: list = field(default_factory=list)  # "key=value" naming how this row differs from its neighbours
    label: str = ""
    tabled: list = field(default_factory=list)
    duplicates: list = field(default_factory=list)  # runs of a seed another finished run of the row stands for
    off_budget: list = field(default_factory=list)  # finished runs that ended at another step than the row's
    unfinished: list = field(default_factory=list)
    budget: int | None = None  # the final evaluation step of the tabled runs (the most common one)

    @property
    def offline(self) -> bool:
        return all(r["offline"] for r in self.runs)


def _fmt_value(v) -> str:
    if v is True or v is False:
        return str(v).lower()
    if v is None:
        return "null"
    if isinstance(v, tuple):  # a list (a dict inside one shows as its [key,value] pairs)
        return "[" + ",".join(_fmt_value(x) for x in v) + "]"
    return str(v)


@cache
def _tuned_keys(choice: str) -> frozenset[str]:
    """The settings ``conf/tuned/<choice>.yaml`` sets (its current version; none if it is gone)."""
    path = Path(__file__).resolve().parents[1] / "conf" / "tuned" / f"{choice}.yaml"
    try:
        return frozenset(_flat(OmegaConf.to_container(OmegaConf.load(path), resolve=False)))
    except Exception:  # noqa: BLE001 - a missing or unreadable file explains nothing
        return frozenset()


def _row_choices(row: Row) -> dict:
    """The group choices every run of the row recorded alike."""
    common = dict(row.runs[0]["choices"])
    for r in row.runs[1:]:
        common = {k: v for k, v in common.items() if r["choices"].get(k) == v}
    return common


def _settings(rows: list[Row]) -> list[list[str]]:
    """For the rows of one algo and env: the settings that tell each from the others (see the module docstring).

    Of the settings whose values differ between these rows, a row names those its own command lines set
    (``.hydra/overrides.yaml``), the group choices (``tuned=...``) that explain the others, and every other one.
    A choice explains a setting when the setting belongs to it (the keys of ``conf/tuned/<choice>.yaml``, or the
    keys under the group) and the rows that did not set it by hand have one value of it per choice."""
    if len(rows) < 2:
        return [[] for _ in rows]
    keys = sorted(set().union(*(r.config for r in rows)))
    differ = [k for k in keys if len({r.config.get(k, _UNSET) for r in rows}) > 1]
    overrides = []
    for row in rows:
        mine = []
        for r in row.runs:
            mine += [k for k in r["overrides"] if k in differ and k not in mine]
        overrides.append(mine)
    choices = [_row_choices(r) for r in rows]
    named_groups, explained = [], set()
    for g in sorted(set().union(*choices)):
        values = [c.get(g) for c in choices]
        if None in values or len(set(values)) < 2:
            continue
        candidates = set().union(*(_tuned_keys(v) for v in set(values))) if g == "tuned" else \
            {k for k in differ if k.startswith(g + ".")}
        mine = set()
        for k in differ:
            by_choice = defaultdict(set)
            for row, c, over in zip(rows, choices, overrides):
                if k not in over:
                    by_choice[c[g]].add(row.config.get(k, _UNSET))
            if k in candidates and by_choice and all(len(v) == 1 for v in by_choice.values()):
                mine.add(k)
        if mine:
            named_groups.append(g)
            explained |= mine
    out = []
    for row, c, over in zip(rows, choices, overrides):
        rest = [k for k in differ if k not in over and k not in explained]
        out.append([f"{g}={c[g]}" for g in named_groups] +
                   [f"{k}={_fmt_value(row.config.get(k, _UNSET))}" for k in [*over, *rest]])
    return out


def _protocol(run_or_row) -> tuple:
    config = run_or_row.config if isinstance(run_or_row, Row) else run_or_row["config"]
    return tuple(config.get(k, _UNSET) for k in PROTOCOL)


def _final(run: dict) -> tuple[int, float]:
    return run["evals"][-1]


def organise(runs: list[dict]) -> list[Row]:
    """Rows of ``runs`` (see the module docstring), labelled, each run tabled or set aside with a reason."""
    by_key: dict = {}
    for r in runs:
        key = (r["algo"], r["env"], tuple(sorted(r["config"].items(), key=lambda kv: kv[0])))
        if key not in by_key:
            by_key[key] = Row(r["algo"], r["env"], r["config"])
        by_key[key].runs.append(r)
    rows = sorted(by_key.values(), key=lambda row: (str(row.env), str(row.algo)))
    # labels: the settings that differ between the rows of an algo and env, and a protocol other than the usual one
    clusters = defaultdict(list)
    for row in rows:
        clusters[(row.algo, row.env)].append(row)
    for cluster in clusters.values():
        for row, settings in zip(cluster, _settings(cluster)):
            row.settings = settings
    usual = Counter(_protocol(row) for row in rows).most_common(1)[0][0] if rows else ()
    for row in rows:
        for k, mine, theirs in zip(PROTOCOL, _protocol(row), usual):
            if mine != theirs and not any(s.startswith(k + "=") for s in row.settings):
                row.settings.append(f"{k}={_fmt_value(mine)}")
    more = 0
    for row in sorted(rows, key=lambda row: (str(row.env), str(row.algo), row.settings)):
        shown = row.settings
        if len(shown) > LABEL_SETTINGS:
            more += 1
            shown = [*shown[:LABEL_SETTINGS - 1], f"+{len(shown) - LABEL_SETTINGS + 1} more (row {more})"]
        row.label = " · ".join([str(row.algo), str(row.env), *([" ".join(shown)] if shown else [])])
    for row in rows:
        _split(row)
    return sorted(rows, key=lambda row: (str(row.env), str(row.algo), row.label))


def _split(row: Row) -> None:
    """Table the row's finished runs, one per seed and one budget; set the others aside."""
    row.unfinished = [r for r in row.runs if not r["done"]]
    by_seed = defaultdict(list)
    for r in row.runs:
        if r["done"]:
            by_seed[r["seed"]].append(r)
    kept = []
    for rs in by_seed.values():
        rs = sorted(rs, key=lambda r: (_final(r)[0], r["mtime"]), reverse=True)  # the longest, then the newest
        kept.append(rs[0])
        row.duplicates += [(r, rs[0]) for r in rs[1:]]
    if not kept:
        return
    stop = row.config.get("stop_return")
    solved = {id(r) for r in kept if isinstance(stop, (int, float)) and _final(r)[1] >= stop}
    steps = Counter(_final(r)[0] for r in kept if id(r) not in solved)
    if steps:
        row.budget = max(steps, key=lambda s: (steps[s], s))
        row.tabled = [r for r in kept if _final(r)[0] == row.budget or (id(r) in solved and _final(r)[0] < row.budget)]
    else:  # every run reached stop_return
        row.tabled = list(kept)
    tabled = {id(r) for r in row.tabled}
    row.off_budget = [r for r in kept if id(r) not in tabled]
    row.tabled.sort(key=lambda r: (r["seed"] is None, r["seed"]))


# ---------------------------------------------------------------------------------------------------------------
# Report
# ---------------------------------------------------------------------------------------------------------------


def common_curve(rs: list[dict]) -> tuple[list[int], np.ndarray]:
    """The evaluation steps every run of ``rs`` has, and their returns there (one row per run)."""
    grid = sorted(set.intersection(*(set(s for s, _ in r["evals"]) for r in rs)))
    return grid, np.array([[dict(r["evals"])[s] for s in grid] for r in rs]).reshape(len(rs), len(grid))


def band(values: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(mean, lo, hi) at each step (column) of ``values`` (one row per seed): :func:`stats.mean_ci`, t+Hall 95%."""
    out = np.array([_mean_ci(values[:, i]) for i in range(values.shape[1])]).reshape(-1, 3)
    return out[:, 0], out[:, 1], out[:, 2]


def peak_of_mean(rs: list[dict]) -> float:
    """The highest point of the seed-mean curve: the protocol of Fujimoto et al.'s TD3 paper and of Tianshou's
    MuJoCo tables ("max average return over seeds"), an optimistic one beside the final evaluation."""
    grid, values = common_curve(rs)
    return float(values.mean(axis=0).max()) if grid else float("nan")


def first_reach(evals, threshold: float):
    return next((s for s, r in evals if r >= threshold), None)


def _median(values) -> str:
    v = [x for x in values if x == x]
    return f"{np.median(v):.0f}" if v else "—"


def _cell(text: str) -> str:
    return str(text).replace("|", "\\|")


def _set_aside(rows: list[Row]) -> list[str]:
    """One line per row and reason for the runs that are not tabled."""

    def where(r: dict, unit: str) -> str:
        return f"seed {r['seed']} at {unit} {_final(r)[0]} (`{r['dir']}`)"

    lines = []
    for row in rows:
        unit = "update" if row.offline else "step"  # offline runs count gradient updates
        if row.duplicates:
            kept = sorted({id(k): k for _, k in row.duplicates}.values(), key=lambda r: str(r["seed"]))
            lines.append(f"- not tabled, duplicate seed: `{row.label}`: {'; '.join(where(r, unit) for r, _ in row.duplicates)}"
                         f" (kept: {'; '.join(where(k, unit) for k in kept)})")
        if row.off_budget:
            lines.append(f"- not tabled, other budget: `{row.label}`: tabled runs end at {unit} {row.budget}; "
                         f"{'; '.join(where(r, unit) for r in row.off_budget)}")
        if row.unfinished:
            what = "normalised score" if all(r["metric"] == "eval/normalized_score" for r in row.unfinished) else "return"
            lines.append(f"- unfinished (no `done` marker; not tabled, not in the curves): `{row.label}`: " + "; ".join(
                f"seed {r['seed']} at {unit} {r['last_step']}, last evaluation {what} {_final(r)[1]:.1f} at {unit} "
                f"{_final(r)[0]} (`{r['dir']}`)" for r in row.unfinished))
    return lines


def table(runs: list[dict], threshold: float | None, rows: list[Row] | None = None) -> str:
    """The markdown table of ``runs``, a line explaining each column, and the lines naming what is not tabled."""
    rows = organise(runs) if rows is None else rows
    offline = bool(runs) and all(r["offline"] for r in runs)  # offline runs count gradient updates, not env steps
    what = "normalised score" if offline and all(r["metric"] == "eval/normalized_score" for r in runs) else "return"
    steps, rate = ("updates", "updates/s") if offline else ("steps", "steps/s")
    head = f"| run | seeds | {steps} | final {what} (mean [95% CI]) | IQM | max of mean curve | best | {rate} |"
    sep = "|---|---|---|---|---|---|---|---|"
    if threshold is not None:
        head += f" first {steps[:-1]} with {what} ≥ {threshold:g} (per seed) |"
        sep += "---|"
    lines = [head, sep]
    for row in rows:
        rs = row.tabled
        if not rs:
            continue
        finals = [_final(r)[1] for r in rs]
        mean, lo, hi = _mean_ci(finals)
        line = (f"| {_cell(row.label)} | {len(rs)} ({', '.join(str(r['seed']) for r in rs)}) | "
                f"{'/'.join(map(str, sorted({_final(r)[0] for r in rs})))} | {stats.format_ci(mean, lo, hi, digits=1)} | "
                f"{iqm(finals):.1f} | {peak_of_mean(rs):.1f} | {max(max(v for _, v in r['evals']) for r in rs):.1f} | "
                f"{_median(r['sps'] for r in rs)} |")
        if threshold is not None:
            line += " " + ", ".join(str(first_reach(r["evals"], threshold)) for r in rs) + " |"
        lines.append(line)
    if len(lines) == 2:
        lines.append("\n(no finished run to table)")
    rate_what = "gradient updates" if offline else "env steps"
    lines += ["", "Columns:",
              "- run: algorithm · env (· the settings that tell this row from the other rows of that algorithm and env, "
              "and an evaluation protocol other than the report's usual one); runs share a row only when their whole "
              "recorded config but the seed is the same",
              "- seeds: how many seeds are tabled (which ones); one finished run per seed",
              f"- {steps}: the final evaluation {steps[:-1]} of the tabled runs (several only when `stop_return` ended "
              "some runs early)",
              f"- final {what}: mean over seeds of each seed's last evaluation, [95% confidence interval of that mean: "
              "Student t and Hall's skew-corrected t, their union (`rlbase.report.stats.mean_ci`)]; one seed: no interval",
              f"- IQM: interquartile mean over seeds of the final {what} (`rlbase.report.stats.iqm`)",
              f"- max of mean curve: the highest point of the seed-mean curve over the {steps} all tabled seeds evaluated "
              "at (the TD3 paper's and Tianshou's protocol; optimistic)",
              "- best: the highest single evaluation of any tabled seed",
              f"- {rate}: median over seeds of each run's median {rate_what} per second once updates started"]
    if threshold is not None:
        lines.append(f"- first {steps[:-1]} with {what} ≥ {threshold:g}: per tabled seed, the first evaluation "
                     f"{steps[:-1]} reaching it (None: never)")
    long = [row for row in rows if len(row.settings) > LABEL_SETTINGS]
    if long:
        lines += ["", "Settings of the rows whose label is cut:"]
        lines += [f"- `{row.label}`: {' '.join(row.settings)}" for row in sorted(long, key=lambda row: row.label)]
    aside = _set_aside(rows)
    if aside:
        lines += ["", "Runs not tabled:", *aside]
    return "\n".join(lines)


def _git(*args: str) -> str | None:
    """``git <args>`` in the repository holding this file; None when git or the repository is missing."""
    try:
        proc = subprocess.run(["git", *args], cwd=Path(__file__).resolve().parent, capture_output=True, text=True,
                              timeout=30)
    except (OSError, subprocess.SubprocessError):
        return None
    return proc.stdout.strip() if proc.returncode == 0 else None


def code_version() -> str:
    """``commit <sha>, tree clean|dirty`` of the repository holding this file, or ``unknown``."""
    commit = _git("rev-parse", "HEAD")
    if not commit:
        return "unknown"
    status = _git("status", "--porcelain")
    tree = "unknown" if status is None else "dirty (uncommitted changes)" if status else "clean"
    return f"commit {commit}, working tree {tree}"


def _protocol_text(eval_episodes, sample) -> str:
    episodes = "? episodes" if eval_episodes in (None, _UNSET) else f"{eval_episodes} episode{'s' * (eval_episodes != 1)}"
    how = "actions sampled from the policy (eval.sample=true)" if sample is True else \
        "deterministic actions (the policy's mean or argmax)"
    return f"{episodes} per evaluation, {how}"


def header(runs: list[dict], rows: list[Row], command: str, paths) -> str:
    shown = [row for row in rows if row.tabled] or rows
    protocols = Counter()
    for row in shown:
        protocols[_protocol(row)] += 1
    if len(protocols) == 1:
        evaluation = _protocol_text(*next(iter(protocols)))
    else:
        evaluation = ("differs between rows: " + "; ".join(f"{_protocol_text(*p)} ({n} row{'s' * (n != 1)})"
                                                           for p, n in protocols.most_common())
                      + "; the rows with another protocol than the first name it in their label")
    counts = [f"{sum(len(row.tabled) for row in rows)} tabled in {sum(bool(row.tabled) for row in rows)} row(s)"]
    for n, what in ((sum(len(row.duplicates) for row in rows), "duplicate seed(s)"),
                    (sum(len(row.off_budget) for row in rows), "at another budget"),
                    (sum(len(row.unfinished) for row in rows), "unfinished")):
        if n:
            counts.append(f"{n} {what}")
    return "\n".join([f"# Runs under {', '.join(f'`{p}`' for p in paths)}", "",
                      f"- command: `{command}`",
                      f"- code: {code_version()} (`{Path(__file__).resolve().parents[2]}`)",
                      f"- evaluation: {evaluation}",
                      f"- runs: {len(runs)} with evaluations: {', '.join(counts)}"
                      + (" (listed under the table)" if len(counts) > 1 else ""), ""])


def report(runs: list[dict], threshold: float | None, command: str, paths, rows: list[Row] | None = None) -> str:
    rows = organise(runs) if rows is None else rows
    return header(runs, rows, command, paths) + "\n" + table(runs, threshold, rows)


# ---------------------------------------------------------------------------------------------------------------
# Curves
# ---------------------------------------------------------------------------------------------------------------


def figure(env: str, rows: list[Row]):
    """The learning-curve figure of one env (the tabled runs of ``rows``), or None when there is nothing to draw.

    A row's mean and band (an error bar at a single step) are drawn over the evaluation steps all its seeds share,
    when they are at least half of all its seeds' steps (seeds that ``stop_return`` ended early, or evaluated at other
    steps, would leave a mean of a few points standing for the whole curve); otherwise each seed's own curve."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    drawn = False
    for row in rows:
        rs = row.tabled
        if not rs:
            continue
        name = row.label.replace(f" · {env}", "", 1)
        grid, values = common_curve(rs)
        union = set().union(*(set(s for s, _ in r["evals"]) for r in rs))
        if len(rs) >= 2 and grid and 2 * len(grid) >= len(union):
            mean, lo, hi = band(values)
            label = f"{name} ({len(rs)} seeds)"
            if len(grid) == 1:  # a band at one step would have no width: an error bar
                ax.errorbar(grid, mean, yerr=[mean - lo, hi - mean], marker="o", markersize=3, capsize=4, label=label)
            else:
                (line,) = ax.plot(grid, mean, marker="o", markersize=3, label=label)
                ax.fill_between(grid, lo, hi, alpha=0.2, color=line.get_color())
        else:  # one seed, or seeds with too few evaluation steps in common: each seed's own curve, no band
            why = "1 seed, no band" if len(rs) == 1 else \
                f"{len(grid)} of {len(union)} evaluation steps in common: per seed, no band"
            color = None
            for i, r in enumerate(rs):
                steps, rets = zip(*r["evals"])
                (line,) = ax.plot(steps, rets, marker="o", markersize=3, linewidth=1, color=color,
                                  label=f"{name} (seed {r['seed']}; {why})" if len(rs) == 1 or i == 0 else
                                  f"{name} (seed {r['seed']})")
                color = line.get_color() if len(rs) > 1 else None
        drawn = True
    if not drawn:
        plt.close(fig)
        return None
    tabled = [r for row in rows for r in row.tabled]
    seen = [v for r in tabled for _, v in r["evals"]]  # the axes fit every seed's returns; a band may run past them
    if seen:
        pad = 0.05 * (max(seen) - min(seen) or 1.0)
        ax.set_ylim(min(seen) - pad, max(seen) + pad)
    ax.set_xlabel("gradient updates" if all(r["offline"] for r in tabled) else "env steps")
    ax.set_ylabel("normalised score" if all(r["metric"] == "eval/normalized_score" for r in tabled) else "eval return")
    ax.set_title(f"{env}\nline: mean over seeds (marker: an evaluation); band: {BAND}\n"
                 "(the axes fit the seeds' returns; at few seeds a band may run past them)", fontsize=9)
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def curves(rows: list[Row], out: Path, formats=("png",)) -> list[Path]:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is not installed: skipping curves (pip install matplotlib)", file=sys.stderr)
        return []
    by_env = defaultdict(list)
    for row in rows:
        by_env[row.env].append(row)
    written = []
    for env, env_rows in sorted(by_env.items()):
        fig = figure(env, env_rows)
        if fig is None:
            print(f"no curve for {env}: no finished run to draw", file=sys.stderr)
            continue
        stem = re.sub(r"[^A-Za-z0-9._-]+", "_", env.replace(" / ", "__")).strip("_")
        for fmt in formats:
            path = out / f"{stem}.{fmt}"
            fig.savefig(path, dpi=100)
            written.append(path)
        plt.close(fig)
    return written


# ---------------------------------------------------------------------------------------------------------------
# Command line
# ---------------------------------------------------------------------------------------------------------------


def _summary(rows: list[Row]) -> list[dict]:
    out = []
    for row in rows:
        status = {id(r): "tabled" for r in row.tabled}
        status.update({id(r): "duplicate seed" for r, _ in row.duplicates})
        status.update({id(r): "other budget" for r in row.off_budget})
        status.update({id(r): "unfinished" for r in row.unfinished})
        for r in row.runs:
            item = {k: (str(v) if isinstance(v, Path) else v) for k, v in r.items()
                    if k not in ("config", "choices", "overrides", "mtime")}
            out.append({**item, "row": row.label, "settings": row.settings, "status": status[id(r)]})
    return out


def main(argv=None, command: str | None = None) -> str:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("paths", nargs="+", type=Path, help="run directories or folders holding them")
    p.add_argument("--out", type=Path, default=None, help="write report.md, summary.json and the curves here")
    p.add_argument("--threshold", type=float, default=None, help="also report the first step reaching this return")
    p.add_argument("--max-step", type=int, default=None, help="use evaluations up to this step only")
    p.add_argument("--format", default="png", help=f"curve file formats, comma-separated, of {', '.join(FORMATS)}")
    args = p.parse_args(argv)
    formats = list(dict.fromkeys(f.strip().lower().lstrip(".") for f in args.format.split(",") if f.strip()))
    bad = [f for f in formats if f not in FORMATS]
    if bad or not formats:
        raise SystemExit(f"error: --format {args.format}: choose among {', '.join(FORMATS)} (comma-separated)")
    if command is None:
        command = shlex.join(["python", *sys.argv] if argv is None else
                             ["python", "-m", "rlbase.report.plot", *map(str, argv)])
    runs = find_runs(args.paths, args.max_step)
    if not runs:
        raise SystemExit(f"error: no run with evaluations under {', '.join(map(str, args.paths))}")
    rows = organise(runs)
    for line in _set_aside(rows):
        print(f"warning: {line[2:]}", file=sys.stderr)
    md = report(runs, args.threshold, command, args.paths, rows)
    print(md)
    if args.out is not None:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "report.md").write_text(md + "\n")
        (args.out / "summary.json").write_text(json.dumps(_summary(rows), indent=1))
        for path in curves(rows, args.out, formats):
            print(f"wrote {path}", file=sys.stderr)
    return md


if __name__ == "__main__":
    main()
