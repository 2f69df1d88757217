"""Pre-registered protocols against their anchors: ``python scripts/benchmarks.py`` writes docs/benchmarks.md (see
``rlbase.report.benchmarks``)."""

import sys

from rlbase.report.benchmarks import main

if __name__ == "__main__":
    sys.exit(main())
