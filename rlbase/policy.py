"""A trained policy as a function of raw observations: ``policy = rlbase.load_policy(run_dir)``.

A run's evaluation does more than call its agent: the evaluation env normalises observations with the run's
statistics and clips them (``env.normalize_obs``, ``env.obs_clip``), and the agent maps the network's output to the
env's action bounds. An agent alone, fed a plain env's observations, skips the first part (a trained A2C Hopper
policy then scores 47 instead of 989). :class:`Policy` holds all of it, so ``policy(obs)`` on the observations of a
plain ``gymnasium.make(policy.env_id)`` gives the actions the run's evaluation took::

    policy = rlbase.load_policy("runs/ppo/hopper/seed0/<date>_<time>", which="best")
    env = gymnasium.make(policy.env_id)
    obs, _ = env.reset(seed=0)
    obs, reward, terminated, truncated, _ = env.step(policy(obs))
    policy.export("hopper_ppo.pt")  # TorchScript: torch.jit.load("hopper_ppo.pt")(obs_batch), no rlbase needed

``which="last"`` is the run's checkpoint (``checkpoint.pt``, its last step); ``which="best"`` is the policy of the
run's best evaluation, which the run keeps beside it (``best_policy.pt``, written by ``loops.runner.Runner``).
"""

from __future__ import annotations

import copy
import json
import math
from pathlib import Path
from typing import Optional

import numpy as np
import torch
from omegaconf import DictConfig
from torch import nn

from rlbase import envs
from rlbase.core import seeding
from rlbase.core.agent import to_env
from rlbase.report.evaluate import build_agent, load_state
from rlbase.runtime.validate import SAMPLED_POLICIES

_NORM_EPS = 1e-8  # gymnasium's NormalizeObservation: (obs - mean) / sqrt(var + 1e-8), the evaluation env's wrapper


# -- the deterministic action of each algorithm's network, as a module (batched, TorchScript-able) --------------

class _Argmax(nn.Module):
    """argmax over a Q-network's (or logits') outputs: DQN, discrete BC."""

    def __init__(self, net: nn.Module):
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x).argmax(-1)


class _ActorCriticAction(nn.Module):
    """A2C, A3C, PPO: the Categorical's most probable action (its probabilities computed as ``Categorical`` does,
    so ties break alike), or the Gaussian's mean clipped to the action bounds."""

    def __init__(self, net: nn.Module, discrete: bool):
        super().__init__()
        self.trunk, self.pi_head, self.discrete = net.trunk, net.pi_head, discrete
        self.register_buffer("low", net.scaler.low.clone() if not discrete else torch.zeros(0))
        self.register_buffer("high", net.scaler.high.clone() if not discrete else torch.zeros(0))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.pi_head(self.trunk(x))
        if self.discrete:
            logits = out - out.logsumexp(-1, keepdim=True)
            return torch.softmax(logits, -1).argmax(-1)
        return torch.maximum(torch.minimum(out, self.high), self.low)


class _SquashedMean(nn.Module):
    """SAC, offline SAC, CQL: center + scale * tanh(mean of the pre-squash Gaussian)."""

    def __init__(self, net: nn.Module, scaler: nn.Module):
        super().__init__()
        self.net, self.scaler = net, scaler

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mean = self.net(x).chunk(2, -1)[0]
        return self.scaler(torch.tanh(mean))


class _AllowedArgmax(nn.Module):
    """Discrete BCQ: argmax of Q over the actions the behaviour model allows (``DiscreteBCQ.best_allowed``)."""

    def __init__(self, net: nn.Module, threshold: float):
        super().__init__()
        self.net, self.log_threshold = net, float(np.log(threshold))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        q, logits = self.net(x)
        log_p = logits.log_softmax(-1)
        allowed = (log_p - log_p.max(-1, keepdim=True).values) > self.log_threshold
        return q.masked_fill(~allowed, float("-inf")).argmax(-1)


def deterministic_head(agent) -> Optional[nn.Module]:
    """A module mapping a batch of the agent's inputs (normalised observations, float32) to its deterministic
    actions, the same computation as ``agent.act(obs, deterministic=True)`` (tests/test_policy.py checks
    every algorithm); it shares the agent's weights. None for an agent whose deterministic action draws random
    numbers (continuous BCQ: the best of generated candidates)."""
    from rlbase.algos import a2c, bc, bcq, dqn, iql, sac, td3, td3_bc

    if isinstance(agent, td3_bc.TD3BC):  # before TD3, its base: the dataset's state normalisation first
        return nn.Sequential(agent.norm, agent.actor)
    if isinstance(agent, td3.TD3):  # DDPG too
        return agent.actor
    if isinstance(agent, sac.SAC):  # offline SAC and CQL too
        return _SquashedMean(agent.actor.net, agent.actor.scaler)
    if isinstance(agent, a2c.A2C):  # PPO and A3C too
        return _ActorCriticAction(agent.net, agent.spec.discrete)
    if isinstance(agent, dqn.DQN):
        return _Argmax(agent.q)
    if isinstance(agent, bc.BC):
        return _Argmax(agent.policy) if agent.spec.discrete else nn.Sequential(agent.policy, agent.scaler)
    if isinstance(agent, iql.IQL):
        return nn.Sequential(agent.policy.net, agent.scaler)
    if isinstance(agent, bcq.DiscreteBCQ):
        return _AllowedArgmax(agent.net, agent.cfg.threshold)
    return None


class ObsNorm(nn.Module):
    """What the evaluation env does to an observation before the agent sees it: with ``normalize``,
    ``(obs - mean) / sqrt(var + 1e-8)`` (gymnasium's ``NormalizeObservation``, in float64 as there with the saved
    statistics), cast to float32 and clipped to +-``clip`` (``env.obs_clip``; 0: off); without, a cast to float32.

    One difference remains: while an off-policy run with float32 observations (Pendulum, CartPole) trains, gymnasium
    keeps its statistics, and normalises, in float32, so its logged evaluations are repeated here (and by
    ``scripts/evaluate.py``, which reads the statistics back as float64 too) to about 1e-7, not bit for bit."""

    def __init__(self, normalize: bool, mean: Optional[np.ndarray] = None, var: Optional[np.ndarray] = None,
                 clip: float = 0.0):
        super().__init__()
        self.normalize, self.clip = bool(normalize), float(clip)
        mean = np.zeros(0) if mean is None else np.asarray(mean, np.float64)
        std = np.ones(0) if var is None else np.sqrt(np.asarray(var, np.float64) + _NORM_EPS)
        self.register_buffer("mean", torch.from_numpy(mean))
        self.register_buffer("std", torch.from_numpy(std))

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        if not self.normalize:
            return obs.to(torch.float32)
        x = ((obs - self.mean) / self.std).to(torch.float32)
        if self.clip > 0:
            x = x.clamp(-self.clip, self.clip)
        return x


class Acting(nn.Module):
    """Raw observations -> deterministic actions: :class:`ObsNorm`, then the network's deterministic action with the
    agent's action scaling and clipping. Takes one observation ``(n,)`` or a batch ``(B, n)`` of any float dtype;
    returns ``(A,)`` / ``(B, A)`` float32 actions, or int64 action indices ``()`` / ``(B,)`` for discrete ones."""

    def __init__(self, norm: ObsNorm, head: nn.Module):
        super().__init__()
        self.norm, self.head = norm, head

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        single = obs.dim() == 1
        x = self.norm(obs.unsqueeze(0) if single else obs)
        out = self.head(x)
        return out[0] if single else out


class Policy:
    """A run's trained policy on raw env observations: ``policy(obs)`` or ``policy.act(obs, ...)``.

    ``obs``: one observation ``(n,)`` or a batch ``(B, n)``, numpy (or a list) or torch. Actions come back the same
    kind: numpy for numpy input -- one observation gives what the env takes from the run's loops
    (``core.agent.to_env``), a float32 array or, for discrete actions, an int; a batch gives ``(B, A)`` float32 or
    ``(B,)`` int64 -- and torch tensors on the input's device for torch input. Everything the run's evaluation
    applied is applied here: observation normalisation with the saved statistics and clipping, and the agent's own
    action scaling and clipping.

    ``deterministic=True`` (the run's evaluation, unless it ran with ``eval.sample=true``): the mean or argmax,
    computed by one batched module (:meth:`export` writes the same module); one observation gives exactly the agent's
    action, a batch its rows' actions up to the rounding of a larger matrix product (about 1e-7). ``deterministic=False`` samples the
    learned policy (algorithms in ``runs.validate.SAMPLED_POLICIES``; the others -- DQN, DDPG, TD3, ... -- have a
    deterministic policy and raise ``ValueError``) from ``generator``, or from a generator seeded with ``seed``, or
    else from the policy's own, which starts as the run's evaluation generator (stream ``eval_rng``). Sampling, and
    continuous BCQ (whose deterministic action is the best of generated candidates), act through the agent's
    ``act``, one row at a time, in order, so a batch draws what the same rows one by one would (correct, not fast;
    one call on the whole batch would draw its noise in another order).

    Attributes: ``env_id``, ``algo``, ``config`` (the run's), ``step`` (of the checkpoint), ``eval_return`` (that
    checkpoint's evaluation mean return; None when the run did not evaluate at that step), ``which``, ``agent``,
    ``spec``, ``obs_stats``. A run with ``env.kwargs`` or ``env.max_episode_steps`` made its env with those:
    ``gymnasium.make(policy.env_id, **policy.config.env.kwargs)``.
    """

    def __init__(self, agent, spec: envs.EnvSpec, config: DictConfig, obs_stats: Optional[dict] = None,
                 step: Optional[int] = None, eval_return: Optional[float] = None, which: Optional[str] = None):
        self.agent, self.spec, self.config = agent, spec, config
        self.algo, self.env_id = str(config.algo.name), str(config.env.id)
        self.step, self.eval_return, self.which = step, eval_return, which
        self.obs_stats = obs_stats
        self.device = torch.device(getattr(agent, "device", "cpu"))
        normalize = bool(config.env.get("normalize_obs", False))
        if normalize and obs_stats is None:
            raise ValueError(f"the run normalised observations (env.normalize_obs=true) but its {which or 'saved'} "
                             "state holds no observation statistics; its policy cannot be rebuilt")
        stats = obs_stats or {}
        self.norm = ObsNorm(normalize, stats.get("mean"), stats.get("var"), float(config.env.get("obs_clip", 0.0)))
        self.norm.to(self.device)
        head = deterministic_head(agent)
        self.acting = None if head is None else Acting(self.norm, head)
        self.samples = self.algo in SAMPLED_POLICIES
        self.generator = seeding.generator(int(config.get("seed", 0)), "eval_rng", device=self.device)

    def __repr__(self) -> str:
        ret = "not evaluated" if self.eval_return is None else f"eval return {self.eval_return:.2f}"
        return f"Policy({self.algo} on {self.env_id}, {self.which or 'given'} checkpoint at step {self.step}, {ret})"

    def __call__(self, obs, deterministic: bool = True, generator: Optional[torch.Generator] = None,
                 seed: Optional[int] = None):
        return self.act(obs, deterministic, generator, seed)

    def act(self, obs, deterministic: bool = True, generator: Optional[torch.Generator] = None,
            seed: Optional[int] = None):
        """Actions for one raw observation or a batch (see the class docstring)."""
        if not deterministic and not self.samples:
            raise ValueError(f"algo={self.algo} has a deterministic policy (its act(deterministic=False) adds "
                             f"exploration); deterministic=False is allowed for: {', '.join(SAMPLED_POLICIES)}")
        is_torch = torch.is_tensor(obs)
        if is_torch:
            x = obs.detach().to(self.device)
        else:
            a = np.asarray(obs)
            x = torch.as_tensor(a if a.flags.writeable else a.copy(), device=self.device)  # torch warns on read-only
        n = self.spec.obs_dim
        if x.dim() not in (1, 2) or x.shape[-1] != n:
            raise ValueError(f"observations of shape {tuple(x.shape)} do not fit {self.env_id}; allowed: one "
                             f"observation of shape ({n},) or a batch of shape (B, {n})")
        single = x.dim() == 1
        if deterministic and self.acting is not None:
            with torch.no_grad():
                out = self.acting(x)
            if is_torch:
                return out.to(obs.device)
            out = out.cpu().numpy()
            return int(out) if single and self.spec.discrete else out
        gen = self._generator(generator, seed)
        with torch.no_grad():
            z = self.norm(x.unsqueeze(0) if single else x)
        # row by row, in order: each row draws what it would alone (one batched draw would give other numbers)
        out = torch.cat([self.agent.act(z[i:i + 1], deterministic=deterministic, generator=gen) for i in range(len(z))])
        if is_torch:
            out = out.to(obs.device)
            return out[0] if single else out
        return to_env(out) if single else out.cpu().numpy()

    def _generator(self, generator: Optional[torch.Generator], seed: Optional[int]) -> torch.Generator:
        if generator is not None and seed is not None:
            raise ValueError("pass a generator or a seed, not both")
        if generator is not None:
            return generator
        if seed is not None:
            gen = torch.Generator(device=self.device)
            gen.manual_seed(int(seed))
            return gen
        return self.generator

    def export(self, path: str | Path) -> Path:
        """Write the deterministic policy as TorchScript (``torch.jit.script`` of :class:`Acting`: normalisation with
        the saved statistics and clipping, the network's deterministic action, the action scaling), on the CPU. It
        runs without rlbase: ``torch.jit.load(path)(obs)`` with one observation ``(n,)`` or a batch ``(B, n)`` as a
        tensor gives what ``policy(obs)`` gives. The run's facts (env id, algo, step, evaluation return, spaces) are
        in the file's ``rlbase.json`` extra file (``torch.jit.load(path, _extra_files={"rlbase.json": ""})``).

        TorchScript rather than ONNX: it needs nothing beyond torch (onnx and onnxruntime are not dependencies here),
        runs the same kernels, so its actions equal the policy's, and scripting (not tracing) keeps the one/batch
        branch and any batch size. Continuous BCQ cannot be exported: its action draws random candidates."""
        if self.acting is None:
            raise ValueError(f"algo={self.algo}'s deterministic action draws random candidates (continuous BCQ): it "
                             "has no deterministic module to export")
        path = Path(path)
        module = torch.jit.script(copy.deepcopy(self.acting).cpu().eval().requires_grad_(False))
        s = self.spec
        meta = {"env_id": self.env_id, "algo": self.algo, "which": self.which, "step": self.step,
                "eval_return": self.eval_return, "obs_shape": list(s.obs_shape), "discrete": s.discrete,
                "n_actions": s.n_actions, "action_shape": list(s.action_shape),
                "action_low": None if s.action_low is None else s.action_low.tolist(),
                "action_high": None if s.action_high is None else s.action_high.tolist()}
        torch.jit.save(module, str(path), _extra_files={"rlbase.json": json.dumps(meta)})
        return path


def _eval_at(run_dir: Path, step: int) -> Optional[float]:
    """The mean return of the run's evaluation at ``step`` (its last row there in metrics.jsonl), or None."""
    found = None
    try:
        lines = (run_dir / "metrics.jsonl").read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        try:
            row = json.loads(line)
        except ValueError:
            continue
        if row.get("step") == step and "eval/return_mean" in row:
            found = row["eval/return_mean"]
    return None if found is None or not math.isfinite(found) else float(found)


def load_policy(run_dir: str | Path, which: str = "last", device: torch.device | str = "cpu") -> Policy:
    """The trained policy of the run in ``run_dir``: ``which="last"`` its checkpoint, ``"best"`` the policy of its
    best evaluation (``best_policy.pt``), on ``device``. See :class:`Policy`."""
    run_dir = Path(run_dir)
    cfg, state = load_state(run_dir, which)
    spec = envs.probe(cfg.env)
    agent = build_agent(cfg, state["agent"], spec, device)
    step = int(state["step"])
    eval_return = float(state["eval_return"]) if which == "best" else _eval_at(run_dir, step)
    return Policy(agent, spec, cfg, state.get("obs_stats"), step, eval_return, which)
