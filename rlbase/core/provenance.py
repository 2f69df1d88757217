"""What made a run: the code (git commit, dirty flag, a hash of the diff), the packages and the machine.

Written once into every run directory as ``provenance.json`` when the run starts (a resume appends its own record
to ``provenance.resumed.jsonl``), so a number can be traced to the code that produced it without W&B.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import subprocess
import sys
import time
from importlib import metadata
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
PACKAGES = ("torch", "gymnasium", "mujoco", "hydra-core", "omegaconf", "numpy", "wandb")


def _git(*args: str) -> str | None:
    try:
        out = subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout if out.returncode == 0 else None


def _cpu() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def collect(threads: int | None = None) -> dict[str, Any]:
    """The record: commit and dirty flag (and the sha256 of ``git diff HEAD`` when dirty), package versions,
    Python, the machine's CPU, cores, torch threads and GPU."""
    import torch

    commit = _git("rev-parse", "HEAD")
    status = _git("status", "--porcelain", "--untracked-files=no")
    diff = _git("diff", "HEAD") if status else None
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    return {
        "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "git": {"commit": commit.strip() if commit else None, "dirty": bool(status) if status is not None else None,
                "diff_sha256": hashlib.sha256(diff.encode()).hexdigest() if diff else None},
        "python": sys.version.split()[0], "packages": versions,
        "machine": {"cpu": _cpu(), "cores": os.cpu_count(), "torch_threads": threads or torch.get_num_threads(),
                    "gpu": gpu, "platform": platform.platform(), "host": platform.node()},
        "argv": sys.argv,
    }


def record(run_dir: Path, resumed: bool, threads: int | None = None) -> dict[str, Any]:
    """Write the record for a fresh run (``provenance.json``) or a resume (a line of ``provenance.resumed.jsonl``)."""
    rec = collect(threads)
    if resumed:
        with open(run_dir / "provenance.resumed.jsonl", "a") as f:
            f.write(json.dumps(rec) + "\n")
    else:
        (run_dir / "provenance.json").write_text(json.dumps(rec, indent=1) + "\n")
    return rec
