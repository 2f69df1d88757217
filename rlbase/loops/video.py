"""Video of one deterministic episode: mp4 when imageio-ffmpeg is installed, GIF (Pillow) otherwise.

Rendering MuJoCo needs a GL backend chosen before mujoco is imported (``MUJOCO_GL``; ``envs`` sets egl).
Any failure to render becomes one warning line, never a crash of the run.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Optional

import numpy as np

from rlbase import envs
from rlbase.core import seeding
from rlbase.core.agent import act_env

log = logging.getLogger(__name__)


def record_episode(agent, env_cfg, seed: int, path: Path, fps: int = 0, obs_stats: Optional[dict] = None,
                   max_frames: int = 1000) -> Optional[Path]:
    """Render one deterministic episode to ``path`` (suffix replaced by .mp4 or .gif). None if rendering failed.
    ``fps=0``: the env's own ``render_fps`` (Hopper 125, so a clip plays in real time), 30 where it has none."""
    missing = envs.render_missing(env_cfg.id)
    if missing is not None:
        log.warning("video disabled: rendering %s needs %s, which is not installed (pip install -r "
                    "requirements.txt: pygame-ce)", env_cfg.id, missing)
        return None
    os.environ.setdefault("SDL_VIDEODRIVER", "dummy")  # pygame draws off-screen: no display, no XDG_RUNTIME_DIR error
    try:
        env, _ = envs.make(env_cfg, seeding.stream(seed, "eval_env"), train=False, render_mode="rgb_array")
    except Exception as e:  # noqa: BLE001 - any backend problem must not stop training
        log.warning("video disabled: could not build a rendering env (%s)", str(e).splitlines()[0])
        return None
    envs.load_obs_stats(env, obs_stats)
    frames = []
    try:
        obs, _ = env.reset(seed=seeding.stream(seed, "eval_episode", 0))  # the evaluation's first episode
        gen = seeding.generator(seed, "eval_rng")  # what the policy draws (BCQ's candidates), as its evaluation
        done = False
        while not done and len(frames) < max_frames:
            frames.append(env.render())
            obs, _, terminated, truncated, _ = env.step(act_env(agent, obs, deterministic=True, generator=gen))
            done = terminated or truncated
    except Exception as e:  # noqa: BLE001
        log.warning("video disabled for this run: rendering failed (%s, MUJOCO_GL=%s); MuJoCo renders headless "
                    "with MUJOCO_GL=egl (package libegl1) or MUJOCO_GL=osmesa (package libosmesa6)",
                    str(e).splitlines()[0] if str(e) else type(e).__name__, os.environ.get("MUJOCO_GL", "unset"))
        return None
    finally:
        env.close()
    return write_video(frames, path, fps or int(env.metadata.get("render_fps") or 30))


def write_video(frames: list[np.ndarray], path: Path, fps: int) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        import imageio.v2 as imageio
        import imageio_ffmpeg  # noqa: F401

        out = path.with_suffix(".mp4")
        imageio.mimwrite(out, frames, fps=fps, macro_block_size=1)
        return out
    except ImportError:
        from PIL import Image

        out = path.with_suffix(".gif")
        images = [Image.fromarray(f) for f in frames]
        images[0].save(out, save_all=True, append_images=images[1:], duration=int(1000 / fps), loop=0)
        return out
