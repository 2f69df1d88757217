"""Checkpoints written atomically, and a checksum checked on load.

A checkpoint is a ``torch.save`` of plain containers, tensors and numbers, so ``torch.load`` with its
safe default (``weights_only=True``) reads it. Writing goes to a temporary file in the same directory,
is fsync'ed, then renamed over ``checkpoint.pt``; the previous checkpoint is kept as
``checkpoint.prev.pt`` until the new one is complete, so a crash mid-write never loses the last good one.
"""

from __future__ import annotations

import hashlib
import io
import logging
import os
from pathlib import Path
from typing import Any

import torch

log = logging.getLogger(__name__)

NAME = "checkpoint.pt"
PREV = "checkpoint.prev.pt"
DONE = "done"


class CheckpointError(RuntimeError):
    pass


def save(run_dir: str | Path, state: dict[str, Any]) -> Path:
    run_dir = Path(run_dir)
    buf = io.BytesIO()
    torch.save(state, buf)
    payload = buf.getvalue()
    digest = hashlib.sha256(payload).hexdigest().encode()
    path, prev, tmp = run_dir / NAME, run_dir / PREV, run_dir / (NAME + ".tmp")
    try:
        with open(tmp, "wb") as f:
            f.write(payload)
            f.write(b"\n#sha256:" + digest + b"\n")
            f.flush()
            os.fsync(f.fileno())
    except OSError as e:
        tmp.unlink(missing_ok=True)
        kept = "the previous checkpoint is intact" if path.exists() else "no earlier checkpoint exists"
        raise CheckpointError(f"could not write checkpoint in {run_dir}: {e.strerror or e}; {kept} (free space "
                              f"there, then resume)") from e
    if path.exists():
        os.replace(path, prev)
    os.replace(tmp, path)
    _fsync_dir(run_dir)
    return path


def _fsync_dir(d: Path) -> None:
    try:
        fd = os.open(d, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _read(path: Path) -> dict[str, Any]:
    raw = path.read_bytes()
    cut = raw.rfind(b"\n#sha256:")
    if cut < 0:
        raise CheckpointError(f"{path}: no checksum footer (truncated or not one of our checkpoints)")
    payload, digest = raw[:cut], raw[cut + 9:].strip()
    if hashlib.sha256(payload).hexdigest().encode() != digest:
        raise CheckpointError(f"{path}: checksum mismatch (the file is corrupted or truncated)")
    return torch.load(io.BytesIO(payload), weights_only=True, map_location="cpu")


def load(run_dir: str | Path, check=None, set_aside: bool = False) -> dict[str, Any] | None:
    """The newest readable checkpoint in ``run_dir``, falling back to the previous one; None if there is none.
    ``check(state)`` may raise CheckpointError for a checkpoint whose other files (replay chunks) are damaged:
    the previous checkpoint is then tried too. ``set_aside`` (a resume): a damaged newest checkpoint is renamed
    ``checkpoint.damaged.pt``, so the next save does not rotate it over the good previous one."""
    run_dir = Path(run_dir)
    errors = []
    for name in (NAME, PREV):
        path = run_dir / name
        if not path.exists():
            continue
        try:
            state = _read(path)
            if check is not None:
                check(state)
            if set_aside and errors:
                (run_dir / NAME).replace(run_dir / "checkpoint.damaged.pt")
                log.warning("resuming from %s; the damaged %s is kept as checkpoint.damaged.pt", PREV, NAME)
            return state
        except CheckpointError as e:
            if name == NAME:
                log.warning("%s; trying the previous checkpoint", e)
            errors.append(str(e))
    if errors:
        raise CheckpointError("; ".join(errors) + f"; no checkpoint in {run_dir} can be restored: start a new run "
                              "(this one's files are left as they are)")
    return None


def exists(run_dir: str | Path) -> bool:
    run_dir = Path(run_dir)
    return (run_dir / NAME).exists() or (run_dir / PREV).exists()


def mark_done(run_dir: str | Path) -> None:
    (Path(run_dir) / DONE).write_text("finished\n")


def is_done(run_dir: str | Path) -> bool:
    return (Path(run_dir) / DONE).exists()
