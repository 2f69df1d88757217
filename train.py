"""The command line: ``python train.py <overrides>`` (see README). Everything lives in the ``rlbase`` package."""

import sys

from rlbase.cli import cli

if __name__ == "__main__":
    sys.exit(cli(sys.argv[1:]))
