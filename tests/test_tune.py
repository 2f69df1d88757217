"""``scripts/tune.py``: a study whose trials each run the same seeds, scored by the mean of a per-run statistic,
kept in an Optuna journal file, continued (never rerun) by the same command, and a space checked before any run."""

import json
import statistics

import pytest

import rlbase
from rlbase import tune

FIXED = ["algo=dqn", "env=cartpole", "total_steps=1000", "eval_every=250", "eval_episodes=2", "logger=none",
         "progress=false", "hardware.threads=1"]
SPACE = "{algo.lr: {type: float, low: 1.0e-4, high: 1.0e-2, log: true}, algo.batch_size: [32, 64]}"


def run_tune(study, *extra, fixed=FIXED, space=SPACE):
    return tune.main([*fixed, "--space", space, "--seeds", "2", "--study", str(study), *extra])


def evals(run_dir):
    return [r["eval/return_mean"] for r in map(json.loads, (run_dir / "metrics.jsonl").read_text().splitlines())
            if "eval/return_mean" in r]


def trials(study):
    s, _ = tune.open_study(study)
    return s.get_trials()


@pytest.fixture
def spy(monkeypatch):
    """Every rlbase.run the study makes: (seed, run dir)."""
    calls = []
    real = rlbase.run

    def run(overrides, run_dir=None):
        calls.append((next(o for o in overrides if o.startswith("seed=")), run_dir))
        return real(overrides, run_dir=run_dir)

    monkeypatch.setattr(rlbase, "run", run)
    return calls


def test_a_study_runs_its_seeds_and_scores_their_mean(tmp_path, capsys, spy):
    study = tmp_path / "study"
    assert run_tune(study, "--trials", "2") == 0
    assert (study / "journal.log").stat().st_size > 0 and len(spy) == 4
    done = trials(study)
    assert [t.state.name for t in done] == ["COMPLETE", "COMPLETE"]
    for t in done:
        per_seed = []
        for seed in (100, 101):  # the same seeds in every trial, each in its own run directory
            run_dir = study / f"trial{t.number}" / f"seed{seed}"
            assert (run_dir / "done").exists()
            last3 = statistics.mean(evals(run_dir)[-3:])  # the default statistic: the mean of the last 3 evaluations
            assert t.user_attrs[f"seed{seed}"] == pytest.approx(last3)
            per_seed.append(last3)
            recorded = (run_dir / ".hydra/overrides.yaml").read_text()
            assert f"seed={seed}" in recorded and f"algo.batch_size={t.params['algo.batch_size']}" in recorded
            assert f"logger.group=study-trial{t.number}" in recorded  # W&B groups a trial's seeds
        assert t.value == pytest.approx(statistics.mean(per_seed))
    out = capsys.readouterr().out
    best = max(done, key=lambda t: t.value)
    command = next(line for line in out.splitlines() if line.startswith("python train.py"))
    assert command.split()[2:2 + len(FIXED)] == FIXED
    assert f"algo.lr={best.params['algo.lr']!r}" in command and f"algo.batch_size={best.params['algo.batch_size']}" in command
    assert "| rank | trial | state | algo.lr | algo.batch_size | seed 100 | seed 101 | mean last3 | runs |" in out
    assert "a claim needs fresh seeds" in out and "protocol" in out
    assert (study / "report.md").read_text().strip() in out


def test_rerunning_continues_the_study_without_rerunning_finished_trials(tmp_path, capsys, spy):
    study = tmp_path / "study"
    assert run_tune(study, "--trials", "1") == 0
    first = {p: p.stat().st_mtime_ns for p in (study / "trial0").glob("seed*/metrics.jsonl")}
    assert len(spy) == 2 and len(first) == 2
    assert run_tune(study, "--trials", "2") == 0  # the same command with a larger budget: one trial more
    assert [seed for seed, _ in spy[2:]] == ["seed=100", "seed=101"]
    assert all(str(d).startswith(str(study / "trial1")) for _, d in spy[2:])
    assert {p: p.stat().st_mtime_ns for p in (study / "trial0").glob("seed*/metrics.jsonl")} == first
    assert run_tune(study, "--trials", "2") == 0 and len(spy) == 4  # nothing left to run
    assert [t.state.name for t in trials(study)] == ["COMPLETE", "COMPLETE"]
    capsys.readouterr()
    # other settings are another study: refused in one line, nothing run
    other = [o if o != "eval_episodes=2" else "eval_episodes=3" for o in FIXED]
    assert run_tune(study, "--trials", "3", fixed=other) == 2 and len(spy) == 4
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "eval_episodes=3 (the study has 2)" in err[0]
    assert tune.main(["--study", str(study), "--report"]) == 0 and len(spy) == 4


def test_an_interrupted_trial_is_retried_in_its_directory_keeping_its_finished_seeds(tmp_path, monkeypatch, capsys):
    study = tmp_path / "study"
    calls = []
    real = rlbase.run

    def run(overrides, run_dir=None):
        calls.append(run_dir.name)
        if len(calls) == 2:  # Ctrl-C as the trial's second seed starts
            raise KeyboardInterrupt
        return real(overrides, run_dir=run_dir)

    monkeypatch.setattr(rlbase, "run", run)
    assert run_tune(study, "--trials", "1") == 130
    [t0] = trials(study)
    assert t0.state.name == "FAIL" and t0.user_attrs["interrupted"] and (study / "trial0/seed100/done").exists()
    assert run_tune(study, "--trials", "1") == 0
    assert calls == ["seed100", "seed101", "seed101"]  # the finished seed is read, not rerun
    t0, t1 = trials(study)
    assert t1.state.name == "COMPLETE" and t1.params == t0.params
    assert t1.user_attrs["retry_of"] == 0 and t1.user_attrs["dir"] == "trial0" and not (study / "trial1").exists()
    assert t1.value == pytest.approx(statistics.mean(statistics.mean(evals(study / "trial0" / s)[-3:])
                                                     for s in ("seed100", "seed101")))
    assert "interrupted (retried as 1)" in capsys.readouterr().out


def test_a_trial_left_running_by_a_dead_process_is_retried(tmp_path, capsys):
    study = tmp_path / "study"
    fixed = [o for o in FIXED if not o.startswith("total_steps")] + ["total_steps=500"]
    assert tune.main([*fixed, "--space", "{algo.batch_size: [32, 64]}", "--seeds", "1", "--study", str(study),
                      "--trials", "0"]) == 2  # (--trials 0 is refused: nothing made)
    study.mkdir()
    s, _ = tune.open_study(study)  # a worker that asked a trial and died: running, its lock free
    dead = s.ask()
    dead.suggest_categorical("algo.batch_size", [32, 64])
    dead.set_user_attr("dir", "trial0")
    assert tune.main([*fixed, "--space", "{algo.batch_size: [32, 64]}", "--seeds", "1", "--study", str(study),
                      "--trials", "1"]) == 0
    t0, t1 = trials(study)
    assert t0.state.name == "FAIL" and "ended without finishing" in t0.user_attrs["interrupted"]
    assert t1.state.name == "COMPLETE" and t1.params == t0.params and t1.user_attrs["dir"] == "trial0"
    assert "running with no live process" in capsys.readouterr().out


@pytest.mark.parametrize("space, says", [
    ("{algo.lrr: {type: float, low: 1.0e-4, high: 1.0e-3}}", "algo.lrr is not a setting of algo=dqn that a study can "
     "search; allowed: algo.amsgrad, algo.batch_size, algo.buffer_size"),
    ("{algo.lr: {type: float, low: 1.0e-3, high: 1.0e-4}}", "low=0.001 is not below high=0.0001"),
    ("{algo.lr: {type: float, low: 0, high: 1.0e-3, log: true}}", "log=true needs low > 0"),
    ("{algo.gamma: {type: float, low: 0.9, high: 1.5}}", "algo.gamma=1.5 is out of range; allowed: 0 <= gamma <= 1"),
    ("{algo.batch_size: {type: float, low: 16, high: 256}}", "algo.batch_size is an integer setting"),
    ("{algo.batch_size: [32, abc]}", "algo.batch_size=abc"),
    ("{algo.lr: {type: float, lo: 1.0e-4, high: 1.0e-3}}", "unknown field lo"),
    ("{algo.lr: {type: uniform, low: 1.0e-4, high: 1.0e-3}}", "type 'uniform' is not supported"),
    ("{total_steps: [1000, 2000]}", "total_steps cannot be searched"),
    ("{algo.eps_end: [0.01, 0.05]}", "algo.eps_end is also set on the command line (algo.eps_end=0.1)"),
    ("nope.yaml", "--space nope.yaml: no such file"),
])
def test_a_bad_space_is_refused_in_one_line_before_any_run(tmp_path, capsys, monkeypatch, space, says):
    monkeypatch.setattr(rlbase, "run", lambda *a, **k: pytest.fail("a run started"))
    study = tmp_path / "study"
    assert run_tune(study, "--trials", "2", fixed=[*FIXED, "algo.eps_end=0.1"], space=space) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and says in err[0], err
    assert not study.exists()


@pytest.mark.parametrize("name", sorted(p.stem for p in tune.SPACES.glob("*.yaml")))
def test_shipped_spaces_fit_their_algorithms(name):
    from rlbase.runtime.api import compose

    env = "cartpole" if name in ("dqn", "ppo", "a2c") else "pendulum"
    cfg, _ = compose([f"algo={name}", f"env={env}"])
    label, raw = tune.read_space(name, name)
    assert tune.parse_space(raw, label, cfg, []) and tune.read_space(None, name)[1] == raw


def test_the_statistics(tmp_path):
    rows = [{"step": s, "eval/return_mean": v} for s, v in ((1, 10.0), (2, 40.0), (3, 20.0), (4, 30.0))]
    (tmp_path / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in [{"step": 0, "loss/q": 1}, *rows]))
    assert tune.run_score(tmp_path, "last3") == pytest.approx(30.0)
    assert tune.run_score(tmp_path, "final") == 30.0 and tune.run_score(tmp_path, "best") == 40.0
    assert tune.run_score(tmp_path, "last10") == pytest.approx(25.0)
    assert tune.parse_stat("last1") == "final"
    with pytest.raises(tune.TuneError, match="allowed: last3"):
        tune.parse_stat("mean")
