"""DDPG/TD3/SAC: squashed-Gaussian log-probability, smoothing, delays, bounds, Polyak updates."""

import math

import numpy as np
import pytest
import torch

from rlbase.algos.ddpg import DDPG, DDPGConfig
from rlbase.algos.sac import SAC, SACConfig
from rlbase.algos.td3 import TD3, TD3Config
from rlbase.core.buffer import Batch
from rlbase.envs import EnvSpec

LOW, HIGH = np.array([-2.0, 0.0], np.float32), np.array([2.0, 1.0], np.float32)  # asymmetric on purpose
SPEC = EnvSpec("Fake-v0", (3,), False, 0, (2,), LOW, HIGH, 10)
CPU = torch.device("cpu")


def batch(n=32, seed=0) -> Batch:
    g = torch.Generator().manual_seed(seed)
    low, high = torch.as_tensor(LOW), torch.as_tensor(HIGH)
    return Batch(torch.randn(n, 3, generator=g), low + (high - low) * torch.rand(n, 2, generator=g),
                 torch.randn(n, generator=g), torch.randn(n, 3, generator=g),
                 (torch.rand(n, generator=g) < 0.2).float(), (torch.rand(n, generator=g) < 0.2).float())


def test_sac_log_prob_matches_change_of_variables_reference():
    torch.manual_seed(0)
    agent = SAC(SACConfig(actor_hidden=[16]), SPEC, CPU)
    pol = agent.actor
    obs = torch.randn(5, 3)
    mean, log_std = pol.dist_params(obs)
    # include large |u|, where the naive log(1 - tanh(u)^2) underflows
    u = mean + log_std.exp() * torch.randn_like(mean) + torch.tensor([0.0, 9.0])
    ours = pol.log_prob(u, mean, log_std).double()
    # reference in float64: Gaussian density of u minus log|det da/du| of the unit-space action a = tanh(u)
    # (the authors' and SB3's convention: the env's scale is applied after, and is not part of log pi)
    u64, m64, s64 = u.double(), mean.double(), log_std.exp().double()
    gauss = torch.distributions.Normal(m64, s64).log_prob(u64).sum(-1)
    jac = torch.stack([torch.autograd.functional.jacobian(lambda x: torch.tanh(x), row).diagonal()
                       for row in u64.reshape(-1, 2)]).reshape(u64.shape)
    reference = gauss - jac.abs().log().sum(-1)
    assert torch.allclose(ours, reference, atol=1e-3), (ours, reference)
    assert torch.isfinite(ours).all()


def test_sac_density_integrates_to_one_over_the_unit_action_range():
    """On an env with bounds +-2 the density is of the unit-space action tanh(u) in [-1, 1] (what the target
    entropy -|A| is defined on), whatever the env's scale."""
    spec = EnvSpec("Fake-v0", (1,), False, 0, (1,), np.array([-2.0], np.float32), np.array([2.0], np.float32), 10)
    pol = SAC(SACConfig(actor_hidden=[4]), spec, CPU).actor
    mean, log_std = torch.tensor([[0.3]]), torch.tensor([[-0.2]])
    a = torch.linspace(-1 + 5e-5, 1 - 5e-5, 200_001).unsqueeze(1)
    u = torch.atanh(a)
    density = pol.log_prob(u.double(), mean.double(), log_std.double()).exp()
    integral = torch.trapezoid(density, a.squeeze(1).double())
    assert abs(integral.item() - 1.0) < 1e-3


@pytest.mark.parametrize("agent_cls, cfg", [(TD3, TD3Config()), (DDPG, DDPGConfig()), (SAC, SACConfig())])
def test_actions_within_bounds(agent_cls, cfg):
    torch.manual_seed(0)
    agent = agent_cls(cfg, SPEC, CPU)
    with torch.no_grad():  # push the actor to saturation
        for p in agent.actor.parameters():
            p.mul_(50)
    obs = torch.as_tensor(np.random.default_rng(0).normal(size=(200, 3)) * 10, dtype=torch.float32)
    for det in (True, False):
        a = agent.act(obs, deterministic=det).numpy()
        assert a.shape == (200, 2) and np.all(a >= LOW) and np.all(a <= HIGH)


def test_td3_target_policy_smoothing_is_clipped():
    cfg = TD3Config(policy_noise=100.0, noise_clip=0.5, gamma=1.0, actor_hidden=[8], critic_hidden=[8])
    torch.manual_seed(0)
    agent = TD3(cfg, SPEC, CPU)
    seen = []
    critic = agent.critic_target.forward

    def spy(obs, action):
        seen.append(action.clone())
        return critic(obs, action)

    agent.critic_target.forward = spy
    b = batch()
    agent.target(b)
    with torch.no_grad():
        clean = agent.actor_target(b.next_obs)
    scale = agent.scaler.scale
    noise = seen[0] - clean
    assert bool((noise.abs() <= 0.5 * scale + 1e-6).all())  # clipped at noise_clip x half-width
    assert bool((noise.abs() > 0.4 * scale).any())  # and the huge noise did reach the clip
    assert bool((seen[0] >= agent.scaler.low).all() and (seen[0] <= agent.scaler.high).all())


def test_td3_delayed_actor_and_target_updates():
    torch.manual_seed(0)
    agent = TD3(TD3Config(policy_freq=3, actor_hidden=[8], critic_hidden=[8]), SPEC, CPU)
    actor0 = [p.clone() for p in agent.actor.parameters()]
    target0 = [p.clone() for p in agent.critic_target.parameters()]
    changed = []
    for i in range(1, 7):
        agent.update(batch(seed=i))
        now = [p.clone() for p in agent.actor.parameters()]
        changed.append(any(not torch.equal(a, b) for a, b in zip(actor0, now)))
        actor0 = now
    assert changed == [False, False, True, False, False, True]
    assert any(not torch.equal(a, b) for a, b in zip(target0, agent.critic_target.parameters()))


def test_td3_polyak_update_exact():
    torch.manual_seed(0)
    agent = TD3(TD3Config(policy_freq=1, tau=0.1, actor_hidden=[8], critic_hidden=[8]), SPEC, CPU)
    old = [p.clone() for p in agent.critic_target.parameters()]
    agent.update(batch())
    for o, t, c in zip(old, agent.critic_target.parameters(), agent.critic.parameters()):
        assert torch.allclose(t, 0.9 * o + 0.1 * c, atol=1e-6)


def test_ddpg_is_td3_without_the_tricks():
    cfg = DDPGConfig()
    assert (cfg.twin, cfg.policy_noise, cfg.policy_freq) == (False, 0.0, 1)
    agent = DDPG(DDPGConfig(actor_hidden=[8], critic_hidden=[8, 8]), SPEC, CPU)
    assert agent.critic.k == 1
    b = batch()
    with torch.no_grad():
        expected = b.reward + 0.99 * (1 - b.terminated) * agent.critic_target(b.next_obs, agent.actor_target(b.next_obs))[0]
    assert torch.allclose(agent.target(b), expected)


def test_ddpg_lillicrap_action_enters_second_layer():
    agent = DDPG(DDPGConfig(critic_hidden=[16, 8], critic_action_layer=1), SPEC, CPU)
    assert agent.critic.layers[0].weight.shape == (1, 3, 16)
    assert agent.critic.layers[1].weight.shape == (1, 16 + 2, 8)


def test_sac_critics_read_unit_space_actions():
    """As softlearning and SB3: with bounds other than +-1 the critics see replay actions as (a - center) / scale and
    the policy's samples as tanh(u), before scaling (target and actor loss); a replay action at the upper bound is
    valued as the critic at 1.0."""
    spec = EnvSpec("Fake-v0", (3,), False, 0, (2,), np.array([-2.0, 10.0], np.float32),
                   np.array([2.0, 12.0], np.float32), 10)
    torch.manual_seed(0)
    agent = SAC(SACConfig(actor_hidden=[8], critic_hidden=[8]), spec, CPU)
    seen = {"critic": [], "critic_target": []}
    for name, log in seen.items():
        getattr(agent, name).register_forward_pre_hook(lambda module, args, log=log: log.append(args[1].detach().clone()))
    b = batch(n=4)._replace(action=torch.tensor([[2.0, 12.0], [-2.0, 10.0], [0.0, 11.0], [1.0, 10.5]]))
    agent.update(b)
    replay, policy = seen["critic"]  # the current Q, then the actor loss's Q
    assert torch.equal(replay, torch.tensor([[1.0, 1.0], [-1.0, -1.0], [0.0, 0.0], [0.5, -0.5]]))
    for sampled in (policy, seen["critic_target"][0]):  # tanh(u): in [-1, 1], where env units would be >= 10
        assert sampled.abs().max() <= 1.0
    at_bound = b._replace(action=torch.tensor([[2.0, 12.0]]).expand(4, 2))
    with torch.no_grad():
        q_mean = agent.critic_loss(at_bound)[1]["train/q_mean"]
        assert torch.equal(q_mean, agent.critic(at_bound.obs, torch.ones(4, 2)).mean())


def test_sac_critic_does_not_learn_from_actor_loss():
    torch.manual_seed(0)
    agent = SAC(SACConfig(actor_hidden=[8], critic_hidden=[8]), SPEC, CPU)
    b = batch()
    before_alpha = agent.log_alpha.item()
    metrics = agent.update(b)
    assert math.isfinite(float(metrics["loss/actor"])) and agent.log_alpha.item() != before_alpha
    assert all(p.grad is None or torch.isfinite(p.grad).all() for p in agent.critic.parameters())
    assert agent.target_entropy == -2.0


def test_td3_warmup_noise_is_opt_in_and_stays_within_bounds():
    uniform = np.random.default_rng(0).uniform(LOW, HIGH, size=(500, 2)).astype(np.float32)
    plain = TD3(TD3Config(), SPEC, CPU)
    assert all(plain.warmup_action(a) is a for a in uniform)  # off by default: the action itself, no RNG drawn
    torch.manual_seed(0)
    noisy = TD3(TD3Config(warmup_noise=True), SPEC, CPU)
    out = np.stack([noisy.warmup_action(a) for a in uniform])
    assert out.dtype == np.float32 and np.all(out >= LOW) and np.all(out <= HIGH)
    moved = out - uniform
    scale = (HIGH - LOW) / 2
    inner = np.all((out > LOW) & (out < HIGH), axis=1)  # unclipped samples show the noise's std (0.1 x half-width)
    assert np.allclose(moved[inner].std(axis=0) / scale, 0.1, atol=0.02)
