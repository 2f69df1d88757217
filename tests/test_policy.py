"""rlbase.load_policy: a run's policy acts on a plain gymnasium env's raw observations as the run's evaluation did
(observation normalisation and clipping, action scaling), one observation or a batch, and exports to TorchScript.
Each run trains a few hundred steps in this process; all runs are shared by the module's tests."""

import json
import shutil

import gymnasium as gym
import numpy as np
import pytest
import torch
from omegaconf import OmegaConf

import rlbase
from rlbase import envs
from rlbase.core import seeding
from rlbase.core.agent import act_env
from rlbase.core.evaluate import evaluate
from rlbase.loops.runner import BEST_POLICY
from rlbase.policy import Policy, load_policy
from rlbase.report import evaluate as report_evaluate
from tests.conftest import every_agent, read_rows, run_train

SHORT = ("eval_episodes=2", "seed=1", "hardware.threads=1")  # one thread: seconds, not minutes, on a busy machine
SMALL = ("algo.actor_hidden=[64,64]", "algo.critic_hidden=[64,64]", "algo.batch_size=32", "total_steps=400",
         "eval_every=200", "algo.random_steps=300", "algo.learning_starts=300")
RUNS = {
    # on-policy with observation normalisation and clipping (VecNormalize's statistics, saved in the checkpoint)
    "ppo": ("algo=ppo", "env=pendulum", "env.normalize_obs=true", "env.obs_clip=1", "algo.num_envs=2", "algo.n_steps=64",
            "algo.n_epochs=2", "algo.n_minibatches=2", "algo.hidden=[32,32]", "total_steps=512", "eval_every=256"),
    "sac": ("algo=sac", "env=pendulum", *SMALL),
    # off-policy with observation normalisation (the training env's NormalizeObservation statistics)
    "td3": ("algo=td3", "env=pendulum", "env.normalize_obs=true", *SMALL),
    "dqn": ("algo=dqn", "env=cartpole", "algo.hidden=[64,64]", "algo.gradient_steps=16", "total_steps=600",
            "eval_every=300", "algo.random_steps=200", "algo.learning_starts=200"),
}


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("policy_runs")
    out = {}
    for name, args in RUNS.items():
        run_train(*args, *SHORT, run_dir=root / name)
        out[name] = root / name
    return out


# How closely a rollout repeats the run's logged evaluation. Bit for bit, but for an off-policy run with normalised
# float32 observations (Pendulum): during training gymnasium's NormalizeObservation keeps float32 statistics and
# normalises in float32; the saved statistics are read back as float64 (as scripts/evaluate.py reads them too).
REL = {"td3": 1e-6}


def eval_rows(run_dir):
    return [r for r in read_rows(run_dir) if "eval/return_mean" in r]


def rollout(policy: Policy, episodes: int, seed: int, **act) -> float:
    """The mean return of ``policy`` on a plain ``gymnasium.make`` env, on the episodes of run seed ``seed``'s
    evaluations (as rlbase.core.evaluate runs them)."""
    env = gym.make(policy.env_id)
    returns = []
    for i in range(episodes):
        obs, _ = env.reset(seed=seeding.stream(seed, "eval_episode", i))
        done, ret = False, 0.0
        while not done:
            obs, reward, terminated, truncated, _ = env.step(policy(obs, **act))
            ret += float(reward)
            done = terminated or truncated
        returns.append(ret)
    env.close()
    return float(np.asarray(returns).mean())


def observations(env_id: str, n: int = 16) -> np.ndarray:
    env = gym.make(env_id)
    env.observation_space.seed(0)
    obs = np.stack([env.observation_space.sample() if not np.isinf(env.observation_space.high).any()
                    else env.reset(seed=i)[0] for i in range(n)])
    env.close()
    return obs.astype(np.float64) * 1.5  # beyond the usual range too: the clipping of normalised observations acts


@pytest.mark.parametrize("name", list(RUNS))
def test_last_policy_on_a_plain_env_repeats_the_runs_last_evaluation(runs, name):
    policy = rlbase.load_policy(runs[name], which="last")
    last = eval_rows(runs[name])[-1]
    assert (policy.algo, policy.which, policy.step, policy.eval_return) == (name, "last", last["step"],
                                                                           last["eval/return_mean"])
    cfg = policy.config
    assert policy.env_id == cfg.env.id and (cfg.env.normalize_obs is (name in ("ppo", "td3")))
    assert rollout(policy, cfg.eval_episodes, cfg.seed) == pytest.approx(last["eval/return_mean"], rel=REL.get(name, 0))


@pytest.mark.parametrize("name", list(RUNS))
def test_best_policy_is_kept_and_repeats_its_evaluation(runs, name):
    rows = eval_rows(runs[name])
    assert (runs[name] / BEST_POLICY).exists() and not (runs[name] / (BEST_POLICY + ".tmp")).exists()
    best = max(rows, key=lambda r: r["eval/return_mean"])  # the first of equal maxima: only a new best is written
    policy = load_policy(runs[name], which="best")
    assert (policy.which, policy.step, policy.eval_return) == ("best", best["step"], best["eval/return_mean"])
    cfg = policy.config
    assert rollout(policy, cfg.eval_episodes, cfg.seed) == pytest.approx(best["eval/return_mean"], rel=REL.get(name, 0))
    state = torch.load(runs[name] / BEST_POLICY, weights_only=True)
    assert not any(isinstance(v, dict) and "param_groups" in v for v in state["agent"].values())  # no optimizer


@pytest.mark.parametrize("name", list(RUNS))
def test_batch_single_numpy_torch_and_export_agree(runs, name, tmp_path):
    policy = load_policy(runs[name])
    obs = observations(policy.env_id)
    batch = policy(obs)
    single = [policy.act(o) for o in obs]
    discrete = policy.spec.discrete
    assert batch.shape == ((len(obs),) if discrete else (len(obs), *policy.spec.action_shape))
    assert batch.dtype == (np.int64 if discrete else np.float32)
    assert all(isinstance(a, int) for a in single) if discrete else all(a.dtype == np.float32 for a in single)
    np.testing.assert_allclose(np.stack(single), batch, rtol=0, atol=1e-6)
    t = policy(torch.as_tensor(obs))
    assert torch.is_tensor(t) and np.array_equal(t.numpy(), batch)
    assert torch.is_tensor(policy(torch.as_tensor(obs[0]))) and policy(torch.as_tensor(obs[0])).shape == batch[0].shape
    path = policy.export(tmp_path / "policy.pt")
    extra = {"rlbase.json": ""}
    module = torch.jit.load(str(path), _extra_files=extra)
    np.testing.assert_allclose(module(torch.as_tensor(obs)).numpy(), batch, rtol=0, atol=1e-6)
    np.testing.assert_allclose(module(torch.as_tensor(obs[0], dtype=torch.float32)).numpy(), batch[0], rtol=0, atol=1e-6)
    meta = json.loads(extra["rlbase.json"])
    assert (meta["env_id"], meta["algo"], meta["step"]) == (policy.env_id, name, policy.step)


@pytest.mark.parametrize("name", ["ppo", "sac"])
def test_sampled_actions_are_the_runs_sampled_evaluation(runs, name):
    """deterministic=False draws what the agent draws on the run's env: a sampled rollout on a plain env equals the
    sampled evaluation (rlbase.core.evaluate, eval.sample) on the run's evaluation env with the same generator."""
    policy = load_policy(runs[name])
    cfg = policy.config
    env, _ = envs.make(cfg.env, seeding.stream(cfg.seed, "eval_env"), train=False)
    envs.load_obs_stats(env, policy.obs_stats)
    ref = evaluate(policy.agent, env, 2, cfg.seed, sample=True, generator=seeding.generator(cfg.seed, "eval_rng"))
    env.close()
    got = rollout(policy, 2, cfg.seed, deterministic=False, generator=seeding.generator(cfg.seed, "eval_rng"))
    assert got == ref["eval/return_mean"]
    obs = observations(policy.env_id, 4)
    a, b = policy(obs, deterministic=False, seed=7), policy(obs, deterministic=False, seed=7)
    assert np.array_equal(a, b) and not np.array_equal(a, policy(obs, deterministic=False, seed=8))
    with pytest.raises(ValueError, match="generator or a seed"):
        policy(obs, deterministic=False, seed=1, generator=torch.Generator())


@pytest.mark.parametrize("name", ["td3", "dqn"])
def test_deterministic_policies_refuse_sampling(runs, name):
    policy = load_policy(runs[name])
    with pytest.raises(ValueError, match=f"algo={name} has a deterministic policy.*allowed for: .*sac"):
        policy(observations(policy.env_id, 1)[0], deterministic=False)


def test_best_policy_file_alone_is_enough(runs, tmp_path):
    """best_policy.pt holds its run's config: copied without the rest of the run directory, it still loads."""
    shutil.copy(runs["sac"] / BEST_POLICY, tmp_path / BEST_POLICY)
    alone, full = load_policy(tmp_path, which="best"), load_policy(runs["sac"], which="best")
    assert (alone.step, alone.eval_return, alone.env_id) == (full.step, full.eval_return, full.env_id)
    obs = observations(alone.env_id)
    assert np.array_equal(alone(obs), full(obs))


def test_bad_arguments_are_one_line_errors(runs, tmp_path):
    with pytest.raises(ValueError, match="which='worst'.*allowed: last, best"):
        load_policy(runs["sac"], which="worst")
    with pytest.raises(FileNotFoundError, match="run directory .* not found"):
        load_policy(tmp_path / "nope")
    with pytest.raises(FileNotFoundError, match="no checkpoint in"):
        load_policy(tmp_path)
    policy = load_policy(runs["sac"])
    with pytest.raises(ValueError, match=r"shape \(5,\) do not fit Pendulum-v1; allowed: .*\(3,\).*\(B, 3\)"):
        policy(np.zeros(5))


def test_every_algorithm_acts_as_its_agent_and_exports(tmp_path):
    """For every registered algorithm (untrained weights, random normalisation statistics): the policy's action on a
    raw observation is the agent's deterministic action on the evaluation env's normalised, clipped observation,
    bit for bit; the exported TorchScript module gives the same actions (continuous BCQ, whose action draws random
    candidates, acts through the agent and refuses export)."""
    specs = {kind: envs.probe(OmegaConf.structured(envs.EnvConfig(name=kind, id=env_id)))
             for kind, env_id in (("continuous", "Pendulum-v1"), ("discrete", "CartPole-v1"))}
    rng = np.random.default_rng(0)
    for name, kind, spec, agent in every_agent(specs, 1):
        n = spec.obs_dim
        stats = {"mean": rng.normal(size=n).tolist(), "var": rng.uniform(0.1, 3.0, n).tolist(), "count": 10.0}
        cfg = OmegaConf.create({"algo": {"name": name}, "seed": 0,
                                "env": {"id": spec.id, "normalize_obs": True, "obs_clip": 1.5}})
        policy = Policy(agent, spec, cfg, stats)
        obs = rng.normal(size=(6, n)) * 3.0
        seen = np.clip(np.float32((obs - np.asarray(stats["mean"])) / np.sqrt(np.asarray(stats["var"]) + 1e-8)),
                       -1.5, 1.5)  # what NormalizeObservation + the obs_clip wrapper give the agent
        expected = [act_env(agent, o, deterministic=True, generator=torch.Generator().manual_seed(0)) for o in seen]
        got = [policy(o, generator=torch.Generator().manual_seed(0)) for o in obs]
        for e, g in zip(expected, got):
            assert type(e) is type(g) and np.array_equal(e, g), (name, kind)
        if policy.acting is None:
            assert name == "bcq" and kind == "continuous"
            with pytest.raises(ValueError, match="random candidates"):
                policy.export(tmp_path / "x.pt")
            continue
        exported = torch.jit.load(str(policy.export(tmp_path / f"{name}_{kind}.pt")))
        np.testing.assert_allclose(exported(torch.as_tensor(obs)).numpy(), policy(obs), rtol=0, atol=1e-6)


def test_failed_best_policy_write_warns_once_and_the_run_goes_on(tmp_path):
    run_dir = tmp_path / "r"
    (run_dir / (BEST_POLICY + ".tmp")).mkdir(parents=True)  # opening it for writing fails: a disk that refuses
    proc = run_train("algo=dqn", "env=cartpole", "total_steps=300", "eval_every=100", "eval_episodes=1",
                     "algo.random_steps=100", "algo.learning_starts=100", run_dir=run_dir)
    assert (run_dir / "done").exists() and not (run_dir / BEST_POLICY).exists()
    assert (proc.stdout + proc.stderr).count(f"could not write {run_dir / BEST_POLICY}") == 1
    with pytest.raises(FileNotFoundError, match="best_policy.pt not found.*which='last'"):
        load_policy(run_dir, which="best")
    assert load_policy(run_dir, which="last").step == 300


def test_evaluate_script_which_best(runs, capsys):
    best = max(eval_rows(runs["ppo"]), key=lambda r: r["eval/return_mean"])
    results = report_evaluate.main([str(runs["ppo"]), str(runs["ppo"]), "--which", "best", "--seed", "run",
                                    "--episodes", "2"])
    out = capsys.readouterr().out
    assert [r["eval/return_mean"] for r in results] == [best["eval/return_mean"]] * 2
    assert f"best checkpoint (step {best['step']})" in out
    assert "over 2 runs (best checkpoints): mean" in out and "IQM" in out
