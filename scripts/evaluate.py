"""Evaluate a saved run: load its config and checkpoint, run N deterministic episodes, optionally a video.

    python scripts/evaluate.py runs/td3/hopper/seed0/<date>_<time> --episodes 10 --video hopper
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

os.environ.setdefault("MUJOCO_GL", "egl")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402
from omegaconf import OmegaConf  # noqa: E402

import algos  # noqa: E402
import envs  # noqa: E402
from algos.common import checkpoint, seeding  # noqa: E402
from algos.common.evaluate import evaluate  # noqa: E402
from algos.common.video import record_episode  # noqa: E402


def load_agent(run_dir: Path):
    """The run's config, its agent with the checkpoint's weights, and the checkpoint itself."""
    cfg_path = run_dir / ".hydra" / "config.yaml"
    if not cfg_path.exists():
        raise SystemExit(f"error: {cfg_path} not found; pass a run directory made by train.py")
    cfg = OmegaConf.load(cfg_path)
    state = checkpoint.load(run_dir)
    if state is None:
        raise SystemExit(f"error: no checkpoint in {run_dir}")
    spec = envs.probe(cfg.env)
    agent = algos.get(cfg.algo.name).Agent(cfg.algo, spec, torch.device("cpu"))
    agent.load_state_dict(state["agent"])
    return cfg, agent, state


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("run_dir", type=Path)
    p.add_argument("--episodes", type=int, default=10)
    p.add_argument("--seed", type=int, default=12345, help="episodes are this seed's evaluation episodes (a run of seed=S evaluates on seed S's; the default "
                   "12345 is none of a sweep's)")
    p.add_argument("--video", type=Path, default=None, help="write one episode as a video to this path (no suffix)")
    args = p.parse_args(argv)
    cfg, agent, state = load_agent(args.run_dir)
    env, _ = envs.make(cfg.env, seeding.stream(args.seed, "eval_env"), train=False)
    envs.load_obs_stats(env, state.get("obs_stats"))
    result = evaluate(agent, env, args.episodes, args.seed)
    env.close()
    print(f"{cfg.algo.name} on {cfg.env.id}, checkpoint at step {state['step']}: return "
          f"{result['eval/return_mean']:.2f} ± {result['eval/return_std']:.2f} over {args.episodes} episodes "
          f"(min {result['eval/return_min']:.2f}, max {result['eval/return_max']:.2f})")
    if args.video is not None:
        out = record_episode(agent, cfg.env, args.seed, args.video, obs_stats=state.get("obs_stats"))
        print(f"video: {out}" if out else "video: rendering failed (see the warning above)")
    return result


if __name__ == "__main__":
    main()
