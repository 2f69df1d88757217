"""Hyperparameter search over seeds: ``python scripts/tune.py <overrides> --space <file|name|inline> --trials N
--seeds K --study DIR [--workers W [--launcher joblib|submitit_local|submitit_slurm] [hydra.launcher.<key>=...]]
[--report]`` (see ``rlbase.tune``)."""

import sys
from pathlib import Path

# this checkout's rlbase first, also when another checkout's rlbase is installed (editable) in the venv: a script
# run from a worktree or a second clone then uses (and writes into) its own tree
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from rlbase.tune import main

if __name__ == "__main__":
    sys.exit(main())
