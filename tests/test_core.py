"""Unit tests of the shared core: replay storage, target updates, checkpoints, seeding."""

import random

import numpy as np
import pytest
import torch

from algos.common import checkpoint, seeding
from algos.common.buffer import ReplayBuffer
from algos.common.nets import EnsembleMLP, hard_update, mlp, soft_update


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
    seeding.seed_everything(3)
    state = {"step": 5, "rng": seeding.global_rng_state(), "w": torch.arange(4.0)}
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


def test_rng_state_roundtrip():
    seeding.seed_everything(7)
    st = seeding.global_rng_state()
    a = (random.random(), np.random.rand(), torch.rand(1).item())
    seeding.set_global_rng_state(st)
    assert a == (random.random(), np.random.rand(), torch.rand(1).item())
