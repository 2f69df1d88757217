"""Tabular offline RL on CliffWalking: plain Q-learning vs batch-constrained Q-learning (BCQL) on one fixed dataset.

    python scripts/tabular_offline.py --seeds 0 1 2 3 4 --episodes 30 --epsilon 0.1

For each seed, collects ``--episodes`` episodes of an epsilon-noisy safe route (see ``algos/tabular.py``), fits
both learners to those transitions only, and prints the greedy policies' returns as a markdown table.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

# this checkout's rlbase first, also when another checkout's rlbase is installed (editable) in the venv: a script
# run from a worktree or a second clone then uses (and writes into) its own tree
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from rlbase.algos import tabular  # noqa: E402


def main(argv=None) -> list[dict]:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--episodes", type=int, default=tabular.EPISODES, help="behaviour episodes in each dataset")
    p.add_argument("--epsilon", type=float, default=tabular.EPSILON, help="probability of a random behaviour action")
    p.add_argument("--max-steps", type=int, default=tabular.MAX_STEPS, help="time limit per episode")
    p.add_argument("--sweeps", type=int, default=100, help="passes over the dataset")
    args = p.parse_args(argv)
    if args.episodes <= 0 or not 0 <= args.epsilon <= 1:
        raise SystemExit("error: --episodes must be > 0 and --epsilon in [0, 1]")
    rows = [tabular.run(seed=s, episodes=args.episodes, epsilon=args.epsilon, max_steps=args.max_steps, sweeps=args.sweeps)
            for s in args.seeds]
    print("| seed | transitions | (s,a) coverage | dataset mean return | Q-learning return | BCQL return |")
    print("|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['seed']} | {r['transitions']} | {r['coverage']:.2f} | {r['dataset_return']:.1f} "
              f"| {r['q_learning_return']:.0f} | {r['bcql_return']:.0f} |")
    return rows


if __name__ == "__main__":
    main()
