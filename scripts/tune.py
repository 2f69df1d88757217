"""Hyperparameter search over seeds: ``python scripts/tune.py <overrides> --space <file|name|inline> --trials N
--seeds K --study DIR [--workers W [--launcher joblib|submitit_local|submitit_slurm] [hydra.launcher.<key>=...]]
[--report]`` (see ``rlbase.tune``)."""

import sys

from rlbase.tune import main

if __name__ == "__main__":
    sys.exit(main())
