"""Hyperparameter search over seeds: ``python scripts/tune.py <overrides> --space <file|name|inline> --trials N
--seeds K --study DIR [--report]`` (see ``rlbase.tune``)."""

import sys

from rlbase.tune import main

if __name__ == "__main__":
    sys.exit(main())
