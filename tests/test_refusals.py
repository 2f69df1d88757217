"""Refusals before any work (issue 36, items 5 and 6): one line naming what was wrong and what is allowed, the
right exit code, and nothing of a previous run touched. Bad datasets (NaN/inf), networks too large for memory,
envs whose constructor fails, another algorithm's checkpoint, a resume that changes the algorithm, and a joblib
worker killed mid-sweep."""

import logging
import os
import re
import signal

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.envs.classic_control.cartpole import CartPoleEnv
from omegaconf import OmegaConf

from rlbase import algos, data, envs
from tests.conftest import ROOT, _in_process, run_train

TEST_PATH = {"PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}  # for own-process runs


def errors(proc) -> list[str]:
    return [line for line in proc.stderr.splitlines() if line.startswith("error:")]


# ---- test envs (registered on import, so ``env.id=tests.test_refusals:<id>`` finds them in any process)


class NoRenderModeEnv(gym.Env):
    """A user env whose __init__ takes no render_mode (gymnasium passes one to every env)."""

    observation_space = gym.spaces.Box(-1.0, 1.0, (3,), np.float32)
    action_space = gym.spaces.Discrete(2)

    def __init__(self):
        pass


class BrokenConstructorEnv(gym.Env):
    observation_space = gym.spaces.Box(-1.0, 1.0, (3,), np.float32)
    action_space = gym.spaces.Discrete(2)

    def __init__(self, render_mode=None):
        raise RuntimeError("no simulator licence found")


class KillsItsWorkerCartPole(CartPoleEnv):
    """SIGKILLs its own process at its 50th step, but never the process that started the sweep (the test's)."""

    steps_in_process = 0

    def step(self, action):
        KillsItsWorkerCartPole.steps_in_process += 1
        spare = os.environ.get("RLBASE_TEST_SPARE_PID")
        if KillsItsWorkerCartPole.steps_in_process >= 50 and spare and int(spare) != os.getpid():
            os.kill(os.getpid(), signal.SIGKILL)
        return super().step(action)


for _id, _entry in (("NoRenderMode-v0", NoRenderModeEnv), ("BrokenConstructor-v0", BrokenConstructorEnv),
                    ("KillsItsWorkerCartPole-v0", KillsItsWorkerCartPole)):
    if _id not in gym.envs.registry:
        gym.register(_id, entry_point=_entry, max_episode_steps=500)


# ---- 1. datasets with NaN or inf


def pendulum_data(n=12):
    rng = np.random.default_rng(0)
    term, trunc = np.zeros(n, bool), np.zeros(n, bool)
    trunc[5] = trunc[-1] = True
    return [rng.normal(size=(n, 3)).astype(np.float32), rng.uniform(-2, 2, (n, 1)).astype(np.float32),
            -rng.uniform(0, 5, n).astype(np.float32), rng.normal(size=(n, 3)).astype(np.float32), term, trunc]


@pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning")  # the manifest's return statistics
def test_a_dataset_with_non_finite_values_is_refused_at_load_naming_the_array_count_and_rows(tmp_path):
    cols = pendulum_data()
    cols[0][3, 1] = np.nan
    cols[0][7, :] = np.nan  # one row, three values
    cols[2][9] = np.inf
    path = data.write(tmp_path / "nan", *cols, env_id="Pendulum-v1", source={}, discrete=False)
    with pytest.raises(data.DatasetError) as e:
        data.read(path)
    msg = str(e.value)
    assert "\n" not in msg and str(path) in msg
    assert "observations has 4 non-finite values (NaN) in rows 3, 7" in msg
    assert "rewards has 1 non-finite value (inf) in row 9" in msg and "actions" not in msg.split(";")[0]
    assert "allowed: finite values only" in msg

    run_dir = tmp_path / "run"
    proc = run_train("algo=bc", "env=pendulum", f"dataset.path={path}", "total_updates=50", run_dir=run_dir,
                     check=False)
    assert proc.returncode == 2 and errors(proc) == [f"error: {msg}"], proc.stderr[-2000:]
    assert "Traceback" not in proc.stdout + proc.stderr and not run_dir.exists()


# ---- 2. networks whose parameters would not fit in memory


def _built_sizes(agent) -> tuple[int, int]:
    """(parameters some optimizer of ``agent`` trains, all parameters of its networks), counted on the built agent."""
    import torch

    trained: dict[int, int] = {}
    every: dict[int, int] = {}
    for value in vars(agent).values():
        if isinstance(value, torch.optim.Optimizer):
            trained.update((id(p), p.numel()) for group in value.param_groups for p in group["params"])
        if isinstance(value, torch.nn.Module):
            every.update((id(p), p.numel()) for p in value.parameters())
    return sum(trained.values()), sum(every.values())


@pytest.mark.parametrize("name", sorted(algos.ALGOS))
def test_the_memory_check_counts_the_networks_each_algorithm_builds(name, compose_cfg):
    """``validate.network_sizes`` is a table written by hand from each algorithm's networks: counted against the
    agent the run would build (default settings, on CartPole for DQN and Pendulum otherwise, plus a discrete BCQ and
    PPO, one critic for TD3 (DDPG's default), a shared trunk for A2C), so a network change that the table does not follow
    fails here, not as a wrong refusal. The 5% bound holds for these small observations; the table's rough edges
    (every input and output layer as wide as the widest) weigh more on larger ones (PPO on Hopper: about +9%)."""
    import torch

    from rlbase.runtime import validate as v

    env = "cartpole" if name.startswith("dqn") else "pendulum"
    cases = [(env,)] + {"bcq": [("cartpole",)], "ppo": [("cartpole",)], "td3": [(env, "algo.twin=false")],
                        "a2c": [(env, "algo.shared_trunk=true")]}.get(name, [])
    for env, *extra in cases:
        cfg = compose_cfg(f"algo={name}", f"env={env}", *extra)
        module, spec = algos.get(name), envs.probe(cfg.env)
        trained, every = _built_sizes(module.Agent(OmegaConf.to_object(cfg.algo), spec, torch.device("cpu")))
        sizes = v.network_sizes(cfg.algo, module, spec)
        est_trained, est_targets = sum(t for _, t, _ in sizes), sum(g for _, _, g in sizes)
        assert trained > 0
        # rough only at the input and output layers (obs + action in, the widest head out): within 5%
        assert abs(est_trained - trained) <= 0.05 * trained, (env, est_trained, trained)
        assert abs(est_trained + est_targets - every) <= 0.05 * every, (env, est_trained + est_targets, every)



def test_networks_that_cannot_fit_in_memory_are_refused_before_anything_is_built(tmp_path, monkeypatch, compose_cfg):
    from rlbase.runtime import validate as v

    free = v.available_memory()
    assert free is None or free[0] > 0  # read from psutil or /proc/meminfo on Linux
    cfg = compose_cfg("algo=td3", "env=pendulum", "algo.actor_hidden=[4096,4096]", "algo.critic_hidden=[4096,4096]")
    params, need = v.estimate_bytes(cfg.algo, algos.get("td3"), envs.probe(cfg.env))
    one = (3 + 1) * 4096 + 4096 + 4096 * 4096 + 4096 + 4096 * 2 + 2  # in: obs + action; out: at most 2 * action
    assert params == 6 * one  # actor and twin critics, each with a target copy
    assert need == 4 * (3 * one * (1 + 1 + 2) + 3 * one)  # float32 parameters, gradients, Adam's moments; targets
    monkeypatch.setattr(v, "available_memory", lambda device="cpu": (256 << 20, "this machine has {} available"))
    with pytest.raises(v.ConfigError) as e:
        v.validate(cfg)
    assert str(e.value).startswith("algo.actor_hidden=[4096, 4096], algo.critic_hidden=[4096, 4096]: the networks of "
                                   f"algo=td3 on Pendulum-v1 would have about {6 * one / 1e6:,.1f} million parameters")
    assert "but this machine has 256 MiB available; allowed: smaller hidden sizes" in str(e.value)
    v.validate(compose_cfg("algo=td3", "env=pendulum"))  # the defaults fit in 256 MiB
    monkeypatch.setattr(v, "available_memory", lambda device="cpu": None)  # memory unknown: no check
    v.validate(cfg)
    monkeypatch.undo()

    # end to end, on this machine's real memory: 10^12 parameters fit nowhere
    run_dir = tmp_path / "run"
    proc = run_train("algo=dqn", "env=cartpole", "algo.hidden=[1000000,1000000]", "total_steps=100", run_dir=run_dir,
                     check=False)
    err = errors(proc)
    assert proc.returncode == 2 and len(err) == 1, proc.stderr[-2000:]
    assert err[0].startswith("error: algo.hidden=[1000000, 1000000]: the networks of algo=dqn on CartPole-v1 would "
                             "have about 2,000.0 billion parameters") and "allowed: smaller hidden sizes" in err[0]
    assert "Traceback" not in proc.stdout + proc.stderr and not run_dir.exists()


# ---- 3. a user env whose constructor fails


def test_an_env_whose_constructor_fails_is_one_line_with_its_id_and_error_and_leaves_no_run_dir(tmp_path, caplog):
    cases = {"NoRenderMode-v0": "its constructor does not take render_mode",
             "BrokenConstructor-v0": "building the env raised RuntimeError: no simulator licence found"}
    # the traceback is logged at DEBUG (hydra.verbose=rlbase.envs shows it); the run itself: one line, exit 2
    with caplog.at_level(logging.DEBUG, logger="rlbase.envs"), pytest.raises(envs.EnvError):
        envs.probe(envs.EnvConfig(name="broken", id="tests.test_refusals:BrokenConstructor-v0"))
    logged = [r for r in caplog.records if r.name == "rlbase.envs" and r.levelno == logging.DEBUG]
    assert logged and "Traceback" in logged[-1].getMessage() and "no simulator licence" in logged[-1].getMessage()
    (tmp_path / "keep").touch()  # a refused run removes the directories made for it, and empty parents with them
    for env_id, expected in cases.items():
        run_dir = tmp_path / env_id
        full_id = f"tests.test_refusals:{env_id}"
        proc = run_train("algo=dqn", "env=gym", f"env.id={full_id}", "total_steps=100", run_dir=run_dir, check=False,
                         env=TEST_PATH)
        err = errors(proc)
        assert proc.returncode == 2 and len(err) == 1, proc.stderr[-2000:]
        assert err[0].startswith(f"error: env.id={full_id}: {expected}") and "allowed: " in err[0], err[0]
        assert "Traceback" not in proc.stdout + proc.stderr and not run_dir.exists()


# ---- 4. a checkpoint of another algorithm


def test_evaluate_and_load_policy_refuse_another_algorithms_checkpoint_in_one_line(tmp_path, compose_cfg, capsys):
    import rlbase
    from rlbase.report import evaluate as evaluate_script

    run_dir = tmp_path / "dqn"
    run_train("algo=dqn", "env=cartpole", "algo.hidden=[16]", "total_steps=200", "eval_every=200", "eval_episodes=1",
              "algo.random_steps=100", "algo.learning_starts=100", "hardware.threads=1", run_dir=run_dir)
    # the run's config now names a2c (a DQN checkpoint in an A2C run's directory)
    config = run_dir / ".hydra" / "config.yaml"
    a2c = compose_cfg("algo=a2c", "env=cartpole")
    saved = OmegaConf.load(config)
    saved.algo = a2c.algo
    OmegaConf.save(saved, config)
    expected = (f"{run_dir / 'checkpoint.pt'} was written by algo=dqn on CartPole-v1, but the run's config {config} "
                "names algo=a2c")
    with pytest.raises(evaluate_script.WrongCheckpoint, match="^" + re.escape(expected)):
        rlbase.load_policy(run_dir)
    with pytest.raises(evaluate_script.WrongCheckpoint, match="written by algo=dqn"):
        rlbase.load_policy(run_dir, which="best")
    capsys.readouterr()
    with pytest.raises(SystemExit) as e:
        evaluate_script.main([str(run_dir), "--episodes", "1"])
    err = capsys.readouterr().err.strip().splitlines()
    assert e.value.code == 2 and len(err) == 1 and err[0].startswith(f"error: {expected}"), err
    assert "KeyError" not in err[0] and "Traceback" not in err[0]


# ---- 5. a resume that changes the algorithm


def _unfinished_dqn_run(run_dir):
    run_train("algo=dqn", "env=cartpole", "algo.hidden=[16]", "total_steps=200", "eval_every=200", "eval_episodes=1",
              "algo.random_steps=100", "algo.learning_starts=100", "hardware.threads=1", run_dir=run_dir)
    (run_dir / "done").unlink()  # as if it had stopped at its last checkpoint
    return run_dir


def test_a_resume_cannot_change_the_algorithm(tmp_path):
    from rlbase.runtime.validate import resume_algo_change

    run_dir = tmp_path / "run"
    (run_dir / ".hydra").mkdir(parents=True)
    (run_dir / ".hydra" / "config.yaml").write_text("algo: {name: dqn}\nenv: {id: CartPole-v1}\n")
    (run_dir / ".hydra" / "overrides.yaml").write_text("- algo.random_steps=64\n")
    assert resume_algo_change(run_dir, ["algo=a2c", "total_steps=500"]) == (
        f"resume={run_dir}: a resume cannot change the algorithm (the run was trained with algo=dqn, not algo=a2c); "
        "resume it without algo=, or start a new run with algo=a2c (without resume=)")
    assert resume_algo_change(run_dir, ["algo.name=a2c"]) is not None
    assert resume_algo_change(run_dir, ["algo=dqn", "total_steps=500"]) is None  # the same algorithm
    assert resume_algo_change(run_dir, ["total_steps=500"]) is None  # none given
    (run_dir / ".hydra" / "config.yaml").unlink()  # no recorded config: the recorded overrides' algo=, if any
    (run_dir / ".hydra" / "overrides.yaml").write_text("- algo=ppo\n- env=pendulum\n")
    assert "trained with algo=ppo, not algo=sac" in resume_algo_change(run_dir, ["algo=sac"])
    assert resume_algo_change(tmp_path / "nothing", ["algo=sac"]) is None  # no run there: expand_resume says so


def test_a_resume_with_another_algorithm_is_refused_by_the_command_line(tmp_path):
    run_dir = _unfinished_dqn_run(tmp_path / "dqn")
    before = {p.name: p.read_bytes() for p in run_dir.rglob("*") if p.is_file()}
    proc = run_train(f"resume={run_dir}", "algo=a2c", run_dir=tmp_path / "unused", check=False)
    err = errors(proc)
    assert proc.returncode == 2 and len(err) == 1, proc.stderr[-2000:]
    assert "a resume cannot change the algorithm (the run was trained with algo=dqn, not algo=a2c)" in err[0]
    assert "random_steps" not in err[0]
    assert {p.name: p.read_bytes() for p in run_dir.rglob("*") if p.is_file()} == before


# ---- 6. a joblib worker killed mid-sweep


def test_a_killed_joblib_worker_is_one_line_and_the_summary_lists_every_unfinished_job(tmp_path):
    """Three jobs on two joblib workers; the first job's env SIGKILLs its worker. joblib then stops the whole pool:
    one error line (no traceback), and the summary names each job that did not finish, the ones that never
    started included; exit code 1, and a rerun of the command would run them."""
    sweep_dir = tmp_path / "sweep"
    argv = ["-m", "env=gym", "env.id=tests.test_refusals:KillsItsWorkerCartPole-v0,CartPole-v1,Acrobot-v1",
            "hydra/launcher=joblib", "hydra.launcher.n_jobs=2", "logger=none", "progress=false", "total_steps=5000",
            "eval_every=5000", "eval_episodes=1", "hardware.threads=1", f"hydra.sweep.dir={sweep_dir}"]
    proc = _in_process(argv, tmp_path, {**TEST_PATH, "RLBASE_TEST_SPARE_PID": str(os.getpid())})
    out = proc.stdout + proc.stderr
    assert proc.returncode == 1, out[-3000:]
    assert "Traceback" not in out and "TerminatedWorkerError" not in out, out[-3000:]
    died = [line for line in out.splitlines() if "joblib worker process" in line]
    assert len(died) == 1 and "SIGKILL" in died[0], out[-3000:]
    assert "0 jobs finished, 3 failed or unfinished" in out, out[-3000:]
    listed = [line for line in out.splitlines() if "  failed: " in line or "  not started" in line]
    assert len(listed) == 3, out[-3000:]
    for env_id in ("KillsItsWorkerCartPole-v0", "env.id=CartPole-v1", "env.id=Acrobot-v1"):
        assert sum(env_id in line for line in listed) == 1, (env_id, listed)
    assert any("not started" in line and "Acrobot-v1" in line for line in listed)  # the third never had a worker


def test_a_joblib_pool_broken_before_its_jobs_ran_lists_every_job_as_not_started(tmp_path, monkeypatch):
    """The same without worker processes (a second, not tens of them): joblib's Parallel fails as it does when a
    worker was SIGKILLed, before any job got a run directory."""
    from hydra_plugins.hydra_joblib_launcher import _core
    from joblib.externals.loky.process_executor import TerminatedWorkerError

    class BrokenPool:
        def __init__(self, **kwargs):
            pass

        def __call__(self, tasks):
            raise TerminatedWorkerError("A worker process managed by the executor was unexpectedly terminated.\n\n"
                                        "The exit codes of the workers are {SIGKILL(-9)}")

    monkeypatch.setattr(_core, "Parallel", BrokenPool)
    sweep_dir = tmp_path / "sweep"
    argv = ["-m", "seed=0,1,2", "hydra/launcher=joblib", "hydra.launcher.n_jobs=2", "logger=none", "progress=false",
            "total_steps=200", f"hydra.sweep.dir={sweep_dir}"]
    proc = _in_process(argv, tmp_path, {})
    out = proc.stdout + proc.stderr
    assert proc.returncode == 1 and "Traceback" not in out, out[-3000:]
    died = [line for line in out.splitlines() if "joblib worker process" in line]
    assert len(died) == 1 and "ended with SIGKILL(-9)" in died[0], out[-3000:]
    assert "0 jobs finished, 3 failed or unfinished (3 of them never started)" in out, out[-3000:]
    assert [line.split("not started: ")[1].split()[0] for line in out.splitlines() if "not started: " in line] == \
        ["seed=0", "seed=1", "seed=2"]
    assert not hasattr(_core.launch, "_rlbase_original")  # joblib's own launch is back once the sweep is over
