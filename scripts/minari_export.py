"""Write one of our datasets (NAME.npz + NAME.json) into the local Minari store, so d3rlpy, TorchRL or any Minari
reader can load it (``minari.load_dataset(ID)``; the store is MINARI_DATASETS_PATH, else ~/.minari/datasets).

    python scripts/minari_export.py datasets/hopper_td3_medium.npz rlbase/hopper/td3-medium-v0
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

# this checkout's rlbase first, also when another checkout's rlbase is installed (editable) in the venv: a script
# run from a worktree or a second clone then uses (and writes into) its own tree
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from rlbase import data  # noqa: E402


def main(argv=None) -> Path:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("dataset", type=Path, help="our dataset (NAME or NAME.npz)")
    p.add_argument("id", help="Minari id to write, namespace/name-vN")
    args = p.parse_args(argv)
    try:
        arrays, meta = data.read(args.dataset)
        out = data.to_minari(arrays, meta, args.id)
    except data.DatasetError as e:
        raise SystemExit(f"error: {e}") from None
    print(f"wrote Minari dataset {args.id} ({meta['size']} transitions): {out}")
    return out


if __name__ == "__main__":
    main()
