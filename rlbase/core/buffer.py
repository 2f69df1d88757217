"""Replay storage in preallocated torch tensors.

``terminated`` (the MDP ended: do not bootstrap) and ``truncated`` (a time limit cut the episode:
do bootstrap) are stored apart, and ``next_obs`` always holds the real observation that followed
the action, also at a time limit, so targets never bootstrap from a reset observation.
"""

from __future__ import annotations

import hashlib
import io
import math
import os
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch

from rlbase.core.checkpoint import CheckpointError


class Batch(NamedTuple):
    obs: torch.Tensor  # (B, *obs_shape) float32
    action: torch.Tensor  # (B, *action_shape) float32, or (B,) int64 for discrete actions
    reward: torch.Tensor  # (B,) float32
    next_obs: torch.Tensor  # (B, *obs_shape) float32
    terminated: torch.Tensor  # (B,) float32, 1.0 where the episode ended in a terminal state
    truncated: torch.Tensor  # (B,) float32, 1.0 where a time limit cut the episode


class ReplayBuffer:
    """Transitions in one preallocated (capacity, width) float32 table, one row per transition.

    A row holds obs | action | reward | terminated | truncated | next_obs (discrete actions live in their own
    int64 column vector), so ``sample`` gathers a whole minibatch with one ``index_select`` instead of one
    indexing op per field; ``obs``, ``action``, ... are views of the table's columns.
    """

    def __init__(self, capacity: int, obs_shape: tuple[int, ...], action_shape: tuple[int, ...], *,
                 discrete: bool = False, device: torch.device | str = "cpu", generator: torch.Generator | None = None):
        self.capacity = int(capacity)
        self.device = torch.device(device)
        self.generator = generator
        self.discrete = discrete
        self.obs_shape, self.action_shape = tuple(obs_shape), tuple(action_shape)
        n_obs, n_act = math.prod(obs_shape), (0 if discrete else math.prod(action_shape))
        # column ranges of each field in a row
        self._cols = {"obs": (0, n_obs), "action": (n_obs, n_obs + n_act), "reward": (n_obs + n_act,),
                      "terminated": (n_obs + n_act + 1,), "truncated": (n_obs + n_act + 2,),
                      "next_obs": (n_obs + n_act + 3, 2 * n_obs + n_act + 3)}
        self.width = 2 * n_obs + n_act + 3
        self.table = torch.zeros((self.capacity, self.width), dtype=torch.float32, device=self.device)
        self.obs, self.reward, self.terminated, self.truncated, self.next_obs = self._fields(self.table)[:5]
        if discrete:
            self.action = torch.zeros((self.capacity, *action_shape), dtype=torch.int64, device=self.device)
        else:
            self.action = self._fields(self.table)[5]
        self.ptr = 0  # next slot to write
        self.size = 0  # number of valid slots
        self.added = 0  # transitions ever added: transition i lives in slot i % capacity until overwritten
        self.saved = 0  # transitions [0, saved) are in chunk files (see save_chunks)
        self.chunks: list[dict] = []  # the chunk files that hold the live transitions, oldest first

    def _fields(self, rows: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """Views of obs, reward, terminated, truncated, next_obs and (continuous) action in a block of rows."""
        c = self._cols
        obs, nxt = rows[:, c["obs"][0]:c["obs"][1]], rows[:, c["next_obs"][0]:c["next_obs"][1]]
        if len(self.obs_shape) != 1:
            obs, nxt = obs.unflatten(1, self.obs_shape), nxt.unflatten(1, self.obs_shape)
        act = rows[:, c["action"][0]:c["action"][1]]
        if len(self.action_shape) != 1:
            act = act.unflatten(1, self.action_shape or (0,))
        r = c["reward"][0]
        return obs, rows[:, r], rows[:, r + 1], rows[:, r + 2], nxt, act

    def __len__(self) -> int:
        return self.size

    def add(self, obs, action, reward: float, next_obs, terminated: bool, truncated: bool) -> None:
        i = self.ptr
        # one row, assembled in numpy and copied once (a copy per field costs several times more per step)
        parts = [np.asarray(obs, dtype=np.float32).reshape(-1), np.asarray(action, dtype=np.float32).reshape(-1),
                 np.array((reward, terminated, truncated), dtype=np.float32),
                 np.asarray(next_obs, dtype=np.float32).reshape(-1)]
        if self.discrete:
            self.action[i] = int(action)
            del parts[1]
        self.table[i] = torch.from_numpy(np.concatenate(parts))
        self.ptr = (i + 1) % self.capacity
        self.size = min(self.size + 1, self.capacity)
        self.added += 1

    def add_batch(self, obs, action, reward, next_obs, terminated, truncated) -> None:
        """Append many transitions at once (used to load offline datasets)."""
        n = len(reward)
        for start in range(0, n, self.capacity):
            sl = slice(start, min(n, start + self.capacity))
            m = sl.stop - sl.start
            idx = (torch.arange(m) + self.ptr) % self.capacity
            self.obs[idx] = torch.as_tensor(np.asarray(obs[sl]), dtype=torch.float32, device=self.device)
            self.action[idx] = torch.as_tensor(np.asarray(action[sl]), dtype=self.action.dtype, device=self.device)
            self.reward[idx] = torch.as_tensor(np.asarray(reward[sl]), dtype=torch.float32, device=self.device)
            self.next_obs[idx] = torch.as_tensor(np.asarray(next_obs[sl]), dtype=torch.float32, device=self.device)
            self.terminated[idx] = torch.as_tensor(np.asarray(terminated[sl]), dtype=torch.float32, device=self.device)
            self.truncated[idx] = torch.as_tensor(np.asarray(truncated[sl]), dtype=torch.float32, device=self.device)
            self.ptr = (self.ptr + m) % self.capacity
            self.size = min(self.size + m, self.capacity)
            self.added += m

    def sample(self, batch_size: int) -> Batch:
        """A uniform minibatch (indices from the buffer's generator); fresh tensors, safe to keep."""
        idx = torch.randint(0, self.size, (batch_size,), generator=self.generator, device=self.device)
        rows = self.table.index_select(0, idx)
        obs, reward, terminated, truncated, next_obs, action = self._fields(rows)
        if self.discrete:
            action = self.action.index_select(0, idx)
        return Batch(obs, action, reward, next_obs, terminated, truncated)

    def state_dict(self) -> dict:
        n = self.size
        # Store only the filled part, in slot order, so a checkpoint of a young run stays small.
        return {"capacity": self.capacity, "ptr": self.ptr, "size": n,
                "obs": self.obs[:n].cpu().clone(), "action": self.action[:n].cpu().clone(),
                "reward": self.reward[:n].cpu().clone(), "next_obs": self.next_obs[:n].cpu().clone(),
                "terminated": self.terminated[:n].cpu().clone(), "truncated": self.truncated[:n].cpu().clone()}

    def load_state_dict(self, state: dict) -> None:
        if state["capacity"] != self.capacity:
            raise ValueError(f"replay buffer capacity mismatch: checkpoint has {state['capacity']}, config has {self.capacity}")
        n = state["size"]
        for key in ("obs", "action", "reward", "next_obs", "terminated", "truncated"):
            getattr(self, key)[:n] = state[key].to(self.device)
        self.ptr, self.size = state["ptr"], n
        self.added, self.saved, self.chunks = n, 0, []

    # -- checkpoints whose cost does not grow with the buffer ------------------------------------------------
    # A checkpoint holds a small manifest; the rows live in chunk files beside it, each written once, when its
    # transitions are new, and deleted once no checkpoint still on disk needs them (see prune). A checkpoint so
    # writes only the transitions added since the previous one, and holds at most one chunk's copy in memory.

    CHUNK_BYTES = 64 << 20  # rows per chunk file: as many as fit in this many bytes

    def _rows_per_chunk(self) -> int:
        return max(1, self.CHUNK_BYTES // (4 * self.width + (8 if self.discrete else 0)))

    def save_chunks(self, directory: str | Path) -> dict:
        """Write the transitions added since the last call to new chunk files in ``directory``; return the manifest
        that :meth:`load_chunks` restores the whole buffer from (the part a checkpoint stores)."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        first_live = self.added - self.size
        start = max(self.saved, first_live)  # rows overwritten before they were saved are not needed
        step = self._rows_per_chunk()
        for s in range(start, self.added, step):
            e = min(self.added, s + step)
            slots = torch.arange(s, e) % self.capacity
            part = {"rows": self.table[slots.to(self.device)].cpu()}
            if self.discrete:
                part["action"] = self.action[slots.to(self.device)].cpu()
            buf = io.BytesIO()
            torch.save(part, buf)
            payload = buf.getvalue()
            name = f"rows_{s:012d}_{e:012d}.pt"
            tmp = directory / (name + ".tmp")
            with open(tmp, "wb") as f:
                f.write(payload)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, directory / name)
            self.chunks.append({"name": name, "start": s, "end": e, "sha256": hashlib.sha256(payload).hexdigest()})
        self.saved = self.added
        self.chunks = [c for c in self.chunks if c["end"] > first_live]
        return {"format": "chunks", "capacity": self.capacity, "ptr": self.ptr, "size": self.size, "added": self.added,
                "chunks": [dict(c) for c in self.chunks]}

    @staticmethod
    def _chunk_bytes(directory: Path, c: dict) -> bytes:
        """One chunk file's bytes, checked against the checksum its manifest entry holds (CheckpointError if not)."""
        path = directory / c["name"]
        try:
            payload = path.read_bytes()
        except OSError as e:
            raise CheckpointError(f"replay chunk {path} is missing ({e.strerror}); the checkpoint cannot be restored") from e
        if hashlib.sha256(payload).hexdigest() != c["sha256"]:
            raise CheckpointError(f"replay chunk {path}: checksum mismatch (the file is corrupted or truncated)")
        return payload

    @classmethod
    def verify_chunks(cls, directory: str | Path, manifest: dict) -> None:
        """Every chunk a :meth:`save_chunks` manifest lists is there with its checksum (CheckpointError if not)."""
        for c in manifest["chunks"]:
            cls._chunk_bytes(Path(directory), c)

    def load_chunks(self, directory: str | Path, manifest: dict) -> None:
        """Restore the buffer a :meth:`save_chunks` manifest describes, reading one chunk at a time."""
        if manifest["capacity"] != self.capacity:
            raise ValueError(f"replay buffer capacity mismatch: checkpoint has {manifest['capacity']}, config has {self.capacity}")
        directory = Path(directory)
        first_live = manifest["added"] - manifest["size"]
        for c in manifest["chunks"]:
            part = torch.load(io.BytesIO(self._chunk_bytes(directory, c)), weights_only=True, map_location="cpu")
            lo = max(c["start"], first_live)  # the rows of this chunk not overwritten since
            slots = (torch.arange(lo, c["end"]) % self.capacity).to(self.device)
            self.table[slots] = part["rows"][lo - c["start"]:].to(self.device)
            if self.discrete:
                self.action[slots] = part["action"][lo - c["start"]:].to(self.device)
        self.ptr, self.size, self.added = manifest["ptr"], manifest["size"], manifest["added"]
        self.saved, self.chunks = self.added, [dict(c) for c in manifest["chunks"]]

    @staticmethod
    def prune(directory: str | Path, manifests: list[dict]) -> None:
        """Delete the chunk files in ``directory`` that none of ``manifests`` (the checkpoints on disk) names."""
        directory = Path(directory)
        keep = {c["name"] for m in manifests if m and m.get("format") == "chunks" for c in m["chunks"]}
        for path in directory.glob("rows_*.pt*"):
            if path.name not in keep:
                path.unlink(missing_ok=True)
