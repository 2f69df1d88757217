"""A2C: returns on hand-made rollouts, time-limit bootstrapping through the vector env, both action types."""

import gymnasium as gym
import numpy as np
import pytest
import torch

from rlbase import envs
from rlbase.algos.a2c import A2C, A2CConfig
from rlbase.core.rollout import RolloutStorage, compute_returns
from rlbase.envs import EnvConfig
from rlbase.loops.on_policy import collect_rollout


def test_nstep_returns_hand_computed():
    g = 0.5
    rewards = torch.tensor([[1.0], [2.0], [3.0]])
    values = torch.tensor([[10.0], [20.0], [30.0]])
    dones = torch.tensor([[0.0], [1.0], [0.0]])  # the episode ends at t=1; t=2 starts a new one
    last = torch.tensor([40.0])
    returns, adv = compute_returns(rewards, values, dones, last, g, gae_lambda=1.0)
    # t=2: 3 + 0.5*40 = 23; t=1: done -> 2; t=0: 1 + 0.5*2 = 2
    assert returns.squeeze(1).tolist() == [2.0, 2.0, 23.0]
    assert torch.allclose(adv, returns - values)


def test_gae_hand_computed():
    g, lam = 0.9, 0.5
    rewards, values = torch.tensor([[1.0], [1.0]]), torch.tensor([[0.5], [0.25]])
    dones, last = torch.zeros(2, 1), torch.tensor([2.0])
    _, adv = compute_returns(rewards, values, dones, last, g, lam)
    d1 = 1 + g * 2.0 - 0.25
    d0 = 1 + g * 0.25 - 0.5
    assert torch.allclose(adv.squeeze(1), torch.tensor([d0 + g * lam * d1, d1]))


def test_return_norm_runs_gae_in_the_rewards_units_and_scales_only_the_targets():
    """algo.return_norm: the stored values are in units of ``value_scale``; advantages come out in the rewards'
    units, the critic's targets in the critic's."""
    torch.manual_seed(0)
    storage = RolloutStorage(4, 2, (3,), (), True, torch.device("cpu"))
    rewards, values, dones = torch.randn(4, 2), torch.randn(4, 2), torch.tensor([[0.0, 0], [1, 0], [0, 0], [0, 1]])
    for t in range(4):
        storage.add(np.zeros((2, 3)), np.zeros(2), rewards[t], dones[t], values[t], torch.zeros(2))
    last, s = torch.randn(2), 3.0
    b = storage.batch(last, 0.9, 0.8, value_scale=s)
    want_ret, want_adv = compute_returns(rewards, values * s, dones, last * s, 0.9, 0.8)
    assert torch.allclose(b.advantages, want_adv.reshape(-1)) and torch.allclose(b.returns, want_ret.reshape(-1) / s)
    assert torch.equal(b.values, values.reshape(-1)) and b.value_scale == s


def test_return_scale_tracks_the_returns_variance_and_round_trips():
    from rlbase.loops.on_policy import ReturnScale

    scale = ReturnScale()
    assert abs(scale.std - 1.0) < 1e-6  # before any rollout: the critic's units are the env's
    rets = torch.tensor([1.0, 5.0, 9.0, 13.0])
    storage = RolloutStorage(1, 4, (1,), (), True, torch.device("cpu"))
    storage.add(np.zeros((4, 1)), np.zeros(4), rets, torch.ones(4), torch.zeros(4), torch.zeros(4))
    scale.update(storage.batch(torch.zeros(4), 0.9, 1.0, value_scale=2.0))  # done everywhere: returns = rewards
    assert abs(scale.std - float(rets.var(unbiased=False).sqrt())) < 1e-3
    again = ReturnScale()
    again.load_state_dict(scale.state_dict())
    assert again.std == scale.std and again.state_dict() == scale.state_dict()


class ConstantValueAgent:
    """Always pushes left; V(s) = 100 + obs[0] so the bootstrap value is recognisable."""

    def step(self, obs):
        n = len(obs)
        return torch.zeros(n, dtype=torch.int64), np.zeros(n, dtype=np.int64), self.value(obs), torch.zeros(n)

    def value(self, obs):
        return torch.as_tensor(np.asarray(obs)[:, 0], dtype=torch.float32) + 100.0


def test_truncation_bootstraps_from_real_final_obs_and_termination_does_not():
    cfg = EnvConfig(name="cp", id="CartPole-v1", max_episode_steps=3)
    venv, spec = envs.make_vector(cfg, seed=0, num_envs=2)
    storage = RolloutStorage(7, 2, spec.obs_shape, (), True, torch.device("cpu"))
    obs, _ = venv.reset(seed=0)
    episodes = []
    agent = ConstantValueAgent()
    # Record what the env really returned to check the rollout against it.
    real_final, real_obs = [], []
    step = venv.step

    def spy(action):
        out = step(action)
        real_final.append(out[4].get("final_obs"))
        real_obs.append(out[0].copy())
        return out

    venv.step = spy
    collect_rollout(agent, venv, storage, obs, 0.9, lambda t, r, length: episodes.append((t, r, length)))
    # Every 3rd step ends an episode by the time limit: reward = 1 + 0.9 * V(final obs), done = 1.
    for t in (2, 5):
        for i in range(2):
            expected = 1.0 + 0.9 * (100.0 + real_final[t][i][0])
            assert storage.dones[t, i] == 1 and abs(storage.rewards[t, i].item() - expected) < 1e-4
        # the stored observation after a reset is the new episode's first, never the terminal one
        assert torch.allclose(storage.obs[t + 1], torch.as_tensor(real_obs[t]))
    assert storage.rewards[0].tolist() == [1.0, 1.0] and storage.dones[0].tolist() == [0.0, 0.0]
    assert [e[0] for e in episodes] == [2, 2, 5, 5] and all(e[2] == 3 for e in episodes)
    venv.close()


def test_truncation_bootstrap_is_in_the_rewards_units_under_return_norm():
    cfg = EnvConfig(name="cp", id="CartPole-v1", max_episode_steps=3)
    venv, spec = envs.make_vector(cfg, seed=0, num_envs=1)
    storage = RolloutStorage(3, 1, spec.obs_shape, (), True, torch.device("cpu"))
    finals = []
    step = venv.step

    def spy(action):
        out = step(action)
        finals.append(out[4].get("final_obs"))
        return out

    venv.step = spy
    collect_rollout(ConstantValueAgent(), venv, storage, venv.reset(seed=0)[0], 0.9, lambda *a: None, value_scale=4.0)
    expected = 1.0 + 0.9 * 4.0 * (100.0 + finals[2][0][0])
    assert abs(storage.rewards[2, 0].item() - expected) < 1e-3
    venv.close()


def test_termination_does_not_bootstrap():
    cfg = EnvConfig(name="cp", id="CartPole-v1")  # always pushing left ends CartPole by termination (~10 steps)
    venv, spec = envs.make_vector(cfg, seed=0, num_envs=1)
    storage = RolloutStorage(30, 1, spec.obs_shape, (), True, torch.device("cpu"))
    obs, _ = venv.reset(seed=0)
    collect_rollout(ConstantValueAgent(), venv, storage, obs, 0.9, lambda *a: None)
    ends = torch.nonzero(storage.dones[:, 0]).flatten()
    assert len(ends) >= 1
    assert all(storage.rewards[t, 0] == 1.0 for t in ends)
    venv.close()


@pytest.mark.parametrize("env_id, shared", [("CartPole-v1", False), ("Pendulum-v1", True)])
def test_both_action_types_build_and_update(env_id, shared):
    cfg = EnvConfig(name="x", id=env_id)
    venv, spec = envs.make_vector(cfg, seed=0, num_envs=4)
    torch.manual_seed(0)
    agent = A2C(A2CConfig(shared_trunk=shared), spec, torch.device("cpu"))
    storage = RolloutStorage(5, 4, spec.obs_shape, spec.action_shape, spec.discrete, torch.device("cpu"))
    obs, _ = venv.reset(seed=0)
    before = [p.clone() for p in agent.net.parameters()]
    for _ in range(3):
        obs = collect_rollout(agent, venv, storage, obs, 0.99, lambda *a: None)
        metrics = agent.update(storage.batch(agent.value(obs), 0.99, 0.95))
    assert all(np.isfinite(float(v)) for v in metrics.values())
    assert any(not torch.equal(b, p) for b, p in zip(before, agent.net.parameters()))
    a = agent.act(torch.as_tensor(obs, dtype=torch.float32), deterministic=True)  # the 4 envs' observations
    assert a.shape == (4, *spec.action_shape)
    if spec.discrete:
        assert a.dtype == torch.int64 and set(a.tolist()) <= {0, 1}
    else:
        assert np.all(a.numpy() >= spec.action_low) and np.all(a.numpy() <= spec.action_high)
    venv.close()


def test_vector_env_never_returns_next_step_fake_transition():
    cfg = EnvConfig(name="cp", id="CartPole-v1", max_episode_steps=2)
    venv, _ = envs.make_vector(cfg, seed=0, num_envs=1)
    assert venv.metadata["autoreset_mode"] == gym.vector.AutoresetMode.SAME_STEP
    venv.close()


@pytest.mark.parametrize("shared", [False, True])
def test_init_zero_inputs_draws_the_observation_layers_as_if_the_observation_had_dead_entries(shared):
    """algo.init_zero_inputs=k: each layer that reads the observation holds the real inputs' columns of an
    orthogonal matrix over obs_dim + k inputs (rows of norm sqrt 2, so its columns are shorter than sqrt 2), what a
    network fed k always-zero entries (Tianshou's Ant-v3 under MuJoCo 2.0) starts from; 0 keeps the usual draw
    (orthogonal columns of norm sqrt 2), and the other layers are drawn as before either way."""
    from rlbase.algos.a2c import orthogonal_init

    _, spec = envs.make(EnvConfig(name="p", id="Pendulum-v1"), seed=0)
    cfg = A2CConfig(orthogonal_init=True, shared_trunk=shared)

    def first_layers(zero_inputs):
        agent = A2C(cfg, spec, torch.device("cpu"))
        orthogonal_init(agent.net, torch.Generator().manual_seed(0), zero_inputs)
        parts = (agent.net.trunk,) if shared else (agent.net.pi_head, agent.net.v_head)
        return [[m for m in p.modules() if isinstance(m, torch.nn.Linear)][0].weight.detach() for p in parts], agent

    plain, _ = first_layers(0)
    padded, agent = first_layers(84)
    for w in plain:
        assert torch.allclose(w.norm(dim=0), torch.full((w.shape[1],), 2 ** 0.5), atol=1e-5)
    for w in padded:
        assert w.shape == (64, spec.obs_dim) and (w.norm(dim=0) < 2 ** 0.5 - 0.1).all()
        assert torch.linalg.matrix_norm(w, 2) <= 2 ** 0.5 + 1e-5  # part of an orthogonal matrix's columns
    w = torch.empty(64, spec.obs_dim + 84)
    torch.nn.init.orthogonal_(w, 2 ** 0.5, generator=torch.Generator().manual_seed(0))  # the first draw
    assert torch.equal(padded[0], w[:, :spec.obs_dim])
    last = [m for m in agent.net.pi_head.modules() if isinstance(m, torch.nn.Linear)][-1]
    assert last.weight.abs().max() < 0.05  # the policy output keeps its small gain
