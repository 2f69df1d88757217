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

Minari (the community format, successor of D4RL) is read and written too, never over the network:
``dataset=minari dataset.id=<namespace/name-vN>`` reads a dataset from the local Minari store
(``MINARI_DATASETS_PATH``, else ``~/.minari/datasets``) with Minari's own API (:func:`read_minari`), and
:func:`to_minari` writes any of ours as a Minari dataset (HDF5) so other libraries read it. Our own format stays the
default: its manifest's checksum and counts catch a corrupted or truncated file, which Minari loads silently, and
its collector needs jax (ours are built from arrays instead).

Normalised scores (D4RL's convention): 100 * (return - random) / (expert - random), with the reference returns from
the dataset's metadata when it has them (Minari's ``ref_min_score`` / ``ref_max_score``), otherwise from
:data:`D4RL_REFERENCE` by the env's family (:func:`reference_returns`).
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import numpy as np

FORMAT = 1
# What read() needs from a manifest; anything missing is a manifest not written by write() (or edited since).
MANIFEST_KEYS = ("format", "sha256", "size", "env_id", "obs_shape", "action_shape", "discrete")
FIELDS = ("observations", "actions", "rewards", "next_observations", "terminations", "truncations", "episode_ids")


class DatasetError(ValueError):
    """A problem with a dataset file, phrased in one line naming the file."""


@dataclass
class DatasetConfig:
    name: Optional[str] = None  # a dataset under conf/dataset/ (e.g. pendulum_sac_replay)
    path: Optional[str] = None  # path of the dataset (NAME.npz; its manifest NAME.json beside it)
    record: bool = False  # online runs: write every transition of the run as <run dir>/dataset.npz at the end
    id: Optional[str] = None  # a Minari dataset id: read from the local store (dataset=minari), or written (record=true)


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
    missing = [k for k in MANIFEST_KEYS if k not in meta] if isinstance(meta, dict) else list(MANIFEST_KEYS)
    if missing:
        raise DatasetError(f"{manifest}: the manifest lacks {', '.join(missing)}; it was not written by data.write "
                           "or has been edited (write the dataset again: `make datasets` or scripts/collect.py)")
    if meta["format"] != FORMAT:
        raise DatasetError(f"{manifest}: dataset format {meta['format']!r}; this version reads format {FORMAT}")
    if _sha256(npz) != meta["sha256"]:
        raise DatasetError(f"dataset {npz} is corrupted or truncated (its sha256 differs from {manifest.name})")
    try:
        with np.load(npz) as f:
            arrays = {k: f[k] for k in FIELDS}
    except (KeyError, ValueError, OSError) as e:
        raise DatasetError(f"dataset {npz} cannot be read ({e})") from e
    for k, v in arrays.items():
        if len(v) != meta["size"]:
            raise DatasetError(f"dataset {npz}: field {k} has {len(v)} rows, the manifest says {meta['size']}")
    check_finite(arrays, f"dataset {npz}")
    if spec is not None:
        if tuple(meta["obs_shape"]) != tuple(spec.obs_shape) or bool(meta["discrete"]) != spec.discrete or \
                (not spec.discrete and tuple(meta["action_shape"]) != tuple(spec.action_shape)):
            raise DatasetError(f"dataset {npz} ({meta['env_id']}: obs {tuple(meta['obs_shape'])}, actions "
                               f"{tuple(meta['action_shape'])}) does not match env {spec.id} (obs {spec.obs_shape}, "
                               f"actions {spec.action_shape if not spec.discrete else 'discrete'})")
        if meta["env_id"] != spec.id:  # same shapes, another task (or version: Hopper-v4 data on Hopper-v5)
            raise DatasetError(f"dataset {npz} was recorded on {meta['env_id']}, not on env {spec.id}; pick the env "
                               f"it was recorded on or another dataset")
    return arrays, meta


FINITE_FIELDS = ("observations", "actions", "rewards", "next_observations")  # the float fields a loss reads
SHOWN_ROWS = 5  # row indices named in a non-finite dataset's error


def check_finite(arrays: dict[str, np.ndarray], what: str) -> None:
    """Refuse a dataset with NaN or inf in its observations, actions, rewards or next observations, in one line
    naming each such field, how many values and its first rows: loaded as it is, the first minibatch holding one
    makes the loss non-finite and the run stops much later, blaming the loss (exit 3), not the data."""
    problems = []
    for k in FINITE_FIELDS:
        v = arrays.get(k)
        if v is None or not np.issubdtype(v.dtype, np.floating):  # integer (discrete) actions are always finite
            continue
        bad = ~np.isfinite(v)
        count = int(bad.sum())
        if count == 0:
            continue
        rows = np.flatnonzero(bad.reshape(len(v), -1).any(axis=1)) if v.ndim > 1 else np.flatnonzero(bad)
        kinds = "/".join(name for name, n in (("NaN", int(np.isnan(v).sum())), ("inf", int(np.isinf(v).sum()))) if n)
        shown = ", ".join(str(int(r)) for r in rows[:SHOWN_ROWS]) + (f", ... ({len(rows)} rows)" if len(rows) > SHOWN_ROWS else "")
        problems.append(f"{k} has {count} non-finite value{'s' if count != 1 else ''} ({kinds}) in row"
                        f"{'s' if len(rows) != 1 else ''} {shown}")
    if problems:
        raise DatasetError(f"{what}: {'; '.join(problems)}; allowed: finite values only (drop or repair those rows "
                           "and write the dataset again)")


def from_buffer(buffer, path: str | Path, *, env_id: str, source: dict[str, Any], discrete: bool) -> Path:
    """Write the transitions of a replay buffer that never wrapped around, in the order they were added."""
    if buffer.size == buffer.capacity and buffer.ptr != 0:
        raise DatasetError("the replay buffer wrapped around, early transitions are lost; "
                           "set algo.buffer_size >= total_steps to record a run")
    n = buffer.size
    return write(path, buffer.obs[:n].cpu().numpy(), buffer.action[:n].cpu().numpy(), buffer.reward[:n].cpu().numpy(),
                 buffer.next_obs[:n].cpu().numpy(), buffer.terminated[:n].cpu().numpy(),
                 buffer.truncated[:n].cpu().numpy(), env_id=env_id, source=source, discrete=discrete)


# ---- normalised scores

# D4RL's reference returns (random policy, expert policy) of its MuJoCo tasks, from d4rl/infos.py (REF_MIN_SCORE,
# REF_MAX_SCORE; Fu et al. 2020). They were measured on the v2 envs; used when a dataset's metadata has none.
D4RL_REFERENCE = {"Hopper": (-20.272305, 3234.3), "HalfCheetah": (-280.178953, 12135.0),
                  "Walker2d": (1.629008, 4592.3), "Ant": (-325.6, 3879.7)}


def reference_returns(meta: dict[str, Any], env_id: str) -> Optional[tuple[float, float]]:
    """(random, expert) returns for normalised scores: the dataset's own when its metadata has them, else D4RL's for
    the env's family (``Hopper-v5`` -> ``Hopper``), else None (no normalised score is logged)."""
    ref = meta.get("ref_min_score"), meta.get("ref_max_score")
    if None not in ref and ref[1] != ref[0]:
        return float(ref[0]), float(ref[1])
    return D4RL_REFERENCE.get(env_id.split("-v")[0].split("/")[-1])


def normalized_score(ret: float, ref: tuple[float, float]) -> float:
    return 100.0 * (ret - ref[0]) / (ref[1] - ref[0])


# ---- loading, whichever format


# One dataset held between the reads of one run: validation reads it in full (checksum, non-finite values), a
# resume checks its checksum, the loop trains on it. ``keep=True`` holds what was read; the next ``load`` of the same
# files (same paths, sizes and modification times) and env returns it instead of reading again, and a load without
# ``keep`` (the loop's) lets go of it, so a run holds the dataset once: in its replay buffer.
_held: Optional[tuple[tuple, tuple[dict[str, np.ndarray], dict[str, Any]]]] = None


def _files_of(cfg) -> list[Path]:
    if cfg.id is not None and not cfg.record:
        return sorted((minari_root() / cfg.id / "data").glob("*"))
    return list(paths(cfg.path)) if cfg.path is not None else []


def _identity(cfg, spec) -> Optional[tuple]:
    """What a held read must equal to be reused: the files (path, size, modification time) and the env's facts the
    checks compare; None when a file cannot be looked at (then nothing is reused)."""
    try:
        files = tuple((str(f), st.st_size, st.st_mtime_ns) for f in _files_of(cfg) for st in [f.stat()])
    except OSError:
        return None
    if not files:
        return None
    env = None if spec is None else (spec.id, tuple(spec.obs_shape), bool(spec.discrete), tuple(spec.action_shape))
    return describe(cfg), files, env


def load(cfg, spec=None, keep: bool = False) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """The dataset a config names (``dataset.id``: Minari; ``dataset.path``: ours), as our arrays and a manifest.
    ``keep``: hold it for the next load of the same files in this process (see ``_held``); callers must not
    change the arrays in place."""
    global _held
    key = _identity(cfg, spec)
    if key is not None and _held is not None and _held[0] == key:
        got = _held[1]
    else:
        _held = None
        got = read_minari(cfg.id, spec) if cfg.id is not None and not cfg.record else read(cfg.path, spec)
    _held = (key, got) if keep and key is not None else None
    return got


def forget() -> None:
    """Let go of a dataset held by ``load(..., keep=True)`` (a process that validated runs it will not train)."""
    global _held
    _held = None


def describe(cfg) -> str:
    return f"Minari dataset {cfg.id}" if cfg.id is not None and not cfg.record else f"dataset {cfg.path}"


# ---- Minari


def _minari():
    try:
        import minari
    except ImportError as e:  # pragma: no cover - a dependency in requirements.txt
        raise DatasetError("Minari datasets need the minari package (pip install 'minari[hdf5]')") from e
    return minari


def minari_root() -> Path:
    return Path(os.environ.get("MINARI_DATASETS_PATH") or Path.home() / ".minari" / "datasets")


def local_minari_ids() -> list[str]:
    """Ids of the datasets in the local Minari store (found by their metadata files; nothing is opened)."""
    root = minari_root()
    return sorted(str(p.parent.parent.relative_to(root)) for p in root.glob("**/data/metadata.json")) if root.is_dir() else []


def open_minari(dataset_id: str):
    """The local Minari dataset ``dataset_id`` (lazily opened), or one line naming the local ids and the download
    command. Never downloads."""
    minari = _minari()
    local = local_minari_ids()
    if dataset_id not in local:
        have = ", ".join(local) if local else "none"
        raise DatasetError(f"Minari dataset {dataset_id} is not in the local store {minari_root()} (local datasets: "
                           f"{have}); fetch it with `minari download {dataset_id}` (or set MINARI_DATASETS_PATH)")
    try:
        return minari.load_dataset(dataset_id, download=False)
    except Exception as e:  # noqa: BLE001 - a damaged dataset, in Minari's words
        raise DatasetError(f"Minari dataset {dataset_id} cannot be read ({type(e).__name__}: {e})") from e


def check_minari(ds, dataset_id: str, spec) -> dict[str, Any]:
    """Check a Minari dataset's env and spaces against ``spec`` (an EnvSpec); returns its metadata."""
    import gymnasium as gym

    meta = dict(ds.storage.metadata)
    env_spec = ds.spec.env_spec
    env_id = env_spec.id if env_spec is not None else None
    if not isinstance(ds.observation_space, gym.spaces.Box) or \
            not isinstance(ds.action_space, (gym.spaces.Box, gym.spaces.Discrete)):
        raise DatasetError(f"Minari dataset {dataset_id} has {type(ds.observation_space).__name__} observations and "
                           f"{type(ds.action_space).__name__} actions; supported: Box observations, Box or Discrete actions")
    if spec is not None:
        if env_id is not None and env_id != spec.id:
            raise DatasetError(f"Minari dataset {dataset_id} was made on {env_id}, but env={spec.id}; pick the env "
                               f"the dataset was made on ({env_id}) or another dataset")
        discrete = isinstance(ds.action_space, gym.spaces.Discrete)
        if tuple(ds.observation_space.shape) != tuple(spec.obs_shape) or discrete != spec.discrete or \
                (not discrete and tuple(ds.action_space.shape) != tuple(spec.action_shape)):
            raise DatasetError(f"Minari dataset {dataset_id} (obs {ds.observation_space.shape}, actions "
                               f"{ds.action_space}) does not match env {spec.id} (obs {spec.obs_shape}, actions "
                               f"{spec.action_shape if not spec.discrete else 'discrete'})")
    meta["env_id"] = env_id
    return meta


def read_minari(dataset_id: str, spec=None) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """A local Minari dataset as our arrays (one row per transition, episodes in order; terminations and
    truncations kept apart) and a manifest like ours (``sha256`` of its HDF5 file, for resume's check)."""
    import gymnasium as gym

    ds = open_minari(dataset_id)
    info = check_minari(ds, dataset_id, spec)
    discrete = isinstance(ds.action_space, gym.spaces.Discrete)
    cols: dict[str, list] = {k: [] for k in FIELDS[:-1]}
    for ep in ds.iterate_episodes():
        obs = np.asarray(ep.observations, np.float32)
        cols["observations"].append(obs[:-1])
        cols["next_observations"].append(obs[1:])
        cols["actions"].append(np.asarray(ep.actions, np.int64 if discrete else np.float32))
        cols["rewards"].append(np.asarray(ep.rewards, np.float32))
        cols["terminations"].append(np.asarray(ep.terminations, bool))
        cols["truncations"].append(np.asarray(ep.truncations, bool))
    if not cols["rewards"]:
        raise DatasetError(f"Minari dataset {dataset_id} holds no episodes")
    arrays = {k: np.concatenate(v) for k, v in cols.items()}
    check_finite(arrays, f"Minari dataset {dataset_id}")
    arrays["episode_ids"] = episode_ids(arrays["terminations"], arrays["truncations"])
    files = sorted((minari_root() / dataset_id / "data").glob("*"))
    h = hashlib.sha256()
    for f in files:
        if f.suffix != ".json":  # the data files: metadata may be rewritten by Minari without a change in data
            h.update(bytes.fromhex(_sha256(f)))
    n = len(arrays["rewards"])
    meta = {"format": "minari", "id": dataset_id, "sha256": h.hexdigest(), "size": n, "env_id": info["env_id"],
            "obs_shape": list(arrays["observations"].shape[1:]), "action_shape": list(arrays["actions"].shape[1:]),
            "discrete": discrete, "episodes": episode_stats(arrays["rewards"], arrays["terminations"], arrays["truncations"]),
            "ref_min_score": info.get("ref_min_score"), "ref_max_score": info.get("ref_max_score"),
            "source": {"kind": "minari", "id": dataset_id, "algorithm_name": info.get("algorithm_name")}}
    return arrays, meta


def _run_record(run_dir: Optional[Path]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(config, git record) of a run directory: its ``.hydra/config.yaml`` (resolved) and ``provenance.json``'s
    ``git``; empty where a file is missing or unreadable (the directory may be gone, or on another machine)."""
    cfg: dict[str, Any] = {}
    git: dict[str, Any] = {}
    if run_dir is None:
        return cfg, git
    try:
        from omegaconf import OmegaConf

        cfg = OmegaConf.to_container(OmegaConf.load(run_dir / ".hydra" / "config.yaml"), resolve=True)
    except Exception:  # noqa: BLE001 - a description does without what it cannot read
        cfg = {}
    try:
        git = json.loads((run_dir / "provenance.json").read_text()).get("git") or {}
    except (OSError, ValueError, AttributeError):
        git = {}
    return (cfg if isinstance(cfg, dict) else {}), git


def minari_description(meta: dict[str, Any], episodes: int, headline: str = "") -> str:
    """The ``description`` of a dataset written to Minari: one readable paragraph (not a dump of the run's config)
    saying what made the data (algorithm, env id, budget, seed, git commit from the run's ``provenance.json`` when
    the run directory is still there) and what is in it (transitions, episodes, mean return). ``headline``: a first
    sentence of the caller's, instead of the one made from the manifest's ``source``."""
    src = meta.get("source") or {}
    run_dir = Path(src["run_dir"]) if src.get("run_dir") else None
    recorded, git = _run_record(run_dir)
    cfg = src.get("config") if isinstance(src.get("config"), dict) else recorded
    algo, env_id, kind = (cfg.get("algo") or {}).get("name"), meta.get("env_id"), src.get("kind")
    ds = cfg.get("dataset") or {}
    offline = bool(ds.get("path") or ds.get("id")) and not ds.get("record")  # a policy trained on a dataset
    budget = cfg.get("total_updates" if offline else "total_steps")
    facts = [f"a budget of {budget:,} {'gradient updates' if offline else 'env steps'}" if isinstance(budget, int) else "",
             f"seed {cfg['seed']}" if cfg.get("seed") is not None else ""]
    run = f"a {algo} run on {env_id}" + (f" ({', '.join(f for f in facts if f)})" if any(facts) else "")
    if headline:
        parts = [headline.strip().rstrip(".")[:1].upper() + headline.strip().rstrip(".")[1:] + "."]
        if algo:
            parts.append(f"It comes from {run}.")
    elif kind == "online run":
        parts = [f"Every transition of {run}, recorded by rlbase as it trained (dataset.record=true)."]
    elif kind == "policy rollouts":
        step = src.get("checkpoint_step")
        parts = [f"Rollouts of the policy of {run if algo else 'an rlbase run'}"
                 f"{f', its checkpoint at step {step:,}' if isinstance(step, int) else ''}, collected by rlbase "
                 f"(scripts/collect.py) with action noise {src.get('noise', 0)} and rollout seed {src.get('seed')}."]
    elif kind == "minari":
        parts = [f"A copy of the Minari dataset {src.get('id')} (algorithm: {src.get('algorithm_name')})."]
    else:
        parts = [f"Transitions on {env_id} written by rlbase{f' ({kind})' if kind else ''}."]
    stats = meta.get("episodes") or {}
    size = meta.get("size", 0)
    line = f"{size:,} transitions in {episodes} episode{'s' if episodes != 1 else ''}"
    if stats.get("count"):
        unfinished = f", {episodes - stats['count']} unfinished" if episodes > stats["count"] else ""
        line += (f" ({stats['count']} finished{unfinished}); mean return {stats['return_mean']:.1f} "
                 f"(std {stats['return_std']:.1f}, min {stats['return_min']:.1f}, max {stats['return_max']:.1f})")
    parts.append(line + ".")
    if git.get("commit"):
        parts.append(f"Code: rlbase at git commit {git['commit'][:12]}"
                     f"{' with uncommitted changes' if git.get('dirty') else ''} (the run's provenance.json).")
    return " ".join(parts)


def to_minari(arrays: dict[str, np.ndarray], meta: dict[str, Any], dataset_id: str, *, description: str = "") -> Path:
    """Write one of our datasets into the local Minari store as ``dataset_id`` (HDF5), one Minari episode per
    episode of ours (an unfinished last one included as it is); returns the dataset's directory. Its description is
    one paragraph (:func:`minari_description`; ``description``, if given, is its first sentence).

    Minari stores T+1 observations per episode; ours hold (obs, next_obs) per transition, so within an episode each
    next observation must be the following row's observation (true of everything we record or collect)."""
    import warnings

    minari = _minari()
    from minari.data_collector.episode_buffer import EpisodeBuffer

    if dataset_id in local_minari_ids():
        raise DatasetError(f"Minari dataset {dataset_id} already exists in {minari_root()}; pick another id or "
                           f"delete it first (`minari delete {dataset_id}`)")
    ids = arrays["episode_ids"]
    starts = np.flatnonzero(np.r_[True, ids[1:] != ids[:-1]])
    ends = np.r_[starts[1:], len(ids)]
    obs, nxt = arrays["observations"], arrays["next_observations"]
    episodes = []
    for i, (a, b) in enumerate(zip(starts, ends)):
        if b - a > 1 and not np.array_equal(obs[a + 1:b], nxt[a:b - 1]):
            raise DatasetError(f"episode {i} of the dataset is not one trajectory (a next observation differs from the "
                               "next row's observation); Minari stores trajectories")
        episodes.append(EpisodeBuffer(id=i, observations=np.concatenate([obs[a:b], nxt[b - 1:b]]),
                                      actions=arrays["actions"][a:b], rewards=arrays["rewards"][a:b].tolist(),
                                      terminations=arrays["terminations"][a:b].tolist(),
                                      truncations=arrays["truncations"][a:b].tolist(), infos={}))
    ref = reference_returns(meta, meta["env_id"])
    with warnings.catch_warnings():  # Minari asks for an author, e-mail and permalink; none is ours to give
        warnings.simplefilter("ignore")
        minari.create_dataset_from_buffers(
            dataset_id, episodes, env=meta["env_id"], algorithm_name=str(meta.get("source", {}).get("kind", "rlbase")),
            author="rlbase", description=minari_description(meta, len(episodes), description),
            data_format="hdf5", ref_min_score=ref[0] if ref else None, ref_max_score=ref[1] if ref else None)
    return minari_root() / dataset_id
