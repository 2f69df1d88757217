"""A run owns its directory: a second live writer is refused before it writes; default directories are unique."""

import os
import signal
import subprocess
import sys
import time

from omegaconf import OmegaConf

from tests.conftest import ROOT, run_train


def test_second_live_writer_refused_then_resume_after_kill(tmp_path):
    run_dir = tmp_path / "run"
    cmd = [sys.executable, str(ROOT / "train.py"), "total_steps=200000", "eval_every=100000", "checkpoint_every=500",
           "logger=none", "progress=false", f"hydra.run.dir={run_dir}"]
    first = subprocess.Popen(cmd, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 120
        while not (run_dir / "checkpoint.pt").exists() and time.time() < deadline:
            time.sleep(0.5)
        assert (run_dir / "checkpoint.pt").exists()
        saved = (run_dir / ".hydra" / "overrides.yaml").read_text()
        second = run_train("total_steps=300", "algo.lr=0.001", run_dir=run_dir, check=False)
        assert second.returncode == 2
        assert "is in use by another live run" in second.stderr and len(second.stderr.strip().splitlines()) == 1
        assert (run_dir / ".hydra" / "overrides.yaml").read_text() == saved  # the first run's record is intact
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait()
    # the OS dropped the lock with the process: the run resumes
    from rlbase.core import checkpoint

    step = checkpoint.load(run_dir)["step"]
    resumed = run_train(f"resume={run_dir}", f"total_steps={step + 300}", run_dir=run_dir, check=False)
    assert resumed.returncode == 0, resumed.stderr[-2000:]


def test_default_run_dir_has_the_pid(compose_cfg):
    node = OmegaConf.create({"d": "${pid:}"})
    assert node.d == str(os.getpid())
    assert "${pid:}" in (ROOT / "rlbase" / "conf" / "config.yaml").read_text()


def test_resume_that_changes_settings_is_refused_and_leaves_the_run_as_it_was(tmp_path):
    run_dir = tmp_path / "run"
    run_train("algo=dqn", "env=cartpole", "total_steps=1500", "eval_every=1500", "eval_episodes=1",
              "checkpoint_every=500", "keep_replay=true", run_dir=run_dir)
    (run_dir / "done").unlink()  # as if it had been stopped before the end (its replay kept for that)
    recorded = {p.name: p.read_text() for p in (run_dir / ".hydra").glob("*.yaml")}
    for args in ([f"resume={run_dir}", "algo.hidden=[32]"], ["algo=sac", "env=pendulum"],
                 [f"resume={run_dir}", "total_steps=10"]):
        proc = run_train(*args, run_dir=run_dir, check=False)
        err = proc.stderr.strip().splitlines()
        assert proc.returncode == 2 and len(err) == 1 and err[0].startswith("error: "), proc.stderr[-2000:]
        assert {p.name: p.read_text() for p in (run_dir / ".hydra").glob("*.yaml")} == recorded
    assert "would change algo.hidden=[32] (the run has [256, 256])" in run_train(f"resume={run_dir}", "algo.hidden=[32]", run_dir=run_dir,
                                                                 check=False).stderr
    resumed = run_train(f"resume={run_dir}", "total_steps=2000", "logger=none", run_dir=run_dir)
    assert "resumed from step" in resumed.stdout + resumed.stderr and (run_dir / "done").exists()


def test_a_resume_may_not_change_the_kind_of_evaluation(tmp_path, compose_cfg):
    from rlbase.runtime import job as train

    saved = OmegaConf.to_container(compose_cfg("algo=ppo", "env=cartpole"), resolve=True)
    assert train.resume_changes(compose_cfg("algo=ppo", "env=cartpole", "eval.video=true"), tmp_path, saved) == []
    assert train.resume_changes(compose_cfg("algo=ppo", "env=cartpole", "eval.sample=true"), tmp_path, saved) == [
        "eval.sample=True (the run has False)"]


def test_a_new_run_names_the_unfinished_run_of_the_same_settings(tmp_path):
    base = tmp_path / "runs" / "dqn" / "cartpole" / "seed0"
    first = base / "a"
    base.mkdir(parents=True)
    args = ["algo=dqn", "env=cartpole", "total_steps=1000", "eval_every=1000", "eval_episodes=1", "checkpoint_every=500"]
    run_train(*args, run_dir=first)
    (first / "done").unlink()  # as if it had crashed after a checkpoint
    proc = run_train(*args, run_dir=base / "b")
    out = proc.stdout + proc.stderr
    assert f"is an unfinished run of these settings; to continue it instead: python train.py resume={first}" in out
    other = run_train(*args[:-1], "checkpoint_every=1000", run_dir=base / "c")  # other settings: not the same run
    assert "unfinished run" not in other.stdout + other.stderr


def test_resume_without_a_checkpoint_or_with_damaged_overrides_is_refused_untouched(tmp_path):
    run_dir = tmp_path / "run"
    run_train("algo=dqn", "env=cartpole", "total_steps=600", "eval_every=600", "eval_episodes=1", run_dir=run_dir)
    (run_dir / "done").unlink()
    saved = run_dir / ".hydra" / "overrides.yaml"
    cases = {"no checkpoint": None, "empty": "", "not YAML": "{{{ [\n", "not a list": "total_steps: 5\n"}
    for what, text in cases.items():
        if text is None:
            for p in run_dir.glob("checkpoint*.pt"):
                p.unlink()
        else:
            saved.write_text(text)
        before = {p.name: p.read_bytes() for p in run_dir.rglob("*") if p.is_file()}
        proc = run_train(f"resume={run_dir}", run_dir=run_dir, check=False)
        err = proc.stderr.strip().splitlines()
        assert proc.returncode == 2 and len(err) == 1, (what, proc.stderr[-2000:])
        needle = "no checkpoint there" if text is None else "overrides.yaml is damaged"
        assert err[0].startswith(f"error: resume={run_dir}: ") and needle in err[0], (what, err[0])
        assert {p.name: p.read_bytes() for p in run_dir.rglob("*") if p.is_file()} == before, what
    # no checkpoint: the refusal gives the command that starts the run again
    saved.write_text("- algo=dqn\n- env=cartpole\n")
    assert "python train.py algo=dqn env=cartpole" in run_train(f"resume={run_dir}", run_dir=run_dir, check=False).stderr


def test_a_resume_refuses_a_key_only_one_side_has_unless_it_is_a_new_setting_at_its_default(tmp_path, compose_cfg):
    """A key added under a dict-valued setting (env.kwargs) changes the task and is refused; a setting the code
    gained since the run started is accepted at its default only."""
    from omegaconf import OmegaConf

    from rlbase.runtime import job

    saved = OmegaConf.to_container(compose_cfg("algo=sac", "env=pendulum"), resolve=True)
    assert job.resume_changes(compose_cfg("algo=sac", "env=pendulum", "+env.kwargs.g=5.0"), tmp_path, saved) == [
        "env.kwargs.g=5.0 (the run has no env.kwargs.g)"]
    older = OmegaConf.to_container(compose_cfg("algo=sac", "env=pendulum"), resolve=True)
    del older["algo"]["log_prob_eps"]  # a run recorded before the setting existed
    assert job.resume_changes(compose_cfg("algo=sac", "env=pendulum"), tmp_path, older) == []
    assert job.resume_changes(compose_cfg("algo=sac", "env=pendulum", "algo.log_prob_eps=1e-6"), tmp_path, older) == [
        "algo.log_prob_eps=1e-06 (the run has no algo.log_prob_eps)"]


def test_a_run_that_deleted_a_default_resumes(tmp_path):
    """``~tuned`` (a deletion, no "=") in a run's recorded overrides is a valid override, not a damaged record: the
    protocol files use it, and their runs resume with ``resume=<dir>``."""
    from rlbase.core import checkpoint

    run_dir = tmp_path / "run"
    run_train("algo=dqn", "~tuned", "total_steps=600", "eval_every=600", "eval_episodes=1", "algo.learning_starts=100",
              "keep_replay=true",
              run_dir=run_dir)
    (run_dir / checkpoint.DONE).unlink()  # as if it had been stopped at its last checkpoint
    proc = run_train(f"resume={run_dir}", run_dir=run_dir, check=False)
    assert proc.returncode == 0, proc.stderr
    assert "damaged" not in proc.stderr and (run_dir / checkpoint.DONE).exists()


def test_a_setting_added_since_the_run_started_does_not_block_its_resume(tmp_path):
    """A run recorded before a top-level setting existed (``loop``, added later) resumes: the new setting at its
    default is what the run trained with."""
    from rlbase.core import checkpoint

    run_dir = tmp_path / "run"
    run_train("algo=dqn", "total_steps=600", "eval_every=600", "eval_episodes=1", "algo.learning_starts=100",
              "keep_replay=true", run_dir=run_dir)
    for path in (run_dir / ".hydra" / "config.yaml",):
        cfg = OmegaConf.load(path)
        del cfg["loop"]
        OmegaConf.save(cfg, path)
    state = checkpoint.load(run_dir)
    del state["config"]["loop"]
    checkpoint.save(run_dir, state)
    (run_dir / checkpoint.DONE).unlink()
    proc = run_train(f"resume={run_dir}", run_dir=run_dir, check=False)
    assert proc.returncode == 0, proc.stderr
