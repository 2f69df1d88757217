"""scripts/bench_seeds.py (``scripts/bench.py --seeds``) and scripts/gpu_check.py: they run and say what they should.
Speed is not checked here (the machine running the tests is not quiet); only that the scripts work end to end."""

from __future__ import annotations

import argparse
import json
import re

LINE = re.compile(r"^dqn cartpole K=(\d+) aggregate (\d+\.\d) seed-steps/s vs separate (\d+\.\d) = (\d+\.\d\d)x$", re.M)


def test_bench_seeds_quick_prints_one_parseable_line_per_k(tmp_path, monkeypatch, capsys):
    from scripts import bench_seeds

    monkeypatch.chdir(tmp_path)  # the default --out is bench_results/seeds_<date>.json under the working directory
    report = bench_seeds.main(["--quick", "--algos", "dqn", "--seeds", "1,2", "--precision", "fp32"])
    out = capsys.readouterr().out
    found = {int(m.group(1)): m for m in LINE.finditer(out)}
    assert sorted(found) == [1, 2], out
    for m in found.values():
        x, y, r = float(m.group(2)), float(m.group(3)), float(m.group(4))
        assert x > 0 and y > 0 and abs(r - x / y) < 0.01 + 0.01 * r, m.group(0)
    assert "# precision fp32" in out
    layouts = [(r["layout"], r["k"], r["processes_x_threads"]) for r in report["rows"]]
    assert layouts == [("separate", None, "2x1"), ("one process", 1, "1x2"), ("one process", 2, "1x2")]
    assert all(r["load"] >= 0 and r["aggregate"] > 0 for r in report["rows"])
    saved = list((tmp_path / "bench_results").glob("seeds_*.json"))
    assert len(saved) == 1 and json.loads(saved[0].read_text())["lines"] == report["lines"]


def test_bench_py_hands_seeds_to_bench_seeds(monkeypatch):
    from scripts import bench, bench_seeds

    seen = []
    monkeypatch.setattr(bench_seeds, "main", lambda argv: seen.append(argv) or "ran")
    assert bench.main(["--seeds", "1,2", "--algos", "sac", "--quick"]) == "ran"
    assert seen == [["--seeds", "1,2", "--algos", "sac", "--quick"]]


def test_budget_rows_are_whole_update_phases():
    """DQN on CartPole updates every 256 steps: its rows are whole phases apart, the timed part at least 4 rows."""
    from rlbase import algos
    from scripts.bench_seeds import budget

    args = argparse.Namespace(quick=False, warmup=500, timed=1000)
    dqn = algos.get("dqn").Config(train_every=256)
    b = budget(dqn, args)
    assert (b.log_every, b.warmup % 256, b.timed % 256, b.timed >= 4 * 256) == (256, 0, 0, True)
    b = budget(algos.get("td3").Config(), args)
    assert (b.starts, b.warmup, b.timed, b.log_every) == (1000, 500, 1000, 100)


# gpu_check.py --cpu-smoke (its K=8 resume check at small sizes, about a minute) is not part of the suite: the
# exact resume of seeds trained together is tests/test_seeds.py's; run it by hand after changing the script.


def test_gpu_check_without_cuda_says_so_and_exits_0(monkeypatch, capsys):
    import torch

    from scripts import gpu_check

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert gpu_check.main([]) == 0
    out = capsys.readouterr().out.strip().splitlines()
    assert len(out) == 1 and "no CUDA device" in out[0]


def test_an_algorithm_without_a_stacked_form_gets_separate_only(tmp_path, monkeypatch, capsys):
    from rlbase import algos
    from scripts import bench_seeds

    monkeypatch.delattr(algos.get("dqn"), "STACKED")  # as an algorithm without one (dqn has one)
    report = bench_seeds.main(["--quick", "--algos", "dqn", "--seeds", "2", "--out", str(tmp_path / "s.json")])
    assert "dqn: K in one process: not supported" in capsys.readouterr().out
    assert [r["layout"] for r in report["rows"]] == ["separate"] and report["comparisons"] == []


def test_rounds_alternate_the_baseline_and_take_the_median_ratio(tmp_path, monkeypatch, capsys):
    """With --rounds 3 every round measures separate and then each K layout (the baseline alternates with them); a
    K's ratio is the median over rounds of that round's best layout over that round's separate."""
    from scripts import bench_seeds

    order, sep = [], iter([100.0, 200.0, 100.0])  # the machine slows down in round 2, both sides with it
    one = iter([110.0, 220.0, 120.0])  # K=1 (one process)

    def fake(algo, env, b, precision, procs, timeout):
        k = sum(len(p.seeds) for p in procs)
        layout = "separate" if len(procs) == 2 and all(len(p.seeds) == 1 for p in procs) else f"K={k}"
        order.append(layout)
        agg = next(sep) if layout == "separate" else next(one)
        return {"processes": [{"seeds": p.seeds, "threads": p.threads, "rate": agg, "aggregate": agg} for p in procs],
                "aggregate": agg, "per_seed": agg / k, "seeds": k, "load": 1.0, "wall_s": 1.0, "overlapped": True}

    monkeypatch.setattr(bench_seeds, "run_layout", fake)
    report = bench_seeds.main(["--algos", "td3", "--seeds", "1", "--rounds", "3", "--out", str(tmp_path / "s.json")])
    assert order == ["separate", "K=1"] * 3
    (c,) = report["comparisons"]
    assert c["ratios"] == [1.1, 1.1, 1.2] and c["ratio"] == 1.1 and (c["aggregate"], c["separate"]) == (110.0, 100.0)
    assert "aggregate 110.0 seed-steps/s vs separate 100.0 = 1.10x (median of 3 rounds: 1.10, 1.10, 1.20)" in \
        capsys.readouterr().out
    assert [r["round"] for r in report["rows"]] == [0, 0, 1, 1, 2, 2]
