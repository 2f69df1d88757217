"""PPO: the clipped objective on hand-made numbers, advantage standardisation, one update phase end to end, and
the vector normaliser (shared statistics, the final observation, exact state round trip, frozen at evaluation)."""

import gymnasium as gym
import numpy as np
import pytest
import torch

from rlbase import envs
from rlbase.algos.ppo import PPO, PPOConfig, clipped_surrogate, standardise
from rlbase.core.rollout import RolloutStorage
from rlbase.envs import EnvConfig
from rlbase.loops.on_policy import collect_rollout


def test_clipped_objective_gradient_is_zero_outside_the_trust_region_and_plain_inside():
    eps = 0.2
    old = torch.zeros(4)
    # ratios e^x: 1.5 and 0.5 lie outside 1 +- 0.2, 1.1 and 0.9 inside
    new = torch.log(torch.tensor([1.5, 0.5, 1.1, 0.9])).requires_grad_(True)
    adv = torch.tensor([1.0, -1.0, 1.0, -1.0])  # each sample's advantage pushes its ratio further out
    loss, _, clipped = clipped_surrogate(new, old, adv, eps)
    loss.backward()
    ratio = new.detach().exp()
    # clipped samples: no gradient; the others: d(-A r / N)/d log pi = -A r / N
    assert new.grad[0] == 0 and new.grad[1] == 0
    assert torch.allclose(new.grad[2:], -adv[2:] * ratio[2:] / 4)
    assert clipped.item() == 0.5
    # an advantage pulling the ratio back inside keeps the gradient even outside the range (the min picks it)
    new2 = torch.log(torch.tensor([1.5, 0.5])).requires_grad_(True)
    adv2 = torch.tensor([-1.0, 1.0])
    clipped_surrogate(new2, torch.zeros(2), adv2, eps)[0].backward()
    assert torch.allclose(new2.grad, -adv2 * torch.tensor([1.5, 0.5]) / 2)


def test_surrogate_value_and_kl_at_ratio_one():
    logp = torch.zeros(3)
    adv = torch.tensor([1.0, 2.0, 3.0])
    loss, kl, clipped = clipped_surrogate(logp, logp, adv, 0.2)
    assert loss.item() == pytest.approx(-2.0) and kl.item() == 0.0 and clipped.item() == 0.0


def test_advantage_standardisation():
    x = torch.tensor([1.0, 2.0, 3.0, 10.0])
    z = standardise(x)
    assert z.mean().abs() < 1e-6 and (z.std() - 1).abs() < 1e-4
    assert standardise(torch.tensor([5.0])).item() == 0.0  # one sample: centred, never divided by a zero std


@pytest.mark.parametrize("env_id", ["CartPole-v1", "Pendulum-v1"])
def test_update_phase_runs_every_minibatch_and_changes_the_policy(env_id):
    cfg = EnvConfig(name="x", id=env_id, normalize_obs=True, normalize_reward=True)
    venv, spec = envs.make_vector(cfg, seed=0, num_envs=4, gamma=0.99)
    torch.manual_seed(0)
    c = PPOConfig(num_envs=4, n_steps=16, n_epochs=3, n_minibatches=4)
    agent = PPO(c, spec, torch.device("cpu"))
    storage = RolloutStorage(c.n_steps, 4, spec.obs_shape, spec.action_shape, spec.discrete, torch.device("cpu"))
    obs, _ = venv.reset(seed=0)
    before = [p.clone() for p in agent.net.parameters()]
    obs = collect_rollout(agent, venv, storage, obs, c.gamma, lambda *a: None)
    metrics = agent.update(storage.batch(agent.value(obs), c.gamma, c.gae_lambda))
    assert metrics["updates"] == 12 and metrics["train/epochs"] == 3
    assert all(np.isfinite(v) for v in metrics.values())
    assert any(not torch.equal(b, p) for b, p in zip(before, agent.net.parameters()))
    venv.close()


@pytest.mark.parametrize("env_id", ["Pendulum-v1", "CartPole-v1"])  # CartPole: episodes end inside the rollout
def test_recompute_advantage_uses_the_current_critic_before_each_later_epoch(env_id):
    import copy

    from rlbase.core.rollout import compute_returns

    cfg = EnvConfig(name="x", id=env_id)
    venv, spec = envs.make_vector(cfg, seed=0, num_envs=2)
    torch.manual_seed(0)
    c = PPOConfig(num_envs=2, n_steps=48, n_epochs=3, n_minibatches=2, lr=1e-2, gae_lambda=0.9,
                  recompute_advantage=True)
    agent = PPO(c, spec, torch.device("cpu"))
    storage = RolloutStorage(c.n_steps, 2, spec.obs_shape, spec.action_shape, spec.discrete, torch.device("cpu"))
    obs = collect_rollout(agent, venv, storage, venv.reset(seed=0)[0], c.gamma, lambda *a: None)
    batch = storage.batch(agent.value(obs), c.gamma, c.gae_lambda, last_obs=obs)
    assert (batch.dones.sum() > 0) == (env_id == "CartPole-v1")
    with pytest.raises(ValueError, match="last observations"):
        agent.recompute(batch._replace(last_obs=None))
    seen = []  # (batch each epoch trained on, the critic it started from)
    losses = agent._losses

    def spy(b, idx):
        if not seen or seen[-1][0] is not b:
            seen.append((b, copy.deepcopy(agent.net)))
        return losses(b, idx)

    agent._losses = spy
    agent.update(batch)
    assert len(seen) == 3 and seen[0][0] is batch
    for b, net in seen[1:]:
        with torch.no_grad():
            want_ret, want_adv = compute_returns(batch.rewards, net.value(batch.obs).view(c.n_steps, 2), batch.dones,
                                                 net.value(batch.last_obs), c.gamma, c.gae_lambda)
        assert torch.allclose(b.advantages, want_adv.reshape(-1)) and torch.allclose(b.returns, want_ret.reshape(-1))
        assert not torch.allclose(b.advantages, batch.advantages)  # the critic moved: new advantages
        assert torch.equal(b.log_probs, batch.log_probs) and torch.equal(b.values, batch.values)
    venv.close()


def test_recompute_advantage_keeps_the_return_norm_units():
    from rlbase.core.rollout import compute_returns

    venv, spec = envs.make_vector(EnvConfig(name="x", id="Pendulum-v1"), seed=0, num_envs=2)
    torch.manual_seed(0)
    c = PPOConfig(num_envs=2, n_steps=8, recompute_advantage=True, return_norm=True)
    agent = PPO(c, spec, torch.device("cpu"))
    storage = RolloutStorage(8, 2, spec.obs_shape, spec.action_shape, False, torch.device("cpu"))
    obs = collect_rollout(agent, venv, storage, venv.reset(seed=0)[0], c.gamma, lambda *a: None, value_scale=5.0)
    batch = storage.batch(agent.value(obs), c.gamma, c.gae_lambda, last_obs=obs, value_scale=5.0)
    again = agent.recompute(batch)  # the same critic: the same numbers
    assert torch.allclose(again.advantages, batch.advantages, atol=1e-5)
    assert torch.allclose(again.returns, batch.returns, atol=1e-5)
    with torch.no_grad():
        _, raw_adv = compute_returns(batch.rewards, agent.net.value(batch.obs).view(8, 2) * 5.0, batch.dones,
                                     agent.net.value(batch.last_obs) * 5.0, c.gamma, c.gae_lambda)
    assert torch.allclose(again.advantages, raw_adv.reshape(-1), atol=1e-5)
    venv.close()


def test_target_kl_stops_the_epochs_early():
    cfg = EnvConfig(name="x", id="CartPole-v1")
    venv, spec = envs.make_vector(cfg, seed=0, num_envs=2)
    torch.manual_seed(0)
    c = PPOConfig(num_envs=2, n_steps=32, n_epochs=50, n_minibatches=2, lr=1e-2, target_kl=1e-6)
    agent = PPO(c, spec, torch.device("cpu"))
    storage = RolloutStorage(c.n_steps, 2, spec.obs_shape, (), True, torch.device("cpu"))
    obs = collect_rollout(agent, venv, storage, venv.reset(seed=0)[0], c.gamma, lambda *a: None)
    metrics = agent.update(storage.batch(agent.value(obs), c.gamma, c.gae_lambda))
    assert metrics["train/epochs"] < 50 and metrics["updates"] == 2 * metrics["train/epochs"]
    venv.close()


def test_vector_normaliser_shares_statistics_normalises_the_final_obs_and_round_trips():
    cfg = EnvConfig(name="p", id="Pendulum-v1", max_episode_steps=5, normalize_obs=True, normalize_reward=True)
    venv, spec = envs.make_vector(cfg, seed=0, num_envs=3, gamma=0.9)
    assert isinstance(venv, envs.VecNormalize)
    raw_obs = []
    inner_step = venv.env.step

    def spy(actions):
        out = inner_step(actions)
        raw_obs.append((out[0].copy(), out[4].get("final_obs")))
        return out

    venv.env.step = spy
    venv.reset(seed=0)
    for _ in range(5):
        _, reward, terminated, truncated, info = venv.step(np.zeros((3, 1), np.float32))
    assert truncated.all()  # the time limit ends every sub-env's episode at step 5
    rms = venv.obs_rms
    assert rms.count == pytest.approx(1e-4 + 3 * 6)  # one set of statistics over every sub-env's reset and steps
    raw_final = raw_obs[-1][1]
    for i in range(3):
        expected = (raw_final[i] - rms.mean) / np.sqrt(rms.var + 1e-8)
        assert np.allclose(info["final_obs"][i], expected, atol=1e-5)
    assert np.all(np.abs(reward) <= envs.REWARD_CLIP)
    assert venv.returns.tolist() == [0.0, 0.0, 0.0]  # reset at the end of each episode

    state = venv.state_dict()
    other, _ = envs.make_vector(cfg, seed=1, num_envs=3, gamma=0.9)
    other.load_state_dict(state)
    assert other.state_dict() == state

    # the evaluation env reads the same statistics, frozen: evaluating never changes them
    eval_env, _ = envs.make(cfg, seed=5, train=False)
    envs.share_obs_stats(venv, eval_env)
    count = rms.count
    obs, _ = eval_env.reset(seed=5)
    eval_env.step(np.zeros(1, np.float32))
    assert rms.count == count and envs.obs_stats(eval_env) == envs.obs_stats(venv)
    venv.close(), other.close(), eval_env.close()


def test_normalize_reward_is_refused_off_policy(tmp_path):
    from tests.conftest import run_train

    proc = run_train("algo=td3", "env=pendulum", "env.normalize_reward=true", run_dir=tmp_path / "r", check=False)
    assert proc.returncode != 0
    assert "env.normalize_reward=true" in proc.stdout + proc.stderr and "allowed with: a2c, ppo" in proc.stdout + proc.stderr


def test_sub_envs_are_not_normalised_one_by_one():
    cfg = EnvConfig(name="p", id="Pendulum-v1", normalize_obs=True)
    venv, _ = envs.make_vector(cfg, seed=0, num_envs=2)
    for sub in venv.unwrapped.envs:
        w = sub
        while isinstance(w, gym.Wrapper):
            assert not isinstance(w, gym.wrappers.NormalizeObservation)
            w = w.env
    venv.close()


def test_resume_with_a_longer_budget_keeps_the_lr_schedule(tmp_path, compose_cfg):
    """lr annealing runs over the budget the run started with: a resume with a larger total_steps does not send
    the learning rate back up."""
    from rlbase.runtime import job as train

    run_dir = tmp_path / "run"
    run_dir.mkdir()
    args = ["algo=ppo", "env=cartpole", "eval_every=1024", "eval_episodes=1", "logger=none", "progress=false",
            "algo.n_epochs=1"]  # tuned: 8 envs x 32 steps, lr 1e-3 annealed
    cfg = compose_cfg(*args, "total_steps=1024")
    train.run(cfg, envs.probe(cfg.env), run_dir)
    state = torch.load(run_dir / "checkpoint.pt", weights_only=True)
    assert state["anneal_horizon"] == 1024
    assert state["agent"]["optimizer"]["param_groups"][0]["lr"] == pytest.approx(1e-3 * (1 - 768 / 1024))
    cfg = compose_cfg(*args, "total_steps=2048")
    train.run(cfg, envs.probe(cfg.env), run_dir)
    state = torch.load(run_dir / "checkpoint.pt", weights_only=True)
    assert state["anneal_horizon"] == 1024 and state["agent"]["optimizer"]["param_groups"][0]["lr"] == 0.0


def test_lr_anneal_steps_sets_the_schedule_horizon_beyond_the_budget(tmp_path, compose_cfg):
    """lr_anneal_steps=4096 with a 1024-step budget: the run ends a quarter of the way down the schedule."""
    from rlbase.runtime import job as train

    cfg = compose_cfg("algo=ppo", "env=cartpole", "total_steps=1024", "eval_every=1024", "eval_episodes=1",
                      "logger=none", "progress=false", "algo.n_epochs=1", "algo.lr_anneal_steps=4096")
    train.run(cfg, envs.probe(cfg.env), tmp_path)
    state = torch.load(tmp_path / "checkpoint.pt", weights_only=True)
    assert state["anneal_horizon"] == 4096  # the last update saw 768 of 4096 steps done
    assert state["agent"]["optimizer"]["param_groups"][0]["lr"] == pytest.approx(1e-3 * (1 - 768 / 4096))


def test_lr_anneal_steps_must_be_positive(compose_cfg):
    from rlbase.runtime.validate import ConfigError, validate

    with pytest.raises(ConfigError) as info:
        validate(compose_cfg("algo=ppo", "env=cartpole", "algo.lr_anneal_steps=0"))
    assert str(info.value) == "algo.lr_anneal_steps=0 must be a positive integer"


def test_obs_clip_bounds_normalised_observations_in_training_and_evaluation():
    # a constant observation entry has ~0 variance: a later deviation normalises to a huge value unless clipped
    cfg = EnvConfig(name="p", id="Pendulum-v1", normalize_obs=True, obs_clip=0.5)
    venv, _ = envs.make_vector(cfg, seed=0, num_envs=2)
    obs, _ = venv.reset(seed=0)
    for _ in range(3):
        obs, *_ = venv.step(np.ones((2, 1), np.float32))
        assert np.abs(obs).max() <= 0.5
    eval_env, _ = envs.make(cfg, seed=3, train=False)
    envs.share_obs_stats(venv, eval_env)
    assert envs.obs_stats(eval_env) == envs.obs_stats(venv)
    o, _ = eval_env.reset(seed=3)
    assert np.abs(o).max() <= 0.5
    unclipped, _ = envs.make_vector(EnvConfig(name="p", id="Pendulum-v1", normalize_obs=True), seed=0, num_envs=2)
    unclipped.reset(seed=0)
    assert max(np.abs(unclipped.step(np.ones((2, 1), np.float32))[0]).max() for _ in range(3)) > 0.5
    venv.close(), eval_env.close(), unclipped.close()


@pytest.mark.parametrize("shared_trunk", [False, True])
def test_activation_sets_every_hidden_nonlinearity_and_bad_names_are_refused(shared_trunk, compose_cfg):
    from rlbase.runtime.validate import ConfigError, validate

    spec = envs.probe(EnvConfig(name="x", id="Pendulum-v1"))
    for name, kind in (("tanh", torch.nn.Tanh), ("relu", torch.nn.ReLU)):
        agent = PPO(PPOConfig(hidden=[32, 16], activation=name, shared_trunk=shared_trunk), spec, torch.device("cpu"))
        acts = [m for m in agent.net.modules() if isinstance(m, (torch.nn.Tanh, torch.nn.ReLU))]
        # two hidden layers in each of two networks, or in the one shared trunk
        assert len(acts) == (2 if shared_trunk else 4) and all(isinstance(m, kind) for m in acts)
    with pytest.raises(ConfigError) as info:
        validate(compose_cfg("algo=a2c", "env=cartpole", "algo.activation=gelu"))
    assert str(info.value) == "algo.activation=gelu is not supported; allowed: tanh, relu"
