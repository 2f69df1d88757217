"""Evaluate a saved run: load its config and checkpoint, run N deterministic episodes, optionally a video.

    python scripts/evaluate.py runs/td3/hopper/seed0/<date>_<time> --episodes 10 --video hopper
    python scripts/evaluate.py runs/ppo/hopper/seed0/<date>_<time> --sample   # actions sampled, as Tianshou tests
    python scripts/evaluate.py runs/sac/hopper/seed*/* --which best          # each run's best evaluation's policy

``--sample`` (the default for a run trained with eval.sample=true; ``--no-sample`` for the mean) draws the actions
from the policy's distribution, on generators seeded from --seed, so a repeat gives the same returns.
``--which last`` (default) evaluates the run's checkpoint; ``--which best`` the policy of its best evaluation
(``best_policy.pt``), which every run keeps beside its checkpoint. Several runs: one line each, then the mean with
its 95% confidence interval and the IQM over them (``rlbase.report.stats``).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

os.environ.setdefault("MUJOCO_GL", "egl")

import torch  # noqa: E402
from omegaconf import DictConfig, OmegaConf  # noqa: E402

from rlbase import algos, envs  # noqa: E402
from rlbase.core import (
    checkpoint,  # noqa: E402
    seeding,  # noqa: E402
)
from rlbase.core.evaluate import evaluate  # noqa: E402
from rlbase.loops.runner import BEST_POLICY  # noqa: E402
from rlbase.loops.video import record_episode  # noqa: E402
from rlbase.runtime.validate import SAMPLED_POLICIES  # noqa: E402

WHICH = ("last", "best")  # a run's saved policies: checkpoint.pt (its last step), best_policy.pt (its best evaluation)


def with_defaults(cfg: DictConfig) -> DictConfig:
    """A run's recorded config with the settings added since it ran at their defaults (a run made before
    ``algo.activation`` existed builds the tanh networks it trained). Only what is missing: a recorded value is
    never retyped or replaced."""
    for key, schema in (("algo", algos.get(cfg.algo.name).Config), ("env", envs.EnvConfig)):
        defaults = OmegaConf.structured(schema)
        for name in defaults.keys():
            if name not in cfg[key]:
                cfg[key][name] = defaults[name]
    return cfg


def load_state(run_dir: str | Path, which: str = "last") -> tuple[DictConfig, dict[str, Any]]:
    """The run's config and the saved state ``which`` names: the checkpoint (``"last"``) or ``best_policy.pt``
    (``"best"``). The config is the run's recorded one (``.hydra/config.yaml``; without it, the copy saved with the
    state), with settings added since the run at their defaults (:func:`with_defaults`)."""
    if which not in WHICH:
        raise ValueError(f"which={which!r} is not a checkpoint of a run; allowed: {', '.join(WHICH)}")
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise FileNotFoundError(f"run directory {run_dir} not found; pass a run directory made by train.py")
    if which == "best":
        path = run_dir / BEST_POLICY
        if not path.exists():
            raise FileNotFoundError(f"{path} not found (a run made before best policies were kept, or one whose write "
                                    "of it failed: see its train.log); which='last' loads its checkpoint")
        try:
            state = torch.load(path, weights_only=True, map_location="cpu")
        except Exception as e:  # noqa: BLE001 - a damaged file fails in several ways (pickle, zip, EOF)
            raise checkpoint.CheckpointError(f"{path} cannot be read ({type(e).__name__}: {e}); which='last' loads "
                                             "the run's checkpoint") from e
    else:
        state = checkpoint.load(run_dir)
        if state is None:
            raise FileNotFoundError(f"no checkpoint in {run_dir} (the run stopped before its first one, or this is "
                                    "not a run directory)")
    if (run_dir / ".hydra" / "config.yaml").exists():
        cfg = OmegaConf.load(run_dir / ".hydra" / "config.yaml")
        check_same_run(run_dir, cfg, state, path=run_dir / (BEST_POLICY if which == "best" else checkpoint.NAME))
    elif state.get("config") is not None:  # a run directory without .hydra/ (copied without it)
        cfg = OmegaConf.create(state["config"])
    else:
        raise FileNotFoundError(f"{run_dir} has no config (.hydra/config.yaml) and its {which} state holds none")
    return with_defaults(cfg), state


class WrongCheckpoint(ValueError):
    """A saved state written by another algorithm (or on another env) than the run's config names: one line, exit 2."""


def check_same_run(run_dir: Path, cfg: DictConfig, state: dict[str, Any], path: Path) -> None:
    """The saved state's own config (every checkpoint and best policy stores the config it was trained with) against
    the run directory's recorded one: another algorithm's weights would fail deep in ``load_state_dict`` (a KeyError
    or a size mismatch, and a traceback); refused here in one line. States without a config (older runs) pass."""
    saved = state.get("config")
    if not isinstance(saved, dict):
        return
    algo = (saved.get("algo") or {}).get("name") if isinstance(saved.get("algo"), dict) else None
    env_id = (saved.get("env") or {}).get("id") if isinstance(saved.get("env"), dict) else None
    named = run_dir / ".hydra" / "config.yaml"
    if algo is not None and str(algo) != str(cfg.algo.name):
        raise WrongCheckpoint(f"{path} was written by algo={algo}{f' on {env_id}' if env_id else ''}, but the run's "
                              f"config {named} names algo={cfg.algo.name}; a checkpoint loads only as the algorithm "
                              f"that wrote it: pass the {algo} run's own directory (or put back its config)")
    if env_id is not None and str(env_id) != str(cfg.env.id):
        raise WrongCheckpoint(f"{path} was trained on env {env_id}, but the run's config {named} names env.id="
                              f"{cfg.env.id}; pass the run's own directory (or put back its config)")


def build_agent(cfg: DictConfig, agent_state: dict[str, Any], spec: envs.EnvSpec, device: torch.device | str = "cpu"):
    """The run's agent with ``agent_state``'s weights. Entries the state lacks (``best_policy.pt`` keeps no
    optimizer) stay as the freshly built agent has them."""
    module = algos.get(cfg.algo.name)
    try:  # the algorithm's own dataclass, as in training (an OmegaConf attribute costs microseconds per read)
        algo_cfg = OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(module.Config), cfg.algo))
    except Exception:  # noqa: BLE001 - a recorded setting the schema no longer has: the recorded config as it is
        algo_cfg = cfg.algo
    agent = module.Agent(algo_cfg, spec, torch.device(device))
    agent.load_state_dict({**agent.state_dict(), **agent_state})
    return agent


def recorded_config(path: Path):
    """A run's recorded config with the settings added since it ran at their defaults (a run made before
    ``algo.activation`` existed builds the tanh networks it trained)."""
    return with_defaults(OmegaConf.load(path))


def _load_or_exit(run_dir: Path, which: str) -> tuple[DictConfig, dict[str, Any]]:
    """:func:`load_state` for the script: its refusals as one ``error:`` line and an exit code."""
    try:
        return load_state(run_dir, which)
    except WrongCheckpoint as e:  # bad input: exit 2
        print(f"error: {e}", file=sys.stderr)
        raise SystemExit(2) from None
    except (FileNotFoundError, ValueError, checkpoint.CheckpointError) as e:
        raise SystemExit(f"error: {e}") from None


def load_agent(run_dir: Path, which: str = "last"):
    """The run's config, its agent with the weights of the checkpoint ``which`` names (``"last"``: checkpoint.pt,
    ``"best"``: best_policy.pt) and that saved state (``step``, ``obs_stats``, ``agent``, ...)."""
    cfg_path = run_dir / ".hydra" / "config.yaml"
    if not cfg_path.exists():
        raise SystemExit(f"error: {cfg_path} not found; pass a run directory made by train.py")
    cfg, state = _load_or_exit(run_dir, which)
    agent = build_agent(cfg, state["agent"], envs.probe(cfg.env), torch.device("cpu"))
    return cfg, agent, state


def _seed(text: str):
    if text == "run":
        return text
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"--seed must be an integer or 'run', not {text!r}") from None


def evaluate_run(run_dir: Path, episodes: int, seed, sample: bool | None, video: Path | None = None,
                 which: str = "last") -> dict:
    """One run's policy (``which``: its checkpoint, ``"last"``, or its best evaluation's, ``"best"``) on ``episodes``
    evaluation episodes; ``seed="run"``: the run's own evaluation episodes and generators, so a deterministic
    evaluation of a finished run repeats its last metrics row (``"best"``: its best row).
    ``sample=None``: the kind of evaluation the run trained with (eval.sample)."""
    cfg, agent, state = load_agent(run_dir, which)
    seed = int(cfg.seed) if seed == "run" else seed
    sample = _run_samples(cfg) if sample is None else sample
    env, _ = envs.make(cfg.env, seeding.stream(seed, "eval_env"), train=False)
    envs.load_obs_stats(env, state.get("obs_stats"))
    # the generator the run's own evaluations use
    result = evaluate(agent, env, episodes, seed, sample=sample, generator=seeding.generator(seed, "eval_rng"))
    env.close()
    result.update({"run_dir": str(run_dir), "algo": str(cfg.algo.name), "env": str(cfg.env.id), "seed": seed,
                   "step": int(state["step"]), "which": which, "sample": sample})
    print(f"{run_dir}: {cfg.algo.name} on {cfg.env.id}, {which} checkpoint (step {state['step']}), "
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
                   "then the mean with its 95%% confidence interval and the IQM over them)")
    p.add_argument("--which", choices=WHICH, default="last", help="the run's checkpoint (last, the default) or the "
                   "policy of its best evaluation (best: best_policy.pt)")
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
        if args.which == "best" and not (d / BEST_POLICY).exists():
            raise SystemExit(f"error: --which best: {d / BEST_POLICY} not found (a run made before best policies were "
                             "kept, or one whose write of it failed: see its train.log); --which last evaluates its "
                             "checkpoint")
        _load_or_exit(d, args.which)  # its saved state is there, readable, and of the algorithm its config names
    results = [evaluate_run(d, args.episodes, args.seed, args.sample, args.video, args.which) for d in args.run_dirs]
    if len(results) > 1:
        kinds = {(r["algo"], r["env"], r["sample"]) for r in results}
        if len(kinds) > 1:
            print(f"no summary over runs of {len(kinds)} kinds (algo, env, sampled): {sorted(kinds)}")
        else:
            from rlbase.report.stats import format_ci, iqm, mean_ci  # scipy: imported only when there is a summary

            means = [r["eval/return_mean"] for r in results]
            print(f"over {len(means)} runs ({args.which} checkpoints): mean {format_ci(*mean_ci(means))} (95% CI, "
                  f"t+Hall), IQM {iqm(means):.1f}")
    if args.json is not None:
        args.json.write_text(json.dumps(results, indent=1) + "\n")
    return results


if __name__ == "__main__":
    main()
