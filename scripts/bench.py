"""Speed benchmark: env steps/s, gradient updates/s, act latency and the machine's matmul peak, in one process.

    python scripts/bench.py                      # TD3/SAC/DDPG/PPO on Hopper-v5, DQN and A2C on CartPole-v1
    python scripts/bench.py --threads 1,2 --algos td3,sac --rounds 5
    python scripts/bench.py --quick              # a few steps of each, to check the script runs (CI)
    python scripts/bench.py --algos cql,iql,td3_bc,bc   # offline updates at Hopper sizes (ms per update, % of bound)

Settings are the composed run config of ``python train.py algo=<algo> env=<env>`` (our defaults, with 1000
random/learning starts), and SB3 gets the same ones from that config (``scripts/parity.py``'s mapping). For
each thread count and algorithm it measures, after a warm-up:
- ``steps/s``: ``python train.py``'s own path -- ``train.run`` in this process with its loop, Runner, finite
  checks and logging (to ``metrics.jsonl`` only, ``logger=none``), continued block by block from its own
  checkpoint as a resumed run is; the rate is the Runner's ``time/sps`` inside each block (start-up, the
  resume and the block's final evaluation and checkpoint are outside it);
- ``bare steps/s``: the same agent in a bare act -> env step -> store -> update loop, no Runner; the gap
  between the two is what the real path costs beyond the update;
- ``updates/s``: updates alone on a filled buffer, and SB3's ``train()`` alone on its filled buffer;
- ``act (us)``: one exploratory action for one observation;
- ``% bound``: updates/s as a fraction of the FLOP bound (analytic FLOPs per update / measured matmul peak).
If stable-baselines3 is installed (``pip install -r requirements-bench.txt``), SB3's ``learn()`` trains the same
env at the same settings in the same process. Ours and SB3's timed blocks alternate (``--rounds`` of each, both models
kept warm between blocks), so drift of this noisy machine hits both; the table gives the median of each and
the median of the per-round ratios. The 1-minute load average is recorded with each row.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("MUJOCO_GL", "egl")

import numpy as np  # noqa: E402
import torch  # noqa: E402
from omegaconf import OmegaConf  # noqa: E402

# this checkout's rlbase first, also when another checkout's rlbase is installed (editable) in the venv: a script
# run from a worktree or a second clone then uses (and writes into) its own tree
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from rlbase import (
    algos,  # noqa: E402
    envs,  # noqa: E402
)
from rlbase.core.agent import act_env  # noqa: E402
from rlbase.core.buffer import ReplayBuffer  # noqa: E402
from rlbase.envs import EnvConfig  # noqa: E402

CASES = {  # algo -> (env option, env id)
    "td3": ("hopper", "Hopper-v5"),
    "sac": ("hopper", "Hopper-v5"),
    "ddpg": ("hopper", "Hopper-v5"),
    "dqn": ("cartpole", "CartPole-v1"),
    "ppo": ("hopper", "Hopper-v5"),
    "a2c": ("cartpole", "CartPole-v1"),
    # offline updates at Hopper's sizes (on random transitions: the data do not change an update's cost)
    "cql": ("hopper", "Hopper-v5"),
    "cql_bf16": ("hopper", "Hopper-v5"),  # CQL with algo.precision=bf16 (the conservative term under bf16 autocast)
    "iql": ("hopper", "Hopper-v5"),
    "td3_bc": ("hopper", "Hopper-v5"),
    "bc": ("hopper", "Hopper-v5"),
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


def mlp_flops(batch: int, dims: list[int], *, weight_grad: bool = False, input_grad: bool = False,
              first_input_grad: bool = False) -> float:
    """Matmul FLOPs of an MLP: forward 2*B*i*o per layer; each backward product (gradient of the weights, of the
    layer's input) costs the same again. The first layer's input gradient is only needed when the network's
    input is itself differentiated (a critic's action input in an actor loss)."""
    total = 0.0
    for n, (i, o) in enumerate(zip(dims[:-1], dims[1:])):
        f = 2 * batch * i * o
        total += f + (f if weight_grad else 0) + (f if input_grad and (n > 0 or first_input_grad) else 0)
    return total


def n_params(dims: list[int]) -> int:
    return sum(i * o + o for i, o in zip(dims[:-1], dims[1:]))


def flops_per_update(algo: str, spec, cfg) -> float:
    """Analytic FLOPs of one gradient update: the matmuls of every forward and backward product the update
    needs, plus ~12 FLOPs per parameter per Adam step and 3 per Polyak-averaged parameter."""
    B, obs, act = cfg.batch_size, spec.obs_dim, spec.action_dim
    if algo == "dqn":
        q = [obs, *cfg.hidden, spec.n_actions]
        train = mlp_flops(B, q, weight_grad=True, input_grad=True)
        target = mlp_flops(B, q) * (2 if cfg.double else 1)
        return train + target + (12 + 3) * n_params(q)
    a_dims = [obs, *cfg.actor_hidden, act * (2 if algo == "sac" else 1)]
    c_dims = [obs + act, *cfg.critic_hidden, 1]
    k = 1 if algo == "ddpg" else 2  # critics
    m = 2 if algo == "sac" else 1  # critics in the actor loss (TD3: Q1 only; SAC: min of both)
    actor_fb = mlp_flops(B, a_dims, weight_grad=True, input_grad=True)
    critic_fb = mlp_flops(B, c_dims, weight_grad=True, input_grad=True)
    critic_through = mlp_flops(B, c_dims, input_grad=True, first_input_grad=True)  # to the action, no weight grads
    critic_step = k * critic_fb + mlp_flops(B, a_dims) + k * mlp_flops(B, c_dims)  # + target actor/critics forward
    actor_step = actor_fb + m * critic_through
    freq = getattr(cfg, "policy_freq", 1)
    a_params, c_params = n_params(a_dims), k * n_params(c_dims)
    optim = 12 * (c_params + a_params / freq)
    # target critics (and TD3/DDPG's target actor) are averaged when the actor steps; SAC every update, no target actor
    polyak = 3 * c_params if algo == "sac" else 3 * (c_params + a_params) / freq
    return critic_step + actor_step / freq + optim + polyak


def make_agent(algo: str, env_id: str, overrides: dict):
    module = algos.get(algo)
    cfg = module.Config(**overrides)
    spec = envs.probe(EnvConfig(name=env_id, id=env_id))
    return module, cfg, spec, module.Agent(cfg, spec, torch.device("cpu"))


def run_overrides(algo: str, env: str, learning_starts: int, block: int, every: int = 1) -> list[str]:
    """``train.py`` overrides of the benchmarked runs: defaults, plus starts, logging and no periodic work."""
    return [f"algo={algo}", f"env={env}", f"algo.random_steps={learning_starts}",
            f"algo.learning_starts={learning_starts}", "logger=none", "progress=false", "eval_episodes=1", "keep_replay=true",
            f"log_every={log_every_for(block, every)}", "eval_every=1000000000", "checkpoint_every=1000000000"]


def log_every_for(block: int, every: int) -> int:
    """Rows at whole update phases, so each logged interval holds the same share of updates."""
    return every * max(block // (3 * every), 1) if every > 1 else max(block // 3, 1)


class TrainPath:
    """Our side as ``python train.py`` runs it: ``train.run`` in-process, extended by ``n`` env steps per call and
    resumed from its own checkpoint each time. ``run`` returns the Runner's logged env steps/s inside the block
    (its first interval, which holds the resume, is left out)."""

    def __init__(self, overrides: list[str], learning_starts: int, run_dir: Path, key: str = "total_steps"):
        import shutil

        from rlbase.report.parity import compose_overrides

        self.overrides, self.dir, self.total, self.key = overrides, run_dir, learning_starts, key
        self.compose = compose_overrides
        shutil.rmtree(run_dir, ignore_errors=True)
        run_dir.mkdir(parents=True)
        self._run()

    def _run(self) -> None:
        from rlbase.runtime import job as train

        cfg = self.compose([*self.overrides, f"{self.key}={self.total}", f"hardware.threads={torch.get_num_threads()}"])
        train.run(cfg, envs.probe(cfg.env), self.dir)

    def run(self, n: int) -> float:
        from rlbase.core.logger import read_metrics

        before, self.total = self.total, self.total + n
        t = time.perf_counter()
        self._run()
        rates = [r["time/sps"] for r in read_metrics(self.dir / "metrics.jsonl") if "time/sps" in r and r["step"] > before]
        if not rates:  # a block shorter than log_every (warm-up): the whole call, start-up included
            return n / (time.perf_counter() - t)
        kept = rates[1:] if len(rates) > 1 else rates
        return float(len(kept) / np.sum(1.0 / np.asarray(kept)))  # equal-length intervals: the harmonic mean


class Ours:
    """Our agent in a bare loop: act -> env step -> store -> update (no Runner, checks or logging)."""

    def __init__(self, algo: str, cfg, learning_starts: int):
        self.algo = algo
        self.spec = envs.probe(cfg.env)
        self.cfg = OmegaConf.to_object(cfg.algo)  # the dataclass, as train.run hands it to the agent
        self.agent = algos.get(algo).Agent(self.cfg, self.spec, torch.device("cpu"))
        self.env, _ = envs.make(cfg.env, seed=0)
        gen = torch.Generator().manual_seed(0)
        self.buf = ReplayBuffer(min(self.cfg.buffer_size, 100_000), self.spec.obs_shape, self.spec.action_shape, discrete=self.spec.discrete,
                                generator=gen)
        self.obs, _ = self.env.reset(seed=0)
        self.run(learning_starts, learn=False)

    def run(self, n: int, learn: bool = True) -> float:
        agent, env, buf, batch = self.agent, self.env, self.buf, self.cfg.batch_size
        every, k = self.cfg.train_every, self.cfg.gradient_steps
        obs = self.obs
        t = time.perf_counter()
        for i in range(n):
            action = act_env(agent, obs) if learn else env.action_space.sample()
            nxt, r, term, trunc, _ = env.step(action)
            buf.add(obs, action, r, nxt, term, trunc)
            obs = env.reset()[0] if term or trunc else nxt
            if learn and (i + 1) % every == 0:
                for _ in range(k):
                    agent.update(buf.sample(batch))
        self.obs = obs
        return n / (time.perf_counter() - t)

    def updates_per_s(self, n: int) -> float:
        t = time.perf_counter()
        for _ in range(n):
            self.agent.update(self.buf.sample(self.cfg.batch_size))
        return n / (time.perf_counter() - t)

    def matmul_share(self, n: int = 100) -> tuple[float, float]:
        """Profile n updates: the fraction of their CPU time spent in matmul kernels, and those kernels' GFLOP/s
        (analytic matmul FLOPs over their measured time) -- how close the update is to its matmul floor."""
        from torch.profiler import ProfilerActivity, profile

        with profile(activities=[ProfilerActivity.CPU]) as prof:
            self.updates_per_s(n)
        events = prof.key_averages()
        total = sum(e.self_cpu_time_total for e in events)
        mm = sum(e.self_cpu_time_total for e in events if e.key in ("aten::mm", "aten::addmm", "aten::bmm", "aten::baddbmm"))
        return mm / total, self.flops() * n / (mm * 1e-6) / 1e9

    def act_us(self, n: int = 500) -> float:
        t = time.perf_counter()
        for _ in range(n):
            act_env(self.agent, self.obs)
        return (time.perf_counter() - t) / n * 1e6

    def flops(self) -> float:
        return flops_per_update(self.algo, self.spec, self.cfg)


class SB3:
    """Stable-Baselines3's ``learn()`` at the settings of our composed config (``scripts/parity.py``'s mapping);
    ``run(n)`` continues training for n more env steps and returns their rate."""

    def __init__(self, cfg, learning_starts: int):
        from rlbase.report.parity import sb3_model

        self.cfg = cfg
        self.model = sb3_model(cfg, envs.make(cfg.env, seed=0)[0])
        self.model.learn(total_timesteps=learning_starts)

    def run(self, n: int) -> float:
        t = time.perf_counter()
        self.model.learn(total_timesteps=n, reset_num_timesteps=False)
        return n / (time.perf_counter() - t)

    def updates_per_s(self, n: int) -> float:
        t = time.perf_counter()
        self.model.train(gradient_steps=n, batch_size=self.cfg.algo.batch_size)
        return n / (time.perf_counter() - t)


def bench_a2c(env_id: str, steps: int) -> dict:
    from rlbase.core.rollout import RolloutStorage
    from rlbase.loops.on_policy import collect_rollout

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


def bench_on_policy(algo: str, env: str, args, with_sb3: bool) -> dict:
    """PPO: blocks of whole rollouts through the train.py path (its tuned MuJoCo settings, evaluation off) and
    SB3's PPO ``learn()`` at the same settings (``scripts/parity.py``), alternating; medians over ``args.rounds``."""
    from rlbase.report.parity import compose_overrides, sb3_model, sb3_vec_env

    base = [f"algo={algo}", f"env={env}", "logger=none", "progress=false", "eval_episodes=1",
            "eval_every=1000000000", "checkpoint_every=1000000000"]
    cfg = compose_overrides(base)
    rollout = cfg.algo.num_envs * cfg.algo.n_steps
    block = rollout * max(1, args.steps // 150)  # 4 rollouts at the default --steps 600; 1 with --quick
    path = TrainPath([*base, f"log_every={rollout}"], rollout, args.out / "runs" / f"{algo}_{env}_t{torch.get_num_threads()}")
    path.run(rollout)  # warm-up
    sb3 = None
    if with_sb3:
        sb3 = sb3_model(cfg, sb3_vec_env(cfg))
        sb3.learn(total_timesteps=rollout)
    mine, theirs, loads = [], [], []
    for _ in range(args.rounds):
        mine.append(path.run(block))
        if sb3 is not None:
            t = time.perf_counter()
            sb3.learn(total_timesteps=block, reset_num_timesteps=False)
            theirs.append(block / (time.perf_counter() - t))
        loads.append(load())
    res = {"steps_per_s": float(np.median(mine)), "steps_per_s_rounds": mine, "updates_per_s": float("nan"),
           "act_us": float("nan"), "flops_per_update": float("nan"), "load": max(loads)}
    if sb3 is not None:
        res.update(sb3_steps_per_s=float(np.median(theirs)), sb3_steps_per_s_rounds=theirs,
                   ratio_vs_sb3=float(np.median([a / b for a, b in zip(mine, theirs)])))
    return res


def bench_off_policy(algo: str, env: str, args, with_sb3: bool) -> dict:
    """Alternate timed blocks of the train.py path, SB3's learn() and the bare loop (all warmed up first);
    medians over ``args.rounds``."""
    from rlbase.report.parity import compose_overrides

    cfg = compose_overrides(run_overrides(algo, env, args.learning_starts, args.steps))
    every = cfg.algo.train_every  # blocks of whole update phases (DQN on CartPole: 128 updates every 256 steps)
    args = argparse.Namespace(**{**vars(args), "steps": max(args.steps // every, 1) * every})
    overrides = run_overrides(algo, env, args.learning_starts, args.steps, every)
    path = TrainPath(overrides, args.learning_starts, args.out / "runs" / f"{algo}_{env}_t{torch.get_num_threads()}")
    path.run(max(args.steps // 10, 10))  # warm-up
    ours = Ours(algo, cfg, args.learning_starts)
    ours.run(max(args.steps // 10, 10))
    sb3 = SB3(cfg, args.learning_starts) if with_sb3 else None
    if sb3 is not None:
        sb3.run(max(args.steps // 10, 10))
    mine, bare, theirs, loads = [], [], [], []
    for _ in range(args.rounds):
        mine.append(path.run(args.steps))
        if sb3 is not None:
            theirs.append(sb3.run(args.steps))
        bare.append(ours.run(args.steps))
        loads.append(load())
    ups = ours.updates_per_s(args.updates)
    res = {"steps_per_s": float(np.median(mine)), "steps_per_s_rounds": mine, "bare_steps_per_s": float(np.median(bare)),
           "path_overhead": 1.0 - float(np.median([a / b for a, b in zip(mine, bare)])),
           "updates_per_s": ups, "act_us": ours.act_us(), "flops_per_update": ours.flops(), "load": max(loads)}
    if sb3 is not None:
        sb3_ups = sb3.updates_per_s(args.updates)
        res.update(sb3_steps_per_s=float(np.median(theirs)), sb3_steps_per_s_rounds=theirs,
                   ratio_vs_sb3=float(np.median([a / b for a, b in zip(mine, theirs)])),
                   sb3_updates_per_s=sb3_ups, update_ratio_vs_sb3=ups / sb3_ups)
    if args.profile:
        res["matmul_share"], res["matmul_gflops_in_update"] = ours.matmul_share()
    ours.env.close()
    return res


OFFLINE = ("cql", "cql_bf16", "iql", "td3_bc", "bc")


def offline_flops(algo: str, spec, cfg) -> float:
    """Analytic FLOPs of one offline update (matmuls, plus Adam and Polyak as in :func:`flops_per_update`)."""
    B, obs, act = cfg.batch_size, spec.obs_dim, spec.action_dim
    if algo == "bc":
        dims = [obs, *cfg.hidden, act]
        return mlp_flops(B, dims, weight_grad=True, input_grad=True) + 12 * n_params(dims)
    if algo == "td3_bc":
        return flops_per_update("td3", spec, cfg)
    if algo == "iql":
        q, v, pi = [obs + act, *cfg.hidden, 1], [obs, *cfg.hidden, 1], [obs, *cfg.hidden, act]
        fb = lambda dims, rows=B: mlp_flops(rows, dims, weight_grad=True, input_grad=True)  # noqa: E731
        return (2 * mlp_flops(B, q) + fb(v) + 2 * mlp_flops(B, v) + fb(pi) + 2 * fb(q)
                + 12 * (n_params(v) + n_params(pi) + 2 * n_params(q)) + 3 * 2 * n_params(q))
    # CQL: SAC's update, plus the conservative term: the policy sampled at B*n states and B*n next states (no
    # gradient), and both critics forward and backward on 3*B*n proposal rows + B data rows
    n = cfg.num_random
    a_dims, c_dims = [obs, *cfg.actor_hidden, 2 * act], [obs + act, *cfg.critic_hidden, 1]
    rows = 3 * B * n + B
    return (flops_per_update("sac", spec, cfg) + 2 * mlp_flops(B * n, a_dims)
            + 2 * mlp_flops(rows, c_dims, weight_grad=True, input_grad=True))


def bench_offline(algo: str, env: str, args) -> dict:
    """Offline updates through the train.py path: ``train.run`` on a dataset of random Hopper-sized transitions
    (the cost of an update does not depend on the data), in blocks continued from the run's checkpoint; the
    rate is the Runner's logged updates/s inside each block. Also ms per update and analytic FLOPs."""
    from rlbase import data
    from rlbase.report.parity import compose_overrides

    spec = envs.probe(EnvConfig(name=CASES[algo][1], id=CASES[algo][1]))
    extra = ["algo.precision=bf16"] if algo == "cql_bf16" else []
    name, algo = algo, algo.removesuffix("_bf16")
    path = args.out / "data" / f"random_{spec.id}"
    if not data.paths(path)[0].exists():
        rng = np.random.default_rng(0)
        n = 20_000
        obs = rng.normal(0, 1, (n + 1, spec.obs_dim)).astype(np.float32)
        trunc = np.zeros(n, bool)
        trunc[999::1000] = True
        data.write(path, obs[:-1], rng.uniform(spec.action_low, spec.action_high, (n, spec.action_dim)),
                   rng.normal(0, 1, n), obs[1:], np.zeros(n, bool), trunc, env_id=spec.id, discrete=False,
                   source={"kind": "bench: random transitions"})
    block = max(args.updates // 5, 20) if algo == "cql" else args.updates
    base = [f"algo={algo}", *extra, f"env={env}", f"dataset.path={data.paths(path)[0]}", "logger=none", "progress=false",
            "eval_episodes=1", "eval_every=1000000000", "checkpoint_every=1000000000", f"log_every={max(block // 4, 1)}"]
    cfg = compose_overrides(base)
    run = TrainPath(base, max(block // 4, 1), args.out / "runs" / f"{name}_{env}_t{torch.get_num_threads()}",
                    key="total_updates")
    run.run(block)  # warm-up
    rates, loads = [], []
    for _ in range(args.rounds):
        rates.append(run.run(block))
        loads.append(load())
    ups = float(np.median(rates))
    return {"steps_per_s": float("nan"), "updates_per_s": ups, "updates_per_s_rounds": rates, "ms_per_update": 1e3 / ups,
            "act_us": float("nan"), "flops_per_update": offline_flops(algo, spec, OmegaConf.to_object(cfg.algo)),
            "load": max(loads)}


def fmt(v: float, digits: int = 0) -> str:
    return "—" if v is None or (isinstance(v, float) and np.isnan(v)) else f"{v:.{digits}f}"


def have_sb3() -> bool:
    try:
        import stable_baselines3  # noqa: F401
    except ImportError:
        return False
    return True


def main(argv=None) -> list[dict]:
    import sys

    argv = sys.argv[1:] if argv is None else list(argv)
    if any(a == "--seeds" or a.startswith("--seeds=") for a in argv):  # seeds in one process: scripts/bench_seeds.py
        try:
            from scripts import bench_seeds
        except ImportError:  # run as `python scripts/bench.py`: this directory is on sys.path
            import bench_seeds
        return bench_seeds.main(argv)
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seeds", help="comma-separated K (e.g. 1,2,5,8): seeds in one process against separate processes; "
                   "the whole command line then goes to scripts/bench_seeds.py (its options: --algos, --precision, "
                   "--quick, --out; see its docstring)")
    p.add_argument("--algos", default="td3,sac,ddpg,dqn,a2c,ppo")
    p.add_argument("--threads", default="2", help="comma-separated torch thread counts")
    p.add_argument("--steps", type=int, default=600, help="timed env steps per block (after warm-up)")
    p.add_argument("--rounds", type=int, default=5, help="timed blocks of ours and of SB3's, alternating")
    p.add_argument("--updates", type=int, default=500, help="timed updates on a filled buffer")
    p.add_argument("--learning-starts", type=int, default=1000)
    p.add_argument("--no-sb3", action="store_true", help="skip the SB3 comparison even if installed")
    p.add_argument("--profile", action="store_true",
                   help="also profile 100 updates: share of time in matmul kernels and their GFLOP/s there")
    p.add_argument("--quick", action="store_true", help="tiny budgets: only checks that everything runs")
    p.add_argument("--out", type=Path, default=Path("bench_results"))
    args = p.parse_args(argv)
    if args.quick:
        args.steps, args.updates, args.learning_starts, args.rounds = 60, 20, 300, 1
    known = set(CASES)
    for algo in args.algos.split(","):
        if algo not in known:
            p.error(f"unknown algo {algo!r} in --algos; allowed: {', '.join(sorted(known))}")
    with_sb3 = not args.no_sb3 and have_sb3()
    if not args.no_sb3 and not with_sb3:
        print("stable-baselines3 is not installed: no comparison (pip install -r requirements-bench.txt)", flush=True)
    rows = []
    for threads in [int(t) for t in args.threads.split(",")]:
        torch.set_num_threads(threads)
        peak = matmul_peak(512 if args.quick else 1024, 3 if args.quick else 20)
        print(f"threads={threads} matmul peak {peak:.0f} GFLOP/s (load {load():.2f})", flush=True)
        for algo in args.algos.split(","):
            env, env_id = CASES[algo]
            if algo == "a2c":
                res = {**bench_a2c(env_id, args.steps * 20), "load": load()}
            elif algo == "ppo":
                res = bench_on_policy(algo, env, args, with_sb3)
            elif algo in OFFLINE:
                res = bench_offline(algo, env, args)
            else:
                res = bench_off_policy(algo, env, args, with_sb3)
            flops = res["flops_per_update"]
            bound = peak * 1e9 / flops if flops == flops else float("nan")
            row = {"algo": algo, "env": env_id, "threads": threads, "matmul_gflops": peak, "sb3_steps_per_s": None,
                   "ratio_vs_sb3": None, "bare_steps_per_s": None, "path_overhead": None, "sb3_updates_per_s": None,
                   "update_ratio_vs_sb3": None, **res, "flop_bound_updates_per_s": bound,
                   "fraction_of_bound": res["updates_per_s"] / bound}
            rows.append(row)
            print(f"  {algo:5s} {env_id:12s} steps/s {fmt(row['steps_per_s'])} (bare {fmt(row['bare_steps_per_s'])})  "
                  f"updates/s {fmt(row['updates_per_s'])} (SB3 {fmt(row['sb3_updates_per_s'])})  "
                  f"act {fmt(row['act_us'])} us  bound {fmt(100 * row['fraction_of_bound'])}%  "
                  f"SB3 {fmt(row['sb3_steps_per_s'])} ({fmt(row['ratio_vs_sb3'], 2)}x)  load {row['load']:.2f}", flush=True)
            if "ms_per_update" in row:
                print(f"        {row['ms_per_update']:.1f} ms per update, {row['flops_per_update'] / 1e9:.2f} GFLOP, "
                      f"{row['flops_per_update'] / 1e9 * row['updates_per_s']:.0f} GFLOP/s", flush=True)
            if "matmul_share" in row:
                print(f"        matmul kernels: {100 * row['matmul_share']:.0f}% of the update's CPU time, "
                      f"{row['matmul_gflops_in_update']:.0f} GFLOP/s there (profiled)", flush=True)
    md = ["| algo | env | threads | train.py steps/s | bare loop steps/s | path overhead | SB3 learn() steps/s "
          "| end-to-end ratio | updates/s | SB3 updates/s | update ratio | act (us) | MFLOP/update "
          "| FLOP bound (updates/s) | % of bound | load |",
          "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        over = fmt(100 * r["path_overhead"]) + "%" if r["path_overhead"] is not None else "—"
        md.append(f"| {r['algo']} | {r['env']} | {r['threads']} | {fmt(r['steps_per_s'])} | {fmt(r['bare_steps_per_s'])} "
                  f"| {over} | {fmt(r['sb3_steps_per_s'])} | {fmt(r['ratio_vs_sb3'], 2)} | {fmt(r['updates_per_s'])} "
                  f"| {fmt(r['sb3_updates_per_s'])} | {fmt(r['update_ratio_vs_sb3'], 2)} | {fmt(r['act_us'])} "
                  f"| {fmt(r['flops_per_update'] / 1e6)} | {fmt(r['flop_bound_updates_per_s'])} "
                  f"| {fmt(100 * r['fraction_of_bound'])} | {r['load']:.2f} |")
    peaks = ", ".join(sorted({f"{r['matmul_gflops']:.0f} GFLOP/s at {r['threads']} thread(s)" for r in rows}))
    md.append(f"\nMatmul peak (1024x1024 float32) in this run: {peaks}. Ratio: median of per-round ratios "
              f"({args.rounds} alternating rounds of {args.steps} env steps).")
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "bench.md").write_text("\n".join(md) + "\n")
    (args.out / "bench.json").write_text(json.dumps(rows, indent=1))
    print("\n".join(md))
    return rows


if __name__ == "__main__":
    main()
