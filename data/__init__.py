"""Offline RL datasets: our own documented format, with a checksum manifest verified on every load.

A dataset ``NAME`` is two files:

- ``NAME.npz`` (numpy, uncompressed), arrays of equal length N (one row per transition, in the order
  they happened): ``observations`` (N, *obs_shape) float32, ``actions`` (N, *action_shape) float32 or int64,
  ``rewards`` (N,) float32, ``next_observations`` (N, *obs_shape) float32 (the real next observation, also
  at a time limit), ``terminations`` (N,) bool, ``truncations`` (N,) bool (kept apart: only terminations
  stop bootstrapping), ``episode_ids`` (N,) int64 (consecutive ids; an episode ends where termination or
  truncation is set, the last one may be unfinished);
- ``NAME.json``: the manifest: ``format`` version, ``sha256`` of the npz file, ``size`` (N), ``fields`` with
  shapes and dtypes, ``env_id``, ``obs_shape``, ``action_shape``, ``discrete``, ``source`` (the run directory
  and its config, or the checkpoint and the noise used), ``episodes`` (count and return statistics of the
  finished episodes), ``created`` (UTC, ISO 8601).

Why not Minari: it builds and loads datasets offline, but its collector pulls in jax and it loads some
corrupted files silently; a manifest with a checksum and counts catches those, and two plain files need
nothing beyond numpy.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import numpy as np

FORMAT = 1
FIELDS = ("observations", "actions", "rewards", "next_observations", "terminations", "truncations", "episode_ids")


class DatasetError(ValueError):
    """A problem with a dataset file, phrased in one line naming the file."""


@dataclass
class DatasetConfig:
    name: Optional[str] = None  # a dataset under conf/dataset/ (e.g. pendulum_sac_replay)
    path: Optional[str] = None  # path of the dataset (NAME.npz; its manifest NAME.json beside it)
    record: bool = False  # online runs: write every transition of the run as <run dir>/dataset.npz at the end


def paths(path: str | Path) -> tuple[Path, Path]:
    p = Path(path)
    base = p.with_suffix("") if p.suffix in (".npz", ".json") else p
    return base.with_suffix(".npz"), base.with_suffix(".json")


def episode_ids(terminations: np.ndarray, truncations: np.ndarray) -> np.ndarray:
    ends = np.logical_or(terminations, truncations).astype(np.int64)
    return np.concatenate([[0], np.cumsum(ends)[:-1]]).astype(np.int64)


def episode_stats(rewards: np.ndarray, terminations: np.ndarray, truncations: np.ndarray) -> dict[str, Any]:
    """Return statistics over finished episodes (an unfinished last one is left out)."""
    ends = np.flatnonzero(np.logical_or(terminations, truncations))
    returns, start = [], 0
    for end in ends:
        returns.append(float(rewards[start:end + 1].sum()))
        start = end + 1
    r = np.asarray(returns)
    if len(r) == 0:
        return {"count": 0}
    return {"count": len(r), "return_mean": float(r.mean()), "return_std": float(r.std()),
            "return_min": float(r.min()), "return_max": float(r.max())}


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def write(path: str | Path, observations, actions, rewards, next_observations, terminations, truncations, *,
          env_id: str, source: dict[str, Any], discrete: bool) -> Path:
    """Write a dataset and its manifest; returns the npz path. Written to temporary names, then renamed."""
    npz, manifest = paths(path)
    npz.parent.mkdir(parents=True, exist_ok=True)
    terminations, truncations = np.asarray(terminations, bool), np.asarray(truncations, bool)
    arrays = {"observations": np.asarray(observations, np.float32), "actions": np.asarray(actions, np.int64 if discrete else np.float32),
              "rewards": np.asarray(rewards, np.float32), "next_observations": np.asarray(next_observations, np.float32),
              "terminations": terminations, "truncations": truncations, "episode_ids": episode_ids(terminations, truncations)}
    n = len(arrays["rewards"])
    for k, v in arrays.items():
        if len(v) != n:
            raise DatasetError(f"{npz}: field {k} has {len(v)} rows, rewards has {n}")
    tmp = npz.with_name(npz.name + ".tmp.npz")
    np.savez(tmp, **arrays)
    meta = {"format": FORMAT, "sha256": _sha256(tmp), "size": n, "env_id": env_id,
            "obs_shape": list(arrays["observations"].shape[1:]), "action_shape": list(arrays["actions"].shape[1:]),
            "discrete": discrete, "fields": {k: {"shape": list(v.shape), "dtype": str(v.dtype)} for k, v in arrays.items()},
            "episodes": episode_stats(arrays["rewards"], terminations, truncations), "source": source,
            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    tmp.replace(npz)
    manifest.write_text(json.dumps(meta, indent=1, default=str) + "\n")
    return npz


def read(path: str | Path, spec=None) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Load a dataset after checking it against its manifest (and against ``spec``, an EnvSpec, if given)."""
    npz, manifest = paths(path)
    if not npz.exists():
        raise DatasetError(f"dataset {npz} not found (build it with `make datasets` or set dataset.path)")
    if not manifest.exists():
        raise DatasetError(f"dataset {npz} has no manifest {manifest.name}; it was not written by data.write")
    try:
        meta = json.loads(manifest.read_text())
    except json.JSONDecodeError as e:
        raise DatasetError(f"{manifest}: manifest is not valid JSON ({e})") from e
    if _sha256(npz) != meta.get("sha256"):
        raise DatasetError(f"dataset {npz} is corrupted or truncated (its sha256 differs from {manifest.name})")
    try:
        with np.load(npz) as f:
            arrays = {k: f[k] for k in FIELDS}
    except (KeyError, ValueError, OSError) as e:
        raise DatasetError(f"dataset {npz} cannot be read ({e})") from e
    for k, v in arrays.items():
        if len(v) != meta["size"]:
            raise DatasetError(f"dataset {npz}: field {k} has {len(v)} rows, the manifest says {meta['size']}")
    if spec is not None:
        if tuple(meta["obs_shape"]) != tuple(spec.obs_shape) or bool(meta["discrete"]) != spec.discrete or \
                (not spec.discrete and tuple(meta["action_shape"]) != tuple(spec.action_shape)):
            raise DatasetError(f"dataset {npz} ({meta['env_id']}: obs {tuple(meta['obs_shape'])}, actions "
                               f"{tuple(meta['action_shape'])}) does not match env {spec.id} (obs {spec.obs_shape}, "
                               f"actions {spec.action_shape if not spec.discrete else 'discrete'})")
    return arrays, meta


def from_buffer(buffer, path: str | Path, *, env_id: str, source: dict[str, Any], discrete: bool) -> Path:
    """Write the transitions of a replay buffer that never wrapped around, in the order they were added."""
    if buffer.size == buffer.capacity and buffer.ptr != 0:
        raise DatasetError("the replay buffer wrapped around, early transitions are lost; "
                           "set algo.buffer_size >= total_steps to record a run")
    n = buffer.size
    return write(path, buffer.obs[:n].cpu().numpy(), buffer.action[:n].cpu().numpy(), buffer.reward[:n].cpu().numpy(),
                 buffer.next_obs[:n].cpu().numpy(), buffer.terminated[:n].cpu().numpy(),
                 buffer.truncated[:n].cpu().numpy(), env_id=env_id, source=source, discrete=discrete)
