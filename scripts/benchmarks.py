"""Pre-registered protocols against their anchors: ``python scripts/benchmarks.py`` writes docs/benchmarks.md (see
``rlbase.report.benchmarks``)."""

import sys
from pathlib import Path

# this checkout's rlbase first, also when another checkout's rlbase is installed (editable) in the venv: a script
# run from a worktree or a second clone then uses (and writes into) its own tree
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from rlbase.report.benchmarks import main

if __name__ == "__main__":
    sys.exit(main())
