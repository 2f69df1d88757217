"""Several seeds in one process against separate processes: aggregate seed-steps/s on ``train.py``'s own path.

    python scripts/bench.py --seeds 1,2,5,8                          # td3, ddpg, sac, dqn; fp32
    python scripts/bench.py --seeds 1,2,5,8 --algos td3 --precision fp32,bf16
    python scripts/bench.py --seeds 1,2 --algos td3 --quick          # a few steps of each: checks that it runs

(``scripts/bench.py --seeds`` hands its whole command line to this module; ``python scripts/bench_seeds.py ...`` is
the same.) Run it on a quiet machine: every layout below shares the CPU's cores on purpose, and anything else
running on them changes the result. The 1-minute load average is recorded with each row; a load well above the
layout's own process count means the numbers are not clean.

What is measured: the rate at which a 2-core machine trains seeds, in seed-steps/s (env steps of all seeds
together per second of wall time), for each algorithm (Hopper-v5 for td3/ddpg/sac, CartPole-v1 for dqn) and
precision (``algo.precision``; algorithms without it run fp32 only), in these layouts:
- ``separate``: the best layout of single-seed processes on 2 cores: two processes at once, one torch thread each
  (``hardware.threads=1``), one seed each; aggregate = the sum of their rates;
- ``one process`` (each K of ``--seeds``): one process, ``hardware.threads=2``, ``hardware.seeds_per_process=K``
  (stacked networks, ``rlbase/algos/stacked.py``); aggregate = K x its rate;
- ``split`` (K >= 3): two 1-thread processes at once with ceil(K/2) and floor(K/2) seeds; aggregate = the sum of
  seeds x rate. At K = 2 this layout is one seed per process, i.e. ``separate`` itself, so it is not run again.
An algorithm without a stacked form (no ``STACKED`` in its module; today td3, ddpg, sac and dqn all have one) gets
``separate`` only, measured once, and the line "K in one process: not supported".

How: every process is ``python train.py`` in a subprocess (cwd a temporary directory, ``OMP_NUM_THREADS`` equal
to its torch threads, ``MUJOCO_GL=egl``), each seed in its own run directory (``hydra.run.dir=<dir>/s${seed}``), with
``algo.random_steps=L algo.learning_starts=L`` (L = 1000; ``--quick``: 100), logging to metrics.jsonl only,
``log_every=100``, one final evaluation episode, no periodic checkpoint, ``keep_replay=false``. The rate of a run is
the median of the Runner's ``time/sps`` (env steps/s of that run between two log rows) over the rows after
L + ``--warmup`` steps, up to L + warm-up + ``--timed`` steps (defaults 500 and 1000; ``--quick``: 100 and 100).
``total_steps`` is L + warm-up + timed for a layout of one process; in a layout of two processes each gets more
steps than that and both are killed once both have logged their timed rows, so each timed row was measured while
the other process was still running (a process that has finished its budget would leave its core to the other).
DQN updates in phases (``train_every=256`` on CartPole): its rows are whole phases apart (log_every 256), and
warm-up and timed steps are rounded up to whole rows (timed: at least 4 rows, 1 with ``--quick``).

Rounds (``--rounds R``, default 3): each round measures ``separate`` and then every K layout, so the baseline is
measured between the layouts it is compared with, not once before them; a drift of the machine over the run shows
in the per-round ratios instead of in one of the two sides.

Output: a table (round, algo, env, precision, layout, K, processes x threads, aggregate seed-steps/s, per-seed
steps/s, load), then for each algorithm, precision and K one line
``<algo> <env> K=<k> aggregate <x> seed-steps/s vs separate <y> = <r>x (median of R rounds: <r1>, <r2>, ...)``
(r: the median of the rounds' ratios, each round's best in-one-process layout, ``one process`` or ``split``,
named in the table's ``best`` column, over that round's ``separate``; x and y: that median round's two aggregates,
so x / y = r; with an even R the lower of the two middle ratios; one round prints no parenthesis), under a ``# precision <p>`` line; all of it as
JSON in ``--out`` (default ``bench_results/seeds_<date>.json``).
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import math
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from statistics import median, median_low
from typing import Optional

# this checkout's rlbase first, also when another checkout's rlbase is installed (editable) in the venv: a script
# run from a worktree or a second clone then uses (and writes into) its own tree
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

ROOT = Path(__file__).resolve().parents[1]
ENVS = {"td3": "hopper", "ddpg": "hopper", "sac": "hopper", "dqn": "cartpole"}
POLL_S = 0.25


def load() -> float:
    return os.getloadavg()[0]


@dataclasses.dataclass
class Budget:
    """Steps of one benchmarked run: L random/learning starts, then warm-up, then the timed rows."""

    starts: int
    warmup: int
    timed: int
    log_every: int

    @property
    def first(self) -> int:  # timed rows have L + warm-up < step <= last
        return self.starts + self.warmup

    @property
    def last(self) -> int:
        return self.starts + self.warmup + self.timed


def budget(algo_cfg, args) -> Budget:
    """The run's steps; an algorithm that updates in phases (``train_every`` > 1) logs at whole phases."""
    every = int(getattr(algo_cfg, "train_every", 1) or 1)
    starts = 100 if args.quick else 1000
    log_every = 100 if every <= 1 else every * math.ceil(100 / every)
    warmup = log_every * math.ceil(args.warmup / log_every)
    rows = max(math.ceil(args.timed / log_every), 1 if args.quick or every <= 1 else 4)
    return Budget(starts, warmup, rows * log_every, log_every)


def overrides(algo: str, env: str, b: Budget, total: int, precision: Optional[str], threads: int, seed: int, k: int,
              run_dir: Path) -> list[str]:
    """``train.py`` arguments of one benchmarked process (as ``scripts/bench.py``'s ``run_overrides``: defaults,
    plus starts, logging and no periodic work)."""
    out = [f"algo={algo}", f"env={env}", f"algo.random_steps={b.starts}", f"algo.learning_starts={b.starts}",
           "logger=none", "progress=false", "eval_episodes=1", f"eval_every={total}", "checkpoint_every=1000000000",
           f"log_every={b.log_every}", f"total_steps={total}", "keep_replay=false", f"hardware.threads={threads}",
           f"hardware.seeds_per_process={k}", f"seed={seed}", f"hydra.run.dir={run_dir}/s${{seed}}"]
    if precision is not None:
        out.append(f"algo.precision={precision}")
    return out


def read_rows(path: Path) -> list[dict]:
    rows = []
    try:
        text = path.read_text()
    except FileNotFoundError:
        return rows
    for line in text.splitlines():
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:  # a line being written
            pass
    return rows


def rates(run_dir: Path, b: Budget) -> list[float]:
    return [r["time/sps"] for r in read_rows(run_dir / "metrics.jsonl")
            if "time/sps" in r and b.first < r["step"] <= b.last and r["time/sps"] is not None]


def last_step(run_dir: Path) -> int:
    return max((r["step"] for r in read_rows(run_dir / "metrics.jsonl") if "time/sps" in r), default=0)


@dataclasses.dataclass
class Proc:
    seeds: list[int]
    threads: int


def run_layout(algo: str, env: str, b: Budget, precision: Optional[str], procs: list[Proc], timeout: float) -> dict:
    """Start ``procs`` at once, each ``python train.py`` with its seeds; wait until every one has logged its timed
    rows (or finished); kill what is left. Returns per process its seeds, rate and aggregate, and the layout's."""
    total = b.last if len(procs) == 1 else b.last + 4 * b.timed  # two at once: each runs on until both are done
    with tempfile.TemporaryDirectory(prefix="bench_seeds_") as tmp:
        tmp = Path(tmp)
        running = []
        for i, p in enumerate(procs):
            base = tmp / f"p{i}"
            args = overrides(algo, env, b, total, precision, p.threads, p.seeds[0], len(p.seeds), base)
            env_vars = {**os.environ, "OMP_NUM_THREADS": str(p.threads), "MUJOCO_GL": "egl"}
            log = open(tmp / f"p{i}.log", "w")
            proc = subprocess.Popen([sys.executable, str(ROOT / "train.py"), *args], cwd=tmp, env=env_vars,
                                    stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
            running.append((p, base, proc, log))
        t0, loads, alone = time.monotonic(), [], False
        last_row = b.last // b.log_every * b.log_every  # the step of the last timed row
        try:
            while True:
                done = []
                for i, (p, base, proc, _) in enumerate(running):
                    code = proc.poll()
                    if code is not None and code != 0:
                        raise RuntimeError(f"train.py exited with {code}: {' '.join(proc.args[2:])}\n"
                                           + (tmp / f"p{i}.log").read_text()[-3000:])
                    # the last seed of a process logs last (lockstep): its rows tell where the process is
                    done.append(code == 0 or last_step(base / f"s{p.seeds[-1]}") >= last_row)
                if not all(done) and any(proc.poll() == 0 for _, _, proc, _ in running):
                    alone = True  # one process ended while another was still timing: that one then ran alone
                if all(done):
                    loads.append(load())
                    break
                if time.monotonic() - t0 > timeout:
                    raise TimeoutError(f"layout {[p.seeds for p in procs]} took over {timeout:.0f} s")
                time.sleep(POLL_S)
        finally:
            for _, _, proc, log in running:
                if proc.poll() is None:
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
                log.close()
        out = []
        for p, base, _, _ in running:
            per_seed = [rates(base / f"s{s}", b) for s in p.seeds]
            if not all(per_seed):
                raise RuntimeError(f"no timed time/sps rows in {base} (steps {b.first}-{b.last}, log_every {b.log_every})")
            rate = median([x for r in per_seed for x in r])  # the seeds of one process step in lockstep: one rate
            out.append({"seeds": p.seeds, "threads": p.threads, "rate": rate, "aggregate": len(p.seeds) * rate,
                        "rows": len(per_seed[0]), "sps_rows": per_seed})
    agg = sum(o["aggregate"] for o in out)
    n = sum(len(o["seeds"]) for o in out)
    if alone:
        print(f"  warning: a process of layout {[p.seeds for p in procs]} finished before the other's timed rows "
              "ended: part of that process's rows ran alone", flush=True)
    return {"processes": out, "aggregate": agg, "per_seed": agg / n, "seeds": n, "load": max(loads),
            "wall_s": time.monotonic() - t0, "overlapped": not alone}


def fmt_layout(r: dict) -> str:
    return f"{len(r['processes'])}x{r['processes'][0]['threads']}"


def record(rows: list[dict], algo: str, env: str, prec: str, b: Budget, layout: str, k: Optional[int], res: dict,
           rnd: int = 0) -> dict:
    """A table row for one measured layout (in round ``rnd``), printed as it comes."""
    r = {"algo": algo, "env": env, "precision": prec, "layout": layout, "k": k, "round": rnd,
         "processes_x_threads": fmt_layout(res), **res, "starts": b.starts, "warmup": b.warmup, "timed": b.timed,
         "log_every": b.log_every}
    rows.append(r)
    split = "+".join(str(len(q["seeds"])) for q in res["processes"])
    print(f"  round {rnd + 1}: {algo} {env} {prec} {layout:11s} K={k if k is not None else '-'} ({split} seeds, {fmt_layout(res)}): "
          f"aggregate {res['aggregate']:.1f} seed-steps/s, per seed {res['per_seed']:.1f}, load {res['load']:.2f}, "
          f"{res['wall_s']:.0f} s", flush=True)
    return r


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seeds", required=True, help="comma-separated K values: seeds in one process")
    p.add_argument("--algos", default="td3,ddpg,sac,dqn")
    p.add_argument("--precision", default="fp32", help="comma-separated: fp32, bf16 (algorithms that have algo.precision)")
    p.add_argument("--seed", type=int, default=0, help="first seed of every layout")
    p.add_argument("--warmup", type=int, default=None, help="env steps after learning starts before the timed rows "
                   "(default 500; --quick 0)")
    p.add_argument("--timed", type=int, default=None, help="timed env steps (default 1000; --quick 100)")
    p.add_argument("--timeout", type=float, default=None, help="seconds per layout before giving up (default 3600; --quick 600)")
    p.add_argument("--rounds", type=int, default=None, help="rounds, each measuring separate and then every K layout, so "
                   "the baseline alternates with what is compared with it; a ratio is the median over rounds of "
                   "that round's best in-one-process layout / that round's separate (default 3; --quick 1)")
    p.add_argument("--quick", action="store_true", help="tiny budgets: only checks that everything runs")
    p.add_argument("--out", type=Path, default=None, help="JSON results (default bench_results/seeds_<date>.json)")
    args = p.parse_args(argv)
    from rlbase import algos
    from rlbase.report.parity import compose_overrides

    ks = list(dict.fromkeys(int(k) for k in args.seeds.split(",")))  # each K once, in the order given
    if any(k < 1 for k in ks):
        p.error(f"--seeds {args.seeds}: every K must be >= 1")
    for algo in args.algos.split(","):
        if algo not in ENVS:
            p.error(f"unknown algo {algo!r} in --algos; allowed: {', '.join(ENVS)}")
    precisions = args.precision.split(",")
    for prec in precisions:
        if prec not in ("fp32", "bf16"):
            p.error(f"unknown precision {prec!r}; allowed: fp32, bf16")
    args.warmup = args.warmup if args.warmup is not None else (0 if args.quick else 500)
    args.timed = args.timed if args.timed is not None else (100 if args.quick else 1000)
    timeout = args.timeout or (600 if args.quick else 3600)
    rounds = args.rounds if args.rounds is not None else (1 if args.quick else 3)
    if rounds < 1:
        p.error(f"--rounds {args.rounds}: must be >= 1")
    out = args.out or Path("bench_results") / f"seeds_{datetime.date.today().isoformat()}.json"
    print(f"seeds in one process vs separate processes ({os.cpu_count()} cores, load {load():.2f}); run this on a quiet "
          "machine", flush=True)

    rows, lines, results = [], [], []
    for algo in args.algos.split(","):
        env = ENVS[algo]
        module = algos.get(algo)
        cfg = compose_overrides([f"algo={algo}", f"env={env}"]).algo  # the run's config (tuned files included)
        has_precision = "precision" in cfg
        stacked = getattr(module, "STACKED", None) is not None
        b = budget(cfg, args)
        for prec in precisions:
            if prec != "fp32" and not has_precision:
                print(f"{algo}: no algo.precision: precision {prec} not run", flush=True)
                continue
            pr = prec if has_precision else None
            s0 = args.seed

            def row(layout: str, k: Optional[int], res: dict, rnd: int, algo=algo, env=env, prec=prec, b=b) -> dict:
                return record(rows, algo, env, prec, b, layout, k, res, rnd)

            seps: list[dict] = []
            bests: dict[int, list[dict]] = {k: [] for k in ks}
            for rnd in range(rounds if stacked else 1):  # separate, then every K: the baseline alternates with them
                seps.append(row("separate", None, run_layout(algo, env, b, pr, [Proc([s0], 1), Proc([s0 + 1], 1)],
                                                            timeout), rnd))
                if not stacked:
                    continue
                for k in ks:
                    cands = [row("one process", k, run_layout(algo, env, b, pr, [Proc(list(range(s0, s0 + k)), 2)],
                                                               timeout), rnd)]
                    if k >= 3:
                        a = math.ceil(k / 2)
                        cands.append(row("split", k, run_layout(
                            algo, env, b, pr, [Proc(list(range(s0, s0 + a)), 1), Proc(list(range(s0 + a, s0 + k)), 1)],
                            timeout), rnd))
                    best = max(cands, key=lambda r: r["aggregate"])
                    best["best"] = True
                    bests[k].append(best)
            if not stacked:
                print(f"{algo}: K in one process: not supported", flush=True)
                lines.append(f"{algo} {env} {prec}: K in one process: not supported")
                continue
            group = []
            for k in ks:
                ratios = [best["aggregate"] / sep["aggregate"] for best, sep in zip(bests[k], seps)]
                mid = ratios.index(median_low(ratios))  # the median round: its two aggregates make its ratio
                ratio, agg, sep_agg = ratios[mid], bests[k][mid]["aggregate"], seps[mid]["aggregate"]
                layouts = sorted({r["layout"] for r in bests[k]})
                line = (f"{algo} {env} K={k} aggregate {agg:.1f} seed-steps/s vs separate {sep_agg:.1f} = {ratio:.2f}x")
                if rounds > 1:
                    line += f" (median of {rounds} rounds: {', '.join(f'{x:.2f}' for x in ratios)})"
                group.append(line)
                results.append({"algo": algo, "env": env, "precision": prec, "k": k, "aggregate": agg,
                                "layout": "/".join(layouts), "separate": sep_agg, "ratio": ratio, "ratios": ratios,
                                "rounds": rounds, "line": line})
            lines.append(f"# precision {prec}")
            lines.extend(group)

    md = ["| round | algo | env | precision | layout | K | processes x threads | seeds per process | aggregate "
          "seed-steps/s | per-seed steps/s | best | load |", "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        split = "+".join(str(len(q["seeds"])) for q in r["processes"])
        md.append(f"| {r['round'] + 1} | {r['algo']} | {r['env']} | {r['precision']} | {r['layout']} | {r['k'] if r['k'] else '—'} "
                  f"| {r['processes_x_threads']} | {split} | {r['aggregate']:.1f} | {r['per_seed']:.1f} "
                  f"| {'yes' if r.get('best') else ''} | {r['load']:.2f} |")
    print("\n".join(md))
    print("\n".join(lines), flush=True)
    report = {"date": datetime.datetime.now().isoformat(timespec="seconds"), "cores": os.cpu_count(),
              "argv": list(argv) if argv is not None else sys.argv[1:], "quick": args.quick, "rounds": rounds, "rows": rows,
              "comparisons": results, "lines": lines}
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=1))
    print(f"results: {out}", flush=True)
    return report


if __name__ == "__main__":
    main()
