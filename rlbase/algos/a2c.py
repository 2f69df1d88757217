"""A2C: synchronous advantage actor-critic over N parallel environments.

Paper: Mnih et al., "Asynchronous Methods for Deep Reinforcement Learning", ICML 2016 (A3C; A2C is its
synchronous variant, described in OpenAI's baselines blog post "OpenAI Baselines: ACKTR & A2C", 2017).
GAE: Schulman et al., "High-Dimensional Continuous Control Using Generalized Advantage Estimation", 2016.

Implementation details:
1. ``num_envs`` envs through gymnasium's vector API, stepped for ``n_steps`` to form one rollout.
2. Returns are n-step returns bootstrapped from the critic (``gae_lambda`` = 1), or GAE(lambda) when < 1.
   A truncated episode bootstraps from V(real final observation) (``info["final_obs"]`` in SAME_STEP
   autoreset mode); a terminated one does not. See ``algos/common/rollout.py``.
3. Loss = policy loss + ``value_coef`` x value loss - ``entropy_coef`` x entropy; gradient norm clipped at
   ``max_grad_norm``; RMSprop (alpha 0.99, eps 1e-5, as in baselines) or Adam.
4. Discrete actions: categorical policy. Continuous: Gaussian with a state-independent log-std; the sample
   is clipped to the bounds for the env, the log-probability is of the unclipped sample.
5. Actor and critic as separate MLPs, or one shared trunk with two heads (``shared_trunk``); PyTorch's default
   init, or orthogonal (``orthogonal_init``, as baselines and Tianshou's MuJoCo A2C); ``init_zero_inputs`` draws
   the layers that read the observation as a network whose observation carries that many always-zero entries gets
   them (Tianshou's Ant-v3 under MuJoCo 2.0: 84 zero contact forces; benchmarks/onpolicy_ant_inputs/).
6. Observation normalisation and reward scaling (``env.normalize_obs``, ``env.normalize_reward``): see PPO's
   detail 8 (``algos/ppo.py``). ``algo.return_norm`` scales the critic's targets instead (Tianshou's
   ``reward_normalization``): GAE runs on raw rewards with the critic's values times the running std of the
   returns, the critic learns returns divided by it, and the advantages keep the rewards' scale, so the
   entropy bonus weighs less against them than under ``env.normalize_reward``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Optional

import numpy as np
import torch
from torch import nn
from torch.distributions import Categorical, Normal

from rlbase.core.agent import Hooks
from rlbase.core.nets import ActionScaler, init_, mlp
from rlbase.core.rollout import RolloutBatch
from rlbase.core.seeding import AgentRandom, normal
from rlbase.core.settings import any_value, non_negative, one_of, positive, unit
from rlbase.envs import EnvSpec
from rlbase.loops.on_policy import OnPolicyConfig

ACTION_SPACES = ("discrete", "continuous")
SAMPLES_POLICY = True  # act(deterministic=False) samples the learned policy (eval.sample, load_policy)
LOOP = "on_policy"
ACTIVATIONS = {"tanh": nn.Tanh, "relu": nn.ReLU}  # algo.activation of the on-policy networks


@dataclass
class A2CConfig(OnPolicyConfig):
    name: str = "a2c"  # num_envs 16, n_steps 5, gamma 0.99, gae_lambda 1 (algos/common/on_policy.py: OnPolicyConfig)
    lr: float = positive(7e-4)  # learning rate
    optimizer: str = one_of("rmsprop", "rmsprop", "adam")  # rmsprop | adam
    rms_alpha: float = unit(0.99, high_open=True)  # RMSprop smoothing constant
    eps: float = positive(1e-5)  # optimizer epsilon
    value_coef: float = non_negative(0.5)  # weight of the value loss
    entropy_coef: float = non_negative(0.01)  # weight of the entropy bonus
    max_grad_norm: float = any_value(0.5)  # gradient norm clip (<= 0: off)
    hidden: list[int] = field(default_factory=lambda: [64, 64])  # hidden sizes (each network, or the trunk)
    activation: str = one_of("tanh", *ACTIVATIONS)  # hidden-layer nonlinearity: tanh | relu
    shared_trunk: bool = False  # one trunk with policy and value heads instead of two networks
    log_std_init: float = any_value(0.0)  # initial log-std of the Gaussian policy (continuous actions)
    normalize_advantage: bool = False  # standardise advantages per rollout
    orthogonal_init: bool = False  # orthogonal weights (gain sqrt 2; outputs 0.01 policy, 1 value), zero biases
    # with orthogonal_init: the layers that read the observation get the first obs_dim columns of an orthogonal
    # matrix over obs_dim + this many inputs: the weights of a network whose observation carries this many
    # always-zero entries (Tianshou's Ant-v3 under MuJoCo 2.0: 84 contact forces, all 0), which never change them
    init_zero_inputs: int = non_negative(0)


class ActorCritic(nn.Module):
    def __init__(self, cfg: A2CConfig, spec: EnvSpec):
        super().__init__()
        self.discrete = spec.discrete
        out = spec.n_actions if spec.discrete else spec.action_dim
        act = ACTIVATIONS[cfg.activation]
        if cfg.shared_trunk:
            self.trunk = nn.Sequential(mlp(spec.obs_dim, cfg.hidden[:-1], cfg.hidden[-1], activation=act), act())
            self.pi_head, self.v_head = nn.Linear(cfg.hidden[-1], out), nn.Linear(cfg.hidden[-1], 1)
        else:
            self.trunk = nn.Identity()
            self.pi_head = mlp(spec.obs_dim, cfg.hidden, out, activation=act)
            self.v_head = mlp(spec.obs_dim, cfg.hidden, 1, activation=act)
        if not spec.discrete:
            self.log_std = nn.Parameter(torch.full((spec.action_dim,), cfg.log_std_init))
            self.scaler = ActionScaler(spec.action_low, spec.action_high)

    def forward(self, obs: torch.Tensor):
        """The action distribution and V(s)."""
        h = self.trunk(obs)
        out, value = self.pi_head(h), self.v_head(h).squeeze(-1)
        # validate_args=False: the argument checks cost more than the rest of a small network's forward pass
        if self.discrete:
            return Categorical(logits=out, validate_args=False), value
        return Normal(out, self.log_std.exp().expand_as(out), validate_args=False), value

    def value(self, obs: torch.Tensor) -> torch.Tensor:
        return self.v_head(self.trunk(obs)).squeeze(-1)


def orthogonal_init(net: ActorCritic, gen: torch.Generator, zero_inputs: int = 0) -> None:
    """Orthogonal init (PPO detail 7, baselines' A2C) with gain sqrt(2) for hidden layers, 0.01 (policy) and 1 (value)
    for outputs. ``zero_inputs`` (``algo.init_zero_inputs``): each layer that reads the observation is drawn as
    if the observation had that many more entries, all zero, and keeps the columns of the real ones."""
    linears = lambda m: [x for x in m.modules() if isinstance(x, nn.Linear)]  # noqa: E731
    reads_obs = {id(linears(part)[0]) for part in ((net.pi_head, net.v_head) if isinstance(net.trunk, nn.Identity)
                                                   else (net.trunk,))}

    def draw(layer: nn.Linear, gain: float) -> None:
        if zero_inputs and id(layer) in reads_obs:
            w = torch.empty(layer.out_features, layer.in_features + zero_inputs)
            nn.init.orthogonal_(w, gain, generator=gen)
            with torch.no_grad():
                layer.weight.copy_(w[:, :layer.in_features])
        else:
            nn.init.orthogonal_(layer.weight, gain, generator=gen)

    for module in linears(net):
        draw(module, math.sqrt(2))
        nn.init.zeros_(module.bias)
    for head, gain in ((net.pi_head, 0.01), (net.v_head, 1.0)):
        draw(linears(head)[-1], gain)


class A2C(Hooks):
    def __init__(self, cfg: A2CConfig, spec: EnvSpec, device: torch.device, rng: Optional[AgentRandom] = None):
        self.cfg, self.spec, self.device = cfg, spec, device
        self.rng = AgentRandom(0, device) if rng is None else rng
        self.net = init_(ActorCritic(cfg, spec).to(device), self.rng.init)
        if cfg.orthogonal_init:
            orthogonal_init(self.net, self.rng.init, cfg.init_zero_inputs)
        self.optimizer = self.make_optimizer()

    def make_optimizer(self) -> torch.optim.Optimizer:
        """One optimiser over both networks (PPO has its own)."""
        cfg = self.cfg
        if cfg.optimizer == "rmsprop":
            return torch.optim.RMSprop(self.net.parameters(), lr=cfg.lr, alpha=cfg.rms_alpha, eps=cfg.eps)
        if cfg.optimizer == "adam":
            return torch.optim.Adam(self.net.parameters(), lr=cfg.lr, eps=cfg.eps)
        raise ValueError(f"algo.optimizer={cfg.optimizer} is not supported; allowed: rmsprop, adam")

    def _obs(self, obs) -> torch.Tensor:
        """Observations (a numpy batch from the vector env, or ``act``'s tensor) as the network's float32 input."""
        return torch.as_tensor(obs, dtype=torch.float32, device=self.device)

    def _clip(self, action: torch.Tensor) -> torch.Tensor:
        """Actions as the env takes them: discrete ones as they are, continuous ones clipped to the bounds."""
        if self.spec.discrete:
            return action
        s = self.net.scaler
        return torch.maximum(torch.minimum(action, s.high), s.low)

    @torch.inference_mode()
    def act(self, obs: torch.Tensor, deterministic: bool = False, generator: Optional[torch.Generator] = None) -> torch.Tensor:
        """Actions for observations ``(B, obs_dim)``: greedy (argmax, or the mean clipped to the bounds) when
        deterministic, sampled (and clipped) otherwise; ``(B,)`` indices or ``(B, action_dim)``."""
        dist, _ = self.net(self._obs(obs))
        if deterministic:
            action = dist.probs.argmax(-1) if self.spec.discrete else dist.mean
        else:
            action = self.sample(dist, self.rng.explore if generator is None else generator)
        return self._clip(action)

    def sample(self, dist, gen: torch.Generator) -> torch.Tensor:
        """An action drawn from ``dist`` (the policy's Categorical or Normal) with ``gen``."""
        if self.spec.discrete:
            return torch.multinomial(dist.probs, 1, generator=gen).squeeze(-1)
        return dist.mean + dist.stddev * normal(dist.mean, gen)

    @torch.inference_mode()
    def step(self, obs: np.ndarray) -> tuple[torch.Tensor, np.ndarray, torch.Tensor, torch.Tensor]:
        """For a batch of observations: the sampled actions (as stored), the env's actions, V(s) and the
        actions' log-probabilities."""
        dist, value = self.net(self._obs(obs))
        action = self.sample(dist, self.rng.explore)
        log_prob = dist.log_prob(action)
        return action, self._clip(action).cpu().numpy(), value, log_prob if self.spec.discrete else log_prob.sum(-1)

    @torch.inference_mode()
    def value(self, obs: np.ndarray) -> torch.Tensor:
        return self.net.value(self._obs(obs))

    def set_progress(self, fraction: float) -> None:
        """Called by the loop before each update with the fraction of the budget used so far."""
        if self.cfg.lr_anneal:
            for group in self.optimizer.param_groups:
                group["lr"] = self.cfg.lr * max(1.0 - fraction, 0.0)

    def update(self, batch: RolloutBatch) -> dict[str, torch.Tensor]:
        metrics = self.compute_grads(batch)
        self.optimizer.step()
        return metrics

    def compute_grads(self, batch: RolloutBatch) -> dict[str, torch.Tensor]:
        """Loss and clipped gradients in ``self.net``'s ``.grad`` (A3C workers hand them to the global model)."""
        c = self.cfg
        dist, values = self.net(batch.obs)
        log_prob = dist.log_prob(batch.actions)
        entropy = dist.entropy()
        if not self.spec.discrete:
            log_prob, entropy = log_prob.sum(-1), entropy.sum(-1)
        adv = batch.advantages
        if c.normalize_advantage:
            adv = (adv - adv.mean()) / (adv.std() + 1e-8)
        policy_loss = -(adv * log_prob).mean()
        value_loss = (batch.returns - values).pow(2).mean()
        entropy_mean = entropy.mean()
        loss = policy_loss + c.value_coef * value_loss - c.entropy_coef * entropy_mean
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        grad_norm = torch.nn.utils.clip_grad_norm_(self.net.parameters(), c.max_grad_norm if c.max_grad_norm > 0 else math.inf)
        return {"loss/policy": policy_loss.detach(), "loss/value": value_loss.detach(), "train/entropy": entropy_mean.detach(),
                "train/grad_norm": grad_norm.detach()}

    def state_dict(self) -> dict:
        return {"net": self.net.state_dict(), "optimizer": self.optimizer.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        self.net.load_state_dict(state["net"])
        self.optimizer.load_state_dict(state["optimizer"])


def check_config(a) -> list[str]:
    """Relations between settings (validate_algo reports each in one line before anything is built)."""
    if a.get("shared_trunk", False) and len(a.hidden) == 0:
        return ["algo.shared_trunk=true with algo.hidden=[]: a shared trunk needs at least one hidden layer; allowed: "
                "algo.hidden with one or more sizes, or algo.shared_trunk=false"]
    if a.get("init_zero_inputs", 0) and not a.get("orthogonal_init", False):
        return [f"algo.init_zero_inputs={a.init_zero_inputs} shapes the orthogonal init only; allowed: "
                "algo.orthogonal_init=true with it, or algo.init_zero_inputs=0"]
    return []


Config, Agent = A2CConfig, A2C
