"""``docs/benchmarks.md``: every pre-registered protocol against the anchors it names, one headline table.

    python scripts/benchmarks.py                      # reads benchmarks/*/protocol.yaml, writes docs/benchmarks.md
                                                      # and each entry's curves in docs/benchmarks/*.png
    python scripts/benchmarks.py --root DIR --out F   # another tree (tests), another output file

What it reads, and nothing else: each ``benchmarks/<name>/protocol.yaml`` (``rlbase.report.protocol.load``), the
per-seed curves its ``export`` wrote next to it (``<entry>-seed<k>.csv``: ``step,return_mean,return_std``), its
``runs.json`` (which runs finished, on which commits), and the anchor files the protocol's ``anchors`` list names
(per-seed curves ``benchmarks/anchors/<source>/<algo>-<task>.csv`` with ``seed,step,return``; tables such as the TD3
paper's ``table1.csv`` with ``algo,task,mean,std,statistic,seeds``). Entries are named ``<algo>-<task>``; an entry
is compared with every curve file of the anchors list named ``<algo>-<task>.csv`` (and allowed by that anchor's
``algos``), one table row per (entry, anchor).

The per-seed statistic of a protocol is its ``statistic`` text put into code: a :class:`Statistic` (the mean return
over a window of evaluations, the same window for our seeds and the anchor's), taken from the protocol's optional
``statistic_window`` mapping (same field names) or else from ``STATISTICS`` below, keyed by the protocol's name. A
protocol with neither is listed as not tabulated. Verdicts come from ``rlbase.report.stats`` (Welch interval,
permutation test, ``verdict``), and only when every seed of the entry has finished; otherwise the row says
"queued: k/n finished" and shows the anchor's numbers alone. The secondary line (highest point of the seed-mean
curve, the anchors' own headline statistic) is descriptive: no verdict.

A protocol whose anchor is one published number per task (an anchor with ``table`` and ``rows``, entry -> the
table's task, plus the protocol's ``final_steps``, entry -> step; RL-Zoo's DQN results) gets its own table: each
seed's final evaluation, their mean and Student t interval, where the published number falls against it and how
many seeds reach it; no verdict word, since one number has no seed spread.

A benchmark directory that writes its own ``summary.md`` (e.g. ``benchmarks/generator_change/``) is linked, not
computed.
"""

from __future__ import annotations

import argparse
import csv
import json
import re
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import yaml

from rlbase.report import anchors as anchor_lib
from rlbase.report import protocol as protocol_lib
from rlbase.report import stats

ROOT = Path(__file__).resolve().parents[2]
SOURCE_NAMES = {"tianshou": "Tianshou", "td3_paper": "TD3 paper", "rl_zoo": "RL-Zoo"}


@dataclass(frozen=True)
class Statistic:
    """One value per seed: the mean return over the evaluations at ``first_step <= step <= last_step``, of which
    there must be exactly ``evaluations``; verdict margin ``margin`` x |anchor mean|; secondary statistic: the
    highest point of the seed-mean curve at steps <= ``max_step``."""

    first_step: int
    last_step: int
    evaluations: int
    margin: float = 0.05
    max_step: Optional[int] = None

    def describe(self) -> str:
        return (f"mean return over the last {self.evaluations} evaluations ({self.first_step:,}-{self.last_step:,} "
                f"steps) of each seed")

    def per_seed(self, curve: list[tuple[int, float]], where: str) -> float:
        window = [r for s, r in curve if self.first_step <= s <= self.last_step]
        if len(window) != self.evaluations:
            raise ValueError(f"{where}: {len(window)} evaluations in {self.first_step}-{self.last_step}, "
                             f"the protocol's statistic needs {self.evaluations}")
        return float(sum(window) / len(window))


# Each protocol's `statistic` text, in code (a protocol may instead carry `statistic_window:` with these fields).
STATISTICS = {
    # "the mean evaluation return over the last ten evaluations (955k-1M steps) of each seed ... verdict margin 5%
    # of the anchor's mean. Secondary ...: the highest point of the 5-seed mean curve within 1M steps"
    "offpolicy_1m": Statistic(first_step=955_000, last_step=1_000_000, evaluations=10, margin=0.05,
                              max_step=1_000_000),
}


@dataclass
class Row:
    protocol: str
    algo: str
    task: str
    our_task: str
    anchor: str  # "TD3 paper curves, v1 tasks"
    anchor_file: str
    n_seeds: int
    finished: list[int] = field(default_factory=list)
    our_files: list[str] = field(default_factory=list)
    commits: list[str] = field(default_factory=list)
    ours: dict[int, float] = field(default_factory=dict)
    theirs: dict[int, float] = field(default_factory=dict)
    our_max: Optional[tuple[int, float]] = None
    their_max: Optional[tuple[int, float]] = None
    tables: list[tuple[str, str]] = field(default_factory=list)  # (label, value) of published table numbers
    table_files: list[str] = field(default_factory=list)
    error: str = ""
    margin: float = 0.05
    our_curves: anchor_lib.Curves = field(default_factory=dict)  # finished seeds' curves (the figures draw them)
    their_curves: anchor_lib.Curves = field(default_factory=dict)  # the anchor's, on env steps
    window: tuple[int, int] = (0, 0)  # the statistic's steps, shaded in the figure

    @property
    def queued(self) -> bool:
        return len(self.finished) < self.n_seeds

    def diff(self) -> Optional[stats.Diff]:
        if self.queued or self.error or len(self.ours) < 2 or len(self.theirs) < 1:
            return None
        return stats.diff(list(self.ours.values()), list(self.theirs.values()))


# ---------------------------------------------------------------------------------------------------------------
# Reading
# ---------------------------------------------------------------------------------------------------------------


def expand(pattern: str) -> list[str]:
    """Shell-style brace expansion: ``"a/{x,y}-{1,2}.csv"`` -> the four paths, in order."""
    m = re.search(r"\{([^{}]*)\}", pattern)
    if not m:
        return [pattern]
    return [p for alt in m.group(1).split(",") for p in expand(pattern[:m.start()] + alt + pattern[m.end():])]


def read_curves(path: Path) -> anchor_lib.Curves:
    """An anchor file (``seed,step,return``) as seed -> [(step, return), ...] (``anchors.curves`` for any path)."""
    out: anchor_lib.Curves = {}
    with path.open(newline="") as f:
        for row in csv.DictReader(f):
            out.setdefault(int(row["seed"]), []).append((int(row["step"]), float(row["return"])))
    return {seed: sorted(points) for seed, points in sorted(out.items())}


def read_ours(path: Path) -> list[tuple[int, float]]:
    """One exported run (``step,return_mean,return_std``) as [(step, return_mean), ...]; a repeated step is an
    error (the curve would weigh that evaluation twice)."""
    with path.open(newline="") as f:
        points = sorted((int(r["step"]), float(r["return_mean"])) for r in csv.DictReader(f))
    steps = [s for s, _ in points]
    if len(set(steps)) != len(steps):
        raise ValueError(f"{path.name}: an evaluation step appears twice")
    return points


def split_entry(name: str) -> tuple[str, str]:
    algo, sep, task = name.partition("-")
    if not sep or not algo or not task:
        raise ValueError(f"entry {name!r}: expected <algo>-<task>")
    return algo.lower(), task.lower()


def our_task(entry: dict[str, Any], common: list[str], task: str) -> str:
    """The task id our runs used: an ``env.id=`` override, else the env file's ``id``, else the entry's task; then
    the ``env.kwargs`` the protocol sets (a v3-like Ant, another model file), so a row says which task it ran."""
    overrides = [*common, *entry.get("overrides", [])][::-1]  # the last one wins, as on Hydra's command line
    kwargs: dict[str, str] = {}
    for o in overrides[::-1]:
        key, _, value = o.lstrip("+").partition("=")
        if key.startswith("env.kwargs."):
            kwargs[key[len("env.kwargs."):]] = value
    extra = "".join(f", {k}={v}" for k, v in kwargs.items())
    for o in overrides:
        if o.startswith("env.id="):
            return o.partition("=")[2] + extra
    env = next((o.partition("=")[2] for o in overrides if o.startswith("env=")), task)
    conf = ROOT / "rlbase" / "conf" / "env" / f"{env}.yaml"
    if conf.is_file():
        return str((yaml.safe_load(conf.read_text()) or {}).get("id", task)) + extra
    return task + extra


def statistic_of(spec: dict[str, Any]) -> Optional[Statistic]:
    if spec.get("statistic_window"):
        return Statistic(**spec["statistic_window"])
    return STATISTICS.get(spec["name"])


def _sb3_side_progress(d: Path) -> str:
    """What an SB3 side without its report has so far: its finished jobs (``sb3/<case>/sb3/seed<k>/done``, the
    per-seed data committed as each finishes), per case; "not run yet" when none."""
    done: dict[str, list[int]] = {}
    for flag in sorted((d / "sb3").glob("*/sb3/seed*/done")):
        seed = flag.parent.name[len("seed"):]
        if seed.isdigit():
            done.setdefault(flag.parent.parent.parent.name, []).append(int(seed))
    if not done:
        return "not run yet"
    cases = "; ".join(f"`{case}` seed{'s' if len(v) > 1 else ''} {', '.join(map(str, sorted(v)))}"
                      for case, v in sorted(done.items()))
    return (f"{sum(map(len, done.values()))} SB3 run(s) finished so far ({cases}); no comparison on this page until its "
            "report is committed")


def _rel(path: Path, root: Path) -> str:
    try:
        return path.resolve().relative_to(root.resolve()).as_posix()
    except ValueError:
        return str(path)


def read_manifest(spec: dict[str, Any]) -> dict[str, Any]:
    """The protocol's ``runs.json`` (written by ``export``: each run's status, last step and commits), or {}."""
    path = Path(spec["_path"]).parent / "runs.json"
    return json.loads(path.read_text()) if path.is_file() else {}


def progress(spec: dict[str, Any], root: Path) -> tuple[int, int]:
    """(finished, all) runs of the protocol, as its runs.json records them."""
    jobs = protocol_lib.jobs(spec, root / "benchmarks" / "runs")
    manifest = read_manifest(spec)
    return sum(manifest.get(j.key, {}).get("status") == "done" for j in jobs), len(jobs)


def rows_of(spec: dict[str, Any], stat: Statistic, root: Path) -> list[Row]:
    """Every (entry, anchor) row of one protocol, with all numbers read (none computed yet but the per-seed ones)."""
    out_dir = Path(spec["_path"]).parent
    manifest = read_manifest(spec)
    by_entry: dict[str, list[protocol_lib.Job]] = {}
    for job in protocol_lib.jobs(spec, root / "benchmarks" / "runs"):
        by_entry.setdefault(job.entry, []).append(job)
    anchor_specs = spec.get("anchors") or []
    rows: list[Row] = []
    for entry in spec["entries"]:
        algo, task = split_entry(entry["name"])
        jobs = by_entry[entry["name"]]
        # ours: finished runs (runs.json says done, and the curve file is there)
        ours: dict[int, float] = {}
        finished, files, commits, curves, errors = [], [], set(), {}, []
        for job in jobs:
            record = manifest.get(job.key, {})
            path = out_dir / f"{job.key}.csv"
            if record.get("status") != "done" or not path.is_file():
                continue
            finished.append(job.seed)
            files.append(_rel(path, root))
            commits.update(record.get("commits", []))
            try:
                curves[job.seed] = read_ours(path)
                ours[job.seed] = stat.per_seed(curves[job.seed], path.name)
            except ValueError as e:
                errors.append(str(e))
        our_max = None
        if not errors and len(finished) == len(jobs) and curves:
            our_max = _max_of_mean(curves, stat.max_step)
        # published table numbers (secondary line only): rows whose algo ends with ours (ddpg: ddpg and ourddpg),
        # shown on the row of the same source's curves, or on every row when that source has no curves of this entry
        tables, table_files = [], []  # (source, label, value), (source, file)
        for a in anchor_specs:
            if "file" not in a:
                continue
            path = root / a["file"]
            if not path.is_file():
                continue
            if a.get("tasks") and task not in a["tasks"]:
                continue
            with path.open(newline="") as f:
                for r in csv.DictReader(f):
                    if r["task"] == task and r["algo"].endswith(algo) and r["algo"] in a.get("algos", [r["algo"]]):
                        label = f"{SOURCE_NAMES.get(a['source'], a['source'])} {Path(a['file']).stem} {r['algo']}"
                        how = f"{r['statistic']}, {r['seeds']} seeds, {a.get('version', '?')}"
                        tables.append((a["source"], label, f"{float(r['mean']):.2f} ({how})"))
                        if (a["source"], _rel(path, root)) not in table_files:
                            table_files.append((a["source"], _rel(path, root)))
        curve_sources = {a["source"] for a in anchor_specs if "files" in a and (not a.get("algos") or algo in a["algos"])
                         and f"benchmarks/anchors/{a['source']}/{algo}-{task}.csv" in expand(a["files"])}
        # one row per curve anchor that has this entry's file
        for a in anchor_specs:
            if "files" not in a or (a.get("algos") and algo not in a["algos"]):
                continue
            wanted = f"benchmarks/anchors/{a['source']}/{algo}-{task}.csv"
            if wanted not in expand(a["files"]):
                continue
            source = SOURCE_NAMES.get(a["source"], a["source"])
            row = Row(spec["name"], algo, task, our_task(entry, spec.get("common", []), task),
                      f"{source} curves, {a.get('version', '?')} tasks", wanted, len(jobs), finished, files,
                      sorted(commits), dict(ours), our_max=our_max,
                      tables=[(lab, v) for s, lab, v in tables if s == a["source"] or s not in curve_sources],
                      table_files=[f for s, f in table_files if s == a["source"] or s not in curve_sources], error="; ".join(errors), margin=stat.margin,
                      our_curves=dict(curves), window=(stat.first_step, stat.last_step))
            path = root / wanted
            if not path.is_file():
                row.error = (row.error + "; " if row.error else "") + f"anchor file {wanted} missing"
            else:
                their = read_curves(path)
                offset = int((a.get("step_offset") or {}).get(algo, 0))
                if offset:  # the anchor's step counter leaves out its warm-up: put its curve on env steps, as ours
                    their = {s: [(st + offset, r) for st, r in c] for s, c in their.items()}
                row.their_curves = their
                try:
                    row.theirs = {s: stat.per_seed(c, f"{wanted} seed {s}") for s, c in their.items()}
                    row.their_max = _max_of_mean(their, stat.max_step)
                except ValueError as e:
                    row.error = (row.error + "; " if row.error else "") + str(e)
            rows.append(row)
        if not any(r.algo == algo and r.task == task and r.protocol == spec["name"] for r in rows):
            rows.append(Row(spec["name"], algo, task, our_task(entry, spec.get("common", []), task),
                            "no per-seed anchor named", "", len(jobs), finished, files, sorted(commits), dict(ours),
                            our_max=our_max, tables=tables, table_files=table_files,
                            error="; ".join(errors) or "the protocol names no per-seed anchor file for this entry",
                            margin=stat.margin, our_curves=dict(curves), window=(stat.first_step, stat.last_step)))
    return rows


# ---------------------------------------------------------------------------------------------------------------
# Figures: one per protocol entry with a finished seed, ours against every anchor of that entry
# ---------------------------------------------------------------------------------------------------------------

FIGURE_NOTE = ("Line: the mean over seeds at the steps all of them evaluated; band: its 95% t+Hall interval "
               "(`stats.mean_ci`; none for one seed; at few seeds it can run past the axes, which fit the curves); thin "
               "lines: our seeds; shaded: the steps of the protocol's per-seed statistic (a vertical line: the "
               "final evaluation a single published number is compared with; dotted: that number); x: up to the "
               "protocol's budget. An anchor's curve is drawn on env steps (a warm-up its step counter leaves out "
               "is added back, as in the table).")


def _mean_band(curves: anchor_lib.Curves) -> tuple[list[int], list[float], list[float], list[float]]:
    """(steps every seed has, mean, lo, hi) of seed -> curve; lo = hi = mean for one seed."""
    if not curves:
        return [], [], [], []
    steps = sorted(set.intersection(*(set(dict(c)) for c in curves.values())))
    by_seed = [dict(c) for c in curves.values()]
    mean, lo, hi = [], [], []
    for st in steps:
        v = [c[st] for c in by_seed]
        if len(v) > 1:
            m, a, b = stats.mean_ci(v)
        else:
            m = a = b = v[0]
        mean.append(float(m)), lo.append(float(a)), hi.append(float(b))
    return steps, mean, lo, hi


@dataclass
class Figure:
    """What one entry's figure shows: our finished seeds' curves, each anchor's seed curves (label -> curves), each
    published single number (label -> value, a horizontal line), the statistic's steps (shaded) and the budget."""

    name: str  # file name
    title: str
    ours: anchor_lib.Curves
    our_label: str
    anchors: dict[str, anchor_lib.Curves] = field(default_factory=dict)
    numbers: dict[str, float] = field(default_factory=dict)
    window: tuple[int, int] = (0, 0)
    budget: int = 0


def figures_of(rows: list[Row], number_rows_: list[NumberRow]) -> list[Figure]:
    """One figure per (protocol, algo, task) with at least one finished seed of ours."""
    out: dict[tuple[str, str, str], Figure] = {}
    for r in rows:
        if not r.our_curves:
            continue
        key = (r.protocol, r.algo, r.task)
        if key not in out:
            out[key] = Figure(f"{r.protocol}-{r.algo}-{r.task}.png", f"{r.algo.upper()} {_pretty_task(r.task)}, "
                              f"protocol {r.protocol}", r.our_curves,
                              f"ours, {r.our_task}: {len(r.our_curves)}/{r.n_seeds} seeds finished",
                              window=r.window, budget=r.window[1])
        if r.their_curves:
            out[key].anchors[f"{r.anchor} ({len(r.their_curves)} seeds)"] = r.their_curves
    for r in number_rows_:
        if not r.curves:
            continue
        algo, task = split_entry(r.entry)
        f = Figure(f"{r.protocol}-{algo}-{task}.png", f"{algo.upper()} {r.our_task or r.task}, protocol "
                   f"{r.protocol}", r.curves, f"ours, {r.our_task or r.task}: {len(r.curves)}/{r.n_seeds} seeds "
                   "finished", window=(r.final_step, r.final_step), budget=r.final_step)
        if r.anchor_mean is not None:
            f.numbers[f"{r.anchor}: {r.task}, one agent"] = r.anchor_mean
        out[(r.protocol, algo, task)] = f
    return list(out.values())



def _save_small(fig, path: Path) -> None:
    """``fig`` as a PNG of 64 colours without dithering (about a quarter of matplotlib's RGBA bytes, which matters
    because every export that adds a seed commits the figure again), with no version or date in it: the same data
    gives the same bytes."""
    import io

    from PIL import Image

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=80, metadata={"Software": None})
    buf.seek(0)
    image = Image.open(buf).convert("RGB").quantize(colors=64, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)
    image.save(path, format="PNG", optimize=True)


def draw(figs: list[Figure], fig_dir: Path, protocols: Optional[set[str]] = None) -> list[Figure]:
    """Each figure as a PNG in ``fig_dir``; a PNG there of an entry no longer drawn (``<protocol>-*.png`` of one of
    ``protocols``, and nothing else) is removed. Returns the figures drawn. Without matplotlib: nothing is drawn."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return []
    fig_dir.mkdir(parents=True, exist_ok=True)
    for f in figs:
        fig, ax = plt.subplots(figsize=(6.4, 3.8))
        for c in f.ours.values():
            ax.plot([s for s, _ in c], [v for _, v in c], color="C0", alpha=0.25, linewidth=0.8)
        steps, mean, lo, hi = _mean_band(f.ours)
        ax.plot(steps, mean, color="C0", linewidth=2, label=f.our_label)
        if len(f.ours) > 1:
            ax.fill_between(steps, lo, hi, color="C0", alpha=0.2)
        right = max(f.budget, max(s for c in f.ours.values() for s, _ in c))
        # the axes fit the budget and the curves (our seeds, each side's mean, the published numbers): at a few
        # seeds an interval can run far past any return reached and would flatten the curves (the caption says so)
        seen = [v for c in f.ours.values() for s, v in c if s <= right] + list(f.numbers.values())
        for i, (label, curves) in enumerate(f.anchors.items()):
            steps, mean, lo, hi = _mean_band(curves)
            color = f"C{i + 1}"
            ax.plot(steps, mean, color=color, linewidth=1.6, linestyle="--", label=label)
            ax.fill_between(steps, lo, hi, color=color, alpha=0.15)
            seen += [m for st, m in zip(steps, mean) if st <= right]
        for i, (label, value) in enumerate(f.numbers.items()):
            ax.axhline(value, color=f"C{len(f.anchors) + i + 1}", linewidth=1.4, linestyle=":", label=label)
        if f.window[1] > f.window[0]:
            ax.axvspan(*f.window, color="0.5", alpha=0.15, linewidth=0)
        else:
            ax.axvline(f.window[0], color="0.5", linewidth=1)
        pad = 0.05 * (max(seen) - min(seen) or 1.0)
        ax.set_xlim(0, right)
        ax.set_ylim(min(seen) - pad, max(seen) + pad)
        ax.set_xlabel("env steps")
        ax.set_ylabel("evaluation return")
        ax.set_title(f.title, fontsize=10)
        ax.legend(fontsize=7, loc="best")
        ax.grid(alpha=0.3)
        fig.tight_layout()
        _save_small(fig, fig_dir / f.name)
        plt.close(fig)
    drawn = {f.name for f in figs}
    for name in sorted(protocols or ()):
        for old in fig_dir.glob(f"{name}-*.png"):
            if old.name not in drawn:
                old.unlink()
    return figs


def _max_of_mean(curves: anchor_lib.Curves, max_step: Optional[int]) -> tuple[int, float]:
    return anchor_lib.max_of_mean(curves, max_step=max_step)


@dataclass
class NumberRow:
    """One entry of a protocol whose anchor is one published number per task (RL-Zoo's one trained agent): our
    per-seed final evaluations beside it; no two-sample test and no verdict word (one number has no seed spread)."""

    protocol: str
    entry: str
    task: str  # the anchor table's task name (e.g. "Acrobot-v1")
    final_step: int
    n_seeds: int
    anchor: str  # "RL-Zoo dqn.csv"
    anchor_file: str
    anchor_mean: Optional[float] = None
    anchor_std: Optional[float] = None
    finished: list[int] = field(default_factory=list)
    our_files: list[str] = field(default_factory=list)
    commits: list[str] = field(default_factory=list)
    final: dict[int, float] = field(default_factory=dict)  # seed -> return at final_step
    last3: dict[int, float] = field(default_factory=dict)  # seed -> mean of its last three evaluations
    our_max: Optional[tuple[int, float]] = None
    error: str = ""
    our_task: str = ""  # the task id our runs used, where it differs from the anchor's (LunarLander-v3 vs v2)
    curves: anchor_lib.Curves = field(default_factory=dict)  # finished seeds' curves (the figures draw them)

    @property
    def queued(self) -> bool:
        return len(self.finished) < self.n_seeds


def number_anchor(spec: dict[str, Any]) -> Optional[dict[str, Any]]:
    """The protocol's single-number anchor (``table`` and ``rows``: entry -> the table's task), or None when it has
    none. Such a protocol must state every entry's ``final_steps`` and a row for every entry, and may not also have
    curve anchors or a ``statistic_window`` (one protocol, one kind of comparison): else a ProtocolError."""
    a = next((a for a in spec.get("anchors") or [] if "table" in a and "rows" in a), None)
    if a is None and not spec.get("final_steps"):
        return None
    name, entries = spec["name"], [e["name"] for e in spec["entries"]]
    if a is None:
        raise protocol_lib.ProtocolError(f"{name}: final_steps is for a single-number anchor (an anchor with table: "
                                         "and rows:), and the protocol has none")
    if spec.get("statistic_window") or any("files" in b for b in spec.get("anchors") or []):
        raise protocol_lib.ProtocolError(f"{name}: a single-number anchor cannot be mixed with curve anchors (files:) "
                                         "or a statistic_window; make two protocols")
    missing = [e for e in entries if e not in (spec.get("final_steps") or {}) or e not in a["rows"]]
    if missing:
        raise protocol_lib.ProtocolError(f"{name}: final_steps and the anchor's rows must name every entry; missing "
                                         f"for {', '.join(missing)}")
    return a


def number_rows(spec: dict[str, Any], root: Path) -> list[NumberRow]:
    """Every entry of a single-number protocol, its finished seeds' final evaluations read."""
    a = number_anchor(spec)
    out_dir = Path(spec["_path"]).parent
    manifest = read_manifest(spec)
    table_path = root / a["table"]
    table = {}
    if table_path.is_file():
        with table_path.open(newline="") as f:
            table = {r["task"]: r for r in csv.DictReader(f)}
    by_entry: dict[str, list[protocol_lib.Job]] = {}
    for job in protocol_lib.jobs(spec, root / "benchmarks" / "runs"):
        by_entry.setdefault(job.entry, []).append(job)
    rows = []
    for entry in spec["entries"]:
        name = entry["name"]
        task = a["rows"].get(name, "")
        source = SOURCE_NAMES.get(a.get("source", ""), a.get("source", "anchor"))
        row = NumberRow(spec["name"], name, task, int(spec["final_steps"][name]), len(by_entry[name]),
                        f"{source} {Path(a['table']).name}", _rel(table_path, root),
                        our_task=our_task(entry, spec.get("common", []), task))
        if task in table:
            row.anchor_mean, row.anchor_std = float(table[task]["mean"]), float(table[task]["std"])
        else:
            row.error = f"{task or name!r} not in {row.anchor_file}"
        curves, errors = {}, []
        for job in by_entry[name]:
            path = out_dir / f"{job.key}.csv"
            if manifest.get(job.key, {}).get("status") != "done" or not path.is_file():
                continue
            row.finished.append(job.seed)
            row.our_files.append(_rel(path, root))
            row.commits = sorted(set(row.commits) | set(manifest[job.key].get("commits", [])))
            try:
                curve = read_ours(path)
            except ValueError as e:
                errors.append(str(e))
                continue
            at = [r for st, r in curve if st == row.final_step]
            if not at:
                errors.append(f"{path.name}: no evaluation at step {row.final_step:,}")
                continue
            curves[job.seed] = curve
            row.curves[job.seed] = curve
            row.final[job.seed] = at[0]
            last = [r for st, r in curve if st <= row.final_step][-3:]
            row.last3[job.seed] = sum(last) / len(last)
        if curves and not errors and not row.queued:
            row.our_max = _max_of_mean(curves, row.final_step)
        if errors:
            row.error = "; ".join([row.error, *errors] if row.error else errors)
        rows.append(row)
    return rows


def where_number_falls(row: NumberRow) -> tuple[str, str, str]:
    """(ours: mean [95% t interval], where the anchor's number falls, seeds reaching it) for a finished row."""
    m, lo, hi = stats.mean_ci(list(row.final.values()), method="t")
    x = row.anchor_mean
    place = "below our interval" if x < lo else "above our interval" if x > hi else "inside our interval"
    near = x - 0.05 * abs(x)
    reach = sum(v >= x for v in row.final.values())
    within = sum(v >= near for v in row.final.values())
    return (f"{stats.format_ci(m, lo, hi)}, n={len(row.final)}", place,
            f"{within} of {len(row.final)} within 5% ({near:g} or more); {reach} at {x:g} or more")


# ---------------------------------------------------------------------------------------------------------------
# Writing
# ---------------------------------------------------------------------------------------------------------------


def _git(*args: str) -> Optional[str]:
    try:
        proc = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return None
    return proc.stdout.strip() if proc.returncode == 0 else None


def _ci(values: dict[int, float]) -> str:
    m, lo, hi = stats.mean_ci(list(values.values()))
    return f"{stats.format_ci(m, lo, hi)}, n={len(values)}"


def _pretty_task(task: str) -> str:
    return {"halfcheetah": "HalfCheetah", "walker2d": "Walker2d"}.get(task, task.capitalize())


def cells(row: Row) -> list[str]:
    """The headline table's cells for one row."""
    what = f"{row.algo.upper()} | {_pretty_task(row.task)} ({row.our_task})"
    theirs = f"{_ci(row.theirs)}, {row.anchor}" if row.theirs else f"— ({row.anchor})"
    if row.queued:
        return [what, f"queued: {len(row.finished)}/{row.n_seeds} finished", theirs, "—", "no verdict (queued)",
                row.protocol]
    if row.error:
        return [what, _ci(row.ours) if len(row.ours) >= 2 else "—", theirs, f"data error: {row.error}",
                "no verdict (data error)", row.protocol]
    d = row.diff()
    if d is None:
        return [what, "—", theirs, "—", "no verdict", row.protocol]
    v = stats.verdict(d, stats.margin_from(list(row.theirs.values()), row.margin))
    return [what, _ci(row.ours), theirs, stats.format_diff(d), f"**{v}**", row.protocol]


def final_evaluation(curves: anchor_lib.Curves, last_step: int) -> Optional[tuple[int, dict[int, float]]]:
    """(step, {seed: return}) at the last evaluation at or before ``last_step`` that every seed made (the end of a
    protocol's statistic window: its final evaluation within the budget), or None."""
    if not curves:
        return None
    common = set.intersection(*({st for st, _ in c if st <= last_step} for c in curves.values()))
    if not common:
        return None
    step = max(common)
    return step, {s: next(r for st, r in c if st == step) for s, c in curves.items()}


def secondary(row: Row) -> str:
    """The descriptive line: highest point of the seed-mean curve, ours and the anchor's; the return at the final
    evaluation of the statistic's window, both sides (mean and 95% interval, no test); published numbers."""
    def at(x: Optional[tuple[int, float]], n: int) -> str:
        return f"{x[1]:.1f} at step {x[0]:,} ({n} seeds)" if x else "—"

    ours = at(row.our_max, len(row.finished)) if not row.queued else f"— (queued: {len(row.finished)}/{row.n_seeds})"
    line = (f"- {row.algo.upper()} {_pretty_task(row.task)} vs {row.anchor}: ours {ours}; anchor "
            f"{at(row.their_max, len(row.theirs))}")
    mine, theirs = final_evaluation(row.our_curves, row.window[1]), final_evaluation(row.their_curves, row.window[1])
    if not row.queued and mine and theirs and len(mine[1]) > 1 and len(theirs[1]) > 1:
        line += (f"; final evaluation: ours {_ci(mine[1])} at step {mine[0]:,}, anchor {_ci(theirs[1])} at step "
                 f"{theirs[0]:,}")
    if row.tables:
        line += "; published: " + ", ".join(f"{label} {value}" for label, value in row.tables)
    return line + "."


def family_wise(rows: list[Row]) -> list[str]:
    """A descriptive section: per protocol with two or more rows, Holm's adjustment of the compared rows'
    permutation p-values over all the protocol's rows (each row against each anchor is one test of the family; a
    row not compared yet counts as p = 1, so an interim adjustment is never more lenient than the final one). The
    protocols pre-registered a per-row rule, so this changes no verdict; it says which would also hold family-wise."""
    fams: dict[str, list[tuple[Row, Optional[stats.Diff]]]] = {}
    for r in rows:
        fams.setdefault(r.protocol, []).append((r, r.diff()))
    fams = {k: v for k, v in fams.items() if len(v) >= 2 and any(d is not None for _, d in v)}
    if not fams:
        return []
    out = ["", "Family-wise, descriptive (not pre-registered, no verdict changes): each protocol's rule is per row, "
           "with no correction for the protocol's several rows. Holm's adjustment of the rows' permutation p over "
           "all of each protocol's rows (`stats.holm`; each row against each anchor is one test; a row not compared "
           "yet counts as p = 1) says which verdicts would also hold at a family-wise 5% level:", ""]
    for name, pairs in fams.items():
        done = [(r, d) for r, d in pairs if d is not None]
        adj = stats.holm([d.p for _, d in done] + [1.0] * (len(pairs) - len(done)))[:len(done)]
        parts = []
        for (r, d), q in sorted(zip(done, adj), key=lambda x: x[0][1].p):
            v = stats.verdict(d, stats.margin_from(list(r.theirs.values()), r.margin)).word
            tail = ""
            if v in ("above", "below"):
                tail = f" ({v}; {'also' if q < 0.05 else 'not'} family-wise)"
            parts.append(f"{r.algo.upper()} {_pretty_task(r.task)} vs {r.anchor.split(',')[0]}: p {d.p:.2g} -> "
                         f"{q:.2g}{tail}")
        count = (f"{len(done)} of {len(pairs)} rows compared so far" if len(done) < len(pairs)
                 else f"{len(pairs)} compared rows")
        out.append(f"- {name} ({count}): " + "; ".join(parts) + ".")
    return out


def own_comparisons(specs: list[dict[str, Any]], root: Path) -> list[str]:
    """A protocol's comparisons with another of our protocols (``protocol.py compare --against``, written to
    ``compare_<other>.json`` beside it): a cause test's secondary question, for example. One line per pair: its
    difference and, only when both sides have all their planned seeds, the verdict the file records (before that:
    "interim k/n, no verdict", as the table's "queued"); Holm's adjusted p over the file's pairs where recorded; a
    file whose seed counts no longer match the exported curves is marked stale; an unreadable one is a data error."""
    lines = []
    for spec in specs:
        d = Path(spec["_path"]).parent
        for f in sorted(d.glob("compare_*.json")):
            where = f"`{_rel(f, root)}`"
            try:
                data = json.loads(f.read_text())
                against = data["against"]
                other = protocol_lib.load(root / "benchmarks" / against / "protocol.yaml")
                other = {**other, "statistic_window": spec["statistic_window"]}
                for pair in data["pairs"]:
                    a, b = pair["a"], pair["b"]
                    na, nb = len(pair.get("values_a", {})), len(pair.get("values_b", {}))
                    plan_a = len(spec.get("entry_seeds", {}).get(a, spec["seeds"]))
                    plan_b = len(other.get("entry_seeds", {}).get(b, other["seeds"]))
                    now = (len(protocol_lib.window_values(spec, a)), len(protocol_lib.window_values(other, b)))
                    head = f"- {spec['name']} `{a}` minus {against} `{b}` ({na}/{plan_a} against {nb}/{plan_b} seeds)"
                    if now != (na, nb):
                        lines.append(f"{head}: stale ({now[0]} and {now[1]} seeds exported now; rerun the command) "
                                     f"({where})")
                    elif "text" not in pair:
                        lines.append(f"{head}: {pair.get('verdict', 'not measured')} ({where})")
                    elif (na, nb) != (plan_a, plan_b):
                        lines.append(f"{head}: {pair['text']} -> interim {na}/{plan_a}, no verdict ({where})")
                    else:
                        # the verdict is the protocol's rule on this pair's own (unadjusted) p; Holm's adjusted
                        # p over the file's pairs is printed beside it, for the family-wise reading
                        family = data.get("holm_family", "")
                        holm = (f"; Holm over the file's pairs p {pair['p_holm']:.2g}"
                                + (f" ({family})" if family and not family.startswith("all") else "")
                                if pair.get("p_holm") is not None else "")
                        lines.append(f"{head}: {pair['text']} -> **{pair['verdict']}** (on its own p{holm}) "
                                     f"({where})")
            except (OSError, ValueError, KeyError, TypeError, protocol_lib.ProtocolError) as err:
                lines.append(f"- {spec['name']}: data error in {where}: {type(err).__name__}: {err}")
    if not lines:
        return []
    return ["", "Comparisons with our own earlier protocols (a protocol's pre-registered secondary question, "
            "`python scripts/protocol.py compare <protocol> --against <other protocol>`; same per-seed statistic on "
            "this protocol's window, Welch 95% interval and permutation test, the verdict rule of the rows above, "
            "given once both sides have all their planned seeds):", ""] + lines


def render(root: Path, fig_dir: Optional[Path] = None, fig_link: str = "benchmarks") -> str:
    """The page's text; with ``fig_dir``, each entry's curves are drawn there too and shown on the page (linked as
    ``<fig_link>/<file>``, relative to the page)."""
    bench = root / "benchmarks"
    protocols, linked, untabled, rows, internal, numbers, sides = [], [], [], [], [], [], []
    for d in sorted(p for p in bench.iterdir() if p.is_dir() and p.name not in ("anchors", "runs")) \
            if bench.is_dir() else []:
        if (d / "summary.md").is_file():
            linked.append(d)
            continue
        if not (d / "protocol.yaml").is_file():
            continue
        if (d / "SB3_SIDE.md").is_file():  # a pre-registered side by side with SB3 on this protocol's seeds
            sides.append(d)
        spec = protocol_lib.load(d / "protocol.yaml")
        if not spec.get("anchors"):  # a comparison among our own entries (protocol.py compare writes its summary.md)
            internal.append(spec)
            continue
        if number_anchor(spec) is not None:
            numbers.append(spec)
            continue
        stat = statistic_of(spec)
        if stat is None:
            untabled.append(spec)
            continue
        protocols.append((spec, stat))
        rows += rows_of(spec, stat, root)

    commit = _git("rev-parse", "HEAD") or "unknown"
    dirty = _git("status", "--porcelain")
    tree = "" if dirty is None else " (the working tree had uncommitted changes)" if dirty else " (clean tree)"
    out = [
        "# Benchmarks: pre-registered protocols against published anchors",
        "",
        "Generated by `python scripts/benchmarks.py` (`rlbase/report/benchmarks.py`) from the files under "
        f"`benchmarks/` only, at commit `{commit}`{tree}. Do not edit by hand: rerun the command.",
        "",
        "Each row compares our seeds of one protocol entry with one anchor's seeds at the protocol's per-seed "
        "statistic, computed the same way for both. Ours: mean [95% interval] over the finished seeds (interval "
        "`t+hall`, `rlbase.report.stats.mean_ci`). Difference: ours minus the anchor, Welch 95% interval and a "
        "two-sided permutation test, with the smallest p that test can reach at these seed counts (`stats.diff`). "
        "Verdicts (`stats.verdict`):",
        "",
        "- **above** / **below**: a resolved difference: the interval excludes 0 *and* the permutation p < 0.05 "
        "(so 3 seeds against 3, whose smallest attainable p is 0.10, can never be above or below);",
        "- **matches**: not resolved, and the whole interval lies inside the protocol's equivalence margin "
        "(" + ("; ".join(f"{spec['name']}: ±{100 * stat.margin:g}% of the anchor's mean" for spec, stat in protocols)
               or "stated by each protocol") + ");",
        "- **not resolved**: anything else;",
        "- **queued: k/n finished**: fewer than the protocol's seeds have finished; the anchor's numbers are shown, "
        "no verdict is given.",
        "",
        "Task versions differ between us and the anchors (named in each cell); a difference can be the task's."
        + (" Walker2d-v5 also has another model than v1-v4 (both feet friction 1.9, where those have 0.9 on the "
           "right foot): its rows compare different dynamics." if any(r.task == "walker2d" for r in rows) else ""),
        "",
    ]
    if rows:
        out += ["| algo | task (ours) | ours | anchor | ours − anchor | verdict | protocol |",
                "|---|---|---|---|---|---|---|"]
        out += ["| " + " | ".join(cells(r)) + " |" for r in rows]
    else:
        out += ["No protocol with a known statistic yet."]
    if rows:
        out += ["", "Secondary, descriptive (no verdict): the highest point of the seed-mean curve within each "
                "protocol's budget (the statistic of the anchors' own tables), ours and the anchor's; the return at "
                "the final evaluation of the statistic's window, each side's mean [95% interval] over seeds (one "
                "evaluation: noisier than the primary statistic, which averages it with the ones before; not "
                "pre-registered, so no difference is tested); with the "
                "published table numbers the protocol names (what each source's algorithms and numbers are: the "
                "`SOURCE.md` beside its file" + ("; the TD3 paper's `ddpg` is OpenAI Baselines' DDPG, `ourddpg` the "
                "authors' own" if any("ourddpg" in label for r in rows for label, _ in r.tables) else "") + "):", ""]
        out += [secondary(r) for r in rows]
        out += family_wise(rows)
        out += own_comparisons([spec for spec, _ in protocols], root)
        out += ["", "## Data behind each row", ""]
        for r in rows:
            files = [f"`{_rel(Path(spec['_path']), root)}`" for spec, _ in protocols if spec["name"] == r.protocol]
            manifest = root / "benchmarks" / r.protocol / "runs.json"
            files.append(f"`{_rel(manifest, root)}`" if manifest.is_file() else "no `runs.json` yet (nothing exported)")
            if r.our_files:
                files.append(f"ours: {_file_list(r.our_files)}")
            else:
                files.append("ours: no finished run yet")
            if r.anchor_file:
                files.append(f"anchor: `{r.anchor_file}`")
            files += [f"table: `{f}`" for f in r.table_files]
            commits = f"; runs' commits: {', '.join(f'`{c[:7]}`' for c in r.commits)}" if r.commits else ""
            out.append(f"- {r.algo.upper()} {_pretty_task(r.task)} vs {r.anchor}: " + ", ".join(files) + commits)
    names = {spec["name"] for spec, _ in protocols} | {spec["name"] for spec in numbers}
    figures = draw(figures_of(rows, [r for spec in numbers for r in number_rows(spec, root)]), fig_dir, names) \
        if fig_dir is not None else []
    if figures:
        out += ["", "## Curves", "", FIGURE_NOTE, ""]
        out += [line for f in figures for line in (f"![{f.title}]({fig_link}/{f.name})", "")]
    if numbers:
        out += number_section(numbers, root)
    out += ["", "## Protocols", ""]
    for spec, stat in protocols:
        done, total = progress(spec, root)
        text = " ".join(str(spec["statistic"]).split())
        out += [f"- **{spec['name']}** (`{_rel(Path(spec['_path']), root)}`, written {spec['written']}): "
                f"{done}/{total} runs finished. Seeds {', '.join(map(str, spec['seeds']))}. "
                f"Statistic as computed here: {stat.describe()}, margin {100 * stat.margin:g}% of the anchor's mean"
                + (f", secondary within {stat.max_step:,} steps" if stat.max_step else "")
                + f". The protocol's text: \"{text}\""]
    for spec in numbers:
        done, total = progress(spec, root)
        text = " ".join(str(spec["statistic"]).split())
        out.append(f"- **{spec['name']}** (`{_rel(Path(spec['_path']), root)}`, written {spec['written']}): "
                   f"{done}/{total} runs finished. Seeds {', '.join(map(str, spec['seeds']))}. Against one "
                   f"published number per task (section above). The protocol's text: \"{text}\"")
    for spec in untabled:
        out.append(f"- **{spec['name']}** (`{_rel(Path(spec['_path']), root)}`): not tabulated: no statistic for it "
                   "in `rlbase/report/benchmarks.py` (`STATISTICS`) and no `statistic_window` in the file.")
    if linked or internal or sides:
        out += ["", "## Other checks (each reports itself)", ""]
        out += [f"- [{d.name}](../{_rel(d / 'summary.md', root)})" for d in linked]
        for d in sides:
            rep = d / "sb3" / "report.md"
            out.append(f"- **{d.name} beside Stable-Baselines3** on the same seeds (pre-registered: "
                       f"[SB3_SIDE.md](../{_rel(d / 'SB3_SIDE.md', root)})): "
                       + (f"[report](../{_rel(rep, root)}) (`python scripts/parity.py report <cases> --out "
                          f"{_rel(d / 'sb3', root)} --seeds <seeds>`: our side from the protocol's committed CSVs)"
                          if rep.is_file() else _sb3_side_progress(d)))
        for spec in internal:
            done, total = progress(spec, root)
            kind = "its entries against each other" if len(spec["entries"]) > 1 else "descriptive"
            out.append(f"- **{spec['name']}** (`{_rel(Path(spec['_path']), root)}`, written {spec['written']}, no "
                       f"anchor: {kind}): {done}/{total} runs finished; results: "
                       + (f"[compare.json](../{_rel(Path(spec['_path']).parent / 'compare.json', root)}) "
                          f"(`python scripts/protocol.py compare`)"
                          if (Path(spec["_path"]).parent / "compare.json").is_file() else "none yet"))
    out += ["", "Older comparisons (before the protocols, and before commits f8a52e1 and 47a9c88, which changed every "
            "trajectory) are exploration, in [results.md](results.md).", ""]
    return "\n".join(out)


def number_section(specs: list[dict[str, Any]], root: Path) -> list[str]:
    """The table of protocols whose anchor is one published number per task (no verdict word)."""
    rows = [r for spec in specs for r in number_rows(spec, root)]
    out = ["", "## Against one published number per task (no verdict)", "",
           "The anchor is the mean return of one trained agent over its evaluation episodes (its ± is over episodes, "
           "not seeds), so no two-sample interval or verdict word is computed. Ours: each seed's final evaluation "
           "(the protocol's `final_steps`), mean [95% Student t interval] over the finished seeds "
           "(`rlbase.report.stats.mean_ci`, method `t`); then where the published number falls against that "
           "interval, and how many seeds reach it.", "",
           "| algo | task | ours: final evaluation | published | where it falls | seeds reaching it | protocol |",
           "|---|---|---|---|---|---|---|"]
    for r in rows:
        algo = split_entry(r.entry)[0].upper()
        theirs = (f"{r.anchor_mean:g} ± {r.anchor_std:g} (episodes), {r.anchor}" if r.anchor_mean is not None
                  else f"— ({r.anchor})")
        if r.queued:
            cells = [f"queued: {len(r.finished)}/{r.n_seeds} finished", theirs, "—", "—"]
        elif r.error:
            cells = ["—", theirs, f"data error: {r.error}", "—"]
        else:
            ours, place, reach = where_number_falls(r)
            cells = [ours, theirs, f"**{place}**", reach]
        task = r.task if r.our_task in ("", r.task) else f"{r.our_task} (published: {r.task})"
        out.append(f"| {algo} | {task} ({r.final_step:,} steps) | " + " | ".join(cells) + f" | {r.protocol} |")
    out += ["", "Secondary, descriptive: the highest point of the seed-mean curve within the budget, and the mean over "
            "seeds of each seed's last three evaluations; the files behind each row.", ""]
    for r in rows:
        done = not r.queued and not r.error
        best = f"{r.our_max[1]:.1f} at step {r.our_max[0]:,}" if done and r.our_max else "—"
        last3 = f"{sum(r.last3.values()) / len(r.last3):.1f}" if done and r.last3 else "—"
        files = _file_list(r.our_files) if r.our_files else "no finished run yet"
        commits = f"; runs' commits: {', '.join(f'`{c[:7]}`' for c in r.commits)}" if r.commits else ""
        out.append(f"- {r.entry}: highest point of the mean curve {best}; last three {last3}. Ours: {files}; "
                   f"published: `{r.anchor_file}`{commits}")
    return out


def _file_list(files: list[str]) -> str:
    """``benchmarks/p/td3-hopper-seed{1000,1001}.csv`` for files that differ only in the seed."""
    m = [re.fullmatch(r"(.*-seed)(\d+)(\.csv)", f) for f in files]
    if all(m) and len({(x.group(1), x.group(3)) for x in m}) == 1 and len(files) > 1:
        return f"`{m[0].group(1)}{{{','.join(x.group(2) for x in m)}}}{m[0].group(3)}`"
    return ", ".join(f"`{f}`" for f in files)


def main(argv: Optional[list[str]] = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--root", type=Path, default=ROOT, help="the tree holding benchmarks/ (default: this repository)")
    p.add_argument("--out", type=Path, default=None, help="output file (default: <root>/docs/benchmarks.md)")
    args = p.parse_args(argv)
    out = args.out or args.root / "docs" / "benchmarks.md"
    if out.suffix != ".md" or out.is_dir():
        print(f"error: --out {out}: expected a Markdown file path ending in .md (its figures go in "
              f"{out.parent / out.stem}/)", file=sys.stderr)
        return 2
    try:  # the figures go beside the page, in a folder named after it (docs/benchmarks/)
        text = render(args.root, out.parent / out.stem, out.stem)
    except protocol_lib.ProtocolError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
