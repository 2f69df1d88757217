"""TD3+BC and IQL on hand-made cases, normalised scores, and Minari datasets both ways (made in the test with
Minari's own API, never downloaded)."""

import json
import math

import numpy as np
import pytest
import torch

from rlbase import algos, data
from rlbase.algos.iql import expectile_loss
from rlbase.core.buffer import Batch
from tests.conftest import read_rows, run_train
from tests.test_offline import pendulum_dataset, pendulum_spec

minari = pytest.importorskip("minari")


def agent(name, **overrides):
    module = algos.get(name)
    return module.Agent(module.Config(**overrides), pendulum_spec(), torch.device("cpu"))


def batch(b=32, seed=0):
    g = torch.Generator().manual_seed(seed)
    return Batch(torch.randn(b, 3, generator=g) * 5 + 2, torch.rand(b, 1, generator=g) * 4 - 2,
                 torch.randn(b, generator=g), torch.randn(b, 3, generator=g), torch.zeros(b), torch.zeros(b))


# ---- TD3+BC


def test_td3_bc_normalises_states_with_the_dataset_statistics_also_when_acting():
    a = agent("td3_bc", actor_hidden=[8], critic_hidden=[8])
    obs = np.random.default_rng(0).normal([1.0, -2.0, 10.0], [0.5, 2.0, 3.0], size=(5000, 3)).astype(np.float32)
    a.fit_dataset({"observations": obs})
    assert np.allclose(a.norm.mean.numpy(), obs.mean(0), atol=1e-5)
    assert np.allclose(a.norm.std.numpy(), obs.std(0) + 1e-3, atol=1e-5)
    x = obs[:1]
    expected = a.actor(torch.as_tensor((x - obs.mean(0)) / (obs.std(0) + 1e-3)))[0].detach().numpy()
    assert np.allclose(a.act(torch.as_tensor(x))[0].numpy(), expected, atol=1e-5)
    # the statistics travel with the agent: a fresh agent loaded from its state acts the same
    b = agent("td3_bc", actor_hidden=[8], critic_hidden=[8])
    b.load_state_dict(a.state_dict())
    assert torch.allclose(b.act(torch.as_tensor(obs[:7])), a.act(torch.as_tensor(obs[:7])))
    off = agent("td3_bc", actor_hidden=[8], critic_hidden=[8], normalize_states=False)
    off.fit_dataset({"observations": obs})
    assert torch.equal(off.norm.mean, torch.zeros(3)) and torch.equal(off.norm.std, torch.ones(3))


def test_td3_bc_actor_loss_is_lambda_weighted_q_plus_bc():
    # critic_lr ~ 0: the critic step before the actor's leaves Q as it was, so the terms can be computed beforehand
    a = agent("td3_bc", actor_hidden=[8], critic_hidden=[8], policy_freq=1, alpha=2.5, critic_lr=1e-12)
    bt = batch()
    with torch.no_grad():
        pi = a.actor(bt.obs)
        q = a.critic(bt.obs, pi, members=1)[0]
        lmbda = 2.5 / q.abs().mean()
        bc = ((a.scaler.unit(pi) - a.scaler.unit(bt.action)) ** 2).mean()
    m = a.update(bt)
    assert math.isclose(float(m["train/lambda"]), float(lmbda), rel_tol=1e-5)
    assert math.isclose(float(m["loss/bc"]), float(bc), rel_tol=1e-5)
    assert math.isclose(float(m["loss/actor"]), float(-lmbda * q.mean() + bc), rel_tol=1e-5)


# ---- IQL


def test_expectile_loss_weights_the_two_signs():
    diff = torch.tensor([2.0, -2.0])
    assert math.isclose(float(expectile_loss(diff, 0.7)), (0.7 * 4 + 0.3 * 4) / 2)
    assert math.isclose(float(expectile_loss(torch.tensor([-1.0]), 0.9)), 0.1, rel_tol=1e-6)


def test_iql_value_fits_the_upper_expectile_of_q():
    """V regressed with tau = 0.9 onto Q values spread over the data's actions ends above their mean, near the
    0.9-expectile of the same values; tau = 0.5 ends at the mean."""
    q = torch.tensor([0.0, 1.0, 2.0, 3.0, 10.0])

    def fit(tau):
        v = torch.zeros((), requires_grad=True)
        opt = torch.optim.SGD([v], lr=0.1)
        for _ in range(3000):
            opt.zero_grad()
            expectile_loss(q - v, tau).backward()
            opt.step()
        return float(v.detach())

    assert math.isclose(fit(0.5), float(q.mean()), abs_tol=1e-3)
    v9 = fit(0.9)
    # the tau-expectile solves sum_i |tau - 1(q_i < v)| (q_i - v) = 0
    w = torch.where(q < v9, 0.1, 0.9)
    assert abs(float((w * (q - v9)).sum())) < 1e-3 and v9 > float(q.mean()) + 1


def test_iql_reward_scale_and_advantage_weights():
    a = agent("iql", hidden=[8], beta=3.0, max_weight=100.0)
    ids = np.array([0, 0, 1, 1, 1, 2])
    rewards = np.array([1.0, 1.0, 5.0, 5.0, 5.0, -3.0], np.float32)  # episode returns 2, 15, -3
    a.fit_dataset({"episode_ids": ids, "rewards": rewards})
    assert math.isclose(a.reward_scale, 1000.0 / 18.0)
    m = a.update(batch())
    assert 0 < float(m["train/adv_weight_mean"]) <= 100.0
    # deterministic actions are the policy's mean, inside the bounds
    act = a.act(torch.zeros(2, 3))
    assert act.shape == (2, 1) and bool(((-2.0 <= act) & (act <= 2.0)).all())
    b = agent("iql", hidden=[8])
    b.load_state_dict(a.state_dict())
    assert b.reward_scale == a.reward_scale and torch.allclose(b.act(torch.zeros(2, 3)), act)


def test_iql_actor_lr_follows_a_cosine_to_zero():
    a = agent("iql", hidden=[8], actor_lr=1e-3, actor_lr_decay_steps=100)
    assert math.isclose(a.actor_lr(), 1e-3)
    a.updates = 50
    assert math.isclose(a.actor_lr(), 5e-4)
    a.updates = 150
    assert a.actor_lr() == 0.0
    assert agent("iql", hidden=[8], actor_lr_decay_steps=0).actor_lr() == 3e-4


# ---- normalised scores


def test_reference_returns_prefer_the_dataset_then_d4rl():
    assert data.reference_returns({"ref_min_score": -10.0, "ref_max_score": 90.0}, "Hopper-v5") == (-10.0, 90.0)
    assert data.reference_returns({}, "Hopper-v5") == data.D4RL_REFERENCE["Hopper"] == (-20.272305, 3234.3)
    assert data.reference_returns({}, "HalfCheetah-v5") == (-280.178953, 12135.0)
    assert data.reference_returns({}, "Pendulum-v1") is None
    assert data.normalized_score(3234.3, (-20.272305, 3234.3)) == 100.0
    assert math.isclose(data.normalized_score(-20.272305, (-20.272305, 3234.3)), 0.0, abs_tol=1e-9)


# ---- Minari, both ways


@pytest.fixture
def store(tmp_path, monkeypatch):
    root = tmp_path / "minari"
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(root))
    return root


def minari_pendulum(dataset_id, episodes=6, seed=0):
    """A small Pendulum dataset made with Minari's own API (EpisodeBuffer + create_dataset_from_buffers), with
    reference scores in its metadata; the last episode ends by termination, the others by truncation."""
    from minari.data_collector.episode_buffer import EpisodeBuffer

    rng = np.random.default_rng(seed)
    buffers = []
    for i in range(episodes):
        t = 20 + i
        th = rng.uniform(-np.pi, np.pi, t + 1)
        obs = np.stack([np.cos(th), np.sin(th), rng.normal(0, 1, t + 1)], 1).astype(np.float32)
        term = [False] * t
        trunc = [False] * (t - 1) + [True]
        if i == episodes - 1:
            term, trunc = [False] * (t - 1) + [True], [False] * t
        buffers.append(EpisodeBuffer(id=i, observations=obs, actions=rng.uniform(-2, 2, (t, 1)).astype(np.float32),
                                     rewards=list(rng.normal(-5, 1, t)), terminations=term, truncations=trunc, infos={}))
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        minari.create_dataset_from_buffers(dataset_id, buffers, env="Pendulum-v1", algorithm_name="test",
                                           data_format="hdf5", ref_min_score=-1500.0, ref_max_score=-150.0)
    return buffers


def test_minari_dataset_is_read_as_it_is(store):
    buffers = minari_pendulum("test/pendulum/small-v0")
    arrays, meta = data.read_minari("test/pendulum/small-v0", pendulum_spec())
    n = sum(len(b.rewards) for b in buffers)
    assert meta["size"] == n and meta["env_id"] == "Pendulum-v1" and meta["episodes"]["count"] == 6
    assert np.array_equal(arrays["observations"], np.concatenate([b.observations[:-1] for b in buffers]))
    assert np.array_equal(arrays["next_observations"], np.concatenate([b.observations[1:] for b in buffers]))
    assert np.array_equal(arrays["terminations"], np.concatenate([b.terminations for b in buffers]))
    assert np.array_equal(arrays["truncations"], np.concatenate([b.truncations for b in buffers]))
    assert arrays["terminations"].sum() == 1 and arrays["truncations"].sum() == 5  # kept apart
    assert data.reference_returns(meta, "Pendulum-v1") == (-1500.0, -150.0)


def test_ours_written_as_minari_reads_back_identically(store, tmp_path):
    path = pendulum_dataset(tmp_path / "ours", episodes=3)
    arrays, meta = data.read(path)
    data.to_minari(arrays, meta, "rlbase/pendulum/mixed-v0")
    ds = minari.load_dataset("rlbase/pendulum/mixed-v0")
    eps = list(ds.iterate_episodes())
    assert len(eps) == 3 and ds.spec.env_spec.id == "Pendulum-v1"
    assert np.array_equal(np.concatenate([e.observations[:-1] for e in eps]), arrays["observations"])
    assert np.array_equal(np.concatenate([e.observations[1:] for e in eps]), arrays["next_observations"])
    for key, ours in (("actions", "actions"), ("rewards", "rewards"), ("terminations", "terminations"),
                      ("truncations", "truncations")):
        assert np.array_equal(np.concatenate([getattr(e, key) for e in eps]), arrays[ours]), key
    with pytest.raises(data.DatasetError, match="already exists"):
        data.to_minari(arrays, meta, "rlbase/pendulum/mixed-v0")


def test_train_on_a_minari_dataset_logs_normalised_scores(store, tmp_path):
    minari_pendulum("test/pendulum/small-v0")
    run_dir = tmp_path / "run"
    env = {"MINARI_DATASETS_PATH": str(store)}
    run_train("algo=td3_bc", "env=pendulum", "dataset=minari", "dataset.id=test/pendulum/small-v0",
              "total_updates=40", "eval_every=20", "eval_episodes=1", "algo.actor_hidden=[16]",
              "algo.critic_hidden=[16]", run_dir=run_dir, env=env)
    rows = [r for r in read_rows(run_dir) if "eval/return_mean" in r]
    assert [r["step"] for r in rows] == [20, 40]
    for r in rows:
        assert math.isclose(r["eval/normalized_score"], 100 * (r["eval/return_mean"] + 1500) / 1350, rel_tol=1e-9)
    # a missing id, and a dataset of another env: one line each, before any work
    proc = run_train("algo=iql", "env=pendulum", "dataset=minari", "dataset.id=test/pendulum/nope-v0",
                     run_dir=tmp_path / "missing", env=env, check=False)
    lines = [ln for ln in proc.stderr.splitlines() if ln.startswith("error:")]
    assert proc.returncode == 2 and len(lines) == 1, proc.stderr
    assert "test/pendulum/small-v0" in lines[0] and "minari download test/pendulum/nope-v0" in lines[0]
    assert not (tmp_path / "missing").exists()
    proc = run_train("algo=iql", "env=inverted_double_pendulum", "dataset=minari", "dataset.id=test/pendulum/small-v0",
                     run_dir=tmp_path / "other", env=env, check=False)
    assert proc.returncode == 2 and "was made on Pendulum-v1" in proc.stderr, proc.stderr


def test_recorded_run_is_also_written_as_minari(store, tmp_path):
    run_dir = tmp_path / "run"
    run_train("algo=dqn", "env=cartpole", "total_steps=300", "eval_every=300", "eval_episodes=1", "algo.learning_starts=100",
              "dataset.record=true", "dataset.id=rlbase/cartpole/dqn-replay-v0", run_dir=run_dir,
              env={"MINARI_DATASETS_PATH": str(store)})
    ours, _ = data.read(run_dir / "dataset.npz")
    theirs, meta = data.read_minari("rlbase/cartpole/dqn-replay-v0")
    assert meta["discrete"] and meta["size"] == 300
    for k in data.FIELDS:
        assert np.array_equal(ours[k], theirs[k]), k
    # the same id again is refused before the run starts
    proc = run_train("algo=dqn", "env=cartpole", "total_steps=300", "dataset.record=true",
                     "dataset.id=rlbase/cartpole/dqn-replay-v0", run_dir=tmp_path / "again",
                     env={"MINARI_DATASETS_PATH": str(store)}, check=False)
    assert proc.returncode == 2 and "already exists" in proc.stderr


def test_offline_report_uses_normalised_scores(tmp_path):
    from rlbase.report.plot import find_runs, table

    run = tmp_path / "sweep" / "0"
    (run / ".hydra").mkdir(parents=True)
    (run / ".hydra" / "config.yaml").write_text(
        "seed: 0\nalgo: {name: iql}\nenv: {name: hopper, id: Hopper-v5}\n"
        "dataset: {name: hopper_td3_medium, path: datasets/hopper_td3_medium.npz, record: false, id: null}\n")
    (run / "metrics.jsonl").write_text(json.dumps({"step": 100, "eval/return_mean": 1000.0,
                                                   "eval/normalized_score": 31.36}) + "\n")
    runs = find_runs([tmp_path / "sweep"])
    assert runs[0]["evals"] == [(100, 31.36)] and runs[0]["env"] == "Hopper-v5 / hopper_td3_medium"
    md = table(runs, None)
    assert "final normalised score" in md and "31.4" in md
