"""Small traps (issue 35, item 9, and tuning): each is fixed, or refused in one line before any work starts.

Videos of classic-control envs without pygame, ``hardware=slurm`` without Slurm, ``--help`` (fast, and useful), the
Minari description of an exported dataset, and the tuned file a study writes beside its report."""

import dataclasses
import importlib
import importlib.util
import json
import shutil
import subprocess
import sys
import time

import numpy as np
import pytest
import yaml
from omegaconf import OmegaConf

from rlbase import cli, data, envs, helptext, tune
from rlbase.conf import options
from tests.conftest import ROOT, run_train

HAS_PYGAME = importlib.util.find_spec("pygame") is not None


# ---- 1. eval.video=true on a classic-control env needs pygame (pygame-ce, in requirements.txt)


def test_video_of_a_classic_control_env_without_pygame_is_refused_before_anything_runs(tmp_path, monkeypatch, capsys):
    """pygame is in requirements.txt, so its absence is simulated (in-process: find_spec says it is not there)."""
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a, **k: None if name == "pygame" else real(name, *a, **k))
    assert envs.render_missing("CartPole-v1") == "pygame" and envs.render_missing("Pendulum-v1") == "pygame"
    assert envs.render_missing("Hopper-v5") is None  # MuJoCo renders with its GL backend, not pygame
    run_dir = tmp_path / "run"
    monkeypatch.chdir(tmp_path)
    code = cli.cli(["algo=sac", "env=pendulum", "eval.video=true", "total_steps=200", "logger=none",
                    f"hydra.run.dir={run_dir}"])
    err = [line for line in capsys.readouterr().err.strip().splitlines() if line.strip()]
    assert code == 2, err
    assert err == ["error: eval.video=true: rendering Pendulum-v1 needs pygame, which is not installed; allowed: "
                   "install it (pip install -r requirements.txt: pygame-ce) or eval.video=false"]
    assert not run_dir.exists()  # nothing was run, nothing was written
    assert "pygame-ce" in (ROOT / "requirements.txt").read_text()


@pytest.mark.skipif(not HAS_PYGAME, reason="pygame is not installed (pip install -r requirements.txt)")
def test_video_of_a_classic_control_env_is_written_with_pygame(tmp_path):
    run_dir = tmp_path / "run"
    run_train("algo=dqn", "env=cartpole", "eval.video=true", "total_steps=200", "eval_every=200", "eval_episodes=1",
              run_dir=run_dir)
    assert list((run_dir / "videos").glob("step200.*"))


# ---- 2. hardware=slurm without Slurm


def test_slurm_without_sbatch_is_refused_in_one_line_before_hydra_starts(tmp_path):
    empty = tmp_path / "bin"  # a PATH on which no sbatch (nor srun) is found
    empty.mkdir()
    for args in (["-m", "hardware=slurm", "seed=0,1"], ["hardware=slurm"], ["-m", "hydra/launcher=submitit_slurm"]):
        proc = run_train(*args, run_dir=tmp_path / "run", check=False, env={"PATH": str(empty)})
        err = proc.stderr.strip().splitlines()
        assert proc.returncode == 2 and len(err) == 1, proc.stderr
        what = args[1] if args[0] == "-m" else args[0]
        assert err[0] == (f"error: {what} submits each run as a Slurm job, but sbatch and srun are not on PATH (no "
                          f"Slurm on this machine); to run here, drop {what} (hardware=gpu for a GPU), or run a sweep "
                          "as local processes with -m hydra/launcher=submitit_local")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bin"]  # no run or sweep directory was made
    for tool in ("sbatch", "srun"):  # where Slurm is, nothing is refused here
        (empty / tool).write_text("#!/bin/sh\n")
        (empty / tool).chmod(0o755)
    saved = cli.os.environ["PATH"]
    try:
        cli.os.environ["PATH"] = str(empty)
        cli.check_slurm(OmegaConf.create({"hydra": {"runtime": {"choices": {"hardware": "slurm"}}}}))
    finally:
        cli.os.environ["PATH"] = saved


# ---- 3. --help: fast (no torch, gymnasium, MuJoCo or Hydra) and useful


def test_help_is_fast_and_lists_the_groups_options_and_the_run_settings(tmp_path):
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-X", "importtime", str(ROOT / "train.py"), "--help"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=60)
    seconds = time.perf_counter() - start
    assert proc.returncode == 0, proc.stderr
    imported = {line.rsplit("|", 1)[-1].strip().split(".")[0] for line in proc.stderr.splitlines() if "|" in line}
    assert not imported & {"torch", "gymnasium", "mujoco", "hydra", "omegaconf"}, imported
    assert seconds < 3.0, f"--help took {seconds:.1f} s (loose bound: the machine may be busy)"
    out = proc.stdout
    assert out.startswith("usage: python train.py")
    assert "python train.py algo=td3 env=hopper total_steps=1e5 seed=3" in out
    assert "python train.py -m algo=td3,sac env=hopper,walker2d seed=0,1,2" in out
    for group in ("algo", "env", "hardware", "logger", "dataset"):  # every option of every group, with its line
        assert f"\n  {group}=\n" in out
        for option in options(group):  # an algorithm without a file: its dataclass (its module's first line)
            assert f"\n    {option} " in out, option
    assert "td3             TD3: Twin Delayed Deep Deterministic policy gradient." in out
    assert "Hopper-v5, 1M steps, eval every 5000" in out and "device=cuda" in out
    assert "schema" not in out  # Hydra's internal groups are not options
    assert "seed=0" in out and "eval.video=false" in out and "--hydra-help" in out and "--cfg job" in out
    assert subprocess.run([sys.executable, str(ROOT / "train.py"), "-h"], capture_output=True, text=True,
                          timeout=60).stdout == out


def test_algo_help_shows_its_settings_defaults_and_comments(tmp_path, capsys):
    assert cli.cli(["algo=td3", "--help"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("algo=td3: TD3: Twin Delayed Deep Deterministic policy gradient.")
    assert "algo.policy_freq=2" in out and "critic updates per actor and target update (1: no delay); allowed: > 0" in out
    assert "algo.actor_hidden=[256,256]" in out and "algo.gamma=0.99" in out and "tuned files" in out
    assert "allowed: one of fp32, bf16" in out
    assert cli.cli(["algo=ddpg_lillicrap", "-h"]) == 0  # a variant: its file's values over the dataclass's
    assert "algo.tau=0.001" in capsys.readouterr().out
    assert cli.cli(["algo=nope", "--help"]) == 2
    assert capsys.readouterr().err.startswith("error: unknown algo option 'nope'; allowed: a2c, a3c")
    # what --help reads from the sources is what the dataclasses hold, for every algorithm: names, order, defaults
    from rlbase import algos

    for name, module in algos.ALGOS.items():
        path, cls = helptext._algo_source(name)
        config = importlib.import_module(module).Config
        assert cls == config.__name__
        real = {f.name: helptext._show(f.default if f.default is not dataclasses.MISSING else f.default_factory())
                for f in dataclasses.fields(config)}
        assert {k: v[0] for k, v in helptext.dataclass_settings(path, cls).items()} == real and \
            list(helptext.dataclass_settings(path, cls)) == list(real), name


def test_hydra_help_and_cfg_job_are_still_hydras(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert cli.cli(["--hydra-help"]) == 0
    assert "Hydra (" in capsys.readouterr().out
    assert cli.cli(["--cfg", "job", "algo=td3", "env=pendulum"]) == 0
    out = capsys.readouterr().out
    assert "policy_freq: 2" in out and "id: Pendulum-v1" in out


# ---- 4. the Minari description of an exported dataset


def pendulum_arrays(episodes=(5, 5, 3), seed=0):
    """Trajectories (each next observation is the next row's observation); the last episode is unfinished."""
    rng = np.random.default_rng(seed)
    cols = {k: [] for k in ("obs", "act", "rew", "next", "term", "trunc")}
    for i, t in enumerate(episodes):
        o = rng.normal(size=(t + 1, 3)).astype(np.float32)
        cols["obs"].append(o[:-1])
        cols["next"].append(o[1:])
        cols["act"].append(rng.uniform(-2, 2, (t, 1)).astype(np.float32))
        cols["rew"].append(np.full(t, -float(i + 1), np.float32))
        end = np.zeros(t, bool)
        end[-1] = i < len(episodes) - 1
        cols["term"].append(np.zeros(t, bool))
        cols["trunc"].append(end)
    return [np.concatenate(cols[k]) for k in cols]


def fake_run(run_dir, seed=3, total_steps=20000):
    (run_dir / ".hydra").mkdir(parents=True)
    config = {"seed": seed, "total_steps": total_steps, "total_updates": 100000, "algo": {"name": "sac", "gamma": 0.99},
              "env": {"name": "pendulum", "id": "Pendulum-v1"}, "dataset": {"path": None, "id": None, "record": True}}
    (run_dir / ".hydra" / "config.yaml").write_text(yaml.safe_dump(config))
    (run_dir / "provenance.json").write_text(json.dumps({"git": {"commit": "0123456789abcdef0123", "dirty": True}}))
    return config


def test_the_minari_description_is_one_readable_paragraph(tmp_path, monkeypatch):
    import minari

    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path / "minari"))
    run_dir = tmp_path / "run"
    config = fake_run(run_dir)
    path = data.write(tmp_path / "ds", *pendulum_arrays(), env_id="Pendulum-v1", discrete=False,
                      source={"kind": "online run", "run_dir": str(run_dir), "config": config})
    data.to_minari(*data.read(path), "test/pendulum/described-v0")
    text = minari.load_dataset("test/pendulum/described-v0").storage.metadata["description"]
    assert text == ("Every transition of a sac run on Pendulum-v1 (a budget of 20,000 env steps, seed 3), recorded by "
                    "rlbase as it trained (dataset.record=true). 13 transitions in 3 episodes (2 finished, 1 "
                    "unfinished); mean return -7.5 (std 2.5, min -10.0, max -5.0). Code: rlbase at git commit "
                    "0123456789ab with uncommitted changes (the run's provenance.json).")
    # rollouts of a trained policy: the run's facts come from its recorded config; a caller's sentence leads
    a = pendulum_arrays()
    meta = {"env_id": "Pendulum-v1", "size": 13, "episodes": data.episode_stats(a[2], a[4], a[5]),
            "source": {"kind": "policy rollouts", "run_dir": str(run_dir), "checkpoint_step": 20000, "noise": 0.1,
                       "seed": 7}}
    text = data.minari_description(meta, 3)
    assert text.startswith("Rollouts of the policy of a sac run on Pendulum-v1 (a budget of 20,000 env steps, seed 3), "
                           "its checkpoint at step 20,000, collected by rlbase (scripts/collect.py) with action noise "
                           "0.1 and rollout seed 7. 13 transitions")
    assert data.minari_description(meta, 3, "replay of sac").startswith(
        "Replay of sac. It comes from a sac run on Pendulum-v1 (a budget of 20,000 env steps, seed 3). 13 transitions")
    shutil.rmtree(run_dir)  # the run directory gone: what the manifest says, without the commit
    assert "git commit" not in data.minari_description({**meta, "source": {"kind": "online run", "run_dir": str(run_dir),
                                                                           "config": config}}, 3)


# ---- 5. a study writes its best values as a conf/tuned/ file


def test_a_study_writes_its_best_as_a_tuned_file_that_composes(tmp_path, capsys, compose_cfg):
    from tests.test_tune import FIXED

    study = tmp_path / "study"
    space = "{algo.lr: {type: float, low: 1.0e-4, high: 1.0e-2, log: true}, algo.hidden: [[32, 32], [64, 64]]}"
    assert tune.main([*FIXED, "algo.eps_end=0.1", "--space", space, "--seeds", "1", "--trials", "2",
                      "--study", str(study)]) == 0
    out = capsys.readouterr().out
    best = max(tune.open_study(study)[0].get_trials(), key=lambda t: t.value)
    path = study / "tuned_dqn_cartpole.yaml"
    text = path.read_text()
    assert text.startswith("# @package _global_\n# Tuned by scripts/tune.py, study ")
    header = " ".join(line[2:] for line in text.splitlines() if line.startswith("# "))
    assert str(study) in header and "last3" in header and "seeds 100" in header
    assert "Caution: seeds 100 chose these values" in header and "seed=0,1,2,3,4" in header
    body = yaml.safe_load(text)
    shipped = yaml.safe_load((ROOT / "rlbase" / "conf" / "tuned" / "dqn_cartpole.yaml").read_text())
    assert body["algo"]["lr"] == best.params["algo.lr"] and body["algo"]["hidden"] == json.loads(best.params["algo.hidden"])
    assert body["algo"]["eps_end"] == 0.1  # a fixed algo.* setting of the study
    assert body["algo"]["train_every"] == shipped["algo"]["train_every"]  # the pair's file the runs used
    assert "total_steps" not in body  # the study's budget is not the pair's
    assert f"The same values as a tuned file: {path}" in out
    assert f"cp {path} rlbase/conf/tuned/dqn_cartpole_study.yaml" in out
    assert "python train.py algo=dqn env=cartpole tuned=dqn_cartpole_study" in out
    assert "`tuned=` takes a file name in rlbase/conf/tuned/, not a path" in out
    # copied where tuned= looks, it composes and passes the tuned check with the study's values
    from rlbase.runtime.validate import validate_tuned

    conf = tmp_path / "conf"
    shutil.copytree(ROOT / "rlbase" / "conf", conf)
    shutil.copy(path, conf / "tuned" / "dqn_cartpole_study.yaml")
    cfg = compose_cfg("algo=dqn", "env=cartpole", "tuned=dqn_cartpole_study", config_dir=conf)
    assert cfg.algo.lr == best.params["algo.lr"] and cfg.algo.eps_end == 0.1
    validate_tuned({"algo": "dqn", "env": "cartpole", "tuned": "dqn_cartpole_study"}, conf / "tuned")
