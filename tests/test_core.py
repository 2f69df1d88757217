"""Unit tests of the shared core: replay storage, target updates, checkpoints, seeding."""


import numpy as np
import pytest
import torch

from rlbase.core import checkpoint, nets, seeding
from rlbase.core.buffer import ReplayBuffer
from rlbase.core.nets import Critic, EnsembleMLP, adam, hard_update, minimize, mlp, soft_update
from tests.conftest import every_agent


def fill(buf: ReplayBuffer, n: int, start: int = 0):
    for i in range(start, start + n):
        buf.add(np.full(3, i), np.full(2, -i), float(i), np.full(3, i + 0.5), terminated=i % 7 == 0, truncated=i % 5 == 0)


def test_buffer_wraps_around_exactly():
    buf = ReplayBuffer(10, (3,), (2,))
    fill(buf, 13)
    assert len(buf) == 10 and buf.ptr == 3
    # slots 0..2 were overwritten by transitions 10..12; slots 3..9 still hold 3..9
    assert buf.reward.tolist() == [10, 11, 12, 3, 4, 5, 6, 7, 8, 9]
    assert torch.equal(buf.obs[:, 0], buf.reward)
    assert torch.equal(buf.next_obs[:, 0], buf.reward + 0.5)
    assert torch.equal(buf.action[:, 1], -buf.reward)


def test_buffer_keeps_terminated_and_truncated_apart():
    buf = ReplayBuffer(40, (3,), (2,))
    fill(buf, 36)
    r = buf.reward[:36].long()
    assert torch.equal(buf.terminated[:36].bool(), r % 7 == 0)
    assert torch.equal(buf.truncated[:36].bool(), r % 5 == 0)
    # transition 10 is truncated but not terminated: its real next observation is kept
    assert buf.truncated[10] == 1 and buf.terminated[10] == 0 and buf.next_obs[10, 0] == 10.5


def test_buffer_sampling_uses_injected_generator():
    def draw(seed):
        g = torch.Generator().manual_seed(seed)
        buf = ReplayBuffer(100, (3,), (2,), generator=g)
        fill(buf, 50)
        return buf.sample(16).reward

    torch.manual_seed(123)
    a = draw(0)
    torch.manual_seed(456)  # the global RNG must not matter
    assert torch.equal(a, draw(0))
    assert not torch.equal(a, draw(1))
    assert bool((a < 50).all())  # only filled slots are sampled


def test_buffer_state_roundtrip():
    buf = ReplayBuffer(10, (3,), (2,))
    fill(buf, 13)
    other = ReplayBuffer(10, (3,), (2,))
    other.load_state_dict(buf.state_dict())
    for key in ("obs", "action", "reward", "next_obs", "terminated", "truncated"):
        assert torch.equal(getattr(buf, key), getattr(other, key))
    assert (other.ptr, other.size) == (buf.ptr, buf.size)


@pytest.mark.parametrize("discrete", [False, True])
def test_buffer_chunks_write_only_new_rows_and_restore_exactly(tmp_path, discrete, monkeypatch):
    monkeypatch.setattr(ReplayBuffer, "CHUNK_BYTES", 4 * 12 * 3)  # three rows per chunk file
    shape = () if discrete else (2,)

    def filled(n, start=0, buf=None):
        buf = buf or ReplayBuffer(10, (3,), shape, discrete=discrete)
        for i in range(start, start + n):
            buf.add(np.full(3, i), i % 2 if discrete else np.full(2, -i), float(i), np.full(3, i + 0.5), i % 7 == 0, i % 5 == 0)
        return buf

    def same(a, b):
        return all(torch.equal(getattr(a, k), getattr(b, k)) for k in ("obs", "action", "reward", "next_obs",
                                                                          "terminated", "truncated")) and \
            (a.ptr, a.size, a.added) == (b.ptr, b.size, b.added)

    buf = filled(4)
    first = buf.save_chunks(tmp_path)
    assert [(c["start"], c["end"]) for c in first["chunks"]] == [(0, 3), (3, 4)]
    filled(9, start=4, buf=buf)  # 13 added: slots wrapped; transitions 0..2 are gone
    second = buf.save_chunks(tmp_path)
    # only the 9 new rows were written; the chunk of transitions 0..2 is no longer needed
    assert [(c["start"], c["end"]) for c in second["chunks"]] == [(3, 4), (4, 7), (7, 10), (10, 13)]
    restored = ReplayBuffer(10, (3,), shape, discrete=discrete)
    restored.load_chunks(tmp_path, second)
    assert same(buf, restored) and restored.reward.tolist() == [10, 11, 12, 3, 4, 5, 6, 7, 8, 9]
    # More than a capacity of new rows: only the live ones are written.
    filled(25, start=13, buf=buf)
    third = buf.save_chunks(tmp_path)
    assert [(c["start"], c["end"]) for c in third["chunks"]] == [(28, 31), (31, 34), (34, 37), (37, 38)]
    ReplayBuffer.prune(tmp_path, [second, third])  # the files the two checkpoints on disk name stay
    assert len(list(tmp_path.iterdir())) == 8
    restored = ReplayBuffer(10, (3,), shape, discrete=discrete)
    restored.load_chunks(tmp_path, second)  # the previous checkpoint still restores
    ReplayBuffer.prune(tmp_path, [third])
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(c["name"] for c in third["chunks"])
    restored.load_chunks(tmp_path, third)
    assert same(buf, restored)
    # A damaged chunk is refused by name.
    path = tmp_path / third["chunks"][0]["name"]
    path.write_bytes(path.read_bytes()[:-5])
    with pytest.raises(checkpoint.CheckpointError, match="checksum mismatch"):
        ReplayBuffer(10, (3,), shape, discrete=discrete).load_chunks(tmp_path, third)


def test_discrete_actions_stored_as_integers():
    buf = ReplayBuffer(4, (2,), (), discrete=True)
    buf.add(np.zeros(2), 1, 0.0, np.zeros(2), False, False)
    assert buf.action.dtype == torch.int64 and buf.action[0] == 1


def test_soft_update_is_exact_polyak():
    torch.manual_seed(0)
    src, tgt = mlp(3, [4], 2), mlp(3, [4], 2)
    before = [p.clone() for p in tgt.parameters()]
    soft_update(tgt, src, 0.1)
    for b, s, t in zip(before, src.parameters(), tgt.parameters()):
        assert torch.allclose(t, 0.9 * b + 0.1 * s, atol=1e-7)
    hard_update(tgt, src)
    assert all(torch.equal(s, t) for s, t in zip(src.parameters(), tgt.parameters()))


def test_ensemble_members_are_independent_mlps():
    torch.manual_seed(0)
    ens = EnsembleMLP(2, 5, [8, 8], 1)
    x = torch.randn(4, 5)
    out = ens(x)
    assert out.shape == (2, 4, 1)
    for k in range(2):
        h = x
        for i, layer in enumerate(ens.layers):
            h = h @ layer.weight[k] + layer.bias[k]
            h = torch.relu(h) if i < len(ens.layers) - 1 else h
        assert torch.allclose(out[k], h, atol=1e-6)


def test_checkpoint_roundtrip_safe_load_and_fallback(tmp_path):
    state = {"step": 5, "rng": seeding.AgentRandom(3).state_dict(), "w": torch.arange(4.0)}
    checkpoint.save(tmp_path, state)
    checkpoint.save(tmp_path, {**state, "step": 6})
    assert checkpoint.load(tmp_path)["step"] == 6
    # The file itself loads with torch's safe default (the checksum footer after the zip payload is ignored).
    plain = torch.load(tmp_path / checkpoint.NAME, weights_only=True)
    assert plain["step"] == 6 and torch.equal(plain["w"], torch.arange(4.0))
    # Corrupt the newest file: loading falls back to the previous good one.
    path = tmp_path / checkpoint.NAME
    raw = bytearray(path.read_bytes())
    raw[100] ^= 0xFF
    path.write_bytes(bytes(raw))
    assert checkpoint.load(tmp_path)["step"] == 5
    # Both corrupt: one error naming the files.
    (tmp_path / checkpoint.PREV).write_bytes(b"garbage")
    with pytest.raises(checkpoint.CheckpointError, match="checkpoint"):
        checkpoint.load(tmp_path)


def test_init_draws_from_the_given_generator_only():
    a = nets.init_(nets.mlp(3, [8], 2), seeding.generator(0, "init"))
    torch.manual_seed(123)  # the global generator plays no part
    b = nets.init_(nets.mlp(3, [8], 2), seeding.generator(0, "init"))
    c = nets.init_(nets.mlp(3, [8], 2), seeding.generator(1, "init"))
    assert all(torch.equal(x, y) for x, y in zip(a.parameters(), b.parameters()))
    assert not torch.equal(a[0].weight, c[0].weight)
    bound = 1 / 3 ** 0.5  # PyTorch's default range for fan_in 3
    assert float(a[0].weight.abs().max()) <= bound and float(a[0].weight.abs().max()) > 0.5 * bound


@pytest.mark.parametrize("decoupled, amsgrad, weight_decay, clip", [(False, False, 0.0, 0.0), (True, True, 0.01, 100.0),
                                                                    (True, True, 0.01, 1e-3), (False, False, 0.1, 0.0)])
def test_minimize_is_bit_identical_to_optimizer_step(decoupled, amsgrad, weight_decay, clip):
    """``minimize`` calls the fused Adam kernel directly; parameters and optimizer state must equal
    ``zero_grad(); backward(); clip_grad_value_(); step()`` exactly, also after a checkpoint round trip."""
    torch.manual_seed(0)
    ref = mlp(4, [16, 16], 2)
    new = mlp(4, [16, 16], 2)
    hard_update(new, ref)
    ref_opt = adam(ref.parameters(), 1e-3, weight_decay, decoupled=decoupled, amsgrad=amsgrad)
    new_opt = adam(new.parameters(), 1e-3, weight_decay, decoupled=decoupled, amsgrad=amsgrad)
    for i in range(6):
        x = torch.randn(32, 4) * 10
        ref_opt.zero_grad(set_to_none=True)
        ref(x).pow(2).mean().backward()
        if clip:
            torch.nn.utils.clip_grad_value_(ref.parameters(), clip)
        ref_opt.step()
        minimize(new_opt, new(x).pow(2).mean(), clip_value=clip)
        if i == 2:  # resume the fast path from a saved state
            state = new_opt.state_dict()
            new_opt = adam(new.parameters(), 1e-3, weight_decay, decoupled=decoupled, amsgrad=amsgrad)
            new_opt.load_state_dict(state)
    assert all(torch.equal(p, q) for p, q in zip(ref.parameters(), new.parameters()))
    for p, q in zip(ref.parameters(), new.parameters()):
        for key, value in ref_opt.state[p].items():
            assert torch.equal(value, new_opt.state[q][key]), key
    assert all(p.grad is None for p in new.parameters())


def test_minimize_trains_only_its_own_parameters():
    """An actor loss that passes through the critic must leave the critic's weights (and .grad) untouched."""
    torch.manual_seed(0)
    actor, critic = mlp(3, [8], 2), Critic(2, 3, 2, [8, 8])
    before = [p.clone() for p in critic.parameters()]
    obs = torch.randn(16, 3)
    minimize(adam(actor.parameters(), 1e-2), -critic(obs, actor(obs), members=1)[0].mean())
    assert all(torch.equal(b, p) for b, p in zip(before, critic.parameters()))
    assert all(p.grad is None for p in critic.parameters())


def test_critic_members_evaluates_the_first_critics_exactly():
    torch.manual_seed(0)
    critic = Critic(2, 5, 3, [16, 16])
    obs, act = torch.randn(32, 5), torch.randn(32, 3, requires_grad=True)
    full = critic(obs, act)
    one = critic(obs, act, members=1)
    assert one.shape == (1, 32) and torch.allclose(one[0], full[0], atol=1e-6)
    (g_full,) = torch.autograd.grad(full[0].sum(), act)
    (g_one,) = torch.autograd.grad(critic(obs, act, members=1)[0].sum(), act)
    assert torch.allclose(g_full, g_one, atol=1e-6)


def test_sampled_batch_fields_come_from_the_same_transition():
    buf = ReplayBuffer(64, (3,), (2,), generator=torch.Generator().manual_seed(0))
    fill(buf, 50)
    b = buf.sample(40)
    i = b.reward.long()
    assert torch.equal(b.obs[:, 0], b.reward) and torch.equal(b.next_obs[:, 2], b.reward + 0.5)
    assert torch.equal(b.action[:, 1], -b.reward)
    assert torch.equal(b.terminated.bool(), i % 7 == 0) and torch.equal(b.truncated.bool(), i % 5 == 0)
    d = ReplayBuffer(8, (2,), (), discrete=True, generator=torch.Generator().manual_seed(0))
    for k in range(8):
        d.add(np.full(2, k), k % 3, float(k), np.full(2, k), False, False)
    b = d.sample(16)
    assert b.action.dtype == torch.int64 and torch.equal(b.action, b.reward.long() % 3)


def test_minimize_falls_back_for_other_optimizers():
    """Two parameter groups or a non-fused optimizer take torch's own step, with every group's gradient."""
    torch.manual_seed(0)
    net = mlp(3, [8], 1)
    first, last = list(net[0].parameters()), list(net[2].parameters())
    opt = torch.optim.SGD([{"params": first}, {"params": last, "lr": 0.5}], lr=0.1)
    before = [p.clone() for p in net.parameters()]
    minimize(opt, net(torch.randn(16, 3)).pow(2).mean())
    assert all(not torch.equal(b, p) for b, p in zip(before, net.parameters()))
    assert all(p.grad is None for p in net.parameters())


def test_minimize_falls_back_to_the_public_step_when_the_private_kernel_is_unusable(monkeypatch):
    """A torch whose private fused Adam kernel moved or changed its signature: the step goes through opt.step()
    instead, with the same arithmetic, and every later step too."""
    from rlbase.core import nets as nets_module

    def step_all(broken: bool):
        torch.manual_seed(0)
        net = mlp(3, [8], 1)
        opt = adam(net.parameters(), 1e-2)
        monkeypatch.setitem(nets_module._FAST, "ok", True)
        if broken:
            def changed(*a, **k):
                raise TypeError("_fused_adam_() got an unexpected keyword argument 'lr'")
            monkeypatch.setattr(nets_module, "_fused_kernel", lambda decoupled: changed)
        for _ in range(4):
            minimize(opt, net(torch.arange(6.0).view(2, 3)).pow(2).mean())
        monkeypatch.undo()
        return [p.detach().clone() for p in net.parameters()], opt.state_dict()

    (fast, _), (slow, slow_state) = step_all(False), step_all(True)
    assert all(torch.equal(a, b) for a, b in zip(fast, slow))
    assert all(float(s["step"]) == 4 for s in slow_state["state"].values())
    assert nets_module._FAST["ok"]  # monkeypatch put it back


def test_every_registered_agent_satisfies_its_loop_kinds_protocol():
    """An algorithm's Agent has what its loop calls (optional hooks included, with the Hooks defaults)."""
    from rlbase import algos
    from rlbase.core.agent import PROTOCOLS, Agent
    from rlbase.envs import EnvSpec
    from tests.test_offline import pendulum_spec

    cartpole = EnvSpec(id="CartPole-v1", obs_shape=(4,), action_shape=(), discrete=True, n_actions=2, action_low=None,
                       action_high=None, max_episode_steps=500)
    for name in algos.ALGOS:
        module = algos.get(name)
        spec = cartpole if "discrete" in module.ACTION_SPACES and "continuous" not in module.ACTION_SPACES else pendulum_spec()
        agent = module.Agent(module.Config(), spec, torch.device("cpu"))
        protocol = PROTOCOLS[module.LOOP]
        assert isinstance(agent, Agent) and isinstance(agent, protocol), (name, protocol.__name__)


def test_every_agent_acts_on_a_batch_of_tensors_and_one_row_draws_as_before():
    """``act`` takes observations (B, obs_dim) as a tensor and gives (B, ...) actions as one (int64 indices for
    discrete actions); deterministic rows are the rows acted on alone; the env boundary (``core.agent.act_env``) gives
    an int or a float32 array. DQN's batch of one draws exactly what its scalar epsilon-greedy drew."""
    from rlbase import algos
    from rlbase.core.agent import act_env, to_batch, to_env
    from rlbase.envs import EnvSpec
    from tests.test_offline import pendulum_spec

    cartpole = EnvSpec(id="CartPole-v1", obs_shape=(4,), action_shape=(), discrete=True, n_actions=2, action_low=None,
                       action_high=None, max_episode_steps=500)
    specs = {"discrete": cartpole, "continuous": pendulum_spec()}
    rng = np.random.default_rng(0)
    for name, kind, spec, agent in every_agent(specs, 2):
        obs = rng.normal(size=(5, spec.obs_dim))
        for det in (True, False):
            out = agent.act(torch.as_tensor(obs, dtype=torch.float32), deterministic=det,
                            generator=torch.Generator().manual_seed(0))
            assert torch.is_tensor(out) and out.shape == (5, *spec.action_shape), (name, kind)
            assert out.dtype == (torch.int64 if spec.discrete else torch.float32), (name, kind)
        if name != "bcq" or spec.discrete:  # continuous BCQ's deterministic action draws its candidates
            batch = agent.act(torch.as_tensor(obs, dtype=torch.float32), deterministic=True)
            rows = torch.cat([agent.act(to_batch(o, "cpu"), deterministic=True) for o in obs])
            torch.testing.assert_close(batch, rows, rtol=1e-5, atol=1e-6)
        one = act_env(agent, obs[0], deterministic=True, generator=torch.Generator().manual_seed(0))
        assert type(one) is int if spec.discrete else (one.dtype == np.float32 and one.shape == spec.action_shape)
    assert to_env(torch.tensor([[0.5]])).tolist() == [0.5] and to_env(torch.tensor([2])) == 2

    dqn = algos.get("dqn")
    agent = dqn.Agent(dqn.Config(eps_decay=30.0), cartpole, torch.device("cpu"), seeding.AgentRandom(0))
    gen = seeding.AgentRandom(0).explore  # the same stream, drawn as DQN.act drew one observation at a time
    x = torch.as_tensor(rng.normal(size=(200, 4)), dtype=torch.float32)
    for t in range(200):
        eps = agent.epsilon()
        expected = int(torch.randint(2, (), generator=gen)) if float(torch.rand((), generator=gen)) < eps else None
        got = agent.act(x[t:t + 1])
        if expected is None:
            expected = int(agent.q(x[t:t + 1]).argmax(dim=1)[0])
        assert int(got[0]) == expected, t
    assert agent.explore_steps == 200 and torch.equal(agent.rng.explore.get_state(), gen.get_state())


def test_minimize_first_step_falls_back_when_torch_cannot_make_the_state_privately(monkeypatch):
    """The first step makes the optimizer state with torch's private ``_init_group``; a torch where that is gone or
    changed takes the public step instead, with the same result."""
    def step_all(broken: bool):
        torch.manual_seed(0)
        net = mlp(3, [8], 1)
        opt = adam(net.parameters(), 1e-2)
        if broken:  # our call (the first) fails as on a torch where it changed; opt.step()'s own calls work
            real, calls = type(opt)._init_group, []

            def changed(self, *a):
                calls.append(1)
                if len(calls) == 1:
                    raise TypeError("_init_group() takes 8 positional arguments but 7 were given")
                return real(self, *a)
            monkeypatch.setattr(type(opt), "_init_group", changed)
        for _ in range(3):
            minimize(opt, net(torch.arange(6.0).view(2, 3)).pow(2).mean())
        monkeypatch.undo()
        return [p.detach().clone() for p in net.parameters()], opt.state_dict()

    (fast, fast_state), (slow, slow_state) = step_all(False), step_all(True)
    assert all(torch.equal(a, b) for a, b in zip(fast, slow))
    for k, s in fast_state["state"].items():
        assert all(torch.equal(v, slow_state["state"][k][n]) for n, v in s.items())


def test_a_training_process_never_imports_torchs_compiler(tmp_path):
    """A job of the command line (TD3 with a checkpoint: optimizer built, stepped, saved) never imports
    torch._dynamo, which torch's optimizers import on their first call only to mark code as not to be compiled
    (about as much CPU as ``import torch``, in every process of a sweep)."""
    import subprocess
    import sys

    code = ("import sys, torch; from rlbase.cli import cli; "
            f"rc = cli(['algo=td3', 'env=pendulum', 'logger=none', 'total_steps=300', 'eval_every=300', "
            f"'checkpoint_every=150', 'hydra.run.dir={tmp_path / 'run'}']); "
            "left = hasattr(torch.optim.Optimizer.zero_grad.__wrapped__, '__dynamo_disable'); "
            "print('rc', rc, 'dynamo', 'torch._dynamo' in sys.modules, 'marks-left', left)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, cwd=tmp_path)
    # ... and the marks it set are gone once the call returns: the process is as before for what runs next
    assert proc.stdout.split()[-6:] == ["rc", "0", "dynamo", "False", "marks-left", "False"], \
        proc.stdout[-2000:] + proc.stderr[-2000:]
