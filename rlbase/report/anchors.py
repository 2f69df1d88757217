"""Published per-seed learning curves that our benchmarks are compared with ("anchors").

The data live under ``benchmarks/anchors/<source>/<algo>-<task>.csv`` with columns ``seed,step,return``
(one row per seed and evaluation; where each file comes from, and how its authors evaluated, is in the
``SOURCE.md`` next to it). Sources present: ``tianshou`` (Tianshou's MuJoCo benchmark, v3 tasks) and
``td3_paper`` (the TD3 paper's TD3 curves, v1 tasks).

A set of curves is a ``dict`` seed -> ``[(step, return), ...]`` sorted by step. The helpers below compute the
statistics papers report from such a set::

    c = curves("tianshou", "ppo", "Hopper")
    max_of_mean(c, max_step=1_000_000)   # Tianshou's table statistic -> (890880, 2609.34)
    at_step(c, 1_000_000)                # each seed's return at its last evaluation <= 1M steps
"""

from __future__ import annotations

import csv
import re
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
ANCHORS = ROOT / "benchmarks" / "anchors"

Curves = dict[int, list[tuple[int, float]]]


def _task_stem(task: str) -> str:
    """``"Hopper-v3"``, ``"Hopper"`` and ``"hopper"`` all name the file stem ``hopper``."""
    return re.sub(r"-v\d+$", "", task.strip()).lower()


def path(source: str, algo: str, task: str) -> Path:
    """The CSV file holding ``algo`` on ``task`` from ``source`` (whether or not it exists)."""
    return ANCHORS / source / f"{algo.lower()}-{_task_stem(task)}.csv"


def curves(source: str, algo: str, task: str) -> Curves:
    """Per-seed evaluation curves: seed -> [(step, return), ...], each list sorted by step.

    ``task`` may carry a version suffix (``Hopper-v3``); it is dropped, since each source has one version per
    task (see its SOURCE.md). Raises ``FileNotFoundError`` naming the files present when there is no such file.
    """
    p = path(source, algo, task)
    if not p.is_file():
        have = sorted(f.stem for f in p.parent.glob("*.csv")) if p.parent.is_dir() else []
        raise FileNotFoundError(f"no anchor file {p}; {source!r} has: {', '.join(have) or 'nothing'}")
    out: Curves = {}
    with p.open(newline="") as f:
        reader = csv.DictReader(f)
        missing = {"seed", "step", "return"} - set(reader.fieldnames or ())
        if missing:
            raise ValueError(f"{p}: missing columns {sorted(missing)}")
        for row in reader:
            out.setdefault(int(row["seed"]), []).append((int(row["step"]), float(row["return"])))
    for seed, points in out.items():
        points.sort()
        steps = [s for s, _ in points]
        if len(set(steps)) != len(steps):
            raise ValueError(f"{p}: seed {seed} has two evaluations at one step")
    return dict(sorted(out.items()))


def seed_mean_curve(curves: Curves) -> list[tuple[int, float]]:
    """The mean over seeds at each step, as [(step, mean), ...] sorted by step.

    Only steps at which *every* seed has an evaluation are kept: a step that some seed lacks is dropped, with no
    interpolation, so every point is a mean over the same seeds. (All anchor files share one step grid across
    seeds, so nothing is dropped for them; runs of our own that evaluate at slightly different steps should be
    put on a common grid first, e.g. with ``at_step``.) Raises ``ValueError`` if no step is common to all seeds.
    """
    if not curves:
        raise ValueError("no curves")
    by_seed = [dict(points) for points in curves.values()]
    common = sorted(set.intersection(*(set(d) for d in by_seed)))
    if not common:
        raise ValueError("no evaluation step is shared by every seed")
    return [(step, float(np.mean([d[step] for d in by_seed]))) for step in common]


def max_of_mean(curves: Curves, max_step: int | None = None) -> tuple[int, float]:
    """(step, value) of the highest point of the seed-mean curve (``seed_mean_curve``).

    This is the statistic of Tianshou's MuJoCo tables and of the TD3 paper's Table 1 ("max average return over
    10 trials"); both consider only the first 1M steps, so pass ``max_step=1_000_000`` (inclusive) to match them.
    The earliest step wins a tie.
    """
    mean = seed_mean_curve(curves)
    if max_step is not None:
        mean = [(s, v) for s, v in mean if s <= max_step]
        if not mean:
            raise ValueError(f"no common evaluation at or before step {max_step}")
    best = max(range(len(mean)), key=lambda i: (mean[i][1], -i))
    return mean[best]


def at_step(curves: Curves, step: int) -> dict[int, float]:
    """Each seed's return at its last evaluation at or before ``step``: seed -> return.

    A seed with no evaluation at or before ``step`` is left out, so check the length when it matters.
    """
    out = {}
    for seed, points in curves.items():
        before = [r for s, r in points if s <= step]
        if before:
            out[seed] = before[-1]
    return out


def final(curves: Curves) -> dict[int, float]:
    """Each seed's return at its last evaluation: seed -> return.

    Note the runs' lengths differ by source (Tianshou's off-policy runs go to 1.25M steps and its on-policy runs
    to 3M; the TD3 paper's to 1M), so to compare at a budget use ``at_step(curves, budget)``.
    """
    return {seed: points[-1][1] for seed, points in curves.items() if points}
