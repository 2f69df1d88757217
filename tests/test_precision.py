"""TD3/DDPG/SAC's ``precision`` setting: fp32 (the default) leaves the update as it was, bit for bit; bf16 runs the
update's forward passes under bfloat16 autocast with every weight and optimizer state in fp32."""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from omegaconf import OmegaConf

from rlbase.algos import ddpg, sac, td3
from rlbase.core.buffer import Batch
from rlbase.core.nets import bf16_autocast, minimize, soft_update
from rlbase.core.seeding import AgentRandom, normal
from rlbase.envs import EnvSpec
from rlbase.runtime.validate import ConfigError, validate

# Hopper's sizes: 11-dim observations, 3-dim actions in [-1, 1]
SPEC = EnvSpec("Fake-v0", (11,), False, 0, (3,), np.full(3, -1.0, np.float32), np.full(3, 1.0, np.float32), 10)
CPU = torch.device("cpu")
MODULES = {"td3": td3, "ddpg": ddpg, "sac": sac}


@pytest.fixture(autouse=True)
def one_thread():
    """Small matmuls: one torch thread is as fast, and two on a shared machine run many times slower."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def batch(n=64, seed=0) -> Batch:
    g = torch.Generator().manual_seed(seed)
    return Batch(torch.randn(n, 11, generator=g), torch.rand(n, 3, generator=g) * 2 - 1, torch.randn(n, generator=g),
                 torch.randn(n, 11, generator=g), (torch.rand(n, generator=g) < 0.2).float(),
                 (torch.rand(n, generator=g) < 0.2).float())


def agent(name: str, **settings):
    """The same weights and random streams for every call with the same name (the agent's seed is fixed)."""
    mod = MODULES[name]
    return mod.Agent(mod.Config(**settings), SPEC, CPU, AgentRandom(7, CPU))


# The updates as they were written before the setting existed (algos/td3.py and algos/sac.py), kept here verbatim
# in their operations, so "fp32 changes nothing" is checked against the old code and not against itself.
def reference_td3_update(a, b: Batch) -> dict:
    c, s = a.cfg, a.scaler
    with torch.no_grad():
        next_action = a.actor_target(b.next_obs)
        if c.policy_noise > 0:
            noise = (normal(next_action, a.rng.update) * c.policy_noise).clamp(-c.noise_clip, c.noise_clip)
            next_action = torch.maximum(torch.minimum(next_action + noise * s.scale, s.high), s.low)
        next_q = a.critic_target(b.next_obs, next_action).min(dim=0).values
        target_q = b.reward + c.gamma * (1.0 - b.terminated) * next_q
    q = a.critic(b.obs, b.action)
    critic_loss = F.mse_loss(q, target_q.expand_as(q), reduction="none").mean(dim=1).sum()
    minimize(a.critic_opt, critic_loss)
    a.updates += 1
    if a.updates % c.policy_freq == 0:
        actor_loss = -a.critic(b.obs, a.actor(b.obs), members=1)[0].mean()
        minimize(a.actor_opt, actor_loss)
        soft_update(a.critic_target, a.critic, c.tau)
        soft_update(a.actor_target, a.actor, c.tau)
        a._actor_loss = actor_loss.detach()
    return {"loss/critic": critic_loss.detach(), "loss/actor": a._actor_loss, "train/q_mean": q.detach().mean()}


def _reference_sample(pol, obs, gen):
    mean, log_std = pol.net(obs).chunk(2, dim=-1)
    log_std = log_std.clamp(pol.log_std_min, pol.log_std_max)
    u = mean + log_std.exp() * normal(mean, gen)
    return pol.scaler(torch.tanh(u)), pol.log_prob(u, mean, log_std)


def reference_sac_update(a, b: Batch) -> dict:
    with torch.no_grad():
        next_action, next_log_prob = _reference_sample(a.actor, b.next_obs, a.rng.update)
        next_q = a.critic_target(b.next_obs, next_action).min(dim=0).values - a.alpha * next_log_prob
        target_q = b.reward + a.cfg.gamma * (1.0 - b.terminated) * next_q
    q = a.critic(b.obs, b.action)
    critic_loss = F.mse_loss(q, target_q.expand_as(q), reduction="none").mean(dim=1).sum()
    minimize(a.critic_opt, critic_loss)
    action, log_prob = _reference_sample(a.actor, b.obs, a.rng.update)
    q_pi = a.critic(b.obs, action).min(dim=0).values
    actor_loss = (a.alpha * log_prob - q_pi).mean()
    minimize(a.actor_opt, actor_loss)
    if a.cfg.autotune:
        minimize(a.alpha_opt, -(a.log_alpha * (log_prob.detach() + a.target_entropy)).mean())
    soft_update(a.critic_target, a.critic, a.cfg.tau)
    a.updates += 1
    return {"train/q_mean": q.detach().mean(), "loss/critic": critic_loss.detach(), "loss/actor": actor_loss.detach(),
            "train/alpha": a.alpha, "train/entropy": -log_prob.detach().mean()}


def tensors(tree, prefix=""):
    """Every tensor of a (nested) state dict, by path."""
    if isinstance(tree, dict):
        return {k: v for key, sub in tree.items() for k, v in tensors(sub, f"{prefix}{key}.").items()}
    if isinstance(tree, (list, tuple)):
        return {k: v for i, sub in enumerate(tree) for k, v in tensors(sub, f"{prefix}{i}.").items()}
    return {prefix[:-1]: tree} if torch.is_tensor(tree) else {}


def assert_identical(x: dict, y: dict):
    assert x.keys() == y.keys()
    for k in x:
        assert x[k].dtype == y[k].dtype and torch.equal(x[k], y[k]), k


@pytest.mark.parametrize("name", ["td3", "ddpg", "sac"])
def test_fp32_update_is_bit_identical_to_the_code_before_the_setting(name):
    """Three updates (TD3's delayed actor and target step included) with the default config and with
    ``precision=fp32``, against the pre-setting update on the same weights, random streams and batches."""
    reference = reference_sac_update if name == "sac" else reference_td3_update
    default, explicit, before = agent(name), agent(name, precision="fp32"), agent(name)
    assert default.cfg.precision == "fp32" and not default.update_bf16
    assert_identical(tensors(default.state_dict()), tensors(before.state_dict()))
    for i in range(3):
        b = batch(seed=i)
        m_default, m_explicit, m_before = default.update(b), explicit.update(b), reference(before, b)
        assert_identical(m_default, m_before)
        assert_identical(m_explicit, m_before)
    state = tensors(before.state_dict())
    assert_identical(tensors(default.state_dict()), state)
    assert_identical(tensors(explicit.state_dict()), state)
    for gen in ("update", "explore"):  # the same random draws were taken
        assert torch.equal(getattr(default.rng, gen).get_state(), getattr(before.rng, gen).get_state())


@pytest.mark.parametrize("name", ["td3", "ddpg", "sac"])
def test_bf16_keeps_fp32_state_and_one_update_is_close_to_fp32(name):
    settings = {"policy_freq": 1} if name == "td3" else {}  # the actor steps in this one update too
    ref, low = agent(name, **settings), agent(name, precision="bf16", **settings)
    assert low.update_bf16
    start = {k: v.clone() for k, v in tensors(ref.state_dict()).items()}
    b = batch()
    m_ref, m_low = ref.update(b), low.update(b)
    state_ref, state_low = tensors(ref.state_dict()), tensors(low.state_dict())
    assert state_low.keys() == state_ref.keys()
    for k, v in state_low.items():  # weights, targets, Adam moments and steps, SAC's temperature: all fp32
        assert v.dtype == state_ref[k].dtype, k
        if v.is_floating_point():
            assert v.dtype == torch.float32 and torch.isfinite(v).all(), k
    for k, v in m_low.items():
        assert v.dtype == torch.float32 and math.isfinite(v.item()), k
        assert abs(v.item() - m_ref[k].item()) <= 0.01 + 0.02 * abs(m_ref[k].item()), (k, v.item(), m_ref[k].item())
    assert not torch.equal(state_low["critic.layers.1.weight"], state_ref["critic.layers.1.weight"])  # bf16 ran
    for net in ("actor", "critic"):  # each network's step points the way fp32's does
        keys = [k for k in start if k.startswith(f"{net}.")]
        d_ref = torch.cat([(state_ref[k] - start[k]).flatten() for k in keys])
        d_low = torch.cat([(state_low[k] - start[k]).flatten() for k in keys])
        assert F.cosine_similarity(d_ref, d_low, dim=0) > 0.9, net


@pytest.mark.parametrize("name", ["ddpg", "td3"])
def test_bf16_actor_step_reads_the_stepped_critic(name):
    """Autocast caches a bf16 copy of each weight (a leaf that requires grad) until its context closes: the actor
    loss must see the critic after its optimizer step, as in fp32, not the copy cached by the critic loss. (DDPG's
    one critic is read whole, so a stale copy would show; TD3 reads slices of its twin critics' weights.)"""
    a, pre = agent(name, precision="bf16", policy_freq=1), agent(name, precision="bf16", policy_freq=1)
    b = batch()
    actor_loss = a.update(b)["loss/actor"]
    with torch.no_grad():
        with bf16_autocast(CPU):
            stale = -pre.critic(b.obs, pre.actor(b.obs), members=1)[0].float().mean()
        pre.critic.load_state_dict(a.critic.state_dict())  # the stepped critic, the actor before its step
        with bf16_autocast(CPU):  # a new context: this one's cache holds the loaded weights
            fresh = -pre.critic(b.obs, pre.actor(b.obs), members=1)[0].float().mean()
    assert torch.equal(actor_loss, fresh) and not torch.equal(actor_loss, stale)


@pytest.mark.parametrize("algo", ["td3", "ddpg", "ddpg_lillicrap", "sac"])
def test_precision_setting_composes_and_refuses_other_values(compose_cfg, algo):
    assert compose_cfg(f"algo={algo}", "env=hopper").algo.precision == "fp32"
    cfg = compose_cfg(f"algo={algo}", "env=hopper", "algo.precision=bf16")
    assert cfg.algo.precision == "bf16"
    mod = MODULES[algo.split("_")[0]]
    assert mod.Agent(OmegaConf.to_object(cfg.algo), SPEC, CPU, AgentRandom(0, CPU)).update_bf16
    bad = compose_cfg(f"algo={algo}", "env=hopper", "algo.precision=fp16")
    with pytest.raises(ConfigError) as info:
        validate(bad)
    assert str(info.value) == "algo.precision=fp16 is not supported; allowed: fp32, bf16"
