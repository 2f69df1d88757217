"""Evaluate saved runs: ``python scripts/evaluate.py <run dirs> [--episodes N] [--sample] [--video DIR]`` (see
``rlbase.report.evaluate``)."""

from rlbase.report.evaluate import main

if __name__ == "__main__":
    main()
