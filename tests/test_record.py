"""A run's record is its own (issue 36): Hydra writes nothing into a run directory; the run writes its .hydra/
record and train.log once it is accepted, so a refused, skipped or failed attempt leaves every byte of an existing
run as it was, whatever form the directory was given in."""

import hashlib

from tests.conftest import _in_process, read_rows, run_train

SHORT = ["algo=dqn", "env=cartpole", "total_steps=600", "eval_every=600", "eval_episodes=1", "logger=none",
         "progress=false"]


def snapshot(run_dir):
    """Every file under ``run_dir`` (the lock file included) and its bytes' digest."""
    return {str(p.relative_to(run_dir)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(run_dir.rglob("*")) if p.is_file()}


def one_error_line(proc):
    err = [line for line in proc.stderr.strip().splitlines() if line.strip()]
    assert len(err) == 1 and err[0].startswith("error: "), proc.stderr[-2000:]
    return err[0]


def test_an_interpolated_run_dir_aimed_at_a_finished_run_is_refused_and_changes_nothing(tmp_path):
    run_dir = tmp_path / "done_run"
    run_train(*SHORT, run_dir=run_dir)
    before = snapshot(run_dir)
    for extra in ([], ["seed=5"], ["algo.lr=0.05"]):
        proc = _in_process([*SHORT, *extra, "hydra.run.dir=${oc.env:RUNDIR}"], tmp_path, {"RUNDIR": str(run_dir)})
        assert proc.returncode == 2, proc.stderr[-2000:]
        assert "holds a finished run" in one_error_line(proc)
        assert snapshot(run_dir) == before, extra
    rows = read_rows(run_dir)
    assert rows[-1]["step"] == 600  # not continued


def test_a_resume_refused_after_hydra_started_leaves_the_record_and_log_as_they_were(tmp_path):
    run_dir = tmp_path / "run"
    run_train(*SHORT, "checkpoint_every=200", "keep_replay=true", run_dir=run_dir)
    (run_dir / "done").unlink()  # as if stopped before the end
    before = snapshot(run_dir)
    proc = _in_process([*SHORT, "algo.lr=0.05", "hydra.run.dir=${oc.env:RUNDIR}"], tmp_path, {"RUNDIR": str(run_dir)})
    assert proc.returncode == 2 and "would change algo.lr=0.05" in one_error_line(proc)
    assert snapshot(run_dir) == before  # overrides.yaml, config.yaml, train.log and .lock included
    # the printed resume command still works afterwards
    resumed = run_train(f"resume={run_dir}", "total_steps=800", run_dir=run_dir, check=False)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert "algo.lr=0.05" not in (run_dir / ".hydra" / "overrides.yaml").read_text()


def test_a_refused_new_run_leaves_no_directory(tmp_path):
    run_dir = tmp_path / "new"
    proc = run_train(*SHORT, "algo.lr=-1", run_dir=run_dir, check=False)
    assert proc.returncode == 2 and not run_dir.exists()


def test_a_hydra_grammar_error_is_one_line_exit_2_and_creates_nothing(tmp_path):
    proc = _in_process([*SHORT, f"hydra.run.dir={tmp_path}/a b)"], tmp_path, {})
    assert proc.returncode == 2
    assert "cannot read" in one_error_line(proc)
    assert list(tmp_path.iterdir()) == []


def sweep(tmp_path, *args):
    return _in_process(["-m", *SHORT, "seed=0,1", *args, f"hydra.sweep.dir={tmp_path / 'sweep'}"], tmp_path, {})


def test_a_sweep_rerun_with_another_setting_refuses_instead_of_skipping(tmp_path):
    first = sweep(tmp_path)
    assert first.returncode == 0, first.stderr[-2000:]
    jobs = sorted(p.parent for p in (tmp_path / "sweep").rglob("done"))
    assert len(jobs) == 2
    before = {j: snapshot(j) for j in jobs}
    same = sweep(tmp_path, "hardware.threads=1")  # a setting that does not change results: skipped as finished
    assert same.returncode == 0, same.stderr[-2000:]
    assert {j: snapshot(j) for j in jobs} == before
    for changed in (["algo.lr=0.05"], ["algo.hidden=[64,64]"]):
        proc = sweep(tmp_path, *changed)
        assert proc.returncode == 2, proc.stderr[-2000:]
        assert "is a finished job of this sweep run with other settings" in proc.stderr
        assert changed[0].split("=")[0] in proc.stderr
        assert {j: snapshot(j) for j in jobs} == before, changed
