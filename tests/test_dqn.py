"""DQN: the target on a hand-built batch, double DQN, soft/hard target updates."""

import numpy as np
import torch

from rlbase.algos.dqn import DQN, DQNConfig
from rlbase.core.buffer import Batch
from rlbase.envs import EnvSpec

SPEC = EnvSpec("Fake-v0", (2,), True, 3, (), None, None, 10)


def agent(**kw) -> DQN:
    torch.manual_seed(0)
    return DQN(DQNConfig(hidden=[8], **kw), SPEC, torch.device("cpu"))


def hand_batch() -> Batch:
    obs = torch.tensor([[0.0, 1.0], [1.0, 0.0], [1.0, 1.0]])
    return Batch(obs=obs, action=torch.tensor([0, 1, 2]), reward=torch.tensor([1.0, 2.0, 3.0]),
                 next_obs=obs.flip(0), terminated=torch.tensor([0.0, 1.0, 0.0]), truncated=torch.tensor([0.0, 0.0, 1.0]))


def test_target_bootstraps_unless_terminated():
    a = agent(gamma=0.9)
    b = hand_batch()
    with torch.no_grad():
        next_max = a.q_target(b.next_obs).max(dim=1).values
    expected = torch.tensor([1.0 + 0.9 * next_max[0], 2.0, 3.0 + 0.9 * next_max[2]])  # truncated row still bootstraps
    assert torch.allclose(a.target(b), expected)


def test_double_dqn_uses_online_argmax():
    a = agent(gamma=0.5, double=True)
    with torch.no_grad():
        for p in a.q_target.parameters():
            p.add_(torch.randn_like(p))  # make the two networks disagree
    b = hand_batch()
    with torch.no_grad():
        best = a.q(b.next_obs).argmax(dim=1)
        nq = a.q_target(b.next_obs)[torch.arange(3), best]
    expected = b.reward + 0.5 * (1 - b.terminated) * nq
    assert torch.allclose(a.target(b), expected)


def test_update_applies_soft_target_update():
    a = agent(tau=0.25)
    old_target = [p.clone() for p in a.q_target.parameters()]
    a.update(hand_batch())
    for t, q, o in zip(a.q_target.parameters(), a.q.parameters(), old_target):
        assert torch.allclose(t, 0.75 * o + 0.25 * q, atol=1e-6)


def test_hard_target_update_every_n():
    a = agent(target_update_every=2)
    t0 = [p.clone() for p in a.q_target.parameters()]
    a.update(hand_batch())
    assert all(torch.equal(t, o) for t, o in zip(a.q_target.parameters(), t0))
    a.update(hand_batch())
    assert all(torch.equal(t, q) for t, q in zip(a.q_target.parameters(), a.q.parameters()))


def test_epsilon_decays_and_greedy_eval():
    a = agent(eps_start=0.9, eps_end=0.05, eps_decay=100)
    assert abs(a.epsilon() - 0.9) < 1e-9
    for _ in range(50):  # a batch of two rows is two exploratory actions
        a.act(torch.zeros(2, 2), deterministic=False)
    assert a.explore_steps == 100 and abs(a.epsilon() - (0.05 + 0.85 * np.exp(-1))) < 1e-9
    n = a.explore_steps
    act = a.act(torch.tensor([[0.5, -0.5]]), deterministic=True)
    assert a.explore_steps == n and act.shape == (1,) and act.dtype == torch.int64 and 0 <= int(act[0]) < 3


def test_state_dict_roundtrip_same_actions():
    a, b = agent(), agent()
    a.update(hand_batch())
    b.load_state_dict(a.state_dict())
    obs = torch.as_tensor(np.random.default_rng(0).normal(size=(20, 2)), dtype=torch.float32)
    assert torch.equal(a.act(obs, True), b.act(obs, True))
