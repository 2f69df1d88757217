"""End to end through train.py: W&B offline files, metrics.jsonl keys, determinism, resume, signals."""

import inspect
import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch
from omegaconf import OmegaConf

from rlbase.core import checkpoint
from tests.conftest import ROOT, eval_returns, read_rows, run_train

SHORT = ["total_steps=1500", "eval_every=500", "eval_episodes=2", "log_every=250"]


def test_wandb_offline_run_and_metrics_keys(tmp_path):
    run_dir = tmp_path / "run"
    run_train(*SHORT, "logger=wandb", "logger.mode=offline", run_dir=run_dir)
    runs = list((run_dir / "wandb").glob("offline-run-*"))
    assert len(runs) == 1, list((run_dir / "wandb").iterdir())
    assert list(runs[0].glob("run-*.wandb")), "no W&B offline log written"
    rows = read_rows(run_dir)
    keys = set().union(*rows)
    for key in ("step", "eval/return_mean", "eval/return_std", "train/episode_return", "loss/q", "time/sps",
                "time/updates_per_s"):
        assert key in keys, key
    steps = [r["step"] for r in rows]
    assert steps == sorted(steps)
    assert [s for s, _ in eval_returns(run_dir)] == [500, 1000, 1500]
    assert (run_dir / "done").exists() and (run_dir / "checkpoint.pt").exists()


def test_same_seed_same_returns(tmp_path):
    a = run_train(*SHORT, "seed=3", run_dir=tmp_path / "a")
    b = run_train(*SHORT, "seed=3", run_dir=tmp_path / "b")
    assert a.returncode == b.returncode == 0
    ra, rb = eval_returns(tmp_path / "a"), eval_returns(tmp_path / "b")
    assert ra == rb and len(ra) == 3
    c = run_train(*SHORT, "seed=4", run_dir=tmp_path / "c")
    assert c.returncode == 0
    train_a = [r["train/episode_return"] for r in read_rows(tmp_path / "a") if "train/episode_return" in r]
    train_c = [r["train/episode_return"] for r in read_rows(tmp_path / "c") if "train/episode_return" in r]
    assert train_a != train_c


def test_stop_return_ends_the_run_at_the_first_evaluation_that_reaches_it(tmp_path):
    run_dir = tmp_path / "run"
    # every CartPole episode lasts at least 8 steps: the first evaluation reaches 5
    proc = run_train(*SHORT, "stop_return=5", run_dir=run_dir)
    assert "reached stop_return=5 at step 500" in proc.stdout + proc.stderr
    assert [s for s, _ in eval_returns(run_dir)] == [500] and max(r["step"] for r in read_rows(run_dir)) == 500
    assert (run_dir / "done").exists() and checkpoint.load(run_dir)["step"] == 500
    assert run_train(*SHORT, run_dir=run_dir, check=False).returncode == 2  # finished: not resumed


def test_finished_run_dir_is_refused(tmp_path):
    run_dir = tmp_path / "run"
    run_train(*SHORT, run_dir=run_dir)
    before = (run_dir / "metrics.jsonl").read_bytes()
    proc = run_train(*SHORT, run_dir=run_dir, check=False)
    assert proc.returncode == 2 and "holds a finished run" in proc.stderr
    assert (run_dir / "metrics.jsonl").read_bytes() == before


def test_sigterm_checkpoints_then_resume_continues(tmp_path):
    run_dir = tmp_path / "run"
    cmd = [sys.executable, str(ROOT / "train.py"), "total_steps=40000", "eval_every=1000", "eval_episodes=1",
           "checkpoint_every=1000", "algo.hidden=[64,64]", "logger=none", "progress=false", f"hydra.run.dir={run_dir}"]
    proc = subprocess.Popen(cmd, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while not (run_dir / "checkpoint.pt").exists() and time.time() < deadline:
        time.sleep(0.2)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 128 + signal.SIGTERM, err
    assert "resume with" in out + err
    state_step = json.loads((run_dir / "metrics.jsonl").read_text().splitlines()[-1])["step"]
    assert not (run_dir / "done").exists()
    too_short = run_train(f"resume={run_dir}", "total_steps=10", run_dir=run_dir, check=False)
    assert too_short.returncode == 2 and "total_steps=10 is below the step of the checkpoint" in too_short.stderr
    # resume=<dir> reuses the run's own overrides; total_steps is lowered here to finish quickly
    resumed = run_train(f"resume={run_dir}", "total_steps=4000", run_dir=run_dir)
    assert "resumed from step" in resumed.stdout + resumed.stderr
    steps = [r["step"] for r in read_rows(run_dir)]
    assert steps == sorted(steps), "steps went backwards after resume"
    evals = [s for s, _ in eval_returns(run_dir)]
    assert len(evals) == len(set(evals)) and evals[-1] == 4000
    assert state_step <= 4000 and (run_dir / "done").exists()


@pytest.mark.parametrize("algo", ["td3", "sac", "ddpg"])
def test_smoke_continuous_on_hopper(tmp_path, algo):
    run_dir = tmp_path / algo
    # small networks: the smoke test is of the loop on a MuJoCo task (shapes, update count, evaluation), which the
    # defaults' 256- and 400-wide ones only made several times slower
    run_train(f"algo={algo}", "env=hopper", "total_steps=2000", "eval_every=1000", "eval_episodes=2",
              "algo.random_steps=500", "algo.learning_starts=500", "algo.buffer_size=5000",
              "algo.actor_hidden=[64,64]", "algo.critic_hidden=[64,64]", run_dir=run_dir)
    rows = read_rows(run_dir)
    assert max(r.get("train/updates", 0) for r in rows) == 2000 - 500 + 1  # from the 500th transition on
    assert any("loss/critic" in r for r in rows) and len(eval_returns(run_dir)) == 2


def test_evaluate_script_and_video(tmp_path):
    run_dir = tmp_path / "run"
    run_train("algo=td3", "env=inverted_double_pendulum", "total_steps=600", "eval_every=300", "eval_episodes=1", "algo.random_steps=200",
              "algo.learning_starts=200", "eval.video=true", "eval.video_every=1", run_dir=run_dir)
    videos = sorted((run_dir / "videos").iterdir())
    assert [v.stem for v in videos] == ["step300", "step600"] and videos[0].stat().st_size > 1000
    proc = subprocess.run([sys.executable, str(ROOT / "scripts/evaluate.py"), str(run_dir), "--episodes", "2",
                           "--video", str(tmp_path / "clip")], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "over 2 episodes" in proc.stdout and list(tmp_path.glob("clip.*"))


def test_sampled_evaluation_leaves_training_alone_and_the_script_repeats_both_kinds(tmp_path):
    """eval.sample=true changes what the evaluations report, never the training (their draws are on generators of
    their own); scripts/evaluate.py --seed run repeats a finished run's last evaluation, deterministic or sampled."""
    from rlbase.report import evaluate as evaluate_script

    args = ("algo=a2c", "env=pendulum", "total_steps=1600", "eval_every=800", "eval_episodes=2", "algo.num_envs=4")
    run_train(*args, run_dir=tmp_path / "det")
    run_train(*args, "eval.sample=true", run_dir=tmp_path / "smp")
    det, smp = read_rows(tmp_path / "det"), read_rows(tmp_path / "smp")
    losses = [[(k, v) for k, v in r.items() if k.startswith("loss/")] for r in det], \
        [[(k, v) for k, v in r.items() if k.startswith("loss/")] for r in smp]
    assert losses[0] == losses[1] and any(losses[0])
    assert eval_returns(tmp_path / "det") != eval_returns(tmp_path / "smp")  # the sampled policy is not its mean
    nets = [torch.load(tmp_path / d / "checkpoint.pt", weights_only=True)["agent"]["net"] for d in ("det", "smp")]
    assert nets[0].keys() == nets[1].keys() and all(torch.equal(nets[0][k], nets[1][k]) for k in nets[0])
    again = evaluate_script.main([str(tmp_path / "det"), str(tmp_path / "smp"), "--seed", "run", "--episodes", "2"])
    assert [r["sample"] for r in again] == [False, True]  # a run trained with eval.sample=true is re-evaluated so
    assert [r["eval/return_mean"] for r in again] == [eval_returns(tmp_path / "det")[-1][1], eval_returns(tmp_path / "smp")[-1][1]]
    out = tmp_path / "again.json"
    crossed = evaluate_script.main([str(tmp_path / "det"), "--seed", "run", "--episodes", "2", "--sample"])
    crossed += evaluate_script.main([str(tmp_path / "smp"), "--seed", "run", "--episodes", "2", "--no-sample",
                                     "--json", str(out)])
    assert [r["eval/return_mean"] for r in crossed] == [r["eval/return_mean"] for r in reversed(again)]  # same weights
    assert json.loads(out.read_text()) == crossed[1:]


def test_evaluate_reads_a_run_recorded_before_newer_settings_existed(tmp_path):
    """A run whose .hydra/config.yaml predates a setting (algo.activation, env.obs_clip) evaluates with that
    setting's default, which is what it trained with: --seed run repeats its last evaluation."""
    from rlbase.report import evaluate as evaluate_script

    run_dir = tmp_path / "old"
    run_train("algo=ppo", "env=pendulum", "total_steps=1024", "eval_every=512", "eval_episodes=2", "algo.num_envs=2",
              "algo.n_steps=256", "algo.n_epochs=1", run_dir=run_dir)
    path = run_dir / ".hydra" / "config.yaml"
    cfg = OmegaConf.load(path)
    del cfg.algo["activation"], cfg.env["obs_clip"]
    OmegaConf.save(cfg, path)
    again = evaluate_script.main([str(run_dir), "--seed", "run", "--episodes", "2"])
    assert again[0]["eval/return_mean"] == eval_returns(run_dir)[-1][1]

def test_sampled_evaluation_is_refused_for_deterministic_policies(compose_cfg):
    from rlbase.runtime.validate import ConfigError, validate

    with pytest.raises(ConfigError) as info:
        validate(compose_cfg("algo=td3", "env=pendulum", "eval.sample=true"))
    assert str(info.value) == ("eval.sample=true samples the policy's actions, but algo=td3 has no stochastic policy to "
                               "sample; allowed with: a2c, a3c, cql, iql, ppo, sac, sac_offline")
    from rlbase import algos
    from rlbase.runtime.validate import SAMPLED_POLICIES

    for name in SAMPLED_POLICIES:  # each name is an algorithm whose act() takes the flag
        assert "deterministic" in inspect.signature(algos.get(name).Agent.act).parameters, name


@pytest.mark.parametrize("env", ["cartpole", "pendulum"])
def test_smoke_a2c(tmp_path, env):
    run_dir = tmp_path / env
    run_train("algo=a2c", f"env={env}", "total_steps=4000", "eval_every=2000", "eval_episodes=2", "algo.num_envs=4",
              run_dir=run_dir)
    rows = read_rows(run_dir)
    assert [s for s, _ in eval_returns(run_dir)] == [2000, 4000]
    assert max(r.get("train/updates", 0) for r in rows) == 4000 // 20 and any("loss/policy" in r for r in rows)


def test_wandb_artifacts_by_config(tmp_path):
    """logger.artifacts=true logs the final checkpoint and the recorded dataset as artifacts of the offline run."""
    run_dir = tmp_path / "run"
    run_train(*SHORT, "logger=wandb", "logger.mode=offline", "logger.artifacts=true", "dataset.record=true",
              run_dir=run_dir, env={"WANDB_CACHE_DIR": str(tmp_path / "cache"), "WANDB_DATA_DIR": str(tmp_path / "data")},
              own_process=True)  # in-process, W&B's service could still be writing the records when read (seen once)
    log = next((run_dir / "wandb").glob("offline-run-*/run-*.wandb")).read_bytes()
    assert b"dqn-cartpole-seed0-checkpoint" in log and b"dqn-cartpole-seed0-dataset" in log


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM])
def test_wandb_history_of_a_killed_and_resumed_run_is_one_x_axis(tmp_path, sig):
    """Each segment of a resumed run is its own offline folder with the run's id; after `wandb sync` the server
    keeps a row only if its _step is above the highest so far. With _step = env step, the merged history has
    every evaluation once and an x-axis that never goes back."""
    from rlbase.core.logger import wandb_history

    run_dir = tmp_path / "run"
    args = ["algo=dqn", "env=cartpole", "total_steps=6000", "eval_every=1000", "eval_episodes=1", "algo.hidden=[64,64]",
            "checkpoint_every=1500", "logger=wandb", "logger.mode=offline", "progress=false", f"hydra.run.dir={run_dir}"]
    env = {**os.environ, "WANDB_DIR": str(tmp_path)}
    proc = subprocess.Popen([sys.executable, str(ROOT / "train.py"), *args], cwd=tmp_path, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    while time.time() < deadline and proc.poll() is None:
        rows = read_rows(run_dir) if (run_dir / "metrics.jsonl").exists() else []
        if (run_dir / "checkpoint.pt").exists() and rows and rows[-1]["step"] >= 2500:
            break
        time.sleep(0.05)
    proc.send_signal(sig)
    proc.wait(timeout=120)
    assert not (run_dir / "done").exists(), "the run finished before it could be stopped"
    if sig == signal.SIGKILL:  # what a kill can leave: the segment cut at its last whole 32 KiB block, or earlier
        (first,) = (run_dir / "wandb").glob("offline-run-*/run-*.wandb")
        size = first.stat().st_size
        with open(first, "r+b") as f:
            f.truncate(32768 if size > 40000 else size // 2)
    # The resume in a process of its own too: its exit is what guarantees W&B's writer has flushed the segment (an
    # in-process run's wandb-core may still be writing when the test reads, measured under pytest-xdist).
    resumed = subprocess.run([sys.executable, str(ROOT / "train.py"), *args], cwd=tmp_path, env=env, capture_output=True,
                             text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    segments = sorted((run_dir / "wandb").glob("offline-run-*/run-*.wandb"))
    assert len(segments) == 2 and len({p.name for p in segments}) == 1  # two segments, one run id
    kept, highest = [], -1
    for seg in segments:  # what the server keeps, segment after segment
        rows = wandb_history(seg)
        assert all(r["_step"] == r["step"] for r in rows)  # W&B's step is the env step
        for r in rows:
            if r["_step"] > highest:
                kept.append(r)
                highest = r["_step"]
    steps = [r["_step"] for r in kept]
    # every step metrics.jsonl has, once, in order: nothing the cut segment lost is missing from the dashboard
    assert steps == sorted({r["step"] for r in read_rows(run_dir)})
    assert [r["step"] for r in kept if "eval/return_mean" in r] == [1000, 2000, 3000, 4000, 5000, 6000]


def test_online_wandb_without_a_server_falls_back_to_offline_quickly(tmp_path):
    run_dir = tmp_path / "run"
    start = time.time()
    proc = run_train(*SHORT, "logger=wandb", "logger.mode=online", run_dir=run_dir,
                     env={"WANDB_API_KEY": "a" * 40, "WANDB_BASE_URL": "http://127.0.0.1:9"})  # nothing listens there
    out = proc.stdout + proc.stderr
    assert "W&B server unreachable (127.0.0.1:9" in out and "logging offline instead" in out
    assert json.loads((run_dir / "wandb_run.json").read_text())["mode"] == "offline"
    assert list(run_dir.glob("wandb/offline-run-*/run-*.wandb")) and (run_dir / "done").exists()
    assert time.time() - start < 120  # not W&B's 30 s init timeout and a crash


def test_wandb_history_reader_spans_blocks_and_survives_a_cut_file(tmp_path):
    from rlbase.core.logger import wandb_history

    script = ("import wandb\n"
              f"run = wandb.init(mode='offline', dir={str(tmp_path)!r}, project='t', settings=wandb.Settings(silent=True))\n"
              "for i in range(3000):\n"
              "    run.log({'step': i, 'x': i * 0.5}, step=i)\n"
              "run.finish()\n")
    subprocess.run([sys.executable, "-c", script], check=True, timeout=300, capture_output=True,
                   env={**os.environ, "WANDB_SILENT": "true"})
    path = next(tmp_path.glob("wandb/offline-run-*/run-*.wandb"))
    assert path.stat().st_size > 3 * 32768  # records cross block boundaries
    rows = wandb_history(path)
    assert [r["_step"] for r in rows] == list(range(3000)) and rows[-1]["x"] == 1499.5
    cut = tmp_path / "cut.wandb"
    cut.write_bytes(path.read_bytes()[:50_000])  # as a hard kill can leave it
    partial = wandb_history(cut)
    assert 0 < len(partial) < 3000 and [r["_step"] for r in partial] == list(range(len(partial)))


def test_smoke_ppo_mujoco_normalised_with_wandb_and_reevaluation(tmp_path):
    run_dir = tmp_path / "ppo"
    run_train("algo=ppo", "env=hopper", "total_steps=4096", "eval_every=2048", "eval_episodes=2", "algo.num_envs=4",
              "algo.n_epochs=1", "logger=wandb", "logger.mode=offline", run_dir=run_dir)
    rows = read_rows(run_dir)
    assert [s for s, _ in eval_returns(run_dir)] == [2048, 4096]
    assert max(r.get("train/updates", 0) for r in rows) == 4 * 32  # 4 rollouts of 1024, 32 minibatches, 1 epoch
    assert any("train/approx_kl" in r and "train/clip_fraction" in r for r in rows)
    assert list(run_dir.glob("wandb/offline-run-*/run-*.wandb"))
    state = torch.load(run_dir / "checkpoint.pt", weights_only=True)
    assert state["normalizer"]["obs"]["count"] > 4096 and state["obs_stats"] == state["normalizer"]["obs"]
    proc = subprocess.run([sys.executable, str(ROOT / "scripts/evaluate.py"), str(run_dir), "--episodes", "2"],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0 and "over 2 episodes" in proc.stdout, proc.stderr[-2000:]
