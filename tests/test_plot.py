"""scripts/plot.py: statistics on hand-computed cases, reports from made-up run directories (what shares a row, what
is set aside, figures, header) and from real ones."""

import json
import subprocess
import sys

import numpy as np
import pytest

from rlbase.report.plot import bootstrap_ci, iqm, peak_of_mean
from tests.conftest import ROOT, run_train


def test_iqm_hand_computed():
    assert iqm([1, 2, 3, 4, 100, 5, 6, 7]) == 4.5  # sorted 1..7,100: drop two each side -> mean(3,4,5,6)
    assert iqm([2.0]) == 2.0


def test_bootstrap_ci_two_values():
    # Resampled means of [0, 1] are 0, 0.5, 1 with probabilities 1/4, 1/2, 1/4: the 95% CI is [0, 1].
    assert bootstrap_ci([0.0, 1.0]) == (0.0, 1.0)
    lo, hi = bootstrap_ci(np.arange(100.0))
    assert lo < 49.5 < hi and hi - lo < 15


def test_peak_of_mean_curve_is_the_highest_seed_mean_on_common_steps():
    a = {"evals": [(1, 1.0), (2, 3.0), (3, 2.0), (4, 9.0)]}  # step 4 only in this run: not on the common curve
    b = {"evals": [(1, 3.0), (2, 1.0), (3, 4.0)]}
    assert peak_of_mean([a, b]) == 3.0  # means 2, 2, 3; the best single evaluation (9, or 4 on common steps) is not it


HOPPER = "seed: {seed}\nalgo: {{name: ppo}}\nenv: {{name: hopper, id: Hopper-v5}}\n"


def _fake_run(run_dir, config_yaml: str, evals=((1, 1.0),), done: bool = True, overrides=(), choices=None,
              extra_rows=()) -> None:
    """A made-up run directory: its recorded config (and command-line overrides, group choices), its evaluation rows
    (step, return), and the ``done`` marker of a finished run."""
    (run_dir / ".hydra").mkdir(parents=True)
    (run_dir / ".hydra" / "config.yaml").write_text(config_yaml)
    (run_dir / ".hydra" / "overrides.yaml").write_text("".join(f"- {o}\n" for o in overrides) or "[]\n")
    if choices is not None:
        (run_dir / ".hydra" / "hydra.yaml").write_text(
            "hydra:\n  runtime:\n    choices:\n" + "".join(f"      {k}: {v}\n" for k, v in choices.items()))
    rows = [{"step": s, "eval/return_mean": r} for s, r in evals] + list(extra_rows)
    (run_dir / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    if done:
        (run_dir / "done").write_text("finished\n")


def _report(tmp_path, *args, capsys=None):
    from rlbase.report.plot import main

    md = main([str(tmp_path / "runs"), *map(str, args)])
    return md if capsys is None else (md, capsys.readouterr().err)


def test_env_kwargs_make_their_own_row(tmp_path):
    from rlbase.report.plot import find_runs

    for name, kwargs in (("plain", ""), ("v3like", ", kwargs: {contact_cost_weight: 0.0}")):
        _fake_run(tmp_path / name, f"seed: 0\nalgo: {{name: ppo}}\nenv: {{name: ant, id: Ant-v5{kwargs}}}\n")
    assert sorted(r["env"] for r in find_runs([tmp_path])) == ["Ant-v5", "Ant-v5 (contact_cost_weight=0.0)"]


def test_sampled_evaluations_make_their_own_row(tmp_path):
    for name, ev in (("mean", ""), ("sampled", "eval: {sample: true}\n")):
        _fake_run(tmp_path / "runs" / name, HOPPER.format(seed=0) + ev)
    md = _report(tmp_path)
    assert "| ppo · Hopper-v5 · eval.sample=false | 1 (0) |" in md and "| ppo · Hopper-v5 · eval.sample=true | 1 (0) |" in md


# 1. intervals from rlbase.report.stats


def test_final_return_interval_is_stats_mean_ci_not_the_percentile_bootstrap(tmp_path):
    from rlbase.report import stats

    for seed, final in enumerate((0.0, 1.0, 5.0)):
        _fake_run(tmp_path / "runs" / f"s{seed}", HOPPER.format(seed=seed), evals=[(100, 0.0), (200, final)])
    md = _report(tmp_path)
    mean, lo, hi = stats.mean_ci([0.0, 1.0, 5.0])  # t+Hall: wider than the percentile bootstrap's [0.0, 3.7]
    assert f"| ppo · Hopper-v5 | 3 (0, 1, 2) | 200 | {stats.format_ci(mean, lo, hi, digits=1)} | 2.0 |" in md
    assert lo < 0 < 5 < hi


def test_curve_band_is_the_t_hall_interval_at_each_step():
    from rlbase.report import stats
    from rlbase.report.plot import band

    values = np.array([[0.0, 1.0, 2.0], [1.0, 1.0, 4.0], [5.0, 1.0, 9.0]])  # 3 seeds x 3 steps; one step has no spread
    mean, lo, hi = band(values)
    expect = np.array([stats.mean_ci(values[:, i]) for i in range(3)])
    assert np.allclose(mean, expect[:, 0]) and np.allclose(lo, expect[:, 1]) and np.allclose(hi, expect[:, 2])
    assert lo[1] == hi[1] == 1.0


# 2. one row per recorded config, named by its differing settings


def test_rows_keyed_by_every_setting_that_can_change_results(tmp_path):
    runs = tmp_path / "runs"
    for lr in ("0.001", "0.0001"):
        for seed in (0, 1):
            _fake_run(runs / f"lr{lr}_s{seed}", HOPPER.format(seed=seed).replace("{name: ppo}", f"{{name: ppo, lr: {lr}}}"),
                      overrides=["algo=ppo", "env=hopper", f"algo.lr={lr}", f"seed={seed}"])
    # settings that cannot change results: another logger, threads, progress bar, log interval -> the same row
    _fake_run(runs / "lr0.001_s2", HOPPER.format(seed=2).replace("{name: ppo}", "{name: ppo, lr: 0.001}")
              + "logger: {backend: wandb, group: other}\nhardware: {threads: 8}\nprogress: false\nlog_every: 5\n"
              "checkpoint_every: 7\neval: {video: true, video_every: 2}\n", overrides=["hydra.run.dir=/elsewhere/x"])
    md = _report(tmp_path)
    assert "| ppo · Hopper-v5 · algo.lr=0.001 | 3 (0, 1, 2) |" in md
    assert "| ppo · Hopper-v5 · algo.lr=0.0001 | 2 (0, 1) |" in md


def test_tuned_choice_names_its_row_and_long_differences_are_cut(tmp_path):
    runs = tmp_path / "runs"
    cheetah = "seed: 0\nenv: {name: halfcheetah, id: HalfCheetah-v5, normalize_obs: true}\n"
    ours = "algo: {name: ppo, lr_anneal: true, log_std_init: -0.5%s}\n"
    _fake_run(runs / "ours", cheetah + ours % "", overrides=["algo=ppo", "env=halfcheetah"],
              choices={"algo": "ppo", "env": "halfcheetah", "tuned": "ppo_halfcheetah", "logger": "none"})
    _fake_run(runs / "zoo", cheetah + "algo: {name: ppo, lr: 2.0633e-5, gamma: 0.98, n_steps: 512, n_epochs: 20, "
              "log_std_init: -2.0}\n", overrides=["algo=ppo", "env=halfcheetah", "tuned=ppo_halfcheetah_zoo"],
              choices={"algo": "ppo", "env": "halfcheetah", "tuned": "ppo_halfcheetah_zoo", "logger": "wandb"})
    # five settings given on the command line on top of the tuned file: the label is cut, the full list given below
    by_hand = ", gamma: 0.9, n_epochs: 3, gae_lambda: 0.8, clip_range: 0.3, entropy_coef: 0.01"
    _fake_run(runs / "manual", cheetah + ours % by_hand, choices={"algo": "ppo", "env": "halfcheetah",
                                                                  "tuned": "ppo_halfcheetah", "logger": "none"},
              overrides=["algo.gamma=0.9", "algo.n_epochs=3", "algo.gae_lambda=0.8", "algo.clip_range=0.3",
                         "algo.entropy_coef=0.01"])
    md = _report(tmp_path)
    rows = sorted(line.split(" | ")[0] for line in md.splitlines() if line.startswith("| ppo"))
    assert rows == ["| ppo · HalfCheetah-v5 · tuned=ppo_halfcheetah",
                    "| ppo · HalfCheetah-v5 · tuned=ppo_halfcheetah algo.gamma=0.9 algo.n_epochs=3 +3 more (row 1)",
                    "| ppo · HalfCheetah-v5 · tuned=ppo_halfcheetah_zoo"], rows
    assert "- `ppo · HalfCheetah-v5 · tuned=ppo_halfcheetah algo.gamma=0.9 algo.n_epochs=3 +3 more (row 1)`: " \
           "tuned=ppo_halfcheetah algo.gamma=0.9 algo.n_epochs=3 algo.gae_lambda=0.8 algo.clip_range=0.3 " \
           "algo.entropy_coef=0.01" in md


# 3. what must not be pooled


def test_audit_case_three_seed0_runs_are_not_one_row_of_three_seeds(tmp_path, capsys):
    """Three seed-0 runs of one config, at 2k (finished), 55k (interrupted) and 100k steps (finished), and a seed 1."""
    runs = tmp_path / "runs"
    curve = lambda last: [(s, s / 1000) for s in range(1000, last + 1, 1000)]  # noqa: E731
    hopper = HOPPER + "total_steps: 100000\n"
    _fake_run(runs / "smoke", hopper.format(seed=0), evals=curve(2000))
    _fake_run(runs / "crashed", hopper.format(seed=0), evals=curve(55000), done=False,
              extra_rows=[{"step": 55500, "time/sps": 900.0, "train/updates": 10}])
    _fake_run(runs / "full", hopper.format(seed=0), evals=curve(100000))
    _fake_run(runs / "full1", hopper.format(seed=1), evals=[(s, 2 * r) for s, r in curve(100000)])
    md, err = _report(tmp_path, capsys=capsys)
    assert "3 (0, 0, 0)" not in md and "(0, 0" not in md
    assert "| ppo · Hopper-v5 | 2 (0, 1) | 100000 | 150.0 [-485.3, 785.3] |" in md
    dup = next(line for line in md.splitlines() if line.startswith("- not tabled, duplicate seed"))
    assert f"seed 0 at step 2000 (`{runs / 'smoke'}`)" in dup and f"kept: seed 0 at step 100000 (`{runs / 'full'}`)" in dup
    unfinished = next(line for line in md.splitlines() if line.startswith("- unfinished"))
    assert f"seed 0 at step 55500, last evaluation return 55.0 at step 55000 (`{runs / 'crashed'}`)" in unfinished
    assert "warning: not tabled, duplicate seed" in err and "warning: unfinished" in err
    assert "4 with evaluations: 2 tabled in 1 row(s), 1 duplicate seed(s), 1 unfinished" in md
    # the same smoke test made with its own budget (total_steps=2000) is another experiment: its own row
    _fake_run(runs / "smoke2k", HOPPER.format(seed=0) + "total_steps: 2000\n", evals=curve(2000),
              overrides=["total_steps=2000"])
    md = _report(tmp_path)
    assert "| ppo · Hopper-v5 · total_steps=100000 | 2 (0, 1) | 100000 |" in md
    assert "| ppo · Hopper-v5 · total_steps=2000 | 1 (0) | 2000 |" in md


def test_mixed_budgets_table_the_common_budget_and_name_the_rest(tmp_path, capsys):
    runs = tmp_path / "runs"
    for seed, last in ((0, 3000), (1, 3000), (2, 3000), (3, 1000)):
        _fake_run(runs / f"s{seed}", HOPPER.format(seed=seed), evals=[(s, 1.0 * seed) for s in range(1000, last + 1, 1000)])
    md, err = _report(tmp_path, capsys=capsys)
    assert "| ppo · Hopper-v5 | 3 (0, 1, 2) | 3000 |" in md
    line = f"not tabled, other budget: `ppo · Hopper-v5`: tabled runs end at step 3000; seed 3 at step 1000 (`{runs / 's3'}`)"
    assert f"- {line}" in md and f"warning: {line}" in err
    # runs that ended early because they reached stop_return are what stop_return asks for: tabled with the others
    solved = tmp_path / "solved"
    for seed, evals in ((0, [(1000, 100.0), (2000, 480.0)]), (1, [(1000, 10.0), (2000, 20.0), (3000, 30.0)]),
                        (2, [(1000, 10.0), (2000, 20.0), (3000, 40.0)])):
        _fake_run(solved / "runs" / f"s{seed}", HOPPER.format(seed=seed) + "stop_return: 475\n", evals=evals)
    md = _report(solved)
    assert "| ppo · Hopper-v5 | 3 (0, 1, 2) | 2000/3000 |" in md and "not tabled" not in md


def test_unfinished_runs_are_listed_apart_and_left_out_of_table_and_curves(tmp_path):
    from rlbase.report.plot import find_runs, organise

    runs = tmp_path / "runs"
    _fake_run(runs / "s0", HOPPER.format(seed=0), evals=[(1000, 1.0), (2000, 2.0)])
    _fake_run(runs / "s1", HOPPER.format(seed=1), evals=[(1000, 50.0)], done=False)
    md = _report(tmp_path)
    assert "| ppo · Hopper-v5 | 1 (0) | 2000 |" in md
    assert f"- unfinished (no `done` marker; not tabled, not in the curves): `ppo · Hopper-v5`: seed 1 at step 1000, " \
           f"last evaluation return 50.0 at step 1000 (`{runs / 's1'}`)" in md
    (row,) = organise(find_runs([runs]))
    assert [r["seed"] for r in row.tabled] == [0] and [r["seed"] for r in row.unfinished] == [1]


# 4. figures


def _figure(tmp_path, evals_by_seed):
    import matplotlib

    matplotlib.use("Agg")
    from rlbase.report.plot import figure, find_runs, organise

    for seed, evals in evals_by_seed.items():
        _fake_run(tmp_path / f"s{seed}", HOPPER.format(seed=seed), evals=evals)
    return figure("Hopper-v5", organise(find_runs([tmp_path])))


def test_curve_has_markers_and_says_what_its_band_is(tmp_path):
    for steps in ([1000], [1000, 2000]):  # a single evaluation (its interval an error bar), and a curve with a band
        runs = tmp_path / str(len(steps))
        ax = _figure(runs, {seed: [(s, seed + s / 1000) for s in steps] for seed in range(3)}).axes[0]
        means = [line for line in ax.get_lines() if line.get_marker() == "o"]
        assert len(means) == 1 and list(means[0].get_xdata()) == steps
        assert "band: 95% t+Hall CI of the mean over seeds" in ax.get_title()
        assert [t.get_text() for t in ax.get_legend().get_texts()] == ["ppo (3 seeds)"]
        assert len(ax.collections) == 1  # the band


def test_seeds_with_disjoint_evaluation_steps_are_drawn_one_by_one(tmp_path):
    fig = _figure(tmp_path, {0: [(1000, 1.0), (2000, 2.0), (3000, 2.5)], 1: [(1500, 3.0), (2500, 4.0), (3000, 5.0)]})
    ax = fig.axes[0]  # one step in common (the last): a mean there alone would be one point for the whole curve
    assert [list(line.get_xdata()) for line in ax.get_lines()] == [[1000, 2000, 3000], [1500, 2500, 3000]]
    assert "1 of 5 evaluation steps in common: per seed, no band" in ax.get_legend().get_texts()[0].get_text()


def test_format_option(tmp_path):
    _fake_run(tmp_path / "runs" / "s0", HOPPER.format(seed=0), evals=[(1000, 1.0), (2000, 2.0)])
    _report(tmp_path, "--out", tmp_path / "out", "--format", "png,svg,pdf")
    assert sorted(p.name for p in (tmp_path / "out").iterdir() if p.suffix != ".json") == \
        ["Hopper-v5.pdf", "Hopper-v5.png", "Hopper-v5.svg", "report.md"]
    with pytest.raises(SystemExit, match="^error: --format png,bmp: choose among png, pdf, svg"):
        _report(tmp_path, "--format", "png,bmp")


# 5. the report's header


def test_report_header_names_command_commit_and_evaluation_protocol(tmp_path, monkeypatch):
    _fake_run(tmp_path / "runs" / "s0", HOPPER.format(seed=0) + "eval_episodes: 5\neval: {sample: true}\n")
    md = _report(tmp_path, "--threshold", "3")
    head = md.splitlines()[:6]
    assert head[2] == f"- command: `python -m rlbase.report.plot {tmp_path / 'runs'} --threshold 3`"
    commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    assert head[3].startswith(f"- code: commit {commit}, working tree ") and ("clean" in head[3] or "dirty" in head[3])
    assert head[4] == "- evaluation: 5 episodes per evaluation, actions sampled from the policy (eval.sample=true)"
    columns = md[md.index("Columns:"):].splitlines()
    for name in ("run", "seeds", "steps", "final return", "IQM", "max of mean curve", "best", "steps/s",
                 "first step with return ≥ 3"):
        assert any(line.startswith(f"- {name}: ") for line in columns), name
    monkeypatch.setenv("PATH", str(tmp_path / "no-git-here"))  # no git: the commit is unknown, the report is made
    assert "- code: unknown (" in _report(tmp_path)


def test_report_from_runs(tmp_path):
    for seed in (0, 1):
        run_train("total_steps=600", "eval_every=300", "eval_episodes=1", f"seed={seed}", run_dir=tmp_path / f"s{seed}")
    out = tmp_path / "report"
    proc = subprocess.run([sys.executable, str(ROOT / "scripts/plot.py"), str(tmp_path), "--out", str(out),
                           "--threshold", "5"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    md = (out / "report.md").read_text()
    assert "| run | seeds | steps | final return (mean [95% CI]) | IQM | max of mean curve | best | steps/s |" in md
    assert "| dqn · CartPole-v1 | 2 (0, 1) | 600 |" in md
    assert md.startswith(f"# Runs under `{tmp_path}`") and f"- command: `python {ROOT / 'scripts/plot.py'} {tmp_path}" in md
    assert (out / "CartPole-v1.png").stat().st_size > 1000


def test_bench_quick_runs(tmp_path):
    # one off-policy and one on-policy algorithm: the script's two code paths (all six cost three times as much)
    proc = subprocess.run([sys.executable, str(ROOT / "scripts/bench.py"), "--quick", "--no-sb3", "--threads", "1",
                           "--algos", "td3,a2c", "--out", str(tmp_path)], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    rows = __import__("json").loads((tmp_path / "bench.json").read_text())
    assert {r["algo"] for r in rows} == {"td3", "a2c"}
    assert all(r["steps_per_s"] > 0 for r in rows)


def test_damaged_and_empty_metrics_are_named_never_dropped_silently(tmp_path, capsys):
    from rlbase.core.logger import scan_metrics
    from rlbase.report.plot import find_runs

    good, empty = tmp_path / "good", tmp_path / "empty"
    for d in (good, empty):
        (d / ".hydra").mkdir(parents=True)
        (d / ".hydra" / "config.yaml").write_text("seed: 0\nalgo: {name: dqn}\nenv: {name: cartpole, id: CartPole-v1}\n")
    rows = [{"step": 100, "eval/return_mean": 10.0}, {"step": 200, "eval/return_mean": 20.0}]
    lines = [json.dumps(rows[0]), '{"step": 150, "eval/ret', json.dumps(rows[1]), "[1, 2]"]
    (good / "metrics.jsonl").write_text("\n".join(lines) + "\n")
    (empty / "metrics.jsonl").write_text("")
    parsed, damaged = scan_metrics(good / "metrics.jsonl")
    assert parsed == rows and [i for i, _ in damaged] == [2, 4]  # the row after the damaged line is still read
    runs = find_runs([tmp_path])
    err = capsys.readouterr().err
    assert [r["dir"] for r in runs] == [good] and runs[0]["evals"] == [(100, 10.0), (200, 20.0)]
    assert "skipped 2 damaged line(s) (line 2, 4)" in err and f"skipped {empty}: metrics.jsonl is empty" in err


def test_resume_keeps_damaged_lines_aside(tmp_path):
    from rlbase.core.logger import Logger, LoggerConfig

    (tmp_path / "metrics.jsonl").write_text('{"step": 1, "a": 1}\nnot json\n{"step": 5, "a": 2}\n{"step": 9, "a": 3}\n')
    logger = Logger(LoggerConfig(backend="none"), tmp_path, config={}, group="g", name="n", tags=[], resume_step=5)
    logger.close(0)
    assert [json.loads(x)["step"] for x in (tmp_path / "metrics.jsonl").read_text().splitlines()] == [1, 5]
    assert (tmp_path / "metrics.damaged.jsonl").read_text() == "not json\n"
