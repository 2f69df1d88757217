"""``rlbase.run`` makes the run the command line makes: same recorded config and overrides (fitted starts
included), same evaluations at a fixed seed, a directory the report and evaluation scripts accept; bad input is an
exception, never an exit, and leaves nothing behind."""

import json

import pytest

import rlbase
from rlbase.runtime.validate import ConfigError
from tests.conftest import run_train

# 64-wide networks: the test compares the two ways of running, not learning (the default 256-wide ones cost 12 s
# more of the suite for the same comparison)
SHORT = ["algo=td3", "env=pendulum", "total_steps=1200", "eval_every=600", "eval_episodes=2", "logger=none",
         "progress=false", "seed=3", "algo.actor_hidden=[64,64]", "algo.critic_hidden=[64,64]"]


def evals(run_dir):
    return [(r["step"], r["eval/return_mean"]) for r in map(json.loads, (run_dir / "metrics.jsonl").read_text().splitlines())
            if "eval/return_mean" in r]


def test_run_from_python_equals_the_command_line(tmp_path):
    r = rlbase.run(SHORT, run_dir=tmp_path / "api")
    run_train(*SHORT, run_dir=tmp_path / "cli")
    assert r.run_dir == tmp_path / "api" and r.checkpoint.exists() and r.steps == 1200
    # the budget fitting the command line applies: TD3's 25k starts do not fit 1200 steps
    assert r.config.algo.random_steps == r.config.algo.learning_starts == 256
    assert (tmp_path / "api/.hydra/config.yaml").read_text() == (tmp_path / "cli/.hydra/config.yaml").read_text()

    def recorded(d):  # the test harness passes progress=false its own way
        return [o for o in (tmp_path / d / ".hydra/overrides.yaml").read_text().splitlines() if "progress" not in o]
    assert recorded("api") == recorded("cli")
    assert evals(tmp_path / "api") == evals(tmp_path / "cli") and len(evals(tmp_path / "api")) == 2
    assert r.final_return == evals(tmp_path / "api")[-1][1]
    assert r.best_return == max(v for _, v in evals(tmp_path / "api"))
    from rlbase.report.evaluate import evaluate_run  # the evaluation script accepts the run
    again = evaluate_run(r.run_dir, episodes=2, seed="run", sample=None)
    assert again["eval/return_mean"] == pytest.approx(r.final_return)


def test_bad_input_is_an_exception_and_leaves_nothing(tmp_path):
    with pytest.raises(ConfigError, match="needs discrete actions"):
        rlbase.run(["algo=dqn", "env=pendulum", "logger=none"], run_dir=tmp_path / "x")
    assert not (tmp_path / "x").exists()
    with pytest.raises(ConfigError, match="nope"):
        rlbase.run(["algo.nope=1"], run_dir=tmp_path / "y")
    with pytest.raises(TypeError, match="list of key=value"):
        rlbase.run("algo=td3")


def test_a_run_records_what_made_it_and_logs_progress_without_the_bar(tmp_path, monkeypatch):
    from rlbase.loops import runner

    monkeypatch.setattr(runner, "PROGRESS_EVERY", 0.0)  # a line at every log_every instead of every 5 minutes
    r = rlbase.run(["algo=dqn", "env=cartpole", "total_steps=2000", "eval_every=1000", "eval_episodes=1",
                    "logger=none", "progress=false"], run_dir=tmp_path / "r")
    prov = json.loads((r.run_dir / "provenance.json").read_text())
    assert len(prov["git"]["commit"]) == 40 and isinstance(prov["git"]["dirty"], bool)
    assert prov["packages"]["torch"].startswith("2.") and prov["machine"]["cores"] >= 1
    lines = (r.run_dir / "train.log").read_text()
    assert "step 1000/2000 (50%)" in lines and "step 2000/2000 (100%)" in lines and "last eval" in lines
