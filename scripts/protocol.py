"""Pre-registered benchmarks: ``python scripts/protocol.py run|status|export <protocol.yaml> [<protocol.yaml> ...]``
(several files: one queue, in order) and ``compare <protocol.yaml>`` (see ``rlbase.report.protocol``)."""

import sys
from pathlib import Path

# this checkout's rlbase first, also when another checkout's rlbase is installed (editable) in the venv: a script
# run from a worktree or a second clone then uses (and writes into) its own tree
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from rlbase.report.protocol import main

if __name__ == "__main__":
    sys.exit(main())
