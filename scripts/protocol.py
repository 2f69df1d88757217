"""Pre-registered benchmarks: ``python scripts/protocol.py run|status|export <protocol.yaml> [<protocol.yaml> ...]``
(several files: one queue, in order) and ``compare <protocol.yaml>`` (see ``rlbase.report.protocol``)."""

import sys

from rlbase.report.protocol import main

if __name__ == "__main__":
    sys.exit(main())
