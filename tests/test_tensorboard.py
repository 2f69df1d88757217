"""TensorBoard logging (logger.tensorboard=true / logger=tensorboard), learning-rate logging, and a W&B run that
stays quiet when HOME cannot be written."""

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from rlbase.core import checkpoint
from rlbase.core import logger as logger_mod
from tests.conftest import ROOT, read_rows, run_train

needs_tensorboard = pytest.mark.skipif(not logger_mod.tensorboard_installed(),
                                       reason="tensorboard is not installed (requirements.txt installs it)")

# A2C on CartPole: 16 envs x 5 steps a rollout, cheap updates; lr_anneal takes the learning rate down to 0.
A2C = ["algo=a2c", "env=cartpole", "total_steps=1200", "log_every=400", "eval_every=400", "checkpoint_every=400",
       "eval_episodes=2", "algo.lr_anneal=true", "seed=3", "hardware.threads=1"]


def scalars(tb_dir: Path) -> dict[str, list[tuple[int, float]]]:
    """What TensorBoard shows: (step, value) of every scalar tag, purges applied (EventAccumulator reads the files
    in name order, as TensorBoard does)."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(tb_dir), size_guidance={"scalars": 0}).Reload()
    return {tag: [(e.step, e.value) for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}


def raw_steps(tb_dir: Path, tag: str) -> list[int]:
    """The steps of ``tag`` in the event files as written, no purge applied."""
    from tensorboard.backend.event_processing.event_file_loader import EventFileLoader

    return [e.step for f in sorted(tb_dir.glob("events.out.tfevents.*")) for e in EventFileLoader(str(f)).Load()
            if e.HasField("summary") and any(v.tag == tag for v in e.summary.value)]


def jsonl_scalars(run_dir: Path) -> dict[str, list[tuple[int, float]]]:
    out: dict[str, list[tuple[int, float]]] = {}
    for row in read_rows(run_dir):
        for k, v in row.items():
            if k != "step" and isinstance(v, (int, float)):
                out.setdefault(k, []).append((row["step"], float(v)))
    return out


def assert_same(tb: dict, rows: dict) -> None:
    assert sorted(tb) == sorted(rows)
    for tag, points in rows.items():
        assert [s for s, _ in tb[tag]] == [s for s, _ in points], tag  # every step once, in order
        assert [v for _, v in tb[tag]] == pytest.approx([v for _, v in points], rel=1e-6), tag  # float32 events


@needs_tensorboard
def test_tensorboard_holds_every_logged_scalar_at_its_env_step(tmp_path):
    run_dir = tmp_path / "run"
    run_train(*A2C, "logger=tensorboard", run_dir=run_dir)
    assert list((run_dir / "tb").glob("events.out.tfevents.*"))
    tb = scalars(run_dir / "tb")
    evals = [(r["step"], r["eval/return_mean"]) for r in read_rows(run_dir) if "eval/return_mean" in r]
    assert [s for s, _ in evals] == [400, 800, 1200]
    assert tb["eval/return_mean"] == evals  # whole returns: exact in float32
    assert_same(tb, jsonl_scalars(run_dir))  # train/, eval/, loss/, time/: all of them
    assert not (run_dir / "wandb").exists()  # logger=tensorboard: no W&B


@needs_tensorboard
@pytest.mark.parametrize("flushed", ["all", "part"])
def test_a_resumed_run_neither_repeats_nor_loses_tensorboard_steps(tmp_path, flushed):
    """A run stopped after its checkpoint at step 800 had logged up to 1200: the resume purges the steps after
    the checkpoint (``all``: else they would show twice), and rewrites the rows the killed writer had not flushed
    (``part``: its event file cut short, as SIGKILL leaves it)."""
    run_dir = tmp_path / "run"
    run_train(*A2C, "logger=tensorboard", run_dir=run_dir)
    straight = jsonl_scalars(run_dir)
    # As if killed at step 1200 before its last checkpoint: the one before it (step 800) is the newest.
    (run_dir / checkpoint.DONE).unlink()
    shutil.copy(run_dir / checkpoint.PREV, run_dir / checkpoint.NAME)
    assert checkpoint.load(run_dir)["step"] == 800
    (events,) = (run_dir / "tb").glob("events.out.tfevents.*")
    if flushed == "part":
        events.write_bytes(events.read_bytes()[: events.stat().st_size // 3])
        assert logger_mod.tensorboard_saved(run_dir / "tb")[0] < 800
    else:
        assert logger_mod.tensorboard_saved(run_dir / "tb")[0] == 1200

    proc = run_train(*A2C, "logger=tensorboard", run_dir=run_dir)
    assert "resumed from step 800" in proc.stdout + proc.stderr
    assert len(list((run_dir / "tb").glob("events.out.tfevents.*"))) == 2
    rows = jsonl_scalars(run_dir)
    assert rows["eval/return_mean"] == straight["eval/return_mean"]  # an exact resume: the same evaluations
    assert_same(scalars(run_dir / "tb"), rows)
    written = raw_steps(run_dir / "tb", "eval/return_mean")
    if flushed == "all":  # the files hold steps 800 and 1200 twice: the purge is what leaves one of each
        assert written == [400, 800, 1200, 800, 1200]
    else:  # what the cut file lacked was written again
        assert written[-2:] == [800, 1200] and 1200 not in written[:-2]


def test_learning_rate_is_logged_and_anneals(tmp_path):
    run_dir = tmp_path / "run"
    run_train(*A2C, run_dir=run_dir)
    lrs = [(r["step"], r["train/lr"]) for r in read_rows(run_dir) if "train/lr" in r]
    assert [s for s, _ in lrs] == [400, 800, 1200]  # with each log_every row
    values = [v for _, v in lrs]
    assert values == sorted(values, reverse=True) and len(set(values)) == len(values)  # decreasing
    assert 0 <= values[-1] < values[0] <= 7e-4  # A2C's default lr, annealed towards 0


def test_each_optimizer_is_found_by_its_attribute(compose_cfg):
    from omegaconf import OmegaConf

    from rlbase import algos, envs
    from rlbase.core import seeding
    from rlbase.loops.runner import learning_rates, optimizers

    def agent(*overrides):
        cfg = compose_cfg(*overrides)
        module = algos.get(cfg.algo.name)
        return module.Agent(OmegaConf.to_object(cfg.algo), envs.probe(cfg.env), "cpu", seeding.AgentRandom(0))

    sac = learning_rates(optimizers(agent("algo=sac", "env=pendulum", "algo.actor_lr=1e-4")))
    assert sac == pytest.approx({"train/lr_actor": 1e-4, "train/lr_critic": 3e-4, "train/lr_alpha": 3e-4})
    assert list(learning_rates(optimizers(agent("algo=dqn", "env=cartpole")))) == ["train/lr"]
    # A3C's workers step their own optimizers on the shared parameters: this process's rate is not theirs
    assert optimizers(agent("algo=a3c", "env=cartpole")) == {}


def test_sac_logs_its_learning_rates_and_alpha(tmp_path):
    run_dir = tmp_path / "run"
    run_train("algo=sac", "env=pendulum", "total_steps=400", "algo.random_steps=100", "algo.learning_starts=100",
              "log_every=200", "eval_every=400", "eval_episodes=1", "algo.batch_size=32", "hardware.threads=1",
              run_dir=run_dir)
    logged = [r for r in read_rows(run_dir) if "train/updates" in r]
    assert logged and all({"train/lr_actor", "train/lr_critic", "train/lr_alpha", "train/alpha"} <= set(r)
                          for r in logged)


def test_tensorboard_without_the_package_is_refused_in_one_line(tmp_path, monkeypatch):
    monkeypatch.setattr(logger_mod, "tensorboard_installed", lambda: False)
    proc = run_train("algo=a2c", "env=cartpole", "total_steps=400", "logger.tensorboard=true", run_dir=tmp_path / "run",
                     check=False)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "logger.tensorboard=true needs the tensorboard package" in lines[0]
    assert "pip install" in lines[0]
    assert not (tmp_path / "run" / "tb").exists()


def test_wandb_is_quiet_when_home_cannot_be_written(tmp_path):
    """W&B (offline, the default logger) with a HOME it cannot write: its service would log to the console where
    it cannot make ~/.cache/wandb/logs; the run points W&B's own directories into the run directory instead."""
    home = tmp_path / "home"
    home.mkdir()
    home.chmod(0o500)
    if os.access(home, os.W_OK):  # root writes through 0o500: a HOME below a plain file is unwritable for everyone
        (tmp_path / "file").write_text("")
        home = tmp_path / "file" / "home"
    run_dir = tmp_path / "run"
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("WANDB_", "XDG_")) or k == "WANDB_MODE"}  # the user's defaults: none of W&B's set
    env["HOME"] = str(home)
    try:
        proc = subprocess.run([sys.executable, str(ROOT / "train.py"), "algo=a2c", "env=cartpole", "total_steps=160",
                               "eval_every=160", "eval_episodes=1", "logger=wandb", "progress=false", "hardware.threads=1",
                               f"hydra.run.dir={run_dir}"], cwd=tmp_path, capture_output=True, text=True, timeout=300,
                              env=env)
    finally:
        if home.parent == tmp_path:
            home.chmod(0o700)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-3000:]
    service = [line for line in out.splitlines() if re.match(r"\d{4}/\d\d/\d\d \d\d:\d\d:\d\d ", line)]
    assert not service, "\n".join(service)  # W&B's service log (Go's log format) never reaches the console
    assert "wandb" not in proc.stderr.lower(), proc.stderr
    assert list(run_dir.glob("wandb/offline-run-*/run-*.wandb"))  # the W&B run was made
    assert list(run_dir.glob("wandb/cache/**/core-debug-*.log"))  # its service log is kept with the run
    if home.exists():
        assert not any(home.iterdir())
