"""The ceiling of a TD3 update's speed on this CPU, before building anything for it (issue 33).

A TD3 update at Hopper's sizes (observation 11, action 3; actor and twin critics 256-256 MLPs; batch 256; Adam;
target smoothing; policy delay 2; Polyak targets), written here as plain torch code, timed as seed-updates per
second in these variants:

    fp32            one seed, the networks as separate weight matrices (F.linear)
    bf16            the same under bfloat16 autocast: bf16 matmul inputs, fp32 accumulation; weights, Adam state,
                    targets and losses fp32 (one autocast context per phase, closed before the optimizer step)
    batched-fp32    K seeds in one process: every weight gets a leading seed axis (the twin critics a 2K one) and
                    each layer is one torch.baddbmm; one Adam over the stacked weights; each seed its own batch
    batched-bf16    that, under bf16 autocast
    rlbase-fp32     rlbase's own TD3 update (algos/td3.py), for reference; rlbase-bf16 with algo.precision=bf16
    gemm-only       only the update's matrix products, each one torch.mm of its exact shape on preallocated
                    tensors (forward, weight and input gradients; the actor phase every other update): no autograd,
                    no elementwise work, no optimizer. No implementation of this update that multiplies these
                    shapes with torch's GEMM can be faster, so its "% of bound" is the reachable share of the peak.

A seed-update is one update of one seed: K seeds batched doing u updates/s do K*u seed-updates/s.

The FLOP bound: the matmul FLOPs of one update (forward and backward of actor and critics, targets included, the
actor phase counted at 1/policy_delay; biases and elementwise work left out) against the peak matmul throughput of
this machine at the same thread count, measured with one large square matmul per precision. "% of bound" is the
measured seed-updates/s times those FLOPs over that peak (the bf16 peak for bf16 variants).

    python scripts/ceiling.py                      # 2 threads, 3 s per variant
    python scripts/ceiling.py --threads 1 --seconds 5
    python scripts/ceiling.py --quick              # a smoke run of every variant (seconds; numbers mean nothing)

Each variant's time is split over --rounds rounds that go through all variants in turn (so a slow spell of the
machine hits all of them), and the median round is reported. Output: one table, then lines
``ceiling <variant> K=<k> <x> seed-updates/s`` for scripts. Run it on a quiet machine: anything else on the cores
changes every number.
"""

from __future__ import annotations

import argparse
import contextlib
import math
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F

# this checkout's rlbase first, also when another checkout's rlbase is installed (editable) in the venv: a script
# run from a worktree or a second clone then uses (and writes into) its own tree
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

OBS, ACT, HIDDEN, BATCH = 11, 3, 256, 256
GAMMA, TAU, LR = 0.99, 0.005, 3e-4
POLICY_NOISE, NOISE_CLIP, POLICY_DELAY = 0.2, 0.5, 2
ACTOR_DIMS = (OBS, HIDDEN, HIDDEN, ACT)
CRITIC_DIMS = (OBS + ACT, HIDDEN, HIDDEN, 1)
POOL = 8  # distinct batches cycled through (made before timing: sampling a replay buffer is not the update)


# ---------------------------------------------------------------------------------------------------- FLOPs

def mlp_matmul_flops(dims, rows: int, *, weight_grad: bool = False, input_grad: bool = False,
                     first_input_grad: bool = False) -> int:
    """Matmul FLOPs of one MLP call on ``rows`` rows: the forward, plus the backward's weight gradients and
    input gradients where asked (the first layer's input gradient only with ``first_input_grad``: autograd skips
    it when the network's input needs none)."""
    total = 0
    for i, (a, b) in enumerate(zip(dims[:-1], dims[1:])):
        mm = 2 * rows * a * b
        total += mm
        total += mm if weight_grad else 0
        total += mm if input_grad and (i > 0 or first_input_grad) else 0
    return total


def update_flops(rows: int = BATCH) -> dict[str, float]:
    critic_phase = (mlp_matmul_flops(ACTOR_DIMS, rows)  # target actor on s'
                    + 2 * mlp_matmul_flops(CRITIC_DIMS, rows)  # twin target critics
                    + 2 * mlp_matmul_flops(CRITIC_DIMS, rows, weight_grad=True, input_grad=True))  # twin critics
    actor_phase = (mlp_matmul_flops(ACTOR_DIMS, rows, weight_grad=True, input_grad=True)  # actor, its gradient
                   + mlp_matmul_flops(CRITIC_DIMS, rows, input_grad=True, first_input_grad=True))  # Q1 to the action
    return {"critic_phase": critic_phase, "actor_phase": actor_phase,
            "per_update": critic_phase + actor_phase / POLICY_DELAY}


def peak_matmul(dtype: torch.dtype, n: int, seconds: float) -> float:
    """FLOP/s of an n x n by n x n matmul in ``dtype`` (the best of a few timed stretches)."""
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(n, n, generator=g).to(dtype), torch.randn(n, n, generator=g).to(dtype)
    out = torch.empty(n, n, dtype=dtype)
    for _ in range(2):
        torch.mm(a, b, out=out)
    best = 0.0
    stretches = 3
    for _ in range(stretches):
        count, t0 = 0, time.perf_counter()
        while True:
            torch.mm(a, b, out=out)
            count += 1
            t = time.perf_counter() - t0
            if t >= seconds / stretches:
                break
        best = max(best, 2 * n ** 3 * count / t)
    return best


# ---------------------------------------------------------------------------------------------------- helpers

def mlp_gemms(dims, rows: int, *, weight_grad: bool = False, input_grad: bool = False,
              first_input_grad: bool = False) -> list[tuple[int, int, int]]:
    """The (m, k, n) shapes of the matrix products ``mlp_matmul_flops`` counts, in the same order."""
    out = []
    for i, (a, b) in enumerate(zip(dims[:-1], dims[1:])):
        out.append((rows, a, b))  # forward: (rows, a) @ (a, b)
        if weight_grad:
            out.append((a, rows, b))  # dW = x^T @ dy
        if input_grad and (i > 0 or first_input_grad):
            out.append((rows, b, a))  # dx = dy @ W^T
    return out


class GemmOnly:
    """Every matrix product of one TD3 update as one ``torch.mm`` of its exact shape (see the module docstring)."""

    def __init__(self, dtype: torch.dtype = torch.float32):
        critic = (mlp_gemms(ACTOR_DIMS, BATCH) + 2 * mlp_gemms(CRITIC_DIMS, BATCH)
                  + 2 * mlp_gemms(CRITIC_DIMS, BATCH, weight_grad=True, input_grad=True))
        actor = (mlp_gemms(ACTOR_DIMS, BATCH, weight_grad=True, input_grad=True)
                 + mlp_gemms(CRITIC_DIMS, BATCH, input_grad=True, first_input_grad=True))
        g = torch.Generator().manual_seed(0)

        def operands(shapes):
            return [(torch.randn(m, k, generator=g).to(dtype), torch.randn(k, n, generator=g).to(dtype),
                     torch.empty(m, n, dtype=dtype)) for m, k, n in shapes]
        self.critic, self.actor = operands(critic), operands(actor)
        self.flops = sum(2 * m * k * n for m, k, n in critic) + sum(2 * m * k * n for m, k, n in actor) / POLICY_DELAY
        self.i = 0

    def update(self, _batch=None) -> None:
        for a, b, out in self.critic:
            torch.mm(a, b, out=out)
        self.i += 1
        if self.i % POLICY_DELAY == 0:
            for a, b, out in self.actor:
                torch.mm(a, b, out=out)


def uniform_(t: torch.Tensor, fan_in: int, gen: torch.Generator) -> torch.Tensor:
    bound = 1.0 / math.sqrt(fan_in)
    return t.uniform_(-bound, bound, generator=gen)


def adam(params: list[torch.Tensor]) -> torch.optim.Optimizer:
    return torch.optim.Adam(params, lr=LR, fused=True)


def step(opt: torch.optim.Optimizer, params: list[torch.Tensor], loss: torch.Tensor) -> None:
    """One Adam step on ``loss`` for ``params`` only (the critic in the actor's loss gets no weight gradient)."""
    grads = torch.autograd.grad(loss, params)
    for p, g_ in zip(params, grads):
        p.grad = g_
    opt.step()
    for p in params:
        p.grad = None


def precision_context(bf16: bool):
    """bf16 autocast, or nothing. A new context per phase: autocast caches its bf16 copy of each weight until the
    context closes, so one held across an optimizer step would read the old weights."""
    return torch.autocast("cpu", dtype=torch.bfloat16) if bf16 else contextlib.nullcontext()


def make_batches(k: int, gen: torch.Generator) -> list[tuple[torch.Tensor, ...]]:
    """POOL batches of (obs, action, reward, next_obs, not_done, smoothing noise), leading seed axis of k
    (k = 0: no seed axis). The smoothing noise is drawn here too, so the two implementations can be compared on
    the same numbers."""
    lead = () if k == 0 else (k,)
    out = []
    for _ in range(POOL):
        out.append((torch.randn(*lead, BATCH, OBS, generator=gen),
                    torch.rand(*lead, BATCH, ACT, generator=gen) * 2 - 1,
                    torch.randn(*lead, BATCH, generator=gen),
                    torch.randn(*lead, BATCH, OBS, generator=gen),
                    (torch.rand(*lead, BATCH, generator=gen) > 0.01).float(),
                    torch.randn(*lead, BATCH, ACT, generator=gen)))
    return out


# --------------------------------------------------------------------------------------- one seed, F.linear

def linear_mlp(params: list[torch.Tensor], x: torch.Tensor) -> torch.Tensor:
    last = len(params) // 2 - 1
    for i in range(last + 1):
        x = F.linear(x, params[2 * i], params[2 * i + 1])
        if i < last:
            x = torch.relu_(x)
    return x


class OneSeed:
    """TD3 for one seed: actor, critics Q1 and Q2, their targets; weights as (out, in) matrices for F.linear."""

    def __init__(self, gen: torch.Generator, bf16: bool):
        self.bf16 = bf16
        self.actor = self._net(ACTOR_DIMS, gen)
        self.q1, self.q2 = self._net(CRITIC_DIMS, gen), self._net(CRITIC_DIMS, gen)
        self._finish()

    @staticmethod
    def _net(dims, gen) -> list[torch.Tensor]:
        params = []
        for a, b in zip(dims[:-1], dims[1:]):
            params += [uniform_(torch.empty(b, a), a, gen), uniform_(torch.empty(b), a, gen)]
        return params

    def _finish(self) -> None:
        for p in self.actor + self.q1 + self.q2:
            p.requires_grad_(True)
        self.critic_params = self.q1 + self.q2
        self.targets = [p.detach().clone() for p in self.actor + self.critic_params]
        na = len(self.actor)
        self.actor_t, self.q1_t, self.q2_t = (self.targets[:na], self.targets[na:na + len(self.q1)],
                                              self.targets[na + len(self.q1):])
        self.actor_opt, self.critic_opt = adam(self.actor), adam(self.critic_params)
        self.updates = 0

    def pi(self, params, obs):
        return torch.tanh(linear_mlp(params, obs)).float()  # actions in [-1, 1]

    def update(self, batch) -> tuple[torch.Tensor, torch.Tensor]:
        obs, action, reward, next_obs, not_done, eps = batch
        with precision_context(self.bf16):
            with torch.no_grad():
                noise = (eps * POLICY_NOISE).clamp(-NOISE_CLIP, NOISE_CLIP)
                next_action = (self.pi(self.actor_t, next_obs) + noise).clamp(-1.0, 1.0)
                sa = torch.cat([next_obs, next_action], -1)
                next_q = torch.minimum(linear_mlp(self.q1_t, sa), linear_mlp(self.q2_t, sa)).float().squeeze(-1)
                y = reward + GAMMA * not_done * next_q
            sa = torch.cat([obs, action], -1)
            q1, q2 = linear_mlp(self.q1, sa).float().squeeze(-1), linear_mlp(self.q2, sa).float().squeeze(-1)
            critic_loss = F.mse_loss(q1, y) + F.mse_loss(q2, y)
        step(self.critic_opt, self.critic_params, critic_loss)
        self.updates += 1
        actor_loss = torch.zeros(())
        if self.updates % POLICY_DELAY == 0:
            with precision_context(self.bf16):
                actor_loss = -linear_mlp(self.q1, torch.cat([obs, self.pi(self.actor, obs)], -1)).float().mean()
            step(self.actor_opt, self.actor, actor_loss)
            with torch.no_grad():
                torch._foreach_lerp_(self.targets, self.actor + self.critic_params, TAU)
        return critic_loss.detach(), actor_loss.detach()


# ------------------------------------------------------------------------------- K seeds, leading seed axis

def stacked_mlp(params: list[torch.Tensor], x: torch.Tensor) -> torch.Tensor:
    """x (G, B, in) through G stacked MLPs: weights (G, in, out), biases (G, 1, out)."""
    last = len(params) // 2 - 1
    for i in range(last + 1):
        x = torch.baddbmm(params[2 * i + 1], x, params[2 * i])
        if i < last:
            x = torch.relu_(x)
    return x


class Batched:
    """TD3 for k seeds at once. Actor weights (k, in, out); critic weights (2k, in, out), twin-major: [0, k) are
    the seeds' Q1, [k, 2k) their Q2, so Q1 alone is a leading slice. One Adam per network over the stacked weights
    (Adam is elementwise: the same as one Adam per seed); the losses are sums over seeds of each seed's loss, so
    each seed's gradient is its own."""

    def __init__(self, k: int, gen: torch.Generator, bf16: bool):
        self.k, self.bf16 = k, bf16
        self.actor = self._net(ACTOR_DIMS, k, gen)
        self.critic = self._net(CRITIC_DIMS, 2 * k, gen)
        self._finish()

    @staticmethod
    def _net(dims, groups, gen) -> list[torch.Tensor]:
        params = []
        for a, b in zip(dims[:-1], dims[1:]):
            params += [uniform_(torch.empty(groups, a, b), a, gen), uniform_(torch.empty(groups, 1, b), a, gen)]
        return params

    def _finish(self) -> None:
        for p in self.actor + self.critic:
            p.requires_grad_(True)
        self.actor_t = [p.detach().clone() for p in self.actor]
        self.critic_t = [p.detach().clone() for p in self.critic]
        self.actor_opt, self.critic_opt = adam(self.actor), adam(self.critic)
        self.updates = 0

    def pi(self, params, obs):
        return torch.tanh(stacked_mlp(params, obs)).float()

    def twin_q(self, params, obs, action) -> torch.Tensor:
        """(2, k, B): each seed's Q1 and Q2 on that seed's rows."""
        sa = torch.cat([obs, action], -1)  # (k, B, in)
        return stacked_mlp(params, torch.cat([sa, sa])).float().view(2, self.k, -1)

    def update(self, batch) -> tuple[torch.Tensor, torch.Tensor]:
        obs, action, reward, next_obs, not_done, eps = batch
        with precision_context(self.bf16):
            with torch.no_grad():
                noise = (eps * POLICY_NOISE).clamp(-NOISE_CLIP, NOISE_CLIP)
                next_action = (self.pi(self.actor_t, next_obs) + noise).clamp(-1.0, 1.0)
                next_q = self.twin_q(self.critic_t, next_obs, next_action).min(dim=0).values  # (k, B)
                y = reward + GAMMA * not_done * next_q
            q = self.twin_q(self.critic, obs, action)
            critic_loss = (q - y).pow(2).mean(dim=2).sum()  # sum over twins and seeds of each MSE
        step(self.critic_opt, self.critic, critic_loss)
        self.updates += 1
        actor_loss = torch.zeros(())
        if self.updates % POLICY_DELAY == 0:
            k = self.k
            with precision_context(self.bf16):
                q1 = [p[:k] for p in self.critic]
                sa = torch.cat([obs, self.pi(self.actor, obs)], -1)
                actor_loss = -stacked_mlp(q1, sa).float().mean(dim=(1, 2)).sum()
            step(self.actor_opt, self.actor, actor_loss)
            with torch.no_grad():
                torch._foreach_lerp_(self.actor_t + self.critic_t, self.actor + self.critic, TAU)
        return critic_loss.detach(), actor_loss.detach()


def one_seed_from(b: Batched) -> OneSeed:
    """The one-seed model holding the same weights as a k=1 batched one (for the cross-check)."""
    assert b.k == 1
    m = OneSeed.__new__(OneSeed)
    m.bf16 = b.bf16

    def conv(params, member):
        out = []
        for i in range(0, len(params), 2):
            # clone, not contiguous(): a (256, 1) weight's transpose is already "contiguous" and would share storage
            out += [params[i][member].detach().t().clone(memory_format=torch.contiguous_format),
                    params[i + 1][member, 0].detach().clone()]
        return out

    m.actor, m.q1, m.q2 = conv(b.actor, 0), conv(b.critic, 0), conv(b.critic, 1)
    m._finish()
    return m


def seed_of(b: Batched, j: int) -> Batched:
    """A k=1 batched model holding seed j's weights of ``b``."""
    m = Batched.__new__(Batched)
    m.k, m.bf16 = 1, b.bf16
    m.actor = [p.detach()[j:j + 1].clone() for p in b.actor]
    m.critic = [p.detach()[[j, b.k + j]].clone() for p in b.critic]
    m._finish()
    return m


def cross_check() -> float:
    """The same update three ways, fp32, four updates (two actor steps) on the same batches: the batched code at
    k=1 against the one-seed code from the same weights (their losses), and seed 1 of a k=2 batched model against
    that seed alone (its weights after the updates). The largest relative difference."""
    gen = torch.Generator().manual_seed(1)
    b = Batched(1, gen, bf16=False)
    one = one_seed_from(b)
    worst = 0.0
    for batch in make_batches(0, gen)[:4]:
        lb = b.update(tuple(t.unsqueeze(0) for t in batch))
        lo = one.update(batch)
        for x, y in zip(lb, lo):
            worst = max(worst, abs(x.item() - y.item()) / max(abs(y.item()), 1e-6))
    two = Batched(2, gen, bf16=False)
    alone = seed_of(two, 1)
    for batch in make_batches(2, gen)[:4]:
        two.update(batch)
        alone.update(tuple(t[1:2] for t in batch))
    for p, q in zip(seed_of(two, 1).actor + seed_of(two, 1).critic, alone.actor + alone.critic):
        worst = max(worst, ((p - q).abs().max() / q.abs().max()).item())
    return worst


# ---------------------------------------------------------------------------------------------------- timing

def rlbase_variant(bf16: bool, gen: torch.Generator):
    """rlbase's own TD3 agent at the same sizes, or None where rlbase is not importable."""
    try:
        import numpy as np

        from rlbase.algos.td3 import TD3, TD3Config
        from rlbase.core.buffer import Batch
        from rlbase.core.seeding import AgentRandom
        from rlbase.envs import EnvSpec
    except ImportError:
        return None
    spec = EnvSpec("Hopper-v5", (OBS,), False, 0, (ACT,), np.full(ACT, -1.0, np.float32),
                   np.full(ACT, 1.0, np.float32), 1000)
    cpu = torch.device("cpu")
    agent = TD3(TD3Config(precision="bf16" if bf16 else "fp32"), spec, cpu, AgentRandom(0, cpu))
    batches = [Batch(o, a, r, no, 1.0 - nd, torch.zeros_like(r)) for o, a, r, no, nd, _ in make_batches(0, gen)]
    return agent, batches


def runner(model, batches) -> Callable[[int], None]:
    it = [0]

    def run(n: int) -> None:
        for _ in range(n):
            model.update(batches[it[0] % POOL])
            it[0] += 1

    return run


def timed(run: Callable[[int], None], seconds: float) -> float:
    """Updates per second of ``run`` over about ``seconds`` (whole policy-delay cycles)."""
    count, t0 = 0, time.perf_counter()
    while True:
        run(POLICY_DELAY)
        count += POLICY_DELAY
        t = time.perf_counter() - t0
        if t >= seconds:
            return count / t


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--threads", type=int, default=2, help="torch threads (default 2)")
    p.add_argument("--seconds", type=float, default=3.0, help="timed seconds per variant (default 3)")
    p.add_argument("--rounds", type=int, default=3, help="rounds the seconds are split over (default 3)")
    p.add_argument("--ks", default="1,2,5,8", help="seed counts of the batched variants (default 1,2,5,8)")
    p.add_argument("--peak-n", type=int, default=2048, help="size of the peak-throughput matmul (default 2048)")
    p.add_argument("--no-rlbase", action="store_true", help="leave out the rows of rlbase's own TD3 update")
    p.add_argument("--quick", action="store_true", help="a smoke run: 0.2 s per variant, one round, 1024 matmul")
    args = p.parse_args(argv)
    if args.quick:
        args.seconds, args.rounds, args.peak_n = 0.2, 1, 1024
    torch.set_num_threads(args.threads)
    ks = [int(k) for k in args.ks.split(",")]
    bf16_hw = _cpu_flag("avx512_bf16")

    worst = cross_check()
    if worst > 1e-3:
        raise SystemExit(f"cross-check failed: the batched and one-seed updates differ by {worst:.2e} (relative)")

    flops = update_flops()
    peak_s = 0.5 if args.quick else 2.0
    peak = {"fp32": peak_matmul(torch.float32, args.peak_n, peak_s),
            "bf16": peak_matmul(torch.bfloat16, args.peak_n, peak_s)}

    gen = torch.Generator().manual_seed(0)
    variants: list[tuple[str, int, str, Callable[[int], None]]] = []
    for prec in ("fp32", "bf16"):
        variants.append((prec, 1, prec, runner(OneSeed(gen, prec == "bf16"), make_batches(0, gen))))
    for prec in ("fp32", "bf16"):
        for k in ks:
            variants.append((f"batched-{prec}", k, prec, runner(Batched(k, gen, prec == "bf16"), make_batches(k, gen))))
    if not args.no_rlbase:
        for prec in ("fp32", "bf16"):
            made = rlbase_variant(prec == "bf16", gen)
            if made is not None:
                variants.append((f"rlbase-{prec}", 1, prec, runner(*made)))
    gemm = GemmOnly()
    if abs(gemm.flops - flops["per_update"]) > 1e-6 * flops["per_update"]:
        raise SystemExit(f"gemm-only multiplies {gemm.flops:.0f} FLOPs per update, the count says {flops['per_update']:.0f}")
    variants.append(("gemm-only", 1, "fp32", runner(gemm, [None] * POOL)))

    for _, _, _, run in variants:  # warm-up: first calls allocate and pick kernels
        run(2 * POLICY_DELAY)
    rates: dict[int, list[float]] = {i: [] for i in range(len(variants))}
    for _ in range(args.rounds):
        for i, (_, _, _, run) in enumerate(variants):
            rates[i].append(timed(run, args.seconds / args.rounds))

    per_update = flops["per_update"]
    print(f"TD3 update, Hopper sizes: obs {OBS}, action {ACT}, actor and twin critics {HIDDEN}x{HIDDEN}, batch "
          f"{BATCH}, Adam, policy delay {POLICY_DELAY}; {args.threads} torch thread(s), {args.seconds:g} s per "
          f"variant over {args.rounds} round(s) (median round){'; QUICK: smoke run, numbers mean nothing' if args.quick else ''}")
    print(f"torch {torch.__version__}; avx512_bf16: {'yes' if bf16_hw else 'no' if bf16_hw is not None else 'unknown'}; "
          f"cross-check batched K=1 vs one-seed fp32: max relative loss difference {worst:.1e}")
    print(f"matmul FLOPs per seed-update: {per_update / 1e6:.1f} M (critic phase {flops['critic_phase'] / 1e6:.1f} M "
          f"every update, actor phase {flops['actor_phase'] / 1e6:.1f} M every {POLICY_DELAY})")
    print(f"peak matmul ({args.peak_n}x{args.peak_n}, {args.threads} thread(s)): fp32 {peak['fp32'] / 1e9:.1f} GFLOP/s, "
          f"bf16 {peak['bf16'] / 1e9:.1f} GFLOP/s -> bound fp32 {peak['fp32'] / per_update:.0f}, "
          f"bf16 {peak['bf16'] / per_update:.0f} seed-updates/s")
    print()
    base = statistics.median(rates[0])
    header = f"{'variant':<14} {'K':>2} {'seed-upd/s':>11} {'upd/s':>8} {'x fp32 K=1':>10} {'GFLOP/s':>8} {'% of bound':>10}"
    print(header)
    print("-" * len(header))
    lines = []
    for i, (name, k, prec, _) in enumerate(variants):
        ups = statistics.median(rates[i])
        seed_ups = ups * k
        gflops = seed_ups * per_update / 1e9
        print(f"{name:<14} {k:>2} {seed_ups:>11.1f} {ups:>8.1f} {seed_ups / base:>10.2f} {gflops:>8.1f} "
              f"{100 * seed_ups * per_update / peak[prec]:>9.1f}%")
        lines.append(f"ceiling {name} K={k} {seed_ups:.1f} seed-updates/s")
    print()
    print("\n".join(lines))


def _cpu_flag(flag: str):
    """Whether /proc/cpuinfo lists ``flag`` (None where there is no /proc/cpuinfo)."""
    try:
        with open("/proc/cpuinfo") as f:
            return flag in f.read().split()
    except OSError:
        return None


if __name__ == "__main__":
    main()
