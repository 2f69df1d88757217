"""Multiruns through Hydra launchers: one W&B run per job, a report at the end, failed jobs listed and rerun."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from tests.conftest import ROOT

SHORT = ["total_steps=400", "eval_every=200", "eval_episodes=1", "progress=false"]


def sweep(tmp_path, *args, env=None, timeout=600):
    cmd = [sys.executable, str(ROOT / "train.py"), "-m", *SHORT, *args, f"hydra.sweep.dir={tmp_path / 'sweep'}"]
    # no PYTHONPATH: the jobs find the package from any directory (make install installs it); a test env module
    # outside the package (tests.crashing_env) is passed with env={"PYTHONPATH": ...}
    full_env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    full_env.update({"WANDB_DIR": str(tmp_path), **(env or {})})
    return subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=timeout, env=full_env)


def test_two_tasks_two_seeds_sweep(tmp_path):
    # through joblib; submitit_local (a process per job) runs whole sweeps in the killed-job and timeout tests below
    seeds = [0, 1]
    proc = sweep(tmp_path, "env=cartpole,acrobot", f"seed={','.join(map(str, seeds))}", "logger=wandb",
                 "hydra/launcher=joblib", "hydra.launcher.n_jobs=2")
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-3000:]
    jobs = sorted((tmp_path / "sweep" / "dqn").glob("*/seed*"))
    pairs = [(task, s) for task in ("acrobot", "cartpole") for s in seeds]
    assert [f"{j.parent.name}/{j.name}" for j in jobs] == [f"{t}/seed{s}" for t, s in pairs]
    meta = [json.loads((j / "wandb_run.json").read_text()) for j in jobs]
    assert len({m["id"] for m in meta}) == len(pairs)
    assert [m["group"] for m in meta] == [f"dqn-{t}" for t, _ in pairs]
    assert [m["name"] for m in meta] == [f"dqn-{t}-seed{s}" for t, s in pairs]
    assert all(list((j / "wandb").glob("offline-run-*")) and (j / "done").exists() for j in jobs)
    report = (tmp_path / "sweep" / "report" / "report.md").read_text()
    n = f"{len(seeds)} ({', '.join(map(str, seeds))})"
    assert f"| dqn · CartPole-v1 | {n} |" in report and f"| dqn · Acrobot-v1 | {n} |" in report
    assert f"- command: `python {ROOT / 'train.py'} -m " in report  # the sweep's own command made it
    assert (tmp_path / "sweep" / "report" / "CartPole-v1.png").exists()


def test_swept_settings_get_their_own_directories_groups_and_report_rows(tmp_path):
    proc = sweep(tmp_path, "env=cartpole", "seed=0", "algo.lr=0.001,0.0001", "logger=wandb")
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-3000:]
    jobs = sorted((tmp_path / "sweep" / "dqn" / "cartpole").glob("*/seed0"))
    # the settings given one value (total_steps, eval_every, ...) name nothing; the swept one names each job
    assert [j.parent.name for j in jobs] == ["algo.lr=0.0001", "algo.lr=0.001"]
    assert all((j / "done").exists() for j in jobs)
    groups = [json.loads((j / "wandb_run.json").read_text())["group"] for j in jobs]
    assert groups == ["dqn-cartpole-algo.lr=0.0001", "dqn-cartpole-algo.lr=0.001"]
    names = [json.loads((j / "wandb_run.json").read_text())["name"] for j in jobs]
    assert names == [g + "-seed0" for g in groups]  # W&B's runs table tells the two apart by name too
    report = (tmp_path / "sweep" / "report" / "report.md").read_text()
    assert "| dqn · CartPole-v1 · algo.lr=0.0001 | 1 (0) |" in report and "| dqn · CartPole-v1 · algo.lr=0.001 | 1 (0) |" in report


def test_failed_job_is_listed_and_only_it_reruns(tmp_path):
    args = ["env=gym", "env.id=CartPole-v1,tests.crashing_env:NaNRewardCartPole-v0", "logger=none",
            "total_steps=2000", "eval_every=1000"]
    first = sweep(tmp_path, *args)
    out = first.stdout + first.stderr
    assert "1 jobs finished, 1 failed or unfinished" in out, out[-3000:]
    assert first.returncode == 1  # not every job finished
    assert (tmp_path / "sweep" / "report" / "report.md").exists()  # the report of the finished ones all the same
    failed = [line for line in out.splitlines() if "failed: " in line]
    assert len(failed) == 1 and "NaNRewardCartPole-v0" in failed[0] and "train.log" in failed[0]
    second = sweep(tmp_path, *args)
    out2 = second.stdout + second.stderr
    assert "skipping finished job" in out2 and out2.count("run dir:") == 1  # only the failed job ran again
    # it had no checkpoint: it starts clean, the first attempt's rows set aside, never mixed with the new ones
    job = next(p.parent for p in (tmp_path / "sweep").rglob("metrics.failed-1.jsonl"))
    steps = [json.loads(line)["step"] for line in (job / "metrics.jsonl").read_text().splitlines()]
    assert steps == sorted(steps)


def test_invalid_combinations_refuse_the_sweep_before_any_job(tmp_path):
    proc = sweep(tmp_path, "algo=dqn,td3", "env=cartpole,pendulum", "logger=none")
    err = [line for line in proc.stderr.splitlines() if line.strip()]
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert err[0].startswith("error: algo=dqn env=pendulum: algo=dqn needs discrete actions")
    assert err[1].startswith("error: algo=td3 env=cartpole: algo=td3 needs continuous actions")
    assert "2 of 4 combinations of this sweep are invalid" in err[2] and len(err) == 3
    assert not (tmp_path / "sweep").exists()


def test_flags_anywhere_on_the_line():
    """-m (or --cfg job) after an override is read as typed, not refused by argparse as 'unrecognized arguments'."""
    from rlbase.cli import flags_first

    assert flags_first(["algo=td3", "-m", "seed=0,1"]) == ["-m", "algo=td3", "seed=0,1"]
    assert flags_first(["algo=td3", "--cfg", "job", "env=hopper", "--info"]) == ["--cfg", "job", "--info", "algo=td3",
                                                                                 "env=hopper"]
    assert flags_first(["env=pendulum", "--info", "defaults", "-cn", "config"]) == ["--info", "defaults", "-cn",
                                                                                    "config", "env=pendulum"]
    assert flags_first(["algo=td3", "-sc", "--cfg", "job"]) == ["-sc", "--cfg", "job", "algo=td3"]  # -sc takes none


def test_a_flag_after_resume_is_read(tmp_path, capsys, monkeypatch):
    """resume=<dir> expands to the run's saved overrides in front: a flag typed after it still goes first."""
    from rlbase.cli import cli

    monkeypatch.chdir(tmp_path)
    run = tmp_path / "run"
    assert cli(["env=cartpole", "total_steps=300", "eval_every=300", "eval_episodes=1", "logger=none",
                "progress=false", f"hydra.run.dir={run}"]) == 0
    capsys.readouterr()
    (run / "done").unlink()  # as if stopped at its last checkpoint: resumable
    assert cli([f"resume={run}", "--cfg", "job"]) == 0
    assert "total_steps: 300" in capsys.readouterr().out


def test_multirun_flag_mid_line_sweeps(tmp_path, capsys, monkeypatch):
    # the same refusal as above (it needs the sweep read as one): -m after the first override; in-process
    from rlbase.cli import cli

    monkeypatch.chdir(tmp_path)
    code = cli(["algo=dqn,td3", "-m", "env=cartpole,pendulum", "logger=none", f"hydra.sweep.dir={tmp_path / 'sweep'}"])
    err = capsys.readouterr().err
    assert code == 2 and "2 of 4 combinations of this sweep are invalid" in err, err[-2000:]


def test_sweep_preset_sets_multirun(compose_cfg):
    cfg = compose_cfg("+sweep=classic", "algo=dqn", "env=cartpole")
    assert cfg.logger.group is None and list(cfg.logger.tags) == ["classic"]  # groups per algo x task; preset a tag


def test_submitit_signal_requeues_and_resumes(tmp_path):
    """A Slurm job gets SIGUSR2 before its time limit or when preempted (submitit_local's controller sends it
    ``signal_delay_s`` before its own limit, 30 s at least, so the test sends it itself, 2.5 s into the run): the
    run checkpoints, submitit requeues the job, and the job resumes from the checkpoint and finishes; env steps
    continue, no row repeats. The env sleeps 2.5 ms a step and no update runs (learning_starts at the last step), so
    the 3000 steps outlast the signal on any machine. With W&B on (offline), as a Slurm job would log."""
    args = ["env=gym", "env.id=tests.crashing_env:SlowCartPole-v0", "seed=0", "logger=wandb", "total_steps=3000",
            "eval_every=1000", "eval_episodes=1", "log_every=500", "algo.learning_starts=2999",
            "hydra/launcher=submitit_local", "hydra.launcher.timeout_min=10", "+hydra.launcher.max_num_timeout=20"]
    cmd = [sys.executable, str(ROOT / "train.py"), "-m", *SHORT, *args, f"hydra.sweep.dir={tmp_path / 'sweep'}"]
    env = {**{k: v for k, v in os.environ.items() if k != "PYTHONPATH"}, "PYTHONPATH": str(ROOT),  # the test env
           "WANDB_DIR": str(tmp_path)}
    proc = subprocess.Popen(cmd, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    deadline, job = time.time() + 300, None
    while time.time() < deadline and proc.poll() is None:  # the job's first logged row (step 500)
        job = next((tmp_path / "sweep" / "dqn").glob("*/seed0"), None) if (tmp_path / "sweep" / "dqn").exists() else None
        if job is not None and (job / "metrics.jsonl").exists() and (job / "metrics.jsonl").read_text().strip():
            break
        time.sleep(0.1)
    pid = _pid_holding(job / "metrics.jsonl") if job is not None else None
    assert pid is not None, "the job's process was not found"
    os.kill(pid, signal.SIGUSR2)
    out, _ = proc.communicate(timeout=600)
    log = (job / "train.log").read_text() if (job / "train.log").exists() else ""
    assert proc.returncode == 0 and (job / "done").exists(), out[-3000:] + log[-3000:]
    assert "SIGUSR2: checkpoint written at step" in log and "resumed from step" in log, log[-3000:]
    rows = [json.loads(line) for line in (job / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows if "eval/return_mean" in r] == [1000, 2000, 3000]
    logged = [r["step"] for r in rows if "time/sps" in r]
    assert logged == list(range(500, 3001, 500))  # env steps continue across the requeue, none repeated
    # W&B under submitit: the requeued job resumes the same W&B run (one id, an offline directory per attempt)
    run_id = json.loads((job / "wandb_run.json").read_text())["id"]
    attempts = sorted((job / "wandb").glob("offline-run-*"))
    assert len(attempts) >= 2 and all(a.name.endswith(run_id) for a in attempts), attempts


def _pid_holding(path):
    """The process that has ``path`` open (Linux /proc), or None."""
    target = str(path)
    for fd_dir in Path("/proc").glob("[0-9]*/fd"):
        try:
            if any(os.readlink(fd) == target for fd in fd_dir.iterdir()):
                return int(fd_dir.parent.name)
        except OSError:  # processes come and go
            continue
    return None


def test_killed_job_leaves_others_and_rerun_completes_only_it(tmp_path):
    """Two jobs run side by side under submitit_local; one is SIGKILLed mid-run. The other finishes; re-running
    the same sweep skips the finished job and resumes the killed one from its checkpoint."""
    args = ["env=cartpole", "seed=0,1", "logger=none", "total_steps=3000", "eval_every=1000", "checkpoint_every=500",
            "hydra/launcher=submitit_local", "hydra.launcher.timeout_min=10"]
    cmd = [sys.executable, str(ROOT / "train.py"), "-m", *SHORT, *args, f"hydra.sweep.dir={tmp_path / 'sweep'}"]
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    sweep_proc = subprocess.Popen(cmd, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    victim = tmp_path / "sweep" / "dqn" / "cartpole" / "seed1"
    deadline = time.time() + 300
    while not (victim / "checkpoint.pt").exists() and time.time() < deadline and sweep_proc.poll() is None:
        time.sleep(0.1)
    pid = _pid_holding(victim / "metrics.jsonl")
    assert pid is not None, "the job's process was not found"
    os.kill(pid, signal.SIGKILL)
    first_out, _ = sweep_proc.communicate(timeout=600)
    other = tmp_path / "sweep" / "dqn" / "cartpole" / "seed0"
    assert (other / "done").exists() and not (victim / "done").exists()
    # the launcher names the dead job in one line and waits for the other; the summary lists it as failed
    assert sweep_proc.returncode == 1 and "1 jobs finished, 1 failed or unfinished" in first_out, first_out[-3000:]
    assert "ended without a result" in first_out and "Traceback" not in first_out, first_out[-3000:]
    assert (tmp_path / "sweep" / "report" / "report.md").exists()
    finished = {p: p.read_bytes() for p in other.rglob("*") if p.is_file()}
    rerun = sweep(tmp_path, *args)
    out = rerun.stdout + rerun.stderr
    assert rerun.returncode == 0 and (victim / "done").exists(), out[-3000:]
    # the finished job was skipped (same settings): not a byte of it changed, its log included
    assert {p: p.read_bytes() for p in other.rglob("*") if p.is_file()} == finished
    assert "resumed from step" in (victim / "train.log").read_text()


def test_hydra_sweep_functions_are_read_with_hydras_parser():
    """range(), choice() and glob() (over a group's options) are listed as Hydra's launcher will run them."""
    from rlbase.cli import sweep_values

    assert sweep_values("seed=range(0,3)") == ["seed=0", "seed=1", "seed=2"]
    assert sweep_values("seed=choice(4,5)") == ["seed=4", "seed=5"]
    assert sweep_values("algo=glob(dd*)") == ["algo=ddpg", "algo=ddpg_lillicrap"]
    assert sweep_values("algo=dqn,td3") == ["algo=dqn", "algo=td3"]
    assert sweep_values("seed=3") == [] and sweep_values("x=[1,2]") == []
    assert sweep_values("algo.lr=interval(0,1)") is None  # cannot be listed: checked at run time


def test_a_sweep_function_over_invalid_combinations_is_refused_before_any_job(tmp_path):
    from tests.conftest import ROOT

    proc = subprocess.run([sys.executable, str(ROOT / "train.py"), "-m", "algo=glob(dd*)", "env=cartpole",
                           "logger=none", f"hydra.sweep.dir={tmp_path / 'sweep'}"], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 2
    assert "2 of 2 combinations of this sweep are invalid" in proc.stderr
    assert not (tmp_path / "sweep" / "ddpg").exists()
