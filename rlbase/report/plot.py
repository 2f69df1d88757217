"""Summarise runs from their local files: a markdown table per algorithm x env, and learning curves.

    python scripts/plot.py runs/results                 # every run dir below (any dir with metrics.jsonl)
    python scripts/plot.py multirun/2026-11-21/10-00-00 --out report --threshold 475
    python scripts/plot.py runs/results/offline --max-step 10000    # offline runs: steps are gradient updates

Reads each run's ``.hydra/config.yaml`` (algo, env, seed) and ``metrics.jsonl``. For each algo x env:
number of seeds, final eval return (mean and 95% percentile-bootstrap CI over seeds), IQM over seeds,
the highest point of the seed-mean curve (the TD3 paper's and Tianshou's protocol), best single eval
return, first env step at which the eval return reached ``--threshold`` (per seed), and the median
``time/sps`` once updates have started. Curves (mean and bootstrap CI over seeds vs env steps) are
written as PNG when matplotlib is installed.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np

from rlbase.core.logger import scan_metrics


def bootstrap_ci(values, n_boot: int = 10_000, level: float = 0.95, seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap CI of the mean over ``values`` (e.g. seeds)."""
    v = np.asarray(values, dtype=float)
    if len(v) < 2:
        return float(v.mean()), float(v.mean())
    rng = np.random.default_rng(seed)
    means = v[rng.integers(0, len(v), size=(n_boot, len(v)))].mean(axis=1)
    lo, hi = np.quantile(means, [(1 - level) / 2, 1 - (1 - level) / 2])
    return float(lo), float(hi)


def iqm(values) -> float:
    """Interquartile mean (Agarwal et al. 2021): drop the lowest and highest 25% (rounded down), average the rest."""
    v = np.sort(np.asarray(values, dtype=float))
    cut = int(0.25 * len(v))
    return float(v[cut:len(v) - cut].mean())


def sweep_variant(run_dir: Path) -> str:
    """The settings a sweep varied besides algo, env, seed and dataset, as its job recorded them at its start
    (train.swept_settings: ``.hydra/variant.txt``); "" for a single run or a sweep over those only."""
    path = run_dir / ".hydra" / "variant.txt"
    return path.read_text().strip() if path.exists() else ""


def load_run(run_dir: Path, max_step: int | None = None) -> dict | None:
    cfg_path = run_dir / ".hydra" / "config.yaml"
    if not cfg_path.exists():
        return None
    from omegaconf import OmegaConf

    cfg = OmegaConf.load(cfg_path)
    rows, damaged = scan_metrics(run_dir / "metrics.jsonl")
    if damaged:
        print(f"warning: {run_dir / 'metrics.jsonl'}: skipped {len(damaged)} damaged line(s) "
              f"(line {', '.join(str(i) for i, _ in damaged[:5])}{', ...' if len(damaged) > 5 else ''})", file=sys.stderr)
    ds = cfg.get("dataset", {})
    offline = bool(ds.get("path") or ds.get("id")) and not ds.get("record", False)
    # Offline runs with reference returns are reported by normalised score (D4RL's 0-100 scale), the others by return.
    key = "eval/normalized_score" if offline and any("eval/normalized_score" in r for r in rows) else "eval/return_mean"
    evals = [(r["step"], r[key]) for r in rows if r.get(key) is not None and (max_step is None or r["step"] <= max_step)]
    sps = [r["time/sps"] for r in rows if r.get("time/sps") and r.get("train/updates", 0) > 0]
    env = cfg.env.get("id") or cfg.env.name
    kwargs = cfg.env.get("kwargs") or {}
    if kwargs:  # another task than the registered one (e.g. Ant-v5 without its contact forces): its own row
        env = f"{env} ({', '.join(f'{k}={v}' for k, v in kwargs.items())})"
    if offline:  # one row per dataset: the same env with other data is another experiment
        env = f"{env} / {ds.get('id') or Path(ds.get('path')).stem}"
    algo = cfg.algo.name
    variant = sweep_variant(run_dir)
    if variant:  # a sweep over other settings: one row per setting (algo.lr=0.001 and 0.0001 are two experiments)
        algo = f"{algo} ({variant})"
    if cfg.get("eval", {}).get("sample", False) and "eval.sample" not in variant:
        algo = f"{algo} (sampled eval)"  # another measurement than the mean action's: never averaged with it
    return {"dir": run_dir, "algo": algo, "env": env, "seed": cfg.seed, "metric": key,
            "evals": evals, "sps": float(np.median(sps)) if sps else float("nan"), "done": (run_dir / "done").exists(),
            "offline": offline}


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


def common_curve(rs: list[dict]) -> tuple[list[int], np.ndarray]:
    """The evaluation steps every run of ``rs`` has, and their returns there (one row per run)."""
    grid = sorted(set.intersection(*(set(s for s, _ in r["evals"]) for r in rs)))
    return grid, np.array([[dict(r["evals"])[s] for s in grid] for r in rs]).reshape(len(rs), len(grid))


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


def table(runs: list[dict], threshold: float | None) -> str:
    groups = defaultdict(list)
    for r in runs:
        groups[(r["env"], r["algo"])].append(r)
    head = "| env | algo | seeds | steps | final return (mean [95% CI]) | IQM | max of mean curve | best | steps/s |"
    if runs and all(r["offline"] for r in runs):  # offline runs count gradient updates, not env steps
        what = "normalised score" if all(r["metric"] == "eval/normalized_score" for r in runs) else "return"
        head = f"| env / dataset | algo | seeds | updates | final {what} (mean [95% CI]) | IQM | max of mean curve | best | updates/s |"
    sep = "|---|---|---|---|---|---|---|---|---|"
    if threshold is not None:
        head += f" first step with return ≥ {threshold:g} (per seed) |"
        sep += "---|"
    lines = [head, sep]
    for (env, algo), rs in sorted(groups.items()):
        rs = sorted(rs, key=lambda r: r["seed"])
        finals = [r["evals"][-1][1] for r in rs]
        lo, hi = bootstrap_ci(finals)
        steps = sorted({r["evals"][-1][0] for r in rs})
        line = (f"| {env} | {algo} | {len(rs)} ({', '.join(str(r['seed']) for r in rs)}) | {'/'.join(map(str, steps))} | "
                f"{np.mean(finals):.1f} [{lo:.1f}, {hi:.1f}] | {iqm(finals):.1f} | {peak_of_mean(rs):.1f} | "
                f"{max(max(v for _, v in r['evals']) for r in rs):.1f} | {_median(r['sps'] for r in rs)} |")
        if threshold is not None:
            line += " " + ", ".join(str(first_reach(r["evals"], threshold)) for r in rs) + " |"
        lines.append(line)
    return "\n".join(lines)


def curves(runs: list[dict], out: Path) -> list[Path]:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is not installed: skipping curves (pip install matplotlib)", file=sys.stderr)
        return []
    by_env = defaultdict(lambda: defaultdict(list))
    for r in runs:
        by_env[r["env"]][r["algo"]].append(r)
    written = []
    for env, algos in sorted(by_env.items()):
        fig, ax = plt.subplots(figsize=(6, 4))
        for algo, rs in sorted(algos.items()):
            grid, values = common_curve(rs)
            if not grid:
                continue
            mean = values.mean(axis=0)
            ci = np.array([bootstrap_ci(values[:, i], n_boot=2000) for i in range(len(grid))])
            ax.plot(grid, mean, label=f"{algo} ({len(rs)} seeds)")
            ax.fill_between(grid, ci[:, 0], ci[:, 1], alpha=0.2)
        ax.set_xlabel("gradient updates" if all(r["offline"] for rs in algos.values() for r in rs) else "env steps")
        ax.set_ylabel("normalised score" if all(r["metric"] == "eval/normalized_score" for rs in algos.values()
                                                 for r in rs) else "eval return")
        ax.set_title(env)
        ax.legend()
        fig.tight_layout()
        path = out / f"{re.sub(r'[^A-Za-z0-9._-]+', '_', env.replace(' / ', '__')).strip('_')}.png"
        fig.savefig(path, dpi=100)
        plt.close(fig)
        written.append(path)
    return written


def main(argv=None) -> str:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("paths", nargs="+", type=Path, help="run directories or folders holding them")
    p.add_argument("--out", type=Path, default=None, help="write report.md, summary.json and PNG curves here")
    p.add_argument("--threshold", type=float, default=None, help="also report the first step reaching this return")
    p.add_argument("--max-step", type=int, default=None, help="use evaluations up to this step only")
    args = p.parse_args(argv)
    runs = find_runs(args.paths, args.max_step)
    if not runs:
        raise SystemExit(f"error: no run with evaluations under {', '.join(map(str, args.paths))}")
    md = table(runs, args.threshold)
    print(md)
    if args.out is not None:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "report.md").write_text(md + "\n")
        (args.out / "summary.json").write_text(json.dumps(
            [{k: (str(v) if isinstance(v, Path) else v) for k, v in r.items()} for r in runs], indent=1))
        for path in curves(runs, args.out):
            print(f"wrote {path}", file=sys.stderr)
    return md


if __name__ == "__main__":
    main()
