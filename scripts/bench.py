"""Speed benchmark: env steps/s, gradient updates/s, act latency and the machine's matmul peak, in one process.

    python scripts/bench.py                      # TD3/SAC/DDPG on Hopper-v5, DQN on CartPole-v1, A2C on CartPole-v1
    python scripts/bench.py --threads 1,2 --algos td3,sac
    python scripts/bench.py --quick              # a few steps of each, to check the script runs (CI)

Settings follow the peers' defaults for the comparison (batch 256, learning starts 1000, one update per env
step; DQN batch 128). For each thread count and algorithm it measures, after a warm-up:
- ``steps/s``: act -> env step -> store -> update, learning already started (what a training run sees);
- ``updates/s``: updates alone on a filled buffer;
- ``act (us)``: one exploratory action for one observation;
- ``% bound``: updates/s as a fraction of the FLOP bound (analytic FLOPs per update / measured matmul peak).
If stable-baselines3 is installed (``pip install -r requirements-bench.txt``), SB3 runs the same env steps in
the same process, alternating with ours, and the ratio is printed. The load average is recorded with each row.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("MUJOCO_GL", "egl")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import torch  # noqa: E402

import algos  # noqa: E402
import envs  # noqa: E402
from algos.common.buffer import ReplayBuffer  # noqa: E402
from envs import EnvConfig  # noqa: E402

CASES = {  # algo -> (env id, config overrides)
    "td3": ("Hopper-v5", {"batch_size": 256}),
    "sac": ("Hopper-v5", {"batch_size": 256}),
    "ddpg": ("Hopper-v5", {"batch_size": 256}),
    "dqn": ("CartPole-v1", {"batch_size": 128}),
    "a2c": ("CartPole-v1", {}),
}


def load() -> float:
    return os.getloadavg()[0]


def matmul_peak(n: int = 1024, reps: int = 20) -> float:
    a, b = torch.randn(n, n), torch.randn(n, n)
    for _ in range(3):
        a @ b
    t = time.perf_counter()
    for _ in range(reps):
        a @ b
    return 2 * n**3 * reps / (time.perf_counter() - t) / 1e9


def linear_flops(batch: int, dims: list[int], backward: bool) -> float:
    """Forward 2*B*i*o per layer; backward adds grad-input and grad-weight products (4*B*i*o)."""
    f = sum(2 * batch * i * o for i, o in zip(dims[:-1], dims[1:]))
    return f * 3 if backward else f


def flops_per_update(algo: str, spec, cfg) -> float:
    """Analytic FLOPs of one gradient update (matmuls, plus ~10 FLOPs per parameter for Adam and Polyak)."""
    B, obs, act = cfg.batch_size, spec.obs_dim, spec.action_dim
    if algo == "dqn":
        q = [obs, *cfg.hidden, spec.n_actions]
        params = sum(i * o + o for i, o in zip(q[:-1], q[1:]))
        return linear_flops(B, q, True) + linear_flops(B, q, False) + 12 * params
    a_dims = [obs, *cfg.actor_hidden, act * (2 if algo == "sac" else 1)]
    c_dims = [obs + act, *cfg.critic_hidden, 1]
    k = 1 if algo == "ddpg" else 2
    a_params = sum(i * o + o for i, o in zip(a_dims[:-1], a_dims[1:]))
    c_params = k * sum(i * o + o for i, o in zip(c_dims[:-1], c_dims[1:]))
    critic = k * linear_flops(B, c_dims, True) + linear_flops(B, a_dims, False) + k * linear_flops(B, c_dims, False)
    # actor step: actor fwd+bwd, critic fwd and its input-gradient backward (2/3 of a full backward)
    actor = linear_flops(B, a_dims, True) + (k if algo == "sac" else 1) * linear_flops(B, c_dims, False) * (1 + 2)
    freq = getattr(cfg, "policy_freq", 1)
    return critic + actor / freq + 10 * (c_params + a_params / freq) + 4 * (c_params + (a_params if algo != "sac" else 0)) / freq


def make_agent(algo: str, env_id: str, overrides: dict):
    module = algos.get(algo)
    cfg = module.Config(**overrides)
    spec = envs.probe(EnvConfig(name=env_id, id=env_id))
    return module, cfg, spec, module.Agent(cfg, spec, torch.device("cpu"))


def bench_off_policy(algo: str, env_id: str, overrides: dict, steps: int, updates: int, learning_starts: int) -> dict:
    module, cfg, spec, agent = make_agent(algo, env_id, overrides)
    env, _ = envs.make(EnvConfig(name=env_id, id=env_id), seed=0)
    gen = torch.Generator().manual_seed(0)
    buf = ReplayBuffer(100_000, spec.obs_shape, spec.action_shape, discrete=spec.discrete, generator=gen)
    obs, _ = env.reset(seed=0)

    def run(n: int, learn: bool) -> float:
        nonlocal obs
        t = time.perf_counter()
        for _ in range(n):
            action = agent.act(obs) if learn else env.action_space.sample()
            nxt, r, term, trunc, _ = env.step(action)
            buf.add(obs, action, r, nxt, term, trunc)
            obs = env.reset()[0] if term or trunc else nxt
            if learn:
                agent.update(buf.sample(cfg.batch_size))
        return n / (time.perf_counter() - t)

    run(learning_starts, learn=False)
    run(max(steps // 10, 10), learn=True)  # warm-up
    sps = run(steps, learn=True)
    t = time.perf_counter()
    for _ in range(updates):
        agent.update(buf.sample(cfg.batch_size))
    ups = updates / (time.perf_counter() - t)
    t = time.perf_counter()
    for _ in range(200):
        agent.act(obs)
    act_us = (time.perf_counter() - t) / 200 * 1e6
    env.close()
    return {"steps_per_s": sps, "updates_per_s": ups, "act_us": act_us, "flops_per_update": flops_per_update(algo, spec, cfg)}


def bench_a2c(env_id: str, steps: int) -> dict:
    from algos.common.loops import collect_rollout
    from algos.common.rollout import RolloutStorage

    module, cfg, spec, agent = make_agent("a2c", env_id, {})
    venv, _ = envs.make_vector(EnvConfig(name=env_id, id=env_id), 0, 16)
    storage = RolloutStorage(cfg.n_steps, 16, spec.obs_shape, spec.action_shape, spec.discrete, torch.device("cpu"))
    obs, _ = venv.reset(seed=0)

    def run(n: int) -> tuple[float, int]:
        nonlocal obs
        t, done, k = time.perf_counter(), 0, 0
        while done < n:
            obs = collect_rollout(agent, venv, storage, obs, cfg.gamma, lambda *a: None)
            agent.update(storage.batch(agent.value(obs), cfg.gamma, cfg.gae_lambda))
            done += cfg.n_steps * 16
            k += 1
        dt = time.perf_counter() - t
        return done / dt, k / dt

    run(max(steps // 10, 80))
    sps, ups = run(steps)
    venv.close()
    return {"steps_per_s": sps, "updates_per_s": ups, "act_us": float("nan"), "flops_per_update": float("nan")}


def bench_sb3(algo: str, env_id: str, overrides: dict, steps: int, learning_starts: int) -> float | None:
    """SB3's env steps/s after learning starts, same batch size and network sizes as ours."""
    try:
        import stable_baselines3 as sb3
    except ImportError:
        return None
    import gymnasium as gym
    from stable_baselines3.common.callbacks import BaseCallback

    module, cfg, spec, _ = make_agent(algo, env_id, overrides)
    env = gym.make(env_id)
    if algo == "dqn":
        model = sb3.DQN("MlpPolicy", env, batch_size=cfg.batch_size, learning_starts=learning_starts, train_freq=1,
                        gradient_steps=1, policy_kwargs={"net_arch": list(cfg.hidden)}, seed=0, device="cpu")
    else:
        arch = {"pi": list(cfg.actor_hidden), "qf": list(cfg.critic_hidden)}
        cls = {"td3": sb3.TD3, "sac": sb3.SAC, "ddpg": sb3.DDPG}[algo]
        model = cls("MlpPolicy", env, batch_size=cfg.batch_size, learning_starts=learning_starts, train_freq=1,
                    gradient_steps=1, policy_kwargs={"net_arch": arch}, seed=0, device="cpu")

    class Timer(BaseCallback):
        def __init__(self):
            super().__init__()
            self.t0 = None
            self.n0 = learning_starts + max(steps // 10, 10)

        def _on_step(self) -> bool:
            if self.num_timesteps == self.n0:
                self.t0 = time.perf_counter()
            return True

    timer = Timer()
    total = timer.n0 + steps
    model.learn(total_timesteps=total, callback=timer)
    return steps / (time.perf_counter() - timer.t0)


def fmt(v: float, digits: int = 0) -> str:
    return "—" if v is None or (isinstance(v, float) and np.isnan(v)) else f"{v:.{digits}f}"


def main(argv=None) -> list[dict]:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--algos", default="td3,sac,ddpg,dqn,a2c")
    p.add_argument("--threads", default="2", help="comma-separated torch thread counts")
    p.add_argument("--steps", type=int, default=2000, help="timed env steps per measurement (after warm-up)")
    p.add_argument("--updates", type=int, default=500, help="timed updates on a filled buffer")
    p.add_argument("--learning-starts", type=int, default=1000)
    p.add_argument("--no-sb3", action="store_true", help="skip the SB3 comparison even if installed")
    p.add_argument("--quick", action="store_true", help="tiny budgets: only checks that everything runs")
    p.add_argument("--out", type=Path, default=Path("bench_results"))
    args = p.parse_args(argv)
    if args.quick:
        args.steps, args.updates, args.learning_starts = 60, 20, 300
    rows = []
    for threads in [int(t) for t in args.threads.split(",")]:
        torch.set_num_threads(threads)
        peak = matmul_peak(512 if args.quick else 1024, 3 if args.quick else 20)
        print(f"threads={threads} matmul peak {peak:.0f} GFLOP/s (load {load():.2f})", flush=True)
        for algo in args.algos.split(","):
            env_id, overrides = CASES[algo]
            if algo == "a2c":
                res = bench_a2c(env_id, args.steps * 10)
            else:
                res = bench_off_policy(algo, env_id, overrides, args.steps, args.updates, args.learning_starts)
            sb3 = None if args.no_sb3 or algo == "a2c" else bench_sb3(algo, env_id, overrides, args.steps, args.learning_starts)
            bound = peak * 1e9 / res["flops_per_update"] if res["flops_per_update"] == res["flops_per_update"] else float("nan")
            row = {"algo": algo, "env": env_id, "threads": threads, "load": load(), "matmul_gflops": peak, **res,
                   "flop_bound_updates_per_s": bound, "fraction_of_bound": res["updates_per_s"] / bound,
                   "sb3_steps_per_s": sb3, "ratio_vs_sb3": (res["steps_per_s"] / sb3) if sb3 else None}
            rows.append(row)
            print(f"  {algo:5s} {env_id:12s} steps/s {fmt(row['steps_per_s'])}  updates/s {fmt(row['updates_per_s'])}  "
                  f"act {fmt(row['act_us'])} us  bound {fmt(100 * row['fraction_of_bound'])}%  "
                  f"SB3 {fmt(sb3)} ({fmt(row['ratio_vs_sb3'], 2)}x)  load {row['load']:.2f}", flush=True)
    md = ["| algo | env | threads | steps/s | updates/s | act (us) | FLOP bound (updates/s) | % of bound | SB3 steps/s | ratio | load |",
          "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        md.append(f"| {r['algo']} | {r['env']} | {r['threads']} | {fmt(r['steps_per_s'])} | {fmt(r['updates_per_s'])} | "
                  f"{fmt(r['act_us'])} | {fmt(r['flop_bound_updates_per_s'])} | {fmt(100 * r['fraction_of_bound'])} | "
                  f"{fmt(r['sb3_steps_per_s'])} | {fmt(r['ratio_vs_sb3'], 2)} | {r['load']:.2f} |")
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "bench.md").write_text("\n".join(md) + "\n")
    (args.out / "bench.json").write_text(json.dumps(rows, indent=1))
    print("\n".join(md))
    return rows


if __name__ == "__main__":
    main()
