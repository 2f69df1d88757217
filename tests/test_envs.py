"""Every env option composes, builds and steps; wrappers behave."""

import numpy as np
import pytest

from rlbase import envs
from tests.conftest import ROOT

ENV_OPTIONS = sorted(p.stem for p in (ROOT / "rlbase/conf/env").glob("*.yaml") if p.stem != "gym")


@pytest.mark.parametrize("name", ENV_OPTIONS)
def test_env_option_builds_and_steps(compose_cfg, name):
    cfg = compose_cfg(f"env={name}")
    env, spec = envs.make(cfg.env, seed=0)
    obs, _ = env.reset(seed=0)
    assert obs.shape == spec.obs_shape
    for _ in range(5):
        obs, reward, terminated, truncated, _ = env.step(env.action_space.sample())
        assert np.isfinite(reward)
        if terminated or truncated:
            obs, _ = env.reset()
    env.close()


def test_generic_env_with_box_actions(compose_cfg):
    cfg = compose_cfg("algo=td3", "env=gym", "env.id=MountainCarContinuous-v0")
    env, spec = envs.make(cfg.env, seed=0)
    assert not spec.discrete and spec.action_shape == (1,)
    env.close()


def test_reward_reshaping_only_on_training_env(compose_cfg):
    cfg = compose_cfg("algo=sac", "env=pendulum", "env.reward_shift=8", "env.reward_scale=0.125")
    train_env, _ = envs.make(cfg.env, seed=0)
    eval_env, _ = envs.make(cfg.env, seed=0, train=False)
    train_env.reset(seed=1)
    eval_env.reset(seed=1)
    a = np.array([0.5], np.float32)
    _, r_train, *_ = train_env.step(a)
    _, r_eval, *_ = eval_env.step(a)
    assert abs(r_train - (r_eval + 8) / 8) < 1e-6


def test_obs_normalisation_shared_with_eval_env(compose_cfg):
    cfg = compose_cfg("algo=td3", "env=hopper", "env.normalize_obs=true")
    train_env, _ = envs.make(cfg.env, seed=0)
    eval_env, _ = envs.make(cfg.env, seed=1, train=False)
    envs.share_obs_stats(train_env, eval_env)
    train_env.reset(seed=0)
    for _ in range(50):
        train_env.step(train_env.action_space.sample())
    stats = envs.obs_stats(train_env)
    assert stats["count"] > 50
    eval_env.reset(seed=3)
    assert envs.obs_stats(eval_env)["count"] == stats["count"]  # eval reads the training statistics, never updates them


def test_unknown_or_unversioned_id_is_one_line():
    with pytest.raises(envs.EnvError, match="not a registered gymnasium id") as info:
        envs.check_id("Hopper")
    assert "Hopper-v5" in str(info.value) and "\n" not in str(info.value)


@pytest.mark.parametrize("name,env_id", [("cartpole", "CartPole-v1"), ("hopper", "Hopper-v5")])
def test_vector_env_state_round_trip(name, env_id):
    """A saved sync vector env continues exactly: same observations, rewards and episode ends after restoring."""
    env, _ = envs.make_vector(envs.EnvConfig(name=name, id=env_id), 0, 3)
    env.reset(seed=0)
    actions = [env.action_space.sample() for _ in range(60)]
    for a in actions[:20]:
        env.step(a)
    saved = envs.vector_state(env)

    def roll():
        return [env.step(a)[:4] for a in actions[20:]]

    first = roll()
    env.step(actions[0])  # move on, then restore
    envs.load_vector_state(env, saved)
    second = roll()
    for x, y in zip(first, second):
        for u, v in zip(x, y):
            assert np.array_equal(u, v)
    env.close()


@pytest.mark.parametrize("backend", ["bogus", "osmesa"])
def test_a_gl_backend_that_cannot_load_does_not_stop_training(tmp_path, backend):
    """Training needs no renderer: a MUJOCO_GL that cannot load (misspelt, or osmesa without its library) is one
    warning, and the MuJoCo run goes on (a process of its own: MuJoCo reads MUJOCO_GL once, at import)."""
    import os
    import subprocess
    import sys

    from tests.conftest import ROOT

    code = ("import os, sys; sys.path.insert(0, sys.argv[1]); from rlbase import envs; from omegaconf import OmegaConf; "
            "from rlbase.conf.schema import register; register(); "
            "cfg = OmegaConf.merge(OmegaConf.structured(envs.EnvConfig), {'name': 'hopper', 'id': 'Hopper-v5'}); "
            "env, spec = envs.make(cfg, 0); env.reset(seed=0); print('stepped', env.step(env.action_space.sample())[1])")
    proc = subprocess.run([sys.executable, "-c", code, str(ROOT)], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "MUJOCO_GL": backend}, cwd=tmp_path)
    assert proc.returncode == 0 and "stepped" in proc.stdout, proc.stderr[-2000:]
    if backend == "bogus" or "libOSMesa" in proc.stderr:  # osmesa may be installed where this runs
        assert f"MUJOCO_GL={backend} cannot be used" in proc.stderr and "Traceback" not in proc.stderr
