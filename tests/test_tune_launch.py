"""``scripts/tune.py --workers N``: the study's workers started through a Hydra launcher (rlbase/tune_app.py), each
working on the shared journal in its own process; every refusal one line, before the study directory is made."""

import json

import pytest

from rlbase import tune

FIXED = ["algo=dqn", "env=cartpole", "total_steps=500", "eval_every=250", "eval_episodes=2", "logger=none",
         "progress=false"]
SPACE = "{algo.batch_size: [32, 64]}"


def run_tune(study, *extra):
    return tune.main([*FIXED, "--space", SPACE, "--seeds", "1", "--trials", "2", "--study", str(study), *extra])


def test_workers_launched_through_joblib_share_the_study(tmp_path, capfd):
    study = tmp_path / "study"
    assert run_tune(study, "--workers", "2", "--launcher", "joblib") == 0
    trials = tune.open_study(study)[0].get_trials()
    assert [t.state.name for t in trials] == ["COMPLETE", "COMPLETE"]
    for t in trials:
        run_dir = study / f"trial{t.number}" / "seed100"
        assert (run_dir / "done").exists() and t.user_attrs["seed100"] == t.value
        recorded = (run_dir / ".hydra/overrides.yaml").read_text()
        assert "hardware.threads=1" in recorded  # the cores divided among the workers (DQN: 1 at most)
    [launch] = (study / "launch").iterdir()
    assert [json.loads((launch / f"worker{i}" / "result.json").read_text())["code"] for i in (0, 1)] == [0, 0]
    out, err = capfd.readouterr()
    assert "launching 2 workers through hydra/launcher=joblib" in out
    assert "| rank | trial | state | algo.batch_size | seed 100 | mean last3 | runs |" in out
    assert "python train.py algo=dqn" in out and (study / "report.md").read_text().strip() in out
    assert "error" not in err


@pytest.mark.parametrize("extra, says", [
    (["--launcher", "slurm"], "--launcher slurm: allowed: joblib"),
    (["hydra.launcher.n_jobs=2"], "hydra.launcher.n_jobs=2: a launcher setting; it goes with --workers N"),
    (["--workers", "2", "hydra.launcher.partition=x"], "Key 'partition' not in 'JobLibLauncherConf'"),
])
def test_a_bad_launch_is_refused_in_one_line_before_the_study_is_made(tmp_path, capsys, extra, says):
    study = tmp_path / "study"
    assert run_tune(study, *extra) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and says in err[0]
    assert not study.exists()


def test_slurm_without_sbatch_is_refused_in_one_line(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path / "bin"))  # no sbatch, no srun
    study = tmp_path / "study"
    assert run_tune(study, "--workers", "2", "--launcher", "submitit_slurm") == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "sbatch and srun are not on PATH" in err[0] and "--launcher joblib" in err[0]
    assert not study.exists()
