"""scripts/plot.py: statistics on hand-computed cases, and a report from real run directories."""

import json
import subprocess
import sys

import numpy as np

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


def _one_eval_run(run_dir, config_yaml: str) -> None:
    """A made-up run directory: its recorded config and one evaluation row."""
    (run_dir / ".hydra").mkdir(parents=True)
    (run_dir / ".hydra" / "config.yaml").write_text(config_yaml)
    (run_dir / "metrics.jsonl").write_text(json.dumps({"step": 1, "eval/return_mean": 1.0}) + "\n")


def test_env_kwargs_make_their_own_row(tmp_path):
    from rlbase.report.plot import find_runs

    for name, kwargs in (("plain", ""), ("v3like", ", kwargs: {contact_cost_weight: 0.0}")):
        _one_eval_run(tmp_path / name, f"seed: 0\nalgo: {{name: ppo}}\nenv: {{name: ant, id: Ant-v5{kwargs}}}\n")
    assert sorted(r["env"] for r in find_runs([tmp_path])) == ["Ant-v5", "Ant-v5 (contact_cost_weight=0.0)"]


def test_sampled_evaluations_make_their_own_row(tmp_path):
    from rlbase.report.plot import find_runs

    for name, ev in (("mean", ""), ("sampled", "\neval: {sample: true}")):
        _one_eval_run(tmp_path / name, f"seed: 0\nalgo: {{name: ppo}}\nenv: {{name: hopper, id: Hopper-v5}}{ev}\n")
    assert sorted(r["algo"] for r in find_runs([tmp_path])) == ["ppo", "ppo (sampled eval)"]


def test_report_from_runs(tmp_path):
    for seed in (0, 1):
        run_train("total_steps=600", "eval_every=300", "eval_episodes=1", f"seed={seed}", run_dir=tmp_path / f"s{seed}")
    out = tmp_path / "report"
    proc = subprocess.run([sys.executable, str(ROOT / "scripts/plot.py"), str(tmp_path), "--out", str(out),
                           "--threshold", "5"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    md = (out / "report.md").read_text()
    assert "| final return (mean [95% CI]) | IQM | max of mean curve | best | steps/s |" in md
    assert "| CartPole-v1 | dqn | 2 (0, 1) | 600 |" in md
    assert (out / "CartPole-v1.png").stat().st_size > 1000


def test_bench_quick_runs(tmp_path):
    proc = subprocess.run([sys.executable, str(ROOT / "scripts/bench.py"), "--quick", "--no-sb3", "--threads", "1",
                           "--out", str(tmp_path)], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    rows = __import__("json").loads((tmp_path / "bench.json").read_text())
    assert {r["algo"] for r in rows} == {"td3", "sac", "ddpg", "dqn", "a2c", "ppo"}
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
