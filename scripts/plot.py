"""Summarise runs: ``python scripts/plot.py <run or sweep dirs> [--out DIR]`` (see ``rlbase.report.plot``)."""

from rlbase.report.plot import main

if __name__ == "__main__":
    main()
