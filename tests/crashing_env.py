"""Test-only envs: one raises after some steps (worker failure handling), one returns NaN rewards, one is slow."""

import time

import gymnasium as gym
import numpy as np
from gymnasium.envs.classic_control.cartpole import CartPoleEnv


class CrashingCartPole(CartPoleEnv):
    steps_in_process = 0

    def step(self, action):
        CrashingCartPole.steps_in_process += 1
        if CrashingCartPole.steps_in_process > 300:
            raise RuntimeError("injected crash in the env")
        return super().step(action)


if "CrashingCartPole-v0" not in gym.envs.registry:
    gym.register("CrashingCartPole-v0", entry_point=CrashingCartPole, max_episode_steps=500)


class NaNRewardCartPole(CartPoleEnv):
    """Returns a NaN reward from its 1500th step on (in one process)."""

    steps_in_process = 0

    def step(self, action):
        NaNRewardCartPole.steps_in_process += 1
        obs, reward, terminated, truncated, info = super().step(action)
        if NaNRewardCartPole.steps_in_process >= 1500:
            reward = float("nan")
        return obs, reward, terminated, truncated, info


if "NaNRewardCartPole-v0" not in gym.envs.registry:
    gym.register("NaNRewardCartPole-v0", entry_point=NaNRewardCartPole, max_episode_steps=500)


class SlowCartPole(CartPoleEnv):
    """Sleeps 2.5 ms per step, so a run's wall time is set by the step count, not by the machine's speed."""

    def step(self, action):
        time.sleep(0.0025)
        return super().step(action)


if "SlowCartPole-v0" not in gym.envs.registry:
    gym.register("SlowCartPole-v0", entry_point=SlowCartPole, max_episode_steps=500)


class ImageObsEnv(gym.Env):
    """64x64x3 uint8 observations: refused before any work (the networks take vectors)."""

    observation_space = gym.spaces.Box(0, 255, (64, 64, 3), np.uint8)
    action_space = gym.spaces.Discrete(2)

    def __init__(self, render_mode=None):
        self.render_mode = render_mode

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        return np.zeros((64, 64, 3), np.uint8), {}

    def step(self, action):
        return np.zeros((64, 64, 3), np.uint8), 0.0, False, False, {}


if "ImageObs-v0" not in gym.envs.registry:
    gym.register("ImageObs-v0", entry_point=ImageObsEnv, max_episode_steps=10)


class UnboundedPendulum(gym.Env):
    """A continuous-action env whose action space has no finite bounds (refused before any work)."""

    observation_space = gym.spaces.Box(-1.0, 1.0, (3,), np.float32)
    action_space = gym.spaces.Box(-np.inf, np.inf, (1,), np.float32)

    def __init__(self, render_mode=None):
        self.render_mode = render_mode

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        return np.zeros(3, np.float32), {}

    def step(self, action):
        return np.zeros(3, np.float32), 0.0, False, False, {}


if "UnboundedPendulum-v0" not in gym.envs.registry:
    gym.register("UnboundedPendulum-v0", entry_point=UnboundedPendulum, max_episode_steps=50)
