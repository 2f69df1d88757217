"""Offline datasets: exact round trip, recording a run, collecting from a checkpoint, and bad inputs."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from rlbase import data
from rlbase.envs import EnvSpec
from tests.conftest import ROOT, run_train


def tiny(n=7, discrete=False):
    rng = np.random.default_rng(0)
    term = np.zeros(n, bool)
    trunc = np.zeros(n, bool)
    term[2], trunc[5] = True, True
    acts = rng.integers(0, 2, n) if discrete else rng.normal(size=(n, 2)).astype(np.float32)
    return (rng.normal(size=(n, 3)).astype(np.float32), acts, np.arange(n, dtype=np.float32),
            rng.normal(size=(n, 3)).astype(np.float32), term, trunc)


def test_round_trip_is_exact(tmp_path):
    arrays = tiny()
    path = data.write(tmp_path / "d", *arrays, env_id="Fake-v0", source={"kind": "test"}, discrete=False)
    loaded, meta = data.read(path)
    for key, original in zip(data.FIELDS, arrays):
        assert np.array_equal(loaded[key], original), key
    assert loaded["episode_ids"].tolist() == [0, 0, 0, 1, 1, 1, 2]
    assert meta["size"] == 7 and meta["episodes"] == {"count": 2, "return_mean": 7.5, "return_std": 4.5,
                                                      "return_min": 3.0, "return_max": 12.0}
    assert meta["source"] == {"kind": "test"} and meta["env_id"] == "Fake-v0" and "created" in meta


def test_bad_datasets_fail_with_one_line(tmp_path):
    path = data.write(tmp_path / "d", *tiny(), env_id="Fake-v0", source={}, discrete=False)
    cases = {}
    with pytest.raises(data.DatasetError) as e:
        data.read(tmp_path / "missing.npz")
    cases["missing"] = str(e.value)
    raw = bytearray(path.read_bytes())
    raw[len(raw) // 2] ^= 0x01  # one flipped bit
    path.write_bytes(bytes(raw))
    with pytest.raises(data.DatasetError) as e:
        data.read(path)
    cases["corrupt"] = str(e.value)
    path.write_bytes(bytes(raw[: len(raw) // 2]))  # truncated
    with pytest.raises(data.DatasetError) as e:
        data.read(path)
    cases["truncated"] = str(e.value)
    good = data.write(tmp_path / "g", *tiny(), env_id="Fake-v0", source={}, discrete=False)
    meta = json.loads(good.with_suffix(".json").read_text())
    for name, env_id, obs in (("shape", "Fake-v0", (5,)), ("env", "Other-v0", tuple(meta["obs_shape"]))):
        spec = EnvSpec(env_id, obs, False, 0, tuple(meta["action_shape"]), None, None, 10)
        with pytest.raises(data.DatasetError) as e:
            data.read(good, spec)
        cases[name] = str(e.value)
    assert "not found" in cases["missing"] and "corrupted or truncated" in cases["corrupt"]
    assert "corrupted or truncated" in cases["truncated"] and "does not match env Fake-v0" in cases["shape"]
    assert "recorded on Fake-v0, not on env Other-v0" in cases["env"]
    manifest = good.with_suffix(".json")
    for key in data.MANIFEST_KEYS:  # a manifest missing any key it needs names the key (was a KeyError traceback)
        meta = json.loads(manifest.read_text())
        del meta[key]
        broken = tmp_path / f"no_{key}"
        broken.mkdir()
        (broken / good.name).write_bytes(good.read_bytes())
        (broken / manifest.name).write_text(json.dumps(meta))
        with pytest.raises(data.DatasetError, match=f"the manifest lacks {key};") as e:
            data.read(broken / good.name)
        cases[f"no {key}"] = str(e.value)
    assert all("\n" not in m and (".npz" in m or ".json" in m) for m in cases.values())


def test_record_run_and_collect_from_checkpoint(tmp_path):
    run_dir = tmp_path / "run"
    run_train("algo=dqn", "env=cartpole", "total_steps=800", "eval_every=400", "eval_episodes=1",
              "algo.buffer_size=1000", "dataset.record=true", run_dir=run_dir)
    arrays, meta = data.read(run_dir / "dataset.npz")
    assert meta["size"] == 800 and meta["source"]["kind"] == "online run" and meta["discrete"]
    assert meta["source"]["config"]["algo"]["name"] == "dqn"
    # the real next observation follows each step; resets only after episode ends
    ends = arrays["terminations"] | arrays["truncations"]
    same = np.all(arrays["next_observations"][:-1] == arrays["observations"][1:], axis=1)
    assert np.array_equal(same, ~ends[:-1])
    out = tmp_path / "collected"
    proc = subprocess.run([sys.executable, str(ROOT / "scripts/collect.py"), str(run_dir), "--steps", "300",
                           "--noise", "0.5", "--out", str(out)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    meta2 = json.loads(out.with_suffix(".json").read_text())
    assert meta2["size"] == 300 and meta2["source"]["noise"] == 0.5 and meta2["source"]["kind"] == "policy rollouts"


def test_record_needs_a_buffer_that_keeps_everything(tmp_path):
    proc = run_train("algo=dqn", "algo.buffer_size=10000", "total_steps=20000", "dataset.record=true", run_dir=tmp_path / "r",
                     check=False)
    assert proc.returncode == 2 and "dataset.record=true needs algo.buffer_size (10000) >= total_steps (20000)" in proc.stderr


def test_dataset_for_online_algo_is_refused(tmp_path):
    path = data.write(tmp_path / "d", *tiny(discrete=True), env_id="CartPole-v1", source={}, discrete=True)
    proc = run_train("algo=dqn", f"dataset.path={path}", run_dir=tmp_path / "r", check=False)
    assert proc.returncode == 2 and "learns online" in proc.stderr


def test_offline_runs_refuse_bad_datasets_before_starting(tmp_path):
    """End to end: each bad dataset stops train.py with exit 2 and one error line, and leaves no run directory."""
    good = data.write(tmp_path / "pend", *tiny(), env_id="Pendulum-v1", source={}, discrete=False)
    bad = data.write(tmp_path / "bad", *tiny(), env_id="Pendulum-v1", source={}, discrete=False)
    raw = bytearray(bad.read_bytes())
    raw[len(raw) // 3] ^= 0x10
    bad.write_bytes(bytes(raw))
    cases = {
        # the named dataset is resolved relative to the working directory, where it was never built
        "not found (build it with `make datasets`": ["algo=cql", "env=pendulum", "dataset=pendulum_sac_replay"],
        "corrupted or truncated": ["algo=bcq", "env=pendulum", f"dataset.path={bad}"],
        "does not match env Hopper-v5": ["algo=bcq", "env=hopper", f"dataset.path={good}"],
    }
    for i, (expected, args) in enumerate(cases.items()):
        run_dir = tmp_path / f"run{i}"
        proc = run_train(*args, run_dir=run_dir, check=False)
        errors = [ln for ln in proc.stderr.splitlines() if ln.startswith("error:")]
        assert proc.returncode == 2 and len(errors) == 1 and expected in errors[0], proc.stderr[-2000:]
        assert not run_dir.exists()


def test_a_run_reads_its_dataset_once_and_does_not_keep_it(tmp_path, monkeypatch):
    """Validation reads the whole dataset (checksum, non-finite values); the loop trains on that read instead of
    reading the file again, and no copy outlives the run. A changed file is read anew."""
    import rlbase

    obs, _, rew, nxt, term, trunc = tiny(n=40)
    acts = np.clip(obs[:, :1], -2, 2)
    path = data.write(tmp_path / "pend", obs, acts, rew, nxt, term, trunc, env_id="Pendulum-v1", source={},
                      discrete=False)
    reads = []
    real = data.read
    monkeypatch.setattr(data, "read", lambda *a, **k: reads.append(a[0]) or real(*a, **k))
    rlbase.run(["algo=bc", "env=pendulum", f"dataset.path={path}", "total_updates=20", "eval_every=20",
                "eval_episodes=1", "logger=none", "progress=false"], run_dir=tmp_path / "run")
    assert len(reads) == 1 and data._held is None
    with pytest.raises(Exception, match="finished"):  # refused after validation read it: nothing held either
        rlbase.run(["algo=bc", "env=pendulum", f"dataset.path={path}", "total_updates=20", "eval_every=20",
                    "eval_episodes=1", "logger=none", "progress=false"], run_dir=tmp_path / "run")
    assert len(reads) == 2 and data._held is None

    cfg = type("D", (), {"id": None, "record": False, "path": str(path)})()
    first = data.load(cfg, keep=True)
    assert data.load(cfg, keep=True) is first and len(reads) == 3
    os.utime(path, ns=(0, 0))  # same bytes, another modification time: read again
    assert data.load(cfg) is not first and len(reads) == 4 and data._held is None
