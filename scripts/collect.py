"""Roll out a saved run's policy to make an offline dataset ("expert", or "medium" with noise).

    python scripts/collect.py runs/td3/hopper/seed0/<date>_<time> --steps 100000 --noise 0.3 --out datasets/hopper_td3_noisy

``--noise`` is the std of Gaussian noise added to continuous actions (times the action half-width, then
clipped to the bounds), or the probability of a uniformly random action for discrete ones.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np  # noqa: E402

# this checkout's rlbase first, also when another checkout's rlbase is installed (editable) in the venv: a script
# run from a worktree or a second clone then uses (and writes into) its own tree
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from rlbase import (
    data,  # noqa: E402
    envs,  # noqa: E402
)
from rlbase.core import seeding  # noqa: E402
from rlbase.core.agent import act_env  # noqa: E402
from rlbase.report.evaluate import load_agent


def main(argv=None) -> Path:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("run_dir", type=Path)
    p.add_argument("--steps", type=int, required=True, help="transitions to collect")
    p.add_argument("--noise", type=float, default=0.0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, required=True, help="dataset path (NAME or NAME.npz)")
    p.add_argument("--minari-id", default=None, help="also write it into the local Minari store under this id "
                   "(e.g. rlbase/hopper/td3-medium-v0)")
    args = p.parse_args(argv)
    if args.steps <= 0 or args.noise < 0:
        raise SystemExit("error: --steps must be > 0 and --noise >= 0")
    if args.minari_id is not None and args.minari_id in data.local_minari_ids():
        raise SystemExit(f"error: Minari dataset {args.minari_id} already exists in {data.minari_root()}; pick another id")
    cfg, agent, state = load_agent(args.run_dir)
    env, spec = envs.make(cfg.env, args.seed, train=False)
    envs.load_obs_stats(env, state.get("obs_stats"))
    rng = np.random.default_rng(args.seed)
    gen = seeding.generator(args.seed, "eval_rng")  # what the policy draws (BCQ's candidates)
    cols = {k: [] for k in ("obs", "act", "rew", "next", "term", "trunc")}
    obs, _ = env.reset(seed=args.seed)
    for _ in range(args.steps):
        action = act_env(agent, obs, deterministic=True, generator=gen)
        if spec.discrete:
            if rng.random() < args.noise:
                action = int(env.action_space.sample())
        elif args.noise > 0:
            half = (spec.action_high - spec.action_low) / 2
            action = np.clip(action + rng.normal(0, args.noise, action.shape) * half, spec.action_low, spec.action_high)
        next_obs, reward, terminated, truncated, _ = env.step(action)
        for k, v in zip(cols, (obs, action, reward, next_obs, terminated, truncated)):
            cols[k].append(v)
        obs = env.reset()[0] if terminated or truncated else next_obs
    env.close()
    path = data.write(args.out, *(np.asarray(cols[k]) for k in cols), env_id=spec.id, discrete=spec.discrete,
                      source={"kind": "policy rollouts", "run_dir": str(args.run_dir), "checkpoint_step": state["step"],
                              "noise": args.noise, "seed": args.seed})
    meta = data.read(path)[1]
    print(f"wrote {path}: {meta['size']} transitions, {meta['episodes']['count']} finished episodes, "
          f"mean return {meta['episodes'].get('return_mean', float('nan')):.1f}")
    if args.minari_id is not None:
        print(f"wrote Minari dataset {args.minari_id}: {data.to_minari(*data.read(path), args.minari_id)}")
    return path


if __name__ == "__main__":
    main()
