"""What a checkpoint of a full replay buffer costs: wall time, bytes written and extra peak memory.

Compares the whole-buffer checkpoint (``ReplayBuffer.state_dict`` inside ``checkpoint.pt``, what runs wrote before
chunked replay) with the chunked one the off-policy loop writes now (``save_chunks``: only the transitions added
since the previous checkpoint go to new chunk files; ``checkpoint.pt`` holds their manifest). Each measurement runs
in a fresh process, so one's peak memory does not hide another's.

    python scripts/checkpoint_cost.py                      # Hopper (obs 11, action 3) and Humanoid (348, 17) sizes
    python scripts/checkpoint_cost.py --rows 1000000 --every 20000 --sizes hopper

``--every`` is the number of transitions between two checkpoints (1M steps / 50 checkpoints = 20k by default).
Peak memory is the process's resident high-water mark during the save minus its resident size before it
(Linux's /proc/self/clear_refs resets the mark), so it counts the copies a save makes, not the buffer itself.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

# this checkout's rlbase first, also when another checkout's rlbase is installed (editable) in the venv: a script
# run from a worktree or a second clone then uses (and writes into) its own tree
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

ROOT = Path(__file__).resolve().parents[1]
SIZES = {"hopper": (11, 3), "humanoid": (348, 17)}


def _rss(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"no {field} in /proc/self/status")


def _measure(fn) -> tuple[float, int]:
    before = _rss("VmRSS")
    Path("/proc/self/clear_refs").write_text("5")  # reset the high-water mark to the current size
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t, _rss("VmHWM") - before


def _dir_bytes(d: Path) -> int:
    return sum(p.stat().st_size for p in d.rglob("*") if p.is_file())


def child(size: str, rows: int, every: int, method: str) -> dict:
    import torch

    from rlbase.core import checkpoint
    from rlbase.core.buffer import ReplayBuffer

    torch.set_num_threads(1)
    obs, act = SIZES[size]
    buf = ReplayBuffer(rows, (obs,), (act,))
    buf.table.normal_()  # a full buffer, as after `rows` env steps
    buf.ptr, buf.size, buf.added = 0, rows, rows
    out = {"size": size, "obs": obs, "action": act, "rows": rows, "buffer_mb": buf.table.numel() * 4 / 2**20,
           "method": method, "every": every}
    with tempfile.TemporaryDirectory(dir=ROOT) as tmp:
        run_dir = Path(tmp)
        if method == "whole":
            out["save_s"], peak = _measure(lambda: checkpoint.save(run_dir, {"buffer": buf.state_dict()}))
            out["written_mb"] = _dir_bytes(run_dir) / 2**20
        else:
            replay = run_dir / "replay"
            out["first_save_s"], out["first_peak_mb"] = _measure(
                lambda: checkpoint.save(run_dir, {"buffer": buf.save_chunks(replay)}))
            out["first_peak_mb"] /= 2**20
            before = _dir_bytes(run_dir)
            buf.table[:every].normal_()  # `every` new transitions overwrite the oldest ones
            buf.ptr, buf.added = every % rows, rows + every
            out["save_s"], peak = _measure(lambda: checkpoint.save(run_dir, {"buffer": buf.save_chunks(replay)}))
            out["written_mb"] = max(0, _dir_bytes(run_dir) - before) / 2**20  # new chunk files (none pruned here)
        out["peak_mb"] = peak / 2**20
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rows", type=int, default=1_000_000, help="transitions in the full buffer")
    p.add_argument("--every", type=int, default=20_000, help="transitions added between two checkpoints")
    p.add_argument("--sizes", default="hopper,humanoid", help=f"comma-separated, from {sorted(SIZES)}")
    p.add_argument("--json", type=Path, help="also write the rows here")
    p.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    a = p.parse_args()
    if a.child:
        print(json.dumps(child(a.child[0], a.rows, a.every, a.child[1])))
        return
    sizes = a.sizes.split(",")
    bad = [s for s in sizes if s not in SIZES]
    if bad:
        p.error(f"--sizes: unknown {', '.join(bad)}; choose from {', '.join(sorted(SIZES))}")
    results = []
    print(f"{a.rows} transitions in the buffer, a checkpoint every {a.every} (one torch thread; each line a fresh process)")
    print("| size | buffer | method | save (s) | written (MB) | extra peak memory (MB) |")
    print("|---|---|---|---|---|---|")
    for size in sizes:
        for method in ("whole", "chunks"):
            proc = subprocess.run([sys.executable, __file__, "--rows", str(a.rows), "--every", str(a.every),
                                   "--child", size, method], capture_output=True, text=True)
            if proc.returncode != 0:
                sys.exit(f"{size}/{method} failed:\n{proc.stderr[-2000:]}")
            r = json.loads(proc.stdout.strip().splitlines()[-1])
            results.append(r)
            name = "whole buffer in checkpoint.pt" if method == "whole" else f"chunks (the {a.every} new rows)"
            print(f"| {size} ({r['obs']}+{r['action']}) | {r['buffer_mb']:.0f} MB | {name} | {r['save_s']:.2f} | "
                  f"{r['written_mb']:.1f} | {r['peak_mb']:.0f} |", flush=True)
            if method == "chunks":
                print(f"| | | chunks, first save (all rows) | {r['first_save_s']:.2f} | | {r['first_peak_mb']:.0f} |")
    if a.json:
        a.json.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
