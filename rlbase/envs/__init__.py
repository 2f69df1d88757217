"""Environment construction: ``make(cfg, seed) -> (env, EnvSpec)``.

The config says what the user wants (an id, wrappers); the :class:`EnvSpec` says what the
environment turned out to be (shapes, bounds, discrete or not, time limit). The spec travels
beside the config instead of being written back into it.
"""

from __future__ import annotations

import difflib
import importlib
import os
from dataclasses import dataclass, field
from typing import Any, Optional

# MuJoCo picks its GL backend at import time; without one, a render call aborts the process.
# EGL renders headless on the CPU here; users can still override it (e.g. MUJOCO_GL=osmesa).
os.environ.setdefault("MUJOCO_GL", "egl")

import gymnasium as gym  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from omegaconf import MISSING  # noqa: E402

from rlbase.core import seeding
from rlbase.core.settings import any_value, non_negative, positive


class EnvError(ValueError):
    """A problem with the requested environment, phrased for the user in one line."""


class EnvFailed(RuntimeError):
    """The environment itself raised while the run used it (in reset or step): the run stops in one line naming
    the env and its error; the traceback goes to the run's train.log."""


class _Guard(gym.Wrapper):
    """Innermost wrapper: an exception from the env's own reset or step becomes :class:`EnvFailed`."""

    def reset(self, **kwargs):
        try:
            return self.env.reset(**kwargs)
        except Exception as e:
            raise EnvFailed(f"{self.env.spec.id if self.env.spec else self.env}: its reset raised "
                            f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}") from e

    def step(self, action):
        try:
            return self.env.step(action)
        except Exception as e:
            raise EnvFailed(f"{self.env.spec.id if self.env.spec else self.env}: its step raised "
                            f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}") from e


@dataclass
class EnvConfig:
    name: str = MISSING  # short name used in run directories and W&B groups
    id: str = MISSING  # gymnasium id, versioned (e.g. CartPole-v1)
    max_episode_steps: Optional[int] = positive(None)  # override the registered time limit (None: keep it)
    total_steps: int = positive(100_000)  # default budget for this env; the top-level total_steps reads it
    eval_every: int = positive(5_000)  # default evaluation interval (env steps) for this env
    normalize_obs: bool = False  # running mean/std observation normalisation (training env; eval shares stats)
    normalize_reward: bool = False  # on-policy only: rewards divided by the running std of the discounted return
    obs_clip: float = non_negative(0.0)  # with normalize_obs: normalised observations clipped to +-obs_clip (0: off)
    reward_shift: float = any_value(0.0)  # training reward becomes (r + reward_shift) * reward_scale
    reward_scale: float = any_value(1.0)  # e.g. Pendulum's (r + 8) / 8: env.reward_shift=8 env.reward_scale=0.125
    kwargs: dict[str, Any] = field(default_factory=dict)  # extra keyword arguments for gym.make


@dataclass(frozen=True)
class EnvSpec:
    """Facts about an environment discovered at runtime."""

    id: str
    obs_shape: tuple[int, ...]
    discrete: bool
    n_actions: int  # number of discrete actions (0 for continuous)
    action_shape: tuple[int, ...]  # () for discrete
    action_low: Optional[np.ndarray]
    action_high: Optional[np.ndarray]
    max_episode_steps: Optional[int]

    @property
    def obs_dim(self) -> int:
        return int(np.prod(self.obs_shape))

    @property
    def action_dim(self) -> int:
        return int(np.prod(self.action_shape)) if not self.discrete else 1

    @property
    def kind(self) -> str:
        return "discrete" if self.discrete else "continuous"


def check_id(env_id: str) -> None:
    """Fail with one line when ``env_id`` is not a registered, versioned gymnasium id.

    ``module:EnvName-v0`` imports ``module`` first (which registers its envs), as ``gym.make`` does.
    """
    if ":" in env_id:
        module, _, env_id = env_id.partition(":")
        try:
            importlib.import_module(module)
        except ImportError as e:
            raise EnvError(f"env.id: could not import module {module!r} ({e})") from e
    if env_id in gym.envs.registry:
        return
    close = difflib.get_close_matches(env_id, list(gym.envs.registry), n=3, cutoff=0.6)
    hint = f" (did you mean {', '.join(close)}?)" if close else ""
    raise EnvError(
        f"env.id={env_id!r} is not a registered gymnasium id{hint}; ids are versioned, e.g. CartPole-v1, Hopper-v5"
    )


def spec_of(env: gym.Env) -> EnvSpec:
    obs_space, act_space = env.observation_space, env.action_space
    if not isinstance(obs_space, gym.spaces.Box):
        raise EnvError(f"{env.spec.id}: observation space {obs_space} is not a Box; only vector observations are supported")
    if len(obs_space.shape) != 1:
        raise EnvError(f"{env.spec.id}: observations of shape {obs_space.shape} ({obs_space.dtype}) are not supported; "
                       "the networks take 1-D vector observations (allowed: a Box of shape (n,))")
    if isinstance(act_space, gym.spaces.Discrete):
        return EnvSpec(env.spec.id, tuple(obs_space.shape), True, int(act_space.n), (), None, None,
                       env.spec.max_episode_steps)
    if isinstance(act_space, gym.spaces.Box):
        return EnvSpec(env.spec.id, tuple(obs_space.shape), False, 0, tuple(act_space.shape),
                       act_space.low.astype(np.float32), act_space.high.astype(np.float32),
                       env.spec.max_episode_steps)
    raise EnvError(f"{env.spec.id}: action space {act_space} is neither Discrete nor Box")


def _import_mujoco() -> None:
    """Import MuJoCo, which loads the GL backend that MUJOCO_GL names. Training needs no renderer: if that backend
    cannot load (MUJOCO_GL=osmesa without libOSMesa, a misspelt value), warn once and import MuJoCo without one
    (videos are then skipped with their own warning)."""
    import sys

    if "mujoco" in sys.modules:
        return
    import logging

    logging.getLogger("OpenGL").setLevel(logging.WARNING)  # its INFO lines about libraries it could not load
    try:
        import mujoco  # noqa: F401
    except Exception as e:  # noqa: BLE001 - PyOpenGL fails in several ways (AttributeError, RuntimeError, ...)
        backend = os.environ.get("MUJOCO_GL")
        for name in [m for m in sys.modules if m.split(".")[0] in ("mujoco", "OpenGL")]:
            del sys.modules[name]
        os.environ.pop("MUJOCO_GL", None)
        os.environ.pop("PYOPENGL_PLATFORM", None)
        try:
            import mujoco  # noqa: F401
        except Exception as e2:  # noqa: BLE001
            raise EnvError(f"MuJoCo cannot be imported ({str(e2).splitlines()[0]}); reinstall it with "
                           "`pip install gymnasium[mujoco]`") from e2
        logging.getLogger(__name__).warning(
            "MUJOCO_GL=%s cannot be used (%s); training without a renderer (videos need MUJOCO_GL=egl, package "
            "libegl1, or MUJOCO_GL=osmesa, package libosmesa6)", backend, str(e).splitlines()[0] if str(e) else type(e).__name__)


def _base(cfg: EnvConfig, render_mode: Optional[str] = None) -> gym.Env:
    check_id(cfg.id)
    kwargs = dict(cfg.kwargs)
    if cfg.max_episode_steps is not None:
        kwargs["max_episode_steps"] = cfg.max_episode_steps
    entry_point = getattr(gym.envs.registry.get(cfg.id.split(":", 1)[-1]), "entry_point", "")  # check_id imported it
    entry = str(entry_point) if isinstance(entry_point, str) or not callable(entry_point) else \
        f"{getattr(entry_point, '__module__', '?')}:{getattr(entry_point, '__qualname__', entry_point)}"
    if "mujoco" in entry:
        _import_mujoco()
    try:
        return gym.make(cfg.id, render_mode=render_mode, **kwargs)
    except gym.error.DependencyNotInstalled as e:
        package = "gymnasium[box2d]" if "box2d" in entry else "gymnasium[mujoco]" if "mujoco" in entry else "the package named above"
        hint = "" if "pip install" in str(e) else f"; install it with `pip install {package}`"
        raise EnvError(f"env.id={cfg.id}: a dependency is missing ({e}){hint}") from e
    except TypeError as e:  # an env.kwargs key the env's constructor does not take
        if "unexpected keyword argument 'render_mode'" in str(e):
            _log_traceback(cfg.id, e)
            raise EnvError(f"env.id={cfg.id}: its constructor does not take render_mode (gymnasium passes "
                           f"render_mode to every env: None to train, 'rgb_array' for videos); allowed: an env whose "
                           f"__init__ takes render_mode=None (entry point {entry})") from e
        if not kwargs:
            raise _constructor_failed(cfg.id, entry, e) from e
        raise EnvError(f"env.kwargs for {cfg.id}: {e}; allowed: the keyword arguments of its constructor "
                       f"(entry point {entry})") from e
    except Exception as e:  # noqa: BLE001 - the user's env raised while it was built: one line, not its traceback
        raise _constructor_failed(cfg.id, entry, e) from e


def _log_traceback(env_id: str, e: BaseException) -> None:
    import logging
    import traceback

    logging.getLogger(__name__).debug("building env %s raised:\n%s", env_id,
                                      "".join(traceback.format_exception(e)).rstrip())


def _constructor_failed(env_id: str, entry: str, e: BaseException) -> EnvError:
    """An env whose construction raised: its id and its error in one line; the traceback is logged at DEBUG
    (``hydra.verbose=rlbase.envs`` shows it)."""
    _log_traceback(env_id, e)
    first = str(e).splitlines()[0] if str(e) else ""
    first = first.split(" was raised from the environment creator for ")[0]  # gymnasium's wrapping of a TypeError
    return EnvError(f"env.id={env_id}: building the env raised {type(e).__name__}{': ' + first if first else ''} "
                    f"(entry point {entry}; its traceback: add hydra.verbose=rlbase.envs); allowed: an env whose "
                    "constructor succeeds with the configured env.kwargs")


# What rendering (render_mode="rgb_array", for videos) needs besides the env itself, by the package the env lives in:
# gymnasium's own envs draw with pygame (its extras install pygame-ce, which is imported as pygame). MuJoCo needs a GL
# backend instead (see _import_mujoco).
RENDER_NEEDS = {"gymnasium.envs.classic_control": "pygame", "gymnasium.envs.box2d": "pygame",
                "gymnasium.envs.toy_text": "pygame"}


def render_missing(env_id: str) -> Optional[str]:
    """The module that rendering ``env_id`` needs and that is not installed, or None (nothing missing that we know of).
    Looked up without importing it."""
    import importlib.util

    entry = getattr(gym.envs.registry.get(env_id.split(":", 1)[-1]), "entry_point", "")
    entry = entry if isinstance(entry, str) else str(getattr(entry, "__module__", ""))
    for package, module in RENDER_NEEDS.items():
        if entry.startswith(package + ".") and importlib.util.find_spec(module) is None:
            return module
    return None


def probe(cfg: EnvConfig) -> EnvSpec:
    """Build the env once, read its spec and close it (used by validation before any run starts)."""
    env = _base(cfg)
    try:
        return spec_of(env)
    finally:
        env.close()


def make(cfg: EnvConfig, seed: int, *, train: bool = True, render_mode: Optional[str] = None,
         sub_env: bool = False) -> tuple[gym.Env, EnvSpec]:
    """Build one environment with the configured wrappers and seed its RNGs.

    Training envs get reward reshaping; evaluation envs (``train=False``) report the env's own reward.
    Episode statistics are recorded before any reward change, so logged returns are always the raw ones.
    A vector env's sub-envs (``sub_env``) are not normalised one by one: :class:`VecNormalize` does it over all.
    """
    env = _Guard(_base(cfg, render_mode))
    spec = spec_of(env)
    env = gym.wrappers.RecordEpisodeStatistics(env)
    if cfg.normalize_obs and not sub_env:
        env = gym.wrappers.NormalizeObservation(env)
        if not train:
            env.update_running_mean = False
        if cfg.obs_clip > 0:
            bound = cfg.obs_clip
            env = gym.wrappers.TransformObservation(env, lambda o: np.clip(o, -bound, bound), env.observation_space)
    if train and (cfg.reward_shift != 0.0 or cfg.reward_scale != 1.0):
        shift, scale = cfg.reward_shift, cfg.reward_scale
        env = gym.wrappers.TransformReward(env, lambda r: (r + shift) * scale)
    # The loop's first reset(seed=...) seeds the env itself; spaces have RNGs of their own, on streams apart from
    # the env's (seeded alike, action_space.sample() would draw the very numbers the env's resets draw).
    env.action_space.seed(seeding.stream(seed, "action_space"))
    env.observation_space.seed(seeding.stream(seed, "observation_space"))
    return env, spec


def share_obs_stats(src, dst: gym.Env) -> None:
    """Make the eval env normalise observations with the training env's (or vector env's) running statistics:
    the same object, so evaluation always sees the current statistics and never changes them."""
    s, d = _find(src, gym.wrappers.NormalizeObservation), _find(dst, gym.wrappers.NormalizeObservation)
    if s is not None and d is not None:
        d.obs_rms = s.obs_rms


def _find(env, cls: type):
    if isinstance(env, VecNormalize):
        return env if env.norm_obs else None
    while isinstance(env, gym.Wrapper):
        if isinstance(env, cls):
            return env
        env = env.env
    return None


def obs_stats(env: gym.Env) -> Optional[dict]:
    w = _find(env, gym.wrappers.NormalizeObservation)
    if w is None:
        return None
    rms = w.obs_rms
    return {"mean": rms.mean.tolist(), "var": rms.var.tolist(), "count": float(rms.count)}


def load_obs_stats(env: gym.Env, stats: Optional[dict]) -> None:
    w = _find(env, gym.wrappers.NormalizeObservation)
    if w is None or stats is None:
        return
    w.obs_rms.mean = np.asarray(stats["mean"], dtype=np.float64)
    w.obs_rms.var = np.asarray(stats["var"], dtype=np.float64)
    w.obs_rms.count = stats["count"]


_NORM_EPS = 1e-8  # gymnasium's NormalizeObservation and NormalizeReward use the same
REWARD_CLIP = 10.0  # normalised rewards are clipped to +-10 (as SB3's VecNormalize and CleanRL do)


class VecNormalize(gym.vector.VectorWrapper):
    """Observation normalisation and reward scaling over all sub-envs of a vector env, with one set of statistics.

    Observations: ``(o - mean) / sqrt(var + 1e-8)`` with the running mean and variance of every observation seen,
    the formula of gymnasium's ``NormalizeObservation``, so an evaluation env with that wrapper reading these
    statistics (:func:`share_obs_stats`) gives the policy the same inputs; with ``obs_clip`` > 0 both clip the
    result to +-obs_clip (as SB3's VecNormalize, CleanRL and Tianshou do at 10). The real final observation of an
    episode (``info["final_obs"]``, used to bootstrap at a time limit) is normalised the same way.
    Rewards: divided by the running std of each sub-env's discounted return (reset when its episode ends) and
    clipped to +-10; the episode returns logged by ``RecordEpisodeStatistics`` inside the sub-envs stay raw.
    The statistics are part of the checkpoint (:meth:`state_dict`), so a resumed run continues exactly.
    """

    def __init__(self, env: gym.vector.VectorEnv, obs: bool, reward: bool, gamma: float, obs_clip: float = 0.0):
        super().__init__(env)
        from gymnasium.wrappers.utils import RunningMeanStd

        self.norm_obs, self.norm_reward, self.gamma = obs, reward, gamma
        self.obs_clip = obs_clip if obs_clip > 0 else np.inf  # 0: off
        self.obs_rms = RunningMeanStd(shape=env.single_observation_space.shape)
        self.ret_rms = RunningMeanStd(shape=())
        self.returns = np.zeros(env.num_envs)

    def _normalise(self, obs: np.ndarray) -> np.ndarray:
        z = (obs - self.obs_rms.mean) / np.sqrt(self.obs_rms.var + _NORM_EPS)
        return np.float32(np.clip(z, -self.obs_clip, self.obs_clip))

    def _observe(self, obs: np.ndarray) -> np.ndarray:
        if not self.norm_obs:
            return obs
        self.obs_rms.update(obs)
        return self._normalise(obs)

    def reset(self, **kwargs):
        obs, info = self.env.reset(**kwargs)
        self.returns[:] = 0.0
        return self._observe(obs), info

    def step(self, actions):
        obs, reward, terminated, truncated, info = self.env.step(actions)
        obs = self._observe(obs)
        if self.norm_obs and "final_obs" in info:  # with the statistics this step's observations were scaled by
            final = info["final_obs"].copy()
            for i in np.flatnonzero(info.get("_final_obs", [o is not None for o in final])):
                final[i] = self._normalise(final[i][None])[0]
            info = {**info, "final_obs": final}
        if self.norm_reward:
            self.returns = self.returns * self.gamma + reward
            self.ret_rms.update(self.returns)
            reward = np.clip(reward / np.sqrt(self.ret_rms.var + _NORM_EPS), -REWARD_CLIP, REWARD_CLIP)
            self.returns[terminated | truncated] = 0.0
        return obs, reward, terminated, truncated, info

    def state_dict(self) -> dict[str, Any]:
        o, r = self.obs_rms, self.ret_rms
        return {"obs": {"mean": o.mean.tolist(), "var": o.var.tolist(), "count": float(o.count)},
                "ret": {"mean": float(r.mean), "var": float(r.var), "count": float(r.count)},
                "returns": self.returns.tolist()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for rms, s in ((self.obs_rms, state["obs"]), (self.ret_rms, state["ret"])):
            rms.mean, rms.var = np.asarray(s["mean"], np.float64), np.asarray(s["var"], np.float64)
            rms.count = s["count"]
        self.returns = np.asarray(state["returns"], np.float64)


def make_vector(cfg: EnvConfig, seed: int, num_envs: int, vector: str = "sync",
                gamma: float = 0.99) -> tuple[gym.vector.VectorEnv, EnvSpec]:
    """``num_envs`` copies of the env (wrappers as in :func:`make`) in one vector env, with
    :class:`VecNormalize` on top when ``cfg.normalize_obs`` or ``cfg.normalize_reward`` (``gamma``: of the return
    whose std scales rewards).

    Autoreset is SAME_STEP: when a sub-env's episode ends, the returned observation is already the next
    episode's first one and the real final observation is in ``info["final_obs"]``. No fake transition
    (final observation -> reset observation, as NEXT_STEP mode returns) ever reaches the caller.
    """
    spec = probe(cfg)
    # sub-env i built (spaces seeded) and first reset with seeding.sub_env_seeds(seed, num_envs)[i]
    thunks = [lambda s=s: make(cfg, s, sub_env=True)[0] for s in seeding.sub_env_seeds(seed, num_envs)]
    mode = gym.vector.AutoresetMode.SAME_STEP
    if vector == "async":
        env = gym.vector.AsyncVectorEnv(thunks, autoreset_mode=mode)
    elif vector == "sync":
        env = gym.vector.SyncVectorEnv(thunks, autoreset_mode=mode)
    else:
        raise EnvError(f"hardware.vector={vector} is not supported; allowed: sync, async")
    if cfg.normalize_obs or cfg.normalize_reward:
        env = VecNormalize(env, cfg.normalize_obs, cfg.normalize_reward, gamma, cfg.obs_clip)
    return env, spec


_SIMPLE = (bool, int, float, str, type(None), np.ndarray, np.generic)


def _simple_vars(obj) -> dict[str, Any]:
    """An object's plain-data attributes (numbers, arrays, None), arrays as tensors so weights-only loads work."""
    out: dict[str, Any] = {}
    for key, value in vars(obj).items():
        if key in ("env", "spec", "_cached_spec", "_saved_kwargs", "_np_random") or not isinstance(value, _SIMPLE):
            continue
        if isinstance(value, np.ndarray):
            out[key] = {"array": torch.from_numpy(value.copy()), "dtype": str(value.dtype)}
        else:
            out[key] = value.item() if isinstance(value, np.generic) else value
    return out


def _set_simple_vars(obj, state: dict[str, Any]) -> None:
    for key, value in state.items():
        if isinstance(value, dict) and "array" in value:
            value = value["array"].numpy().astype(value["dtype"])
        setattr(obj, key, value)


def _sub_env_state(env: gym.Env) -> dict[str, Any]:
    wrappers, w = [], env
    while isinstance(w, gym.Wrapper):
        if not isinstance(w, _Guard):  # stateless; skipped so checkpoints from before it existed still line up
            wrappers.append(_simple_vars(w))
        w = w.env
    u = env.unwrapped
    state = {"wrappers": wrappers, "rng": u.np_random.bit_generator.state,
             "action_rng": env.action_space.np_random.bit_generator.state}
    if hasattr(u, "model") and hasattr(u, "data"):  # MuJoCo: the full integration state (qpos, qvel, warm start, ...)
        import mujoco

        spec = mujoco.mjtState.mjSTATE_INTEGRATION
        buf = np.empty(mujoco.mj_stateSize(u.model, spec), np.float64)
        mujoco.mj_getState(u.model, u.data, buf, spec)
        state["mujoco"] = torch.from_numpy(buf)
    else:
        state["unwrapped"] = _simple_vars(u)
    return state


def _load_sub_env_state(env: gym.Env, state: dict[str, Any]) -> None:
    w, i = env, 0
    while isinstance(w, gym.Wrapper):
        if not isinstance(w, _Guard):
            _set_simple_vars(w, state["wrappers"][i])
            i += 1
        w = w.env
    u = env.unwrapped
    u.np_random.bit_generator.state = state["rng"]
    env.action_space.np_random.bit_generator.state = state["action_rng"]
    if "mujoco" in state:
        import mujoco

        mujoco.mj_setState(u.model, u.data, state["mujoco"].numpy(), mujoco.mjtState.mjSTATE_INTEGRATION)
    else:
        _set_simple_vars(u, state["unwrapped"])


def vector_state(env) -> Optional[list[dict[str, Any]]]:
    """Everything needed to continue a sync vector env's episodes exactly where they are (each sub-env's
    physics, time-limit counter, episode statistics and RNGs); None for async vector envs (their sub-envs live
    in other processes), which then restart episodes on resume."""
    env = env.unwrapped  # below VecNormalize, whose statistics the loop saves itself
    if not isinstance(env, gym.vector.SyncVectorEnv):
        return None
    return [_sub_env_state(e) for e in env.envs]


def load_vector_state(env, state: list[dict[str, Any]]) -> None:
    for e, s in zip(env.unwrapped.envs, state):
        _load_sub_env_state(e, s)
