"""Several seeds in one process on a CUDA GPU: speed of K = 1, 8, 64 seeds, and an exact resume after SIGKILL.

    python scripts/gpu_check.py              # on a machine with one CUDA GPU: a few minutes
    python scripts/gpu_check.py --cpu-smoke  # the same steps with tiny sizes on the CPU (tests/test_bench_seeds.py)

On a machine without CUDA (and without ``--cpu-smoke``) it prints one line saying so and exits 0.

1. Speed: ``python train.py algo=td3 env=hopper hardware=gpu hardware.seeds_per_process=K`` (``hardware.device=cuda``
   where ``rlbase/conf/hardware/gpu.yaml`` is missing) for K = 1, 8, 64 and ``algo.precision`` fp32 and bf16, each
   ``--steps`` env steps (default 2500) with ``algo.random_steps=algo.learning_starts=500``, logging every 250 steps,
   one final evaluation episode. Printed per run: aggregate seed-steps/s = K x the median of the Runner's
   ``time/sps`` over the rows after 1000 steps (starts + 500 steps of warm-up), and the run's wall time.
2. Resume: a K = 8 fp32 run (1600 steps, checkpoint every 700 so that it falls mid-episode, evaluation every 500)
   uninterrupted, and beside it (at the same time) the same run killed with SIGKILL once its first checkpoint is written (every seed's) and then
   resumed (``train.py resume=<a seed's dir>``): PASS when every seed's evaluation returns and final actor weights
   are equal (exactly). On FAIL a second uninterrupted run tells whether the runs are deterministic on this device at
   all (if that one differs too, the difference is the device's arithmetic, not the resume).
Exit code: 0 with PASS (or without CUDA), 1 with FAIL.

``--cpu-smoke``: the same on the CPU (one thread) with tiny sizes: 32-unit networks, K = 2 (``--ks`` for others;
resume: K = 2), a few hundred steps; it checks that the script works, not the GPU.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from statistics import median

# this checkout's rlbase first, also when another checkout's rlbase is installed (editable) in the venv: a script
# run from a worktree or a second clone then uses (and writes into) its own tree
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

ROOT = Path(__file__).resolve().parents[1]


def rows(run_dir: Path) -> list[dict]:
    path = run_dir / "metrics.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.exists() else []


def eval_returns(run_dir: Path) -> list[tuple[int, float]]:
    return [(r["step"], r["eval/return_mean"]) for r in rows(run_dir) if "eval/return_mean" in r]


class Check:
    def __init__(self, smoke: bool, tmp: Path, steps: int, ks: str):
        self.smoke, self.tmp = smoke, tmp
        if smoke:
            self.hardware = ["hardware.device=cpu", "hardware.threads=1"]
            self.sizes = ["algo.actor_hidden=[32,32]", "algo.critic_hidden=[32,32]", "algo.batch_size=32",
                          "algo.buffer_size=5000"]
            self.ks, self.starts, self.steps, self.log_every, self.warmup = (2,), 100, steps or 300, 50, 50
            self.resume_k, self.resume = 2, {"total_steps": 300, "checkpoint_every": 150, "eval_every": 100}
        else:
            gpu = (ROOT / "rlbase" / "conf" / "hardware" / "gpu.yaml").exists()
            self.hardware = ["hardware=gpu"] if gpu else ["hardware.device=cuda"]
            self.sizes = []
            self.ks, self.starts, self.steps, self.log_every, self.warmup = (1, 8, 64), 500, steps or 2500, 250, 500
            self.resume_k, self.resume = 8, {"total_steps": 1600, "checkpoint_every": 700, "eval_every": 500}
        if ks:
            self.ks = tuple(int(k) for k in ks.split(","))
        self.env = {**os.environ, "MUJOCO_GL": "egl", **({"OMP_NUM_THREADS": "1"} if smoke else {})}

    def args(self, k: int, run_dir: Path, **over) -> list[str]:
        base = {"total_steps": self.steps, "eval_every": self.steps, "checkpoint_every": 1_000_000_000,
                "eval_episodes": 1, "log_every": self.log_every, **over}
        return [str(ROOT / "train.py"), "algo=td3", "env=hopper", *self.hardware, *self.sizes,
                f"algo.random_steps={self.starts}", f"algo.learning_starts={self.starts}", "logger=none",
                "progress=false", "keep_replay=false", f"hardware.seeds_per_process={k}", "seed=0",
                *(f"{key}={v}" for key, v in base.items()), f"hydra.run.dir={run_dir}/s${{seed}}"]

    def train(self, argv: list[str], log: Path) -> str:
        with open(log, "w") as f:
            proc = subprocess.run([sys.executable, *argv], cwd=self.tmp, env=self.env, stdout=f, stderr=subprocess.STDOUT)
        out = log.read_text()
        if proc.returncode != 0:
            raise RuntimeError(f"train.py exited with {proc.returncode}: {' '.join(argv[1:])}\n{out[-3000:]}")
        return out

    def speed(self, k: int, precision: str) -> float:
        name = f"speed_k{k}_{precision}"
        t = time.perf_counter()
        self.train([*self.args(k, self.tmp / name), f"algo.precision={precision}"], self.tmp / f"{name}.log")
        wall = time.perf_counter() - t
        first = self.starts + self.warmup
        sps = [r["time/sps"] for s in range(k) for r in rows(self.tmp / name / f"s{s}")
               if "time/sps" in r and r["step"] > first and r["time/sps"] is not None]
        if not sps:
            raise RuntimeError(f"{name}: no time/sps rows after step {first}")
        rate = median(sps)
        print(f"K={k:3d} {precision}: aggregate {k * rate:8.1f} seed-steps/s (per seed {rate:.1f} steps/s, "
              f"{self.steps} steps, {wall:.0f} s)", flush=True)
        return k * rate

    def compare(self, a: Path, b: Path, k: int) -> list[str]:
        import torch

        from rlbase.core import checkpoint

        problems = []
        for s in range(k):
            da, db = a / f"s{s}", b / f"s{s}"
            if not (da / "done").exists() or not (db / "done").exists():
                problems.append(f"seed {s}: a run did not finish")
                continue
            ea, eb = eval_returns(da), eval_returns(db)
            if ea != eb:
                problems.append(f"seed {s}: eval returns differ: {ea} vs {eb}")
            pa, pb = checkpoint.load(da)["agent"]["actor"], checkpoint.load(db)["agent"]["actor"]
            for key in pb:
                if not torch.equal(pa[key], pb[key]):
                    diff = (pa[key].float() - pb[key].float()).abs().max().item()
                    problems.append(f"seed {s}: final actor {key} differs (max abs {diff:.3g})")
        return problems

    def resume_check(self) -> bool:
        k = self.resume_k
        straight, killed = self.tmp / "straight", self.tmp / "killed"
        t = time.perf_counter()
        # the uninterrupted run and the one to be killed run at the same time (they share nothing but the machine)
        straight_log = open(self.tmp / "straight.log", "w")
        whole = subprocess.Popen([sys.executable, *self.args(k, straight, **self.resume, eval_episodes=2)],
                                 cwd=self.tmp, env=self.env, stdout=straight_log, stderr=subprocess.STDOUT)
        last = killed / f"s{k - 1}"  # the group's seeds checkpoint one after another: the last one last
        with open(self.tmp / "killed.log", "w") as f:
            proc = subprocess.Popen([sys.executable, *self.args(k, killed, **self.resume, eval_episodes=2)],
                                    cwd=self.tmp, env=self.env, stdout=f, stderr=subprocess.STDOUT)
            deadline = time.time() + 600
            while not (last / "checkpoint.pt").exists() and proc.poll() is None and time.time() < deadline:
                time.sleep(0.02)
            if proc.poll() is None:
                proc.send_signal(signal.SIGKILL)
            proc.wait()
        whole.wait()
        straight_log.close()
        if whole.returncode != 0:
            raise RuntimeError(f"the uninterrupted run exited with {whole.returncode}:\n"
                               + (self.tmp / "straight.log").read_text()[-3000:])
        if (killed / "s0" / "done").exists() or not (last / "checkpoint.pt").exists():
            print(f"resume K={k}: FAIL (the run was not killed between its first checkpoint and its end; "
                  f"exit code {proc.returncode}; log {self.tmp / 'killed.log'})", flush=True)
            return False
        out = self.train([str(ROOT / "train.py"), f"resume={last}"], self.tmp / "resumed.log")
        problems = [] if "resumed from step" in out else ["the resumed run did not say 'resumed from step'"]
        problems += self.compare(killed, straight, k)
        wall = time.perf_counter() - t
        if not problems:
            print(f"resume K={k}: PASS (killed with SIGKILL after its first checkpoint and resumed: every seed's eval "
                  f"returns and final actor weights equal the uninterrupted run's; {wall:.0f} s)", flush=True)
            return True
        print(f"resume K={k}: FAIL", flush=True)
        for p in problems[:10]:
            print(f"  {p}", flush=True)
        again = self.tmp / "straight2"
        self.train(self.args(k, again, **self.resume, eval_episodes=2), self.tmp / "straight2.log")
        same = not self.compare(again, straight, k)
        print("  a second uninterrupted run " + ("equals the first: the resume is at fault" if same else
              "differs from the first too: these runs are not deterministic on this device (not the resume's fault)"),
              flush=True)
        return False


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--cpu-smoke", action="store_true", help="the same steps on the CPU with tiny sizes")
    p.add_argument("--steps", type=int, default=None, help="env steps of each speed run (default 2500; smoke 300)")
    p.add_argument("--ks", default=None, help="comma-separated K of the speed runs (default 1,8,64; smoke 2)")
    p.add_argument("--keep", type=Path, default=None, help="keep the runs in this directory (default: a temporary one)")
    args = p.parse_args(argv)
    import torch

    if not args.cpu_smoke and not torch.cuda.is_available():
        print("gpu_check: no CUDA device here (torch.cuda.is_available() is False): nothing checked; "
              "--cpu-smoke runs the same steps on the CPU", flush=True)
        return 0
    where = "CPU (smoke, tiny sizes)" if args.cpu_smoke else torch.cuda.get_device_name(0)
    print(f"gpu_check on {where}, torch {torch.__version__}: TD3 Hopper-v5, seeds in one process", flush=True)
    t = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="gpu_check_") as tmp:
        tmp = Path(tmp) if args.keep is None else args.keep
        tmp.mkdir(parents=True, exist_ok=True)
        check = Check(args.cpu_smoke, tmp.resolve(), args.steps, args.ks)
        for k in check.ks:
            for precision in ("fp32", "bf16"):
                check.speed(k, precision)
        ok = check.resume_check()
    print(f"gpu_check: {'PASS' if ok else 'FAIL'} ({time.perf_counter() - t:.0f} s)", flush=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
