"""Learning side by side with Stable-Baselines3: the same settings, the same evaluation, over seeds.

    python scripts/parity.py run sac_halfcheetah sac_hopper td3_hopper --seeds 0-4     # two jobs at a time
    python scripts/parity.py report                                                     # table + plot only
    python scripts/parity.py list                                                       # the cases

Each case is one algorithm x env x budget. Our side runs through the real ``train.py`` (its loop, Runner,
checks and logging, ``logger=none``); the SB3 side (``pip install -r requirements-bench.txt``) gets every
setting from the *same composed Hydra config* -- network sizes, batch, learning rates, gamma, tau, random and
learning starts, updates per step, exploration and target noise, entropy target and initial temperature --
so a setting cannot drift between the two. Both are evaluated by one function (``rlbase.core.evaluate``:
``eval_episodes`` deterministic episodes every ``eval_every`` env steps, episode i reset with the run's
``eval_episode`` stream seed i) on an evaluation env built by ``envs.make``; SB3 trains on an env built by
``envs.make`` too (same wrappers, same seeds as ours: ``rlbase.core.seeding``'s streams).

Jobs run ``--jobs`` at a time (default 2) with one torch thread each, ours and SB3's of the same seed side by
side, so both see the same load. A rerun skips finished jobs; one of ours that was stopped resumes from its
checkpoint (exactly); an unfinished SB3 job restarts. ``--hours H`` (a machine that goes away) starts a job only if
the median wall time of its case and library's finished jobs ends within H hours of the call. Output in ``runs/parity/`` (``--out``):
``<case>/<lib>/seed<k>/metrics.jsonl`` per job, then ``report.md``, ``report.json`` and ``curves.png``: per
case, budget and library the mean, 95% bootstrap CI and IQM over seeds, the difference of means (ours - SB3)
with its 95% Welch interval and a permutation test (``rlbase.report.stats``: every split up to 20,000, else 20,000
random ones; per-library intervals are
Student t with Hall's skew correction), and a verdict -- "ours worse" or "ours better" only when the interval
excludes zero and p < 0.05 (at 3 vs 3 seeds the smallest attainable p is 0.10, so no difference can be resolved).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np

ROOT = Path(__file__).resolve().parents[2]  # the repository (runs/ and train.py)
os.environ.setdefault("MUJOCO_GL", "egl")

from rlbase.report import stats  # noqa: E402
from rlbase.report.plot import iqm  # noqa: E402


@dataclass(frozen=True)
class Case:
    algo: str
    env: str
    steps: int
    eval_every: int
    budgets: tuple[int, ...]  # env steps at which the report compares
    overrides: tuple[str, ...] = ()  # extra train.py overrides (both libraries read them from the composed config)
    aligned: str = ""  # what had to be aligned by hand, said in the report
    name_suffix: str = ""  # a variant of ours; its SB3 side is the base case's (``sb3_case``)
    label: str = ""  # a case of its own under this name (both sides run), e.g. a protocol's entry
    entry: str = ""  # the protocol entry it was read from: ours can be that protocol's runs (report --ours-runs)
    protocol: str = ""  # ... and that protocol's name (the --ours-runs directory must be its run directory)
    protocol_file: str = ""  # ... and its file (our side's committed curves lie beside it)
    window: tuple[int, ...] = ()  # also compared: each seed's mean over these evaluations (a protocol's statistic)

    @property
    def name(self) -> str:
        return self.label or f"{self.algo}_{self.env}{self.name_suffix}"

    @property
    def sb3_case(self) -> str:
        return self.label or f"{self.algo}_{self.env}"

    def train_overrides(self) -> list[str]:
        return [f"algo={self.algo}", f"env={self.env}", f"total_steps={self.steps}", f"eval_every={self.eval_every}",
                *self.overrides]


_STARTS_5K = ("algo.random_steps=5000", "algo.learning_starts=5000")
CASES = {c.name: c for c in [
    Case("sac", "halfcheetah", 30_000, 5000, (20_000, 25_000, 30_000), _STARTS_5K,
         "action bounds are +-1, so the log-probability's action-scale term is zero in both; ours keeps the exact "
         "log(1 - tanh(u)^2), SB3 has 1e-6 inside it"),
    Case("sac", "hopper", 30_000, 5000, (20_000, 25_000, 30_000), _STARTS_5K,
         "action bounds are +-1, so the log-probability's action-scale term is zero in both; ours keeps the exact "
         "log(1 - tanh(u)^2), SB3 has 1e-6 inside it"),
    Case("sac", "halfcheetah", 30_000, 5000, (20_000, 25_000, 30_000), (*_STARTS_5K, "algo.log_prob_eps=1e-6"),
         "ours with SB3's 1e-6 inside log(1 - tanh(u)^2) (ablation of the one difference found)", "_eps"),
    Case("td3", "hopper", 30_000, 5000, (20_000, 25_000, 30_000), _STARTS_5K,
         "SB3's TD3 at our learning rate 3e-4 (its default is 1e-3) and 256-256 networks (its default 400-300); "
         "SB3 also adds its exploration noise to the warm-up's uniform actions, ours does not"),
    Case("td3", "hopper", 30_000, 5000, (20_000, 25_000, 30_000), (*_STARTS_5K, "algo.warmup_noise=true"),
         "ours with SB3's exploration noise on the warm-up's uniform actions (ablation of the one difference left)",
         "_warmup"),
    Case("sac", "humanoid", 20_000, 5000, (10_000, 15_000, 20_000), _STARTS_5K,
         "Humanoid-v5's actions are +-0.4: both take the log-probability of the unit-space action tanh(u) (SAC's "
         "authors' convention), so the target entropy -17 means the same in both; ours keeps the exact "
         "log(1 - tanh(u)^2), SB3 has 1e-6 inside it"),
    Case("dqn", "cartpole", 100_000, 5000, (50_000, 100_000), (),
         "SB3's linear epsilon schedule replaced by ours (exponential, counted after the random steps); ours copies "
         "the target every 128 updates, SB3 every 256 env steps (the same: one copy per update phase)"),
    Case("a2c", "cartpole", 500_000, 10_000, (100_000, 250_000, 500_000), (),
         "SB3's A2C without its orthogonal init (ours has none by default) and with our entropy coefficient 0.01 (its default 0)"),
]}


def protocol_cases(path: Path, suffix: str, aligned: str, budgets: tuple[int, ...] = (),
                   window: tuple[int, ...] = ()) -> list[Case]:
    """One case per entry of a pre-registered protocol (``benchmarks/<name>/protocol.yaml``), named
    ``<entry>_<suffix>``: the protocol's own overrides for both libraries (so the settings cannot drift from it),
    compared at ``budgets`` or else at the entry's final step (the protocol's ``final_steps``), and over ``window``
    (each seed's mean of those evaluations) if given. Seeds are chosen on the command line."""
    from rlbase.report import protocol

    spec = protocol.load(path)
    cases = []
    for e in spec["entries"]:
        values, rest = {}, []
        for o in [*spec.get("common", []), *e.get("overrides", [])]:
            key, _, value = o.partition("=")
            if key in ("algo", "env", "total_steps", "eval_every"):
                values[key] = value
            elif key != "logger":  # the harness sets logger=none itself
                rest.append(o)
        steps = int(values["total_steps"])
        cases.append(Case(values["algo"], values["env"], steps, int(values["eval_every"]),
                          budgets or (int(spec.get("final_steps", {}).get(e["name"], steps)),), tuple(rest), aligned,
                          label=f"{e['name'].replace('-', '_')}_{suffix}", entry=e["name"], protocol=spec["name"],
                          protocol_file=str(path), window=window))
    clash = [c.name for c in cases if c.name in CASES]
    if clash:
        raise ValueError(f"{path}: parity case names already taken: {', '.join(clash)}")
    return cases


for _zoo in ("dqn_zoo", "dqn_zoo_lunar"):  # issue 34 item 1: RL-Zoo's tuned DQN settings, ours and SB3's side by side
    if (ROOT / "benchmarks" / _zoo / "protocol.yaml").is_file():
        CASES.update((c.name, c) for c in protocol_cases(
            ROOT / "benchmarks" / _zoo / "protocol.yaml", "zoo", f"RL-Zoo's tuned settings from benchmarks/{_zoo}/"
            "protocol.yaml for both; SB3's linear epsilon schedule replaced by ours (exponential, counted after the "
            "random steps); SB3's target interval is ours in env steps (target_update_every x train_every / "
            "gradient_steps)"))
_100K = ROOT / "benchmarks" / "offpolicy_100k" / "protocol.yaml"
if _100K.is_file():  # issue 34 item 3: SB3 beside the 100k protocol's Hopper and HalfCheetah entries
    CASES.update((c.name, c) for c in protocol_cases(
        _100K, "100k", "benchmarks/offpolicy_100k/protocol.yaml's settings for both (Tianshou's); SB3's TD3 adds its "
        "exploration noise to the warm-up's uniform actions (ours: none, as Tianshou); SB3's SAC has 1e-6 inside "
        "log(1 - tanh(u)^2) (ours: float32 eps, as Tianshou)", budgets=(90_000, 95_000, 100_000),
        window=(90_000, 95_000, 100_000))
        if c.env in ("hopper", "halfcheetah"))


def compose_overrides(overrides: list[str]):
    """The run config ``train.py`` composes from these command-line overrides (nothing is run)."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    from rlbase.conf.schema import register

    register()
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(ROOT / "rlbase" / "conf"), version_base="1.3"):
        cfg = hydra_compose(config_name="config", overrides=list(overrides))
    GlobalHydra.instance().clear()
    return cfg


def compose(case: Case, seed: int):
    """The run config ``train.py`` would compose for this case and seed."""
    return compose_overrides([*case.train_overrides(), f"seed={seed}"])


# ----------------------------------------------------------------------------------------------- SB3 side
class _SB3Policy:
    """The agent's ``act`` (a batch of observations as a tensor in, a batch of actions out) that our ``evaluate``
    calls, over an SB3 model (which takes and gives numpy)."""

    device = "cpu"

    def __init__(self, model):
        self.model = model

    def act(self, obs, deterministic: bool = True, generator=None):
        import torch

        # SB3 draws from its own generators; a (B, ...) batch gives (B, ...) actions, as one observation its one
        return torch.as_tensor(self.model.predict(obs.cpu().numpy(), deterministic=deterministic)[0])


def _same(values: dict, what: str):
    distinct = set(values.values())
    if len(distinct) != 1:
        raise SystemExit(f"error: SB3 uses one {what} for all networks; ours differ: {values}")
    return distinct.pop()


def sb3_unsupported(cfg) -> str | None:
    """Why SB3 cannot run our composed config ``cfg`` with the same settings (one line), or None. Pure: it needs no
    SB3, so a parity run checks every case before any job starts."""
    a, name = cfg.algo, cfg.algo.name
    if name not in ("sac", "td3", "ddpg", "dqn", "a2c", "ppo"):
        return f"no SB3 counterpart for algo {name}"
    # (DQN with no random steps, learning from step 1, is SB3's learning_starts=1: one uniform action at step 0,
    # then epsilon-greedy on the schedule, where ours is epsilon-greedy from step 0: the same with eps_start=1)
    if name in ("sac", "td3", "ddpg", "dqn") and a.random_steps != a.learning_starts \
            and not (name == "dqn" and a.random_steps == 0 and a.learning_starts == 1 and a.eps_start == 1.0):
        return "SB3 acts at random exactly until learning_starts; set random_steps equal to it"
    lrs = {"sac": ("actor_lr", "critic_lr", "alpha_lr"), "td3": ("actor_lr", "critic_lr"),
           "ddpg": ("actor_lr", "critic_lr")}.get(name, ())
    if name == "sac" and not a.autotune:
        lrs = lrs[:2]  # a fixed temperature has no learning rate
    if len({a[k] for k in lrs}) > 1:
        return f"SB3 uses one learning rate for all networks; ours differ: { {k: a[k] for k in lrs} }"
    if name in ("td3", "ddpg") and (a.critic_action_layer != 0 or a.critic_weight_decay != 0):
        # (one critic or two is SB3's n_critics; DDPG is its TD3 with one critic, no smoothing and no delay)
        return f"SB3's {name.upper()} has the action at the critic's input and no weight decay"
    if name == "dqn":
        if a.grad_clip_value > 0 or a.double:
            return "SB3's DQN has no per-element gradient clipping and no double-Q target"
        if a.target_update_every <= 0 and not a.train_every == a.gradient_steps == 1:
            return "soft target updates every update need train_every = gradient_steps = 1 in SB3"
    if name in ("a2c", "ppo"):
        if a.return_norm:
            return "SB3 has no critic-target scaling (algo.return_norm); env.normalize_reward is its way (VecNormalize)"
    if name == "a2c" and (a.rms_alpha != 0.99 or a.lr_anneal or a.shared_trunk or a.max_grad_norm <= 0):
        return ("SB3's A2C has RMSprop alpha 0.99, a constant learning rate, separate networks and always clips the "
                "gradient norm (max_grad_norm > 0)")
    if name == "ppo":
        if a.shared_trunk or a.clip_value or a.target_kl > 0 or a.max_grad_norm <= 0 or a.recompute_advantage:
            return ("SB3's PPO here has separate networks, no max-form value clipping, no epoch-level KL stop, no "
                    "advantage recomputation and always clips the gradient norm (max_grad_norm > 0)")
        if a.lr_anneal and a.lr_anneal_steps not in (None, cfg.total_steps):
            return "SB3's learning-rate schedule runs over the whole budget: leave algo.lr_anneal_steps unset"
        rollout = a.num_envs * a.n_steps
        if rollout % a.n_minibatches:
            return f"SB3's minibatches are of one size: num_envs x n_steps ({rollout}) must divide by n_minibatches ({a.n_minibatches})"
    return None


def parity_unsupported(cfg) -> str | None:
    """Why a parity job cannot run ``cfg`` on SB3's side: what SB3 lacks, or what this harness does not do yet."""
    if cfg.env.normalize_obs or cfg.env.normalize_reward:  # the benchmark's PPO rows do use VecNormalize
        return "the parity harness does not hand SB3's VecNormalize statistics to the evaluation env yet"
    return sb3_unsupported(cfg)


def sb3_model(cfg, env):
    """An SB3 model with the settings of our composed config ``cfg`` (only the ones both libraries have)."""
    import stable_baselines3 as sb3
    import torch
    from stable_baselines3.common.noise import NormalActionNoise

    why = sb3_unsupported(cfg)
    if why is not None:
        raise SystemExit(f"error: {why}")
    a, name = cfg.algo, cfg.algo.name
    common = dict(seed=cfg.seed, device="cpu", verbose=0, gamma=a.gamma)
    if name in ("sac", "td3", "ddpg"):
        off = dict(buffer_size=a.buffer_size, learning_starts=a.learning_starts, batch_size=a.batch_size, tau=a.tau,
                   train_freq=a.train_every, gradient_steps=a.gradient_steps,
                   policy_kwargs=dict(net_arch=dict(pi=list(a.actor_hidden), qf=list(a.critic_hidden))))
    if name == "sac":
        lr = _same({"actor_lr": a.actor_lr, "critic_lr": a.critic_lr, **({"alpha_lr": a.alpha_lr} if a.autotune else {})},
                   "learning rate")
        ent = f"auto_{a.init_alpha}" if a.autotune else a.init_alpha
        target = "auto" if a.target_entropy is None else a.target_entropy
        return sb3.SAC("MlpPolicy", env, learning_rate=lr, ent_coef=ent, target_entropy=target, **off, **common)
    if name in ("td3", "ddpg"):  # our DDPG is TD3 with one critic, no target smoothing, no delay: so is SB3's
        lr = _same({"actor_lr": a.actor_lr, "critic_lr": a.critic_lr}, "learning rate")
        off["policy_kwargs"]["n_critics"] = 2 if a.twin else 1
        n = env.action_space.shape[0]
        # SB3 adds its noise to the action scaled to [-1, 1]; ours is expl_noise times the half-width: the same.
        noise = NormalActionNoise(np.zeros(n), a.expl_noise * np.ones(n)) if a.expl_noise > 0 else None
        return sb3.TD3("MlpPolicy", env, learning_rate=lr, action_noise=noise, policy_delay=a.policy_freq,
                       target_policy_noise=a.policy_noise, target_noise_clip=a.noise_clip, **off, **common)
    if name == "dqn":
        if a.target_update_every > 0:  # SB3 counts its target interval in env steps, ours in updates
            tau, interval = 1.0, max(1, a.target_update_every * a.train_every // a.gradient_steps)
        else:  # every update (sb3_unsupported checked train_every = gradient_steps = 1)
            tau, interval = a.tau, 1
        opt = dict(optimizer_class=torch.optim.AdamW, optimizer_kwargs=dict(weight_decay=a.weight_decay, amsgrad=a.amsgrad))
        return sb3.DQN("MlpPolicy", env, learning_rate=a.lr, buffer_size=a.buffer_size, learning_starts=a.learning_starts,
                       batch_size=a.batch_size, tau=tau, train_freq=a.train_every, gradient_steps=a.gradient_steps,
                       target_update_interval=interval, max_grad_norm=a.grad_clip_norm if a.grad_clip_norm > 0 else 1e9,
                       policy_kwargs=dict(net_arch=list(a.hidden), **opt), **common)
    if name == "a2c":
        kwargs = dict(net_arch=dict(pi=list(a.hidden), vf=list(a.hidden)), activation_fn=torch.nn.Tanh,
                      ortho_init=a.orthogonal_init, log_std_init=a.log_std_init)
        if a.optimizer == "adam":
            kwargs.update(optimizer_class=torch.optim.Adam, optimizer_kwargs=dict(eps=a.eps))
        return sb3.A2C("MlpPolicy", env, learning_rate=a.lr, n_steps=a.n_steps, gae_lambda=a.gae_lambda,
                       ent_coef=a.entropy_coef, vf_coef=a.value_coef, max_grad_norm=a.max_grad_norm,
                       use_rms_prop=a.optimizer == "rmsprop", rms_prop_eps=a.eps, normalize_advantage=a.normalize_advantage,
                       policy_kwargs=kwargs, **common)
    rollout = a.num_envs * a.n_steps  # ppo
    lr = (lambda remaining: a.lr * remaining) if a.lr_anneal else a.lr  # SB3's progress_remaining: 1 -> 0
    kwargs = dict(net_arch=dict(pi=list(a.hidden), vf=list(a.hidden)), activation_fn=torch.nn.Tanh,
                  ortho_init=a.orthogonal_init, log_std_init=a.log_std_init,
                  optimizer_kwargs=dict(eps=a.eps))
    return sb3.PPO("MlpPolicy", env, learning_rate=lr, n_steps=a.n_steps, batch_size=rollout // a.n_minibatches,
                   n_epochs=a.n_epochs, gae_lambda=a.gae_lambda, clip_range=a.clip_range, ent_coef=a.entropy_coef,
                   vf_coef=a.value_coef, max_grad_norm=a.max_grad_norm, normalize_advantage=a.normalize_advantage,
                   policy_kwargs=kwargs, **common)


def sb3_vec_env(cfg):
    """SB3's vector env for an on-policy config: the same sub-envs as ours (env i on sub-env stream i) and, where ours
    normalises, SB3's VecNormalize with our formula (no observation clip, rewards clipped at 10, eps 1e-8)."""
    from stable_baselines3.common.vec_env import DummyVecEnv, VecNormalize

    from rlbase import envs
    from rlbase.core import seeding

    venv = DummyVecEnv([lambda s=s: envs.make(cfg.env, s, sub_env=True)[0]
                        for s in seeding.sub_env_seeds(cfg.seed, cfg.algo.num_envs)])
    if cfg.env.normalize_obs or cfg.env.normalize_reward:
        venv = VecNormalize(venv, norm_obs=cfg.env.normalize_obs, norm_reward=cfg.env.normalize_reward,
                            clip_obs=1e9, clip_reward=envs.REWARD_CLIP, gamma=cfg.algo.gamma, epsilon=1e-8)
    return venv


def sb3_job(case: Case, seed: int, run_dir: Path) -> None:
    """Train SB3 on this case and seed, evaluating with our function; rows go to ``run_dir/metrics.jsonl``."""
    import torch
    from stable_baselines3.common.callbacks import BaseCallback

    from rlbase import envs
    from rlbase.core import seeding
    from rlbase.core.evaluate import evaluate

    torch.set_num_threads(1)
    cfg = compose(case, seed)
    why = parity_unsupported(cfg)
    if why is not None:
        raise SystemExit(f"error: {why}")
    if cfg.algo.name == "ppo":
        env = sb3_vec_env(cfg)
    elif cfg.algo.name == "a2c":  # the same sub-envs as ours
        from stable_baselines3.common.vec_env import DummyVecEnv

        env = DummyVecEnv([lambda s=s: envs.make(cfg.env, s)[0] for s in seeding.sub_env_seeds(cfg.seed, cfg.algo.num_envs)])
    else:
        env, _ = envs.make(cfg.env, seeding.stream(cfg.seed, "train_env"))
    eval_env, _ = envs.make(cfg.env, seeding.stream(cfg.seed, "eval_env"), train=False)
    model = sb3_model(cfg, env)
    if cfg.algo.name == "dqn":  # our exponential epsilon decay (counted after the random steps) for SB3's linear one
        a, total = cfg.algo, cfg.total_steps
        model.exploration_schedule = lambda remaining: a.eps_end + (a.eps_start - a.eps_end) * np.exp(
            -max(0.0, (1.0 - remaining) * total - a.random_steps) / a.eps_decay)
    run_dir.mkdir(parents=True, exist_ok=True)
    out = open(run_dir / "metrics.jsonl", "w")
    start = time.time()

    class Eval(BaseCallback):
        last, ended = 0, False

        def _on_step(self) -> bool:
            t = self.model.num_timesteps  # vector envs advance by num_envs: evaluate once per interval, as ours
            crossed, Eval.last = t // cfg.eval_every > Eval.last // cfg.eval_every, t
            final = t >= cfg.total_steps and not Eval.ended  # SB3 may collect past the budget: evaluate once
            Eval.ended = Eval.ended or t >= cfg.total_steps
            if crossed or final:
                row = evaluate(_SB3Policy(self.model), eval_env, cfg.eval_episodes, cfg.seed)
                out.write(json.dumps({"step": t, **row, "time/wall_s": time.time() - start}) + "\n")
                out.flush()
            return True

    model.learn(total_timesteps=cfg.total_steps, callback=Eval())
    out.close()
    (run_dir / "done").write_text("")


def _update_check_pair(algo: str, env: str, overrides: tuple[str, ...]):
    """(spec, SB3 model, our agent) built from one composed config, one thread, for an update-by-update check."""
    import importlib

    import torch
    from omegaconf import OmegaConf
    from stable_baselines3.common.logger import configure

    from rlbase import envs

    torch.set_num_threads(1)
    cfg = compose(Case(algo, env, 1000, 1000, (1000,), ("algo.random_steps=100", "algo.learning_starts=100",
                                                        *overrides)), 0)
    gym_env, spec = envs.make(cfg.env, 0)
    sb = sb3_model(cfg, gym_env)
    sb.set_logger(configure(None, []))
    sb._setup_learn(total_timesteps=10)
    ours = importlib.import_module(f"rlbase.algos.{algo}").Agent(OmegaConf.to_object(cfg.algo), spec, torch.device("cpu"))
    return spec, sb, ours


def sac_update_check(env: str = "halfcheetah", updates: int = 3, batch: int = 256, eps: float = 1e-6) -> dict:
    """Our SAC and SB3's, given the same weights, minibatches and Gaussian noise, update by update.

    SB3's actor heads (mu, log_std) and twin critics are copied into ours; both draw the same standard-normal
    noise for the same purpose (ours samples s' before s, SB3 s before s': the noise follows the input, not the
    order). Returns the largest absolute parameter difference after each update, per network. With
    ``log_prob_eps=eps`` (SB3's 1e-6) the two updates are the same up to float32 rounding; with the exact form
    (``eps=0``) the temperature and policy move apart from the first update.
    """
    import importlib

    import torch
    import torch.distributions.normal as tnormal
    from stable_baselines3.common.type_aliases import ReplayBufferSamples

    from rlbase.core.buffer import Batch

    spec, sb, ours = _update_check_pair("sac", env, (f"algo.log_prob_eps={eps}",))
    with torch.no_grad():  # copy SB3's weights into ours
        lin = [m for m in sb.actor.latent_pi if isinstance(m, torch.nn.Linear)]
        mine = [m for m in ours.actor.net if isinstance(m, torch.nn.Linear)]
        for a, b in zip(lin, mine[:-1]):
            b.weight.copy_(a.weight), b.bias.copy_(a.bias)
        mine[-1].weight.copy_(torch.cat([sb.actor.mu.weight, sb.actor.log_std.weight]))
        mine[-1].bias.copy_(torch.cat([sb.actor.mu.bias, sb.actor.log_std.bias]))
        for src, dst in ((sb.critic, ours.critic), (sb.critic_target, ours.critic_target)):
            for k, q in enumerate(src.q_networks):
                for layer, m in zip(dst.layers, [m for m in q if isinstance(m, torch.nn.Linear)]):
                    layer.weight[k].copy_(m.weight.T), layer.bias[k, 0].copy_(m.bias)
    # Both critics read actions in [-1, 1] (softlearning's convention): each side's minibatch holds the actions as
    # its own replay does, SB3's in [-1, 1], ours in the env's units (center + scale * a), which our SAC maps back.
    # What remains is Adam's eps on the few first-layer weights whose gradient is ~1e-8, below it: our critic loss is
    # the twins' MSEs summed, SB3's half that, and float32 rounding of such a cancelling sum is a large part of it
    # (Humanoid: 3 of 93,440 weights differ by more than 1e-5 after the first update, by 4.7e-5 at most).
    low, high = (torch.as_tensor(v, dtype=torch.float32) for v in (spec.action_low, spec.action_high))
    scale, center = (high - low) / 2, (high + low) / 2
    gen = torch.Generator().manual_seed(0)
    obs_dim, act_dim = spec.obs_dim, spec.action_dim
    diffs = []
    start = [p.detach().clone() for p in ours.critic.parameters()] + [p.detach().clone() for p in ours.actor.parameters()]
    for _ in range(updates):
        obs, nxt = torch.randn(batch, obs_dim, generator=gen), torch.randn(batch, obs_dim, generator=gen)
        act = torch.rand(batch, act_dim, generator=gen) * 2 - 1
        rew, term = torch.randn(batch, generator=gen), (torch.rand(batch, generator=gen) < 0.1).float()
        noise = {"obs": torch.randn(batch, act_dim, generator=gen), "next": torch.randn(batch, act_dim, generator=gen)}
        order_ours, order_sb3 = [noise["next"], noise["obs"]], [noise["obs"], noise["next"]]
        sac_module = importlib.import_module("rlbase.algos.sac")
        normal, standard_normal = sac_module.normal, tnormal._standard_normal
        try:  # our SAC draws its noise through rlbase.core.seeding.normal (imported into rlbase.algos.sac)
            sac_module.normal = lambda like, gen, q=order_ours: q.pop(0).clone()
            ours.update(Batch(obs, center + scale * act, rew, nxt, term, torch.zeros(batch)))
            tnormal._standard_normal = lambda shape, dtype, device, q=order_sb3: q.pop(0).clone()
            samples = ReplayBufferSamples(obs, act, nxt, term.unsqueeze(1), rew.unsqueeze(1), None)
            sb.replay_buffer.sample = lambda *a, b=samples, **k: b
            sb.train(gradient_steps=1, batch_size=batch)
        finally:
            sac_module.normal, tnormal._standard_normal = normal, standard_normal
        with torch.no_grad():
            actor = max(float((a.weight - b.weight).abs().max()) for a, b in zip(lin, mine[:-1]))
            head = float((mine[-1].weight - torch.cat([sb.actor.mu.weight, sb.actor.log_std.weight])).abs().max())
            critic = max(float((layer.weight[k] - m.weight.T).abs().max()) for k, q in enumerate(sb.critic.q_networks)
                         for layer, m in zip(ours.critic.layers, [m for m in q if isinstance(m, torch.nn.Linear)]))
            alpha = abs(float(ours.log_alpha) - float(sb.log_ent_coef))
            now = [*ours.critic.parameters(), *ours.actor.parameters()]
            moved = max(float((a - b).abs().max()) for a, b in zip(now, start))
        diffs.append({"actor": max(actor, head), "critic": critic, "log_alpha": alpha, "moved": moved})
    return {"eps": eps, "updates": diffs}


def td3_update_check(env: str = "hopper", updates: int = 4, batch: int = 256, algo: str = "td3") -> dict:
    """Our TD3 and SB3's, given the same weights, minibatches and target-smoothing noise, update by update.

    SB3's actor and twin critics (and their targets) are copied into ours; both draw the same standard-normal
    smoothing noise (ours through ``rlbase.core.seeding.normal``, SB3 through ``Tensor.normal_``). Returns the largest
    absolute parameter difference after each update, per network (the actor and targets move on every second
    update, both with policy delay 2). ``algo="ddpg"``: our DDPG (one critic, no smoothing, no delay, 400-300
    networks) against SB3's TD3 at those settings, which is SB3's DDPG."""
    import importlib

    import torch
    from stable_baselines3.common.type_aliases import ReplayBufferSamples

    from rlbase.core.buffer import Batch

    spec, sb, ours = _update_check_pair(algo, env, ())

    def linears(seq):
        return [m for m in seq if isinstance(m, torch.nn.Linear)]

    pairs_actor = ((sb.actor.mu, ours.actor.net), (sb.actor_target.mu, ours.actor_target.net))
    pairs_critic = ((sb.critic, ours.critic), (sb.critic_target, ours.critic_target))
    for src, dst in pairs_actor:  # the same layers on both sides (zip below would stop at the shorter)
        assert [m.weight.shape for m in linears(src)] == [m.weight.shape for m in linears(dst)], "actor layers differ"
    for src, dst in pairs_critic:
        assert len(src.q_networks) == dst.k, "critic counts differ"
        assert all(len(linears(q)) == len(dst.layers) for q in src.q_networks), "critic layers differ"
    with torch.no_grad():  # copy SB3's weights into ours
        for src, dst in pairs_actor:
            for a, b in zip(linears(src), linears(dst)):
                b.weight.copy_(a.weight), b.bias.copy_(a.bias)
        for src, dst in pairs_critic:
            for k, q in enumerate(src.q_networks):
                for layer, m in zip(dst.layers, linears(q)):
                    layer.weight[k].copy_(m.weight.T), layer.bias[k, 0].copy_(m.bias)

    def gaps() -> dict:  # the largest |ours - SB3| over every weight and bias of each network
        with torch.no_grad():
            out = {}
            for name, (src, dst) in zip(("actor", "actor_target"), pairs_actor):
                out[name] = max(max(float((a.weight - b.weight).abs().max()), float((a.bias - b.bias).abs().max()))
                                for a, b in zip(linears(src), linears(dst)))
            for name, (src, dst) in zip(("critic", "critic_target"), pairs_critic):
                out[name] = max(max(float((layer.weight[k] - m.weight.T).abs().max()),
                                    float((layer.bias[k, 0] - m.bias).abs().max()))
                                for k, q in enumerate(src.q_networks) for layer, m in zip(dst.layers, linears(q)))
            return out

    gen = torch.Generator().manual_seed(0)
    diffs, start = [], [p.detach().clone() for p in ours.actor.parameters()]
    for _ in range(updates):
        obs, nxt = torch.randn(batch, spec.obs_dim, generator=gen), torch.randn(batch, spec.obs_dim, generator=gen)
        act = torch.rand(batch, spec.action_dim, generator=gen) * 2 - 1
        rew, term = torch.randn(batch, generator=gen), (torch.rand(batch, generator=gen) < 0.1).float()
        z = torch.randn(batch, spec.action_dim, generator=gen)
        td3_module = importlib.import_module("rlbase.algos.td3")
        our_normal, normal_ = td3_module.normal, torch.Tensor.normal_
        try:  # our TD3 draws its noise through rlbase.core.seeding.normal (imported into rlbase.algos.td3)
            td3_module.normal = lambda like, gen, z=z: z.clone()
            ours.update(Batch(obs, act, rew, nxt, term, torch.zeros(batch)))
            torch.Tensor.normal_ = lambda self, mean=0.0, std=1.0, z=z, **k: self.copy_(z * std + mean)
            samples = ReplayBufferSamples(obs, act, nxt, term.unsqueeze(1), rew.unsqueeze(1), None)
            sb.replay_buffer.sample = lambda *a, b=samples, **k: b
            sb.train(gradient_steps=1, batch_size=batch)
        finally:
            td3_module.normal, torch.Tensor.normal_ = our_normal, normal_
        moved = max(float((a.detach() - b).abs().max()) for a, b in zip(ours.actor.parameters(), start))
        diffs.append({**gaps(), "actor_moved": moved})
    return {"updates": diffs}


# ----------------------------------------------------------------------------------------------- harness
def _job_dir(out: Path, case: Case, lib: str, seed: int) -> Path:
    return out / case.name / lib / f"seed{seed}"


def _running_elsewhere(d: Path) -> bool:
    """A process (an earlier harness's job) is already writing this job's directory."""
    me = str(os.getpid())
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            args = (proc / "cmdline").read_bytes().decode(errors="replace").split("\0")
        except OSError:
            continue
        if proc.name != me and {str(d), f"hydra.run.dir={d}", f"resume={d}"} & set(args):
            return True
    return False


def run_job(out: Path, case: Case, lib: str, seed: int) -> str:
    d = _job_dir(out, case, lib, seed)
    if (d / "done").exists():
        return f"{case.name} {lib} seed{seed}: finished before"
    if _running_elsewhere(d):
        return f"{case.name} {lib} seed{seed}: running in another process; left to it"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    if lib == "ours":
        if (d / "checkpoint.pt").exists():
            args = [f"resume={d}"]
        else:
            shutil.rmtree(d, ignore_errors=True)
            args = [*case.train_overrides(), f"seed={seed}", "hardware.threads=1", "logger=none", "progress=false",
                    f"hydra.run.dir={d}"]
        cmd = [sys.executable, str(ROOT / "train.py"), *args]
    else:
        shutil.rmtree(d, ignore_errors=True)
        # as a module from ROOT (cwd): this checkout's rlbase comes first, whichever one the venv has installed
        cmd = [sys.executable, "-m", "rlbase.report.parity", "_sb3", case.name, str(seed), str(d)]
    d.parent.mkdir(parents=True, exist_ok=True)
    segments = d.parent / f"seed{seed}.wall"  # wall seconds of each start of this job (a resumed one has several)
    if not (d / "checkpoint.pt").exists() or lib != "ours":
        segments.unlink(missing_ok=True)
    start = time.time()
    with open(d.parent / f"seed{seed}.log", "a") as logf:
        rc = subprocess.call(cmd, cwd=ROOT, env=env, stdout=logf, stderr=subprocess.STDOUT)
    wall = time.time() - start
    with open(segments, "a") as f:
        f.write(f"{wall:.1f}\n")
    if rc == 0 and d.exists():  # the job's whole wall time, over its resumed starts: what --hours plans with
        (d / "wall_s").write_text(f"{sum(float(x) for x in segments.read_text().split()):.1f}\n")
    return f"{case.name} {lib} seed{seed}: rc={rc} in {wall:.0f} s"


def expected_wall(out: Path, case: Case, lib: str) -> Optional[float]:
    """The median wall time in seconds of this case's finished jobs of ``lib`` under ``out``, or None if none."""
    walls = []
    for d in (out / case.name / lib).glob("seed*/"):
        try:
            if (d / "done").exists():
                walls.append(float((d / "wall_s").read_text()))
        except (OSError, ValueError):
            continue
    return float(np.median(walls)) if walls else None


def fits(out: Path, case: Case, lib: str, seed: int, deadline: Optional[float]) -> Optional[str]:
    """None if the job may start now; else why not: under ``--hours`` (a ``deadline`` in epoch seconds) a job starts
    only if a finished job of the same case and library has timed it and that time ends before the deadline (as
    ``protocol.py run --hours`` does with its entries' rates)."""
    if deadline is None or (_job_dir(out, case, lib, seed) / "done").exists():
        return None
    est = expected_wall(out, case, lib)
    if est is None:
        return (f"{case.name} {lib} seed{seed}: not started under --hours: no finished {lib} job of this case to "
                "time it (run one without --hours)")
    if time.time() + est > deadline:
        return f"{case.name} {lib} seed{seed}: not started: about {est / 60:.0f} min would run past --hours"
    return None


def parse_seeds(text: str) -> list[int]:
    seeds: list[int] = []
    for part in text.split(","):
        lo, _, hi = part.partition("-")
        seeds += list(range(int(lo), int(hi or lo) + 1))
    return seeds


def _evals(run_dir: Path) -> dict[int, float]:
    from rlbase.core.logger import read_metrics

    path = run_dir / "metrics.jsonl"
    if not path.exists():
        return {}
    return {int(r["step"]): float(r["eval/return_mean"]) for r in read_metrics(path) if "eval/return_mean" in r}


def _rel_path(path: Path) -> str:
    try:
        return str(Path(path).resolve().relative_to(ROOT))
    except ValueError:
        return str(path)


def _committed(case: Case) -> dict[int, tuple[dict[int, float], bool, Path]]:
    """A protocol case's finished runs as its committed files have them: {seed: ({step: return}, True, csv)}."""
    from rlbase.report import protocol

    spec = protocol.load(Path(case.protocol_file) if case.protocol_file else ROOT / "benchmarks" / case.protocol
                         / "protocol.yaml")
    out = {}
    for key, rec in protocol.finished_records(spec).items():
        if rec.get("entry") != case.entry:
            continue
        path = Path(spec["_path"]).parent / f"{key}.csv"
        rows = [line.split(",") for line in path.read_text().splitlines()[1:] if line.strip()]
        out[int(rec["seed"])] = ({int(st): float(m) for st, m, *_ in rows}, True, path)
    return dict(sorted(out.items()))


def verdict(d: stats.Diff, margin: float = 0.0) -> str:
    """In words; with an equivalence margin (stated before the runs), "agree" when the whole interval lies within it."""
    word = stats.verdict(d, margin).word
    return {"above": "ours better", "below": "ours worse", "matches": f"agree (within +-{margin:.0f})"}.get(
        word, "no difference resolved" if margin == 0 else f"not resolved (margin +-{margin:.0f})")


def _ci(v) -> tuple[float, float]:
    _, lo, hi = stats.mean_ci(v)
    return float(lo), float(hi)


def report(out: Path, names: list[str], seeds: Optional[list[int]] = None, margin: float = 0.0,
           level: float = 0.95, ours_runs: Optional[Path] = None) -> None:
    """The table of each case at each budget. ``seeds``: only these seeds (a pre-registered set); ``margin``: an
    equivalence margin as a fraction of SB3's mean at that budget (0: no "agree" verdict); ``level``: the interval's
    (0.90 with a margin is the two one-sided tests at 5% each). ``ours_runs``: a protocol's run directory
    (``<runs root>/<protocol>``): our side of the cases read from that protocol is its ``<entry>-seed<k>`` runs,
    which ran with the same overrides, instead of runs of this harness. Without it, a protocol case with no run of
    ours under ``out`` takes our side from the protocol's committed per-seed CSVs (``runs.json``'s finished runs),
    so the report can be made again from the repository alone."""
    rows, table, curves, sources = [], [], {}, {}
    pct = f"{level:.0%}"
    for name in names:
        case = CASES[name]
        libs = {}
        for lib in ("ours", "sb3"):
            base = out / (case.sb3_case if lib == "sb3" else name) / lib
            runs = {int(d.name[4:]): d for d in (sorted(base.glob("seed*/")) if base.exists() else [])}
            if lib == "ours" and ours_runs is not None and case.entry:
                if Path(ours_runs).name != case.protocol:
                    raise SystemExit(f"error: --ours-runs {ours_runs}: case {name} is protocol {case.protocol}'s; "
                                     f"expected <runs root>/{case.protocol}")
                runs = {int(d.name[len(case.entry) + 5:]): d for d in sorted(Path(ours_runs).glob(f"{case.entry}-seed*/"))
                        if d.name[len(case.entry) + 5:].isdigit()}
            if lib == "ours" and ours_runs is None and case.entry and not runs:
                # no run of ours here: the protocol's committed curves (its finished runs), so that the report
                # can be made again from the repository alone
                libs[lib] = {s: v for s, v in _committed(case).items() if seeds is None or s in seeds}
                where = _rel_path(Path(case.protocol_file).parent) if case.protocol_file else f"benchmarks/{case.protocol}"
                sources[name] = (f"{where}/{case.entry}-seed<k>.csv (committed; finished runs only, unfinished ones "
                                 "not counted)" if libs[lib] else f"no committed finished run of {case.entry} yet")
                continue
            libs[lib] = {s: (_evals(d), (d / "done").exists(), d) for s, d in runs.items() if d.is_dir()
                         and (seeds is None or s in seeds)}
            if lib == "ours" and case.entry:
                sources[name] = (f"{ours_runs} (the protocol's runs)" if ours_runs is not None
                                 else f"{base} (this harness's runs)")
        if not any(libs.values()):
            continue
        curves[name] = libs
        window = f"mean {case.window[0]}-{case.window[-1]}" if case.window else None
        for budget in [*case.budgets, *([window] if window else [])]:
            entry = {"case": name, "budget": budget, "aligned": case.aligned}
            for lib, runs in libs.items():
                if budget == window:  # each finished seed's mean over the window's evaluations, all of them present
                    vals = {s: float(np.mean([ev[t] for t in case.window])) for s, (ev, done, _) in runs.items()
                            if done and all(t in ev for t in case.window)}
                else:
                    vals = {s: ev[budget] for s, (ev, done, _) in runs.items() if done and budget in ev}  # finished
                v = list(vals.values())
                entry[lib] = {"seeds": sorted(vals), "values": v,
                              "mean": float(np.mean(v)) if v else None,
                              "ci": _ci(v) if len(v) >= 2 else None, "iqm": iqm(v) if v else None}
            o, s = entry["ours"]["values"], entry["sb3"]["values"]
            if len(o) >= 2 and len(s) >= 2:
                d = stats.diff(o, s, level)
                m = margin * abs(float(np.mean(s)))
                entry.update(diff=d.mean, diff_ci=(d.lo, d.hi), p=d.p, min_p=d.min_p, level=level, margin=m,
                             verdict=verdict(d, m))
            else:
                entry.update(diff=None, diff_ci=None, verdict="too few seeds")
            rows.append(entry)
        walls = {lib: [float((d / "wall_s").read_text()) for _, (_, done, d) in runs.items()
                       if done and (d / "wall_s").exists()] for lib, runs in libs.items()}
        table.append((name, {lib: (len([1 for _, (_, done, _) in runs.items() if done]), len(runs),
                                   np.median(walls[lib]) if walls[lib] else float("nan")) for lib, runs in libs.items()}))

    def fmt(e):
        if e["mean"] is None:
            return "-", "-", "-"
        ci = f"[{e['ci'][0]:.0f}, {e['ci'][1]:.0f}]" if e["ci"] is not None else "-"
        return f"{e['mean']:.0f}", ci, f"{e['iqm']:.0f}"

    lines = ["| case | env steps | ours: seeds | mean | 95% t+Hall | IQM | SB3: seeds | mean | 95% t+Hall | IQM "
             f"| ours - SB3 [{pct} Welch], permutation p | verdict |", "|" + "---|" * 12]
    for e in rows:
        om, oc, oi = fmt(e["ours"])
        sm, sc, si = fmt(e["sb3"])
        d = (f"{e['diff']:+.0f} [{e['diff_ci'][0]:+.0f}, {e['diff_ci'][1]:+.0f}], p = {e['p']:.2f} (min {e['min_p']:.2f})"
             if e["diff"] is not None else "-")
        lines.append(f"| {e['case']} | {e['budget']} | {len(e['ours']['values'])} | {om} | {oc} | {oi} | "
                     f"{len(e['sb3']['values'])} | {sm} | {sc} | {si} | {d} | {e['verdict']} |")
    lines += ["", "Each library's interval is rlbase.report.stats.mean_ci's default: the union of the Student t interval "
              "and Hall's skew-corrected one (coverage table in that module), so it is wider than a plain t interval "
              "where seeds are skewed; a protocol page that states a plain t interval shows that one for the same "
              "seeds. The difference's interval is Welch's, with a permutation p (min: the smallest p these seed "
              "counts allow).",
              "", "| case | ours: finished / started | median wall s | SB3: finished / started | median wall s | aligned |",
              "|---|---|---|---|---|---|"]
    for name, t in table:
        o, s = t.get("ours", (0, 0, float("nan"))), t.get("sb3", (0, 0, float("nan")))
        wall = [f"{w:.0f}" if w == w else "—" for w in (o[2], s[2])]  # nan: no wall_s (a protocol's own runs)
        lines.append(f"| {name} | {o[0]} / {o[1]} | {wall[0]} | {s[0]} / {s[1]} | {wall[1]} | {CASES[name].aligned} |")
    if sources:
        lines += ["", "Our side of each protocol case: " + "; ".join(f"{n}: {w}" for n, w in sources.items()) + "."]
    per_seed = ["", "Per seed (final budget, and the window's mean where a case has one):", ""]
    for e in rows:
        if e["budget"] == CASES[e["case"]].budgets[-1] or isinstance(e["budget"], str):
            for lib in ("ours", "sb3"):
                vals = ", ".join(f"s{s} {v:.0f}" for s, v in zip(e[lib]["seeds"], e[lib]["values"]))
                at = f" ({e['budget']})" if isinstance(e["budget"], str) else ""
                per_seed.append(f"- {e['case']}{at} {lib}: {vals or '-'}")
    text = "\n".join(lines + per_seed) + "\n"
    out.mkdir(parents=True, exist_ok=True)
    (out / "report.md").write_text(text)
    (out / "report.json").write_text(json.dumps(rows, indent=1))
    print(text)
    _plot(out, curves)


def _plot(out: Path, curves: dict) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return
    fig, axes = plt.subplots(1, len(curves), figsize=(4.2 * len(curves), 3.3), squeeze=False)
    for ax, (name, libs) in zip(axes[0], curves.items()):
        seen: list[float] = []  # every seed's returns: the axes fit them (a few seeds' band may run past)
        for lib, runs in libs.items():
            runs = {k: v for k, v in runs.items() if v[1]}  # finished runs only, as in the table
            steps = sorted(set.intersection(*[set(ev) for ev, _, _ in runs.values()])) if runs else []
            if not steps:
                continue
            vals = np.array([[ev[t] for t in steps] for ev, _, _ in runs.values()])
            seen += [float(vals.min()), float(vals.max())]
            ax.plot(steps, vals.mean(0), label=f"{lib} ({len(vals)} seeds)")
            if len(vals) >= 2:
                ci = np.array([_ci(vals[:, j]) for j in range(len(steps))])
                ax.fill_between(steps, ci[:, 0], ci[:, 1], alpha=0.2)
        if seen:
            pad = 0.05 * (max(seen) - min(seen) or 1.0)
            ax.set_ylim(min(seen) - pad, max(seen) + pad)
        ax.set_title(name, fontsize=9)
        ax.set_xlabel("env steps")
        ax.legend(fontsize=7)
    axes[0][0].set_ylabel("eval return (mean, 95% t+Hall)")
    fig.text(0.01, 0.01, "axes: the range of the seeds' returns; a band at few seeds may run past it", fontsize=7)
    fig.tight_layout(rect=(0, 0.04, 1, 1))
    fig.savefig(out / "curves.png", dpi=110, metadata={"Software": None})
    plt.close(fig)


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run", help="run the cases' jobs (skipping finished ones), then report")
    r.add_argument("cases", nargs="+", choices=sorted(CASES))
    r.add_argument("--seeds", default="0-4")
    r.add_argument("--jobs", type=int, default=2, help="jobs at a time (one torch thread each; at most the cores)")
    r.add_argument("--libs", default="ours,sb3")
    r.add_argument("--out", type=Path, default=ROOT / "runs" / "parity")
    r.add_argument("--hours", type=float, default=None,
                   help="start only jobs expected to finish within this many hours (each case and library's median "
                        "wall time of its finished jobs, under the load they ran at; one with none finished is not "
                        "started; a seed's ours and SB3 jobs are admitted one by one)")
    rep = sub.add_parser("report", help="write the table and plot from what has finished so far")
    rep.add_argument("cases", nargs="*")
    rep.add_argument("--out", type=Path, default=ROOT / "runs" / "parity")
    rep.add_argument("--seeds", default=None, help="only these seeds (e.g. a pre-registered 100-109)")
    rep.add_argument("--margin", type=float, default=0.0,
                     help="equivalence margin as a fraction of SB3's mean (state it before the runs); 0: none")
    rep.add_argument("--level", type=float, default=0.95, help="the difference's interval (0.90 with a margin: TOST)")
    rep.add_argument("--ours-runs", type=Path, default=None,
                     help="a protocol's run directory (<runs root>/<protocol name>): our side of that protocol's cases")
    sub.add_parser("list", help="list the cases")
    u = sub.add_parser("sac-update-check", help="our SAC vs SB3's on identical weights, batches and noise")
    u.add_argument("--env", default="halfcheetah")
    u.add_argument("--updates", type=int, default=3)
    t = sub.add_parser("td3-update-check", help="our TD3 vs SB3's on identical weights, batches and noise")
    t.add_argument("--env", default="hopper")
    t.add_argument("--updates", type=int, default=4)
    t.add_argument("--algo", default="td3", choices=("td3", "ddpg"), help="ddpg: our DDPG against SB3's (one critic)")
    j = sub.add_parser("_sb3")  # internal: one SB3 job
    j.add_argument("case")
    j.add_argument("seed", type=int)
    j.add_argument("dir", type=Path)
    args = p.parse_args(argv)

    if args.cmd == "list":
        for c in CASES.values():
            print(f"{c.name:22s} {' '.join(c.train_overrides())}  | budgets {c.budgets}")
        return
    if args.cmd == "sac-update-check":
        for eps in (1e-6, 0.0):
            res = sac_update_check(args.env, args.updates, eps=eps)
            for i, d in enumerate(res["updates"]):
                print(f"log_prob_eps={eps:g} update {i + 1}: max |ours - SB3| actor {d['actor']:.2e}  "
                      f"critic {d['critic']:.2e}  log_alpha {d['log_alpha']:.2e}  (ours moved {d['moved']:.2e})")
        return
    if args.cmd == "td3-update-check":
        for i, d in enumerate(td3_update_check(args.env, args.updates, algo=args.algo)["updates"]):
            print(f"update {i + 1}: max |ours - SB3| " + "  ".join(f"{k} {v:.2e}" for k, v in d.items() if k != "actor_moved")
                  + f"  (our actor moved {d['actor_moved']:.2e})")
        return
    unknown = [c for c in ([args.case] if args.cmd == "_sb3" else getattr(args, "cases", [])) if c not in CASES]
    if unknown:
        raise SystemExit(f"error: unknown case(s) {', '.join(unknown)}; allowed: {', '.join(sorted(CASES))}")
    if args.cmd == "_sb3":
        sb3_job(CASES[args.case], args.seed, args.dir)
        return
    if args.cmd == "report":
        report(args.out, args.cases or [n for n in CASES if (args.out / n).exists()],
               parse_seeds(args.seeds) if args.seeds else None, args.margin, args.level, args.ours_runs)
        return
    if args.hours is not None and not args.hours > 0:
        raise SystemExit(f"error: --hours {args.hours}: must be > 0 (the hours this machine has left)")
    if args.jobs > (os.cpu_count() or 1):
        raise SystemExit(f"error: --jobs {args.jobs} exceeds the {os.cpu_count()} cores; allowed: 1..{os.cpu_count()}")
    libs = args.libs.split(",")
    if "sb3" in libs:
        try:
            import stable_baselines3  # noqa: F401
        except ImportError as e:
            raise SystemExit("error: stable-baselines3 is not installed; pip install -r requirements-bench.txt") from e
    if "sb3" in libs:  # every case's SB3 side checked before the first job: no hours of ours before a refusal
        for c in dict.fromkeys(args.cases):
            why = None if CASES[c].name_suffix else parity_unsupported(compose(CASES[c], parse_seeds(args.seeds)[0]))
            if why is not None:
                raise SystemExit(f"error: case {c}: {why}")
    # Seed-major order: stopped part way, every case has the same seeds finished.
    jobs = [(CASES[c], lib, s) for s in parse_seeds(args.seeds) for c in args.cases for lib in libs
            if not (lib == "sb3" and CASES[c].name_suffix)]  # an ablation of ours has no SB3 side of its own
    print(f"{len(jobs)} jobs, {args.jobs} at a time, 1 torch thread each; output in {args.out}", flush=True)
    deadline = None if args.hours is None else time.time() + 3600 * args.hours

    def go(job):
        why = fits(args.out, *job, deadline)
        return why if why is not None else run_job(args.out, *job)

    with ThreadPoolExecutor(args.jobs) as pool:
        for msg in pool.map(go, jobs):
            print(time.strftime("%H:%M:%S"), msg, flush=True)
    report(args.out, list(dict.fromkeys(args.cases)))


if __name__ == "__main__":
    main()
