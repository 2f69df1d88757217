"""A test-only env that raises after a number of steps in one process (to test worker failure handling)."""

import gymnasium as gym
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
