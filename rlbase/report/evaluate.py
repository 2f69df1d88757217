"""Evaluate a saved run: load its config and checkpoint, run N deterministic episodes, optionally a video.

    python scripts/evaluate.py runs/td3/hopper/seed0/<date>_<time> --episodes 10 --video hopper
    python scripts/evaluate.py runs/ppo/hopper/seed0/<date>_<time> --sample   # actions sampled, as Tianshou tests

``--sample`` (the default for a run trained with eval.sample=true; ``--no-sample`` for the mean) draws the actions
from the policy's distribution, on generators seeded from --seed, so a repeat gives the same returns.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

os.environ.setdefault("MUJOCO_GL", "egl")

import numpy as np  # noqa: E402
import torch  # noqa: E402
from omegaconf import OmegaConf  # noqa: E402

from rlbase import (
    algos,  # noqa: E402
    envs,  # noqa: E402
)
from rlbase.core import (
    checkpoint,  # noqa: E402
    seeding,  # noqa: E402
)
from rlbase.core.evaluate import evaluate  # noqa: E402
from rlbase.loops.video import record_episode  # noqa: E402
from rlbase.report.plot import bootstrap_ci, iqm  # noqa: E402
from rlbase.runs.validate import SAMPLED_POLICIES  # noqa: E402


def recorded_config(path: Path):
    """A run's recorded config with the settings added since it ran at their defaults (a run made before
    ``algo.activation`` existed builds the tanh networks it trained)."""
    cfg = OmegaConf.load(path)
    for key, schema in (("algo", algos.get(cfg.algo.name).Config), ("env", envs.EnvConfig)):
        defaults = OmegaConf.structured(schema)
        for name in defaults.keys():  # only what is missing: a recorded value is never retyped or replaced
            if name not in cfg[key]:
                cfg[key][name] = defaults[name]
    return cfg


def load_agent(run_dir: Path):
    """The run's config, its agent with the checkpoint's weights, and the checkpoint itself."""
    cfg_path = run_dir / ".hydra" / "config.yaml"
    if not cfg_path.exists():
        raise SystemExit(f"error: {cfg_path} not found; pass a run directory made by train.py")
    cfg = recorded_config(cfg_path)
    state = checkpoint.load(run_dir)
    if state is None:
        raise SystemExit(f"error: no checkpoint in {run_dir}")
    spec = envs.probe(cfg.env)
    agent = algos.get(cfg.algo.name).Agent(cfg.algo, spec, torch.device("cpu"))
    agent.load_state_dict(state["agent"])
    return cfg, agent, state


def _seed(text: str):
    if text == "run":
        return text
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"--seed must be an integer or 'run', not {text!r}") from None


def evaluate_run(run_dir: Path, episodes: int, seed, sample: bool | None, video: Path | None = None) -> dict:
    """One run's final policy on ``episodes`` evaluation episodes; ``seed="run"``: the run's own evaluation
    episodes and generators, so a deterministic evaluation of a finished run repeats its last metrics row.
    ``sample=None``: the kind of evaluation the run trained with (eval.sample)."""
    cfg, agent, state = load_agent(run_dir)
    seed = int(cfg.seed) if seed == "run" else seed
    sample = _run_samples(cfg) if sample is None else sample
    env, _ = envs.make(cfg.env, seeding.stream(seed, "eval_env"), train=False)
    envs.load_obs_stats(env, state.get("obs_stats"))
    # the generator the run's own evaluations use
    result = evaluate(agent, env, episodes, seed, sample=sample, generator=seeding.generator(seed, "eval_rng"))
    env.close()
    result.update({"run_dir": str(run_dir), "algo": str(cfg.algo.name), "env": str(cfg.env.id), "seed": seed,
                   "step": int(state["step"]), "sample": sample})
    print(f"{run_dir}: {cfg.algo.name} on {cfg.env.id}, checkpoint at step {state['step']}, "
          f"{'sampled' if sample else 'deterministic'} actions: return "
          f"{result['eval/return_mean']:.2f} ± {result['eval/return_std']:.2f} over {episodes} episodes "
          f"(min {result['eval/return_min']:.2f}, max {result['eval/return_max']:.2f})", flush=True)
    if video is not None:
        out = record_episode(agent, cfg.env, seed, video, obs_stats=state.get("obs_stats"))
        print(f"video: {out}" if out else "video: rendering failed (see the warning above)")
    return result


def _run_samples(cfg) -> bool:
    return bool(cfg.get("eval", {}).get("sample", False))


def main(argv=None) -> list[dict]:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("run_dirs", type=Path, nargs="+", help="one or more run directories (several: one line each, "
                   "then mean, 95%% bootstrap CI and IQM over them)")
    p.add_argument("--episodes", type=int, default=10)
    p.add_argument("--seed", type=_seed, default=12345, help="episodes are this seed's evaluation episodes (a run of "
                   "seed=S evaluates on seed S's; 'run': each run's own; the default 12345 is none of a sweep's)")
    p.add_argument("--sample", action=argparse.BooleanOptionalAction, default=None, help="sample the actions from "
                   "the policy instead of taking its mean or argmax (algorithms with a stochastic policy); default: as "
                   "the run evaluated (eval.sample). A repeat gives the same returns; a run trained on a GPU drew its "
                   "samples from CUDA's generator, so --seed run --sample does not repeat its rows")
    p.add_argument("--video", type=Path, default=None, help="write one episode as a video to this path (no suffix; "
                   "one run only)")
    p.add_argument("--json", type=Path, default=None, help="write the results to this file")
    args = p.parse_args(argv)
    if args.episodes < 1:
        p.error(f"--episodes must be a positive integer, not {args.episodes}")
    if args.video is not None and len(args.run_dirs) > 1:
        p.error("--video takes one run directory")
    for d in args.run_dirs:  # every run checked before any episode is run
        if not (d / ".hydra" / "config.yaml").exists():
            raise SystemExit(f"error: {d / '.hydra' / 'config.yaml'} not found; pass run directories made by train.py")
        cfg = recorded_config(d / ".hydra" / "config.yaml")
        if (_run_samples(cfg) if args.sample is None else args.sample) and cfg.algo.name not in SAMPLED_POLICIES:
            raise SystemExit(f"error: --sample samples the policy's actions, but {d} is algo={cfg.algo.name}, which has "
                             f"no stochastic policy to sample; allowed with: {', '.join(SAMPLED_POLICIES)}")
    results = [evaluate_run(d, args.episodes, args.seed, args.sample, args.video) for d in args.run_dirs]
    if len(results) > 1:
        kinds = {(r["algo"], r["env"], r["sample"]) for r in results}
        if len(kinds) > 1:
            print(f"no summary over runs of {len(kinds)} kinds (algo, env, sampled): {sorted(kinds)}")
        else:
            means = [r["eval/return_mean"] for r in results]
            lo, hi = bootstrap_ci(means)
            print(f"over {len(means)} runs: mean {np.mean(means):.1f} [{lo:.1f}, {hi:.1f}] (95% bootstrap CI), "
                  f"IQM {iqm(means):.1f}")
    if args.json is not None:
        args.json.write_text(json.dumps(results, indent=1) + "\n")
    return results


if __name__ == "__main__":
    main()
