"""Several seeds of one off-policy algorithm in one process: every network and optimizer with a leading seed axis.

``hardware.seeds_per_process=K`` trains K seeds of one configuration together (``rlbase/loops/seeds.py`` drives
them). Each seed is still a run of its own (directory, metrics, checkpoint, evaluation, random streams); what they
share is the arithmetic: the K actors are one batched network (each layer one ``torch.baddbmm`` over a (K, B, in)
input), the K twin critics one ensemble of 2K members (the way one seed's twins already share one), and each
optimizer one fused Adam over the stacked weights. Adam is elementwise, so one Adam over stacked weights is K Adams;
the loss that is differentiated is the sum of the K seeds' losses, and no operation mixes seeds, so seed j's
gradients, moments and weights are those of seed j's own update (``tests/test_seeds.py`` checks them against K
separate agents to float tolerance).

Each seed draws from its own generators (``seeding.AgentRandom`` of its seed): exploration noise, target smoothing
noise; initial weights are those of the seed's own agent, built first and then stacked. A seed's checkpoint holds
its slice in the single agent's format, so ``rlbase.load_policy`` and ``scripts/evaluate.py`` read it as any run.

Supported: TD3 and DDPG (``StackedTD3``; DDPG is TD3 with its three tricks off), SAC (``StackedSAC``) and DQN
(``StackedDQN``; its global-norm gradient clipping is per seed). An algorithm module names its stacked class in
``STACKED``.
"""

from __future__ import annotations

import math
from typing import Any, Optional

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from rlbase.core.agent import Hooks
from rlbase.core.buffer import Batch
from rlbase.core.nets import EnsembleLinear, adam, bf16_autocast, minimize
from rlbase.core.seeding import epsilon_greedy, normal


class Stack:
    """Parameters of K copies of one network, stacked on a leading seed axis, with the map back to one copy's
    ``state_dict`` format. ``kind`` of each entry: ``linear_w`` (nn.Linear weight (out, in), stored (K, in, out)),
    ``linear_b`` (bias (out,), stored (K, 1, out)), ``ens`` (an ensemble's (k, ...) tensor, stored (K*k, ...))."""

    def __init__(self, nets: list[nn.Module]):
        self.names: list[str] = []
        self.kinds: list[str] = []
        self.params: list[nn.Parameter] = []
        self.buffers = {name: b.clone() for name, b in nets[0].named_buffers()}
        per_net = [dict(n.named_parameters()) for n in nets]
        modules = dict(nets[0].named_modules())
        for name, _ in nets[0].named_parameters():
            owner = modules[name.rpartition(".")[0]]
            group = [d[name].detach() for d in per_net]
            if isinstance(owner, nn.Linear):
                kind = "linear_w" if name.endswith("weight") else "linear_b"
                data = torch.stack([g.t() for g in group]) if kind == "linear_w" else torch.stack(group).unsqueeze(1)
            elif isinstance(owner, EnsembleLinear):
                kind, data = "ens", torch.cat(group)
            else:
                raise TypeError(f"cannot stack parameter {name} of {type(owner).__name__}")
            self.names.append(name)
            self.kinds.append(kind)
            self.params.append(nn.Parameter(data.contiguous().clone()))
        self.k = len(nets)

    @classmethod
    def of_scalars(cls, name: str, values: list[torch.Tensor]) -> Stack:
        """K 0-dim parameters (SAC's log-temperature) as one (K,) parameter, kind ``scalar``."""
        out = cls.__new__(cls)
        out.names, out.kinds, out.buffers, out.k = [name], ["scalar"], {}, len(values)
        out.params = [nn.Parameter(torch.stack([v.detach() for v in values]).clone())]
        return out

    def slice(self, tensor: torch.Tensor, i: int, j: int) -> torch.Tensor:
        """Seed j's part of a tensor shaped like parameter i (the parameter itself or its Adam moment), in one
        network's layout."""
        kind = self.kinds[i]
        if kind == "scalar":
            return tensor[j]
        if kind == "linear_w":
            return tensor[j].t()
        if kind == "linear_b":
            return tensor[j, 0]
        m = tensor.shape[0] // self.k
        return tensor[j * m:(j + 1) * m]

    @torch.no_grad()
    def put(self, tensor: torch.Tensor, i: int, j: int, value: torch.Tensor) -> None:
        """Write one network's ``value`` into seed j's part of ``tensor`` (shaped like parameter i)."""
        self.slice(tensor, i, j).copy_(value)

    def state_dict(self, j: int) -> dict[str, torch.Tensor]:
        # contiguous copies: a transposed slice would keep its strides, which torch's fused Adam does not honour
        out = {n: self.slice(p.detach(), i, j).clone(memory_format=torch.contiguous_format)
               for i, (n, p) in enumerate(zip(self.names, self.params))}
        out.update({n: b.clone() for n, b in self.buffers.items()})
        return out

    def load_state_dict(self, j: int, state: dict[str, torch.Tensor]) -> None:
        for i, (n, p) in enumerate(zip(self.names, self.params)):
            self.put(p, i, j, state[n].to(p.device))

    def copy_(self, other: Stack) -> None:
        with torch.no_grad():
            for p, q in zip(self.params, other.params):
                p.copy_(q)


def opt_state(opt: torch.optim.Optimizer, stack: Stack, j: int) -> dict[str, Any]:
    """Seed j's slice of an Adam over ``stack``'s parameters, as ``state_dict()`` of that seed's own Adam."""
    full = opt.state_dict()
    state = {}
    for i, p in enumerate(stack.params):
        s = opt.state.get(p)
        if s:
            state[i] = {k: (stack.slice(v, i, j).clone(memory_format=torch.contiguous_format) if torch.is_tensor(v) and k != "step" else
                            (v.clone() if torch.is_tensor(v) else v)) for k, v in s.items()}
    return {"state": state, "param_groups": full["param_groups"]}


@torch.no_grad()
def load_opt_state(opt: torch.optim.Optimizer, stack: Stack, j: int, saved: dict[str, Any]) -> None:
    """Put one seed's Adam ``state_dict()`` into seed j's slice of ``opt`` (creating the stacked state if needed)."""
    for i, p in enumerate(stack.params):
        s = saved["state"].get(i) if "state" in saved else None
        if s is None:
            continue
        mine = opt.state[p]
        for k, v in s.items():
            if torch.is_tensor(v) and k != "step":
                if k not in mine:
                    mine[k] = torch.zeros_like(p, memory_format=torch.preserve_format)
                stack.put(mine[k], i, j, v.to(p.device))
            else:  # Adam's step counter: one for all seeds, which update in lockstep; on the weights' device, float32
                # (as torch's own loader puts it for the fused kernel)
                mine[k] = v.to(device=p.device, dtype=torch.float32).clone() if torch.is_tensor(v) else v


def mlp_forward(stack: Stack, x: torch.Tensor, out: Optional[str] = None) -> torch.Tensor:
    """A stacked ``mlp`` (Linear/ReLU ... Linear[/Tanh]) on (K, B, in) rows: (K, B, out)."""
    ps = stack.params
    n = len(ps) // 2
    for layer in range(n):
        x = torch.baddbmm(ps[2 * layer + 1], x, ps[2 * layer])
        if layer < n - 1:
            x = torch.relu(x)
    return torch.tanh(x) if out == "tanh" else x


def critic_forward(stack: Stack, k: int, action_layer: int, obs: torch.Tensor, action: torch.Tensor,
                   members: Optional[int] = None) -> torch.Tensor:
    """K stacked ``nets.Critic`` ensembles of k members on (K, B, .) rows: Q-values (K, m, B) for the first m
    members (all k when ``members`` is None)."""
    K, B = obs.shape[0], obs.shape[1]
    m = k if members is None else members
    x = obs.unsqueeze(1).expand(K, m, B, obs.shape[-1]).reshape(K * m, B, obs.shape[-1])
    act = action.unsqueeze(1).expand(K, m, B, action.shape[-1]).reshape(K * m, B, action.shape[-1])
    ps = stack.params
    n = len(ps) // 2
    for layer in range(n):
        w, b = ps[2 * layer], ps[2 * layer + 1]
        if m != k:  # the first m members of each seed's ensemble: strided views of the stacked weights
            w = w.unflatten(0, (K, k))[:, :m].flatten(0, 1)
            b = b.unflatten(0, (K, k))[:, :m].flatten(0, 1)
        if layer == action_layer:
            x = torch.cat([x, act], dim=-1)
        x = torch.baddbmm(b, x, w)
        if layer < n - 1:
            x = torch.relu(x)
    return x.reshape(K, m, B)


class StackedTD3:
    """K TD3 (or DDPG) agents of one configuration, one per seed, trained as one: see the module docstring.
    ``agents``: the seeds' own freshly built agents (their weights and generators are taken over)."""

    def __init__(self, agents: list):
        a0 = agents[0]
        self.cfg, self.spec, self.device, self.k = a0.cfg, a0.spec, a0.device, len(agents)
        self.rngs = [a.rng for a in agents]
        self.scaler = a0.scaler
        self.members = a0.critic.k
        self.action_layer = a0.critic.action_layer
        self.actor = Stack([a.actor for a in agents])
        self.actor_target = Stack([a.actor_target for a in agents])
        self.critic = Stack([a.critic for a in agents])
        self.critic_target = Stack([a.critic_target for a in agents])
        for s in (self.actor_target, self.critic_target):
            for p in s.params:
                p.requires_grad_(False)
        self.actor_opt = adam(self.actor.params, self.cfg.actor_lr)
        self.critic_opt = adam(self.critic.params, self.cfg.critic_lr, self.cfg.critic_weight_decay)
        self.updates = 0
        self._actor_loss = torch.zeros(self.k, device=self.device)
        self.update_bf16 = getattr(self.cfg, "precision", "fp32") == "bf16"

    def views(self) -> list[SeedView]:
        return [SeedView(self, j) for j in range(self.k)]

    # -- acting ------------------------------------------------------------------------------------------------
    def _pi(self, stack: Stack, obs: torch.Tensor) -> torch.Tensor:
        return self.scaler(mlp_forward(stack, obs, out="tanh"))

    @torch.inference_mode()
    def act_all(self, obs: torch.Tensor, explore: list[bool]) -> torch.Tensor:
        """One action per seed for (K, obs_dim) observations (float32, on ``device``), seed j's row its own; seed
        j's exploration noise from its own generator where ``explore[j]``. Returns (K, action_dim) there."""
        actions = self._pi(self.actor, obs.unsqueeze(1))[:, 0]
        rows = [self._explore(actions[j], self.rngs[j].explore) if explore[j] else actions[j] for j in range(self.k)]
        return torch.stack(rows)

    @torch.inference_mode()
    def act_one(self, j: int, obs: torch.Tensor, deterministic: bool, generator: Optional[torch.Generator]) -> torch.Tensor:
        """Seed j alone (its evaluation): its slice of the actor on a batch of observations (B, obs_dim); (B,
        action_dim), as ``TD3.act``."""
        ps = self.actor.params
        one = Stack.__new__(Stack)
        one.params = [p[j:j + 1] for p in ps]
        action = self._pi(one, obs.unsqueeze(0))[0]
        if not deterministic:
            action = self._explore(action, self.rngs[j].explore if generator is None else generator)
        return action

    def _explore(self, action: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        if self.cfg.expl_noise > 0:
            action = action + normal(action, gen) * (self.cfg.expl_noise * self.scaler.scale)
            action = torch.maximum(torch.minimum(action, self.scaler.high), self.scaler.low)
        return action

    @torch.inference_mode()
    def warmup_action(self, j: int, action: np.ndarray) -> np.ndarray:
        if not self.cfg.warmup_noise:
            return action
        noisy = self._explore(torch.as_tensor(action, dtype=torch.float32, device=self.device), self.rngs[j].explore)
        return noisy.cpu().numpy().astype(action.dtype)

    # -- the update --------------------------------------------------------------------------------------------
    def update(self, batch: Batch) -> dict[str, torch.Tensor]:
        """One TD3 update of every seed on its own minibatch (a stacked ``Batch``, (K, B, ...)); metrics (K,)."""
        c, s, k = self.cfg, self.scaler, self.members
        with bf16_autocast(self.device, self.update_bf16):
            with torch.no_grad():
                next_action = self._pi(self.actor_target, batch.next_obs)
                if c.policy_noise > 0:
                    noise = torch.stack([normal(next_action[j], self.rngs[j].update) for j in range(self.k)])
                    noise = (noise * c.policy_noise).clamp(-c.noise_clip, c.noise_clip)
                    next_action = torch.maximum(torch.minimum(next_action + noise * s.scale, s.high), s.low)
                next_q = critic_forward(self.critic_target, k, self.action_layer, batch.next_obs, next_action)
                next_q = next_q.min(dim=1).values.float()
                target_q = batch.reward + c.gamma * (1.0 - batch.terminated) * next_q  # (K, B)
            q = critic_forward(self.critic, k, self.action_layer, batch.obs, batch.action).float()  # (K, k, B)
            critic_loss = (q - target_q.unsqueeze(1)).square().mean(dim=2).sum(dim=1)  # (K,): each seed's loss
        minimize(self.critic_opt, critic_loss.sum())
        self.updates += 1
        if self.updates % c.policy_freq == 0:
            with bf16_autocast(self.device, self.update_bf16):
                pi = self._pi(self.actor, batch.obs)
                actor_loss = -critic_forward(self.critic, k, self.action_layer, batch.obs, pi, members=1)[:, 0].float().mean(dim=1)
            minimize(self.actor_opt, actor_loss.sum())
            with torch.no_grad():
                torch._foreach_lerp_(self.critic_target.params, self.critic.params, c.tau)
                torch._foreach_lerp_(self.actor_target.params, self.actor.params, c.tau)
            self._actor_loss = actor_loss.detach()
        return {"loss/critic": critic_loss.detach(), "loss/actor": self._actor_loss,
                "train/q_mean": q.detach().mean(dim=(1, 2))}

    # -- one seed's state, in the single agent's format --------------------------------------------------------
    def state_dict(self, j: int) -> dict:
        return {"actor": self.actor.state_dict(j), "actor_target": self.actor_target.state_dict(j),
                "critic": self.critic.state_dict(j), "critic_target": self.critic_target.state_dict(j),
                "actor_opt": opt_state(self.actor_opt, self.actor, j),
                "critic_opt": opt_state(self.critic_opt, self.critic, j), "updates": self.updates}

    def load_state_dict(self, j: int, state: dict) -> None:
        for name in ("actor", "actor_target", "critic", "critic_target"):
            getattr(self, name).load_state_dict(j, state[name])
        load_opt_state(self.actor_opt, self.actor, j, state["actor_opt"])
        load_opt_state(self.critic_opt, self.critic, j, state["critic_opt"])
        self.updates = state["updates"]


class SeedView(Hooks):
    """Seed j of a stacked agent, with one agent's surface: what its Runner, evaluation, checkpoint and
    ``best_policy.pt`` see. Training steps go through the stacked agent (``seed_group``), not through this view."""

    def __init__(self, group, j: int):
        self.seed_group, self.j = group, j
        self.cfg, self.spec, self.device = group.cfg, group.spec, group.device
        self.rng = group.rngs[j]
        for name, opt in vars(group).items():  # the Runner logs their learning rates (train/lr*), as a seed's own
            if isinstance(opt, torch.optim.Optimizer):
                setattr(self, name, opt)

    def act(self, obs: torch.Tensor, deterministic: bool = False, generator: Optional[torch.Generator] = None) -> torch.Tensor:
        """Seed j's actions for a batch of observations (the ``Agent`` protocol's ``act``): the group's ``act_one``."""
        return self.seed_group.act_one(self.j, obs, deterministic, generator)

    def warmup_action(self, action: np.ndarray) -> np.ndarray:
        return self.seed_group.warmup_action(self.j, action)

    def update(self, batch: Batch) -> dict[str, Any]:
        raise RuntimeError("a seed of a stacked agent is updated with the others (rlbase/loops/seeds.py)")

    def state_dict(self) -> dict:
        return self.seed_group.state_dict(self.j)

    def load_state_dict(self, state: dict) -> None:
        self.seed_group.load_state_dict(self.j, state)


class StackedSAC:
    """K SAC agents of one configuration, one per seed, trained as one (see the module docstring); each seed its own
    learned temperature (a (K,) log-alpha with its own Adam slice). ``agents``: the seeds' freshly built agents."""

    def __init__(self, agents: list):
        a0 = agents[0]
        self.cfg, self.spec, self.device, self.k = a0.cfg, a0.spec, a0.device, len(agents)
        self.rngs = [a.rng for a in agents]
        self.policy = a0.actor  # its log-probability and clamps (no weights of its own are used)
        self.scaler = a0.actor.scaler
        self.actor = Stack([a.actor for a in agents])
        self.critic = Stack([a.critic for a in agents])
        self.critic_target = Stack([a.critic_target for a in agents])
        for p in self.critic_target.params:
            p.requires_grad_(False)
        self.log_alpha = Stack.of_scalars("log_alpha", [a.log_alpha for a in agents])
        self.log_alpha.params[0].requires_grad_(self.cfg.autotune)
        self.target_entropy = a0.target_entropy
        self.actor_opt = adam(self.actor.params, self.cfg.actor_lr)
        self.critic_opt = adam(self.critic.params, self.cfg.critic_lr)
        self.alpha_opt = adam(self.log_alpha.params, self.cfg.alpha_lr)
        self.updates = 0
        self.update_bf16 = getattr(self.cfg, "precision", "fp32") == "bf16"

    def views(self) -> list[SeedView]:
        return [SeedView(self, j) for j in range(self.k)]

    @property
    def alpha(self) -> torch.Tensor:
        return self.log_alpha.params[0].detach().exp()  # (K,)

    def _dist(self, stack: Stack, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mean, log_std = mlp_forward(stack, obs).float().chunk(2, dim=-1)
        return mean, log_std.clamp(self.policy.log_std_min, self.policy.log_std_max)

    def _sample(self, obs: torch.Tensor, gens: list[torch.Generator]) -> tuple[torch.Tensor, torch.Tensor]:
        """Each seed's reparameterised sample (its noise from its own generator) in the unit space the critics read,
        tanh(u) before scaling (``TanhGaussianPolicy.sample_unit``), and log-probability: (K, B, .)."""
        mean, log_std = self._dist(self.actor, obs)
        noise = torch.stack([normal(mean[j], g) for j, g in enumerate(gens)])
        u = mean + log_std.exp() * noise
        return torch.tanh(u), self.policy.log_prob(u, mean, log_std)

    @torch.inference_mode()
    def act_all(self, obs: torch.Tensor, explore: list[bool]) -> torch.Tensor:
        """As ``StackedTD3.act_all``: (K, obs_dim) in, (K, action_dim) out; a sample where ``explore[j]``, else the
        squashed mean."""
        mean, log_std = self._dist(self.actor, obs.unsqueeze(1))
        rows = []
        for j in range(self.k):
            u = mean[j]
            if explore[j]:
                u = mean[j] + log_std[j].exp() * normal(mean[j], self.rngs[j].explore)
            rows.append(self.scaler(torch.tanh(u))[0])
        return torch.stack(rows)

    @torch.inference_mode()
    def act_one(self, j: int, obs: torch.Tensor, deterministic: bool, generator: Optional[torch.Generator]) -> torch.Tensor:
        """Seed j alone on a batch of observations (B, obs_dim): (B, action_dim), as ``SAC.act``."""
        one = Stack.__new__(Stack)
        one.params = [p[j:j + 1] for p in self.actor.params]
        mean, log_std = self._dist(one, obs.unsqueeze(0))
        u = mean if deterministic else mean + log_std.exp() * normal(mean, self.rngs[j].explore if generator is None else generator)
        return self.scaler(torch.tanh(u))[0]

    def warmup_action(self, j: int, action: np.ndarray) -> np.ndarray:
        return action

    def update(self, batch: Batch) -> dict[str, torch.Tensor]:
        """One SAC update of every seed on its own minibatch ((K, B, ...)); metrics (K,)."""
        c, gens = self.cfg, [r.update for r in self.rngs]
        alpha = self.alpha.unsqueeze(1)  # (K, 1)
        with bf16_autocast(self.device, self.update_bf16):
            with torch.no_grad():
                next_action, next_log_prob = self._sample(batch.next_obs, gens)
                next_q = critic_forward(self.critic_target, 2, 0, batch.next_obs, next_action).min(dim=1).values.float()
                target_q = batch.reward + c.gamma * (1.0 - batch.terminated) * (next_q - alpha * next_log_prob)
            q = critic_forward(self.critic, 2, 0, batch.obs, self.policy.unit(batch.action)).float()  # (K, 2, B)
            critic_loss = (q - target_q.unsqueeze(1)).square().mean(dim=2).sum(dim=1)
        minimize(self.critic_opt, critic_loss.sum())
        with bf16_autocast(self.device, self.update_bf16):
            action, log_prob = self._sample(batch.obs, gens)
            q_pi = critic_forward(self.critic, 2, 0, batch.obs, action).min(dim=1).values.float()
            actor_loss = (alpha * log_prob - q_pi).mean(dim=1)
        minimize(self.actor_opt, actor_loss.sum())
        if c.autotune:
            alpha_loss = -(self.log_alpha.params[0].unsqueeze(1) * (log_prob.detach() + self.target_entropy)).mean(dim=1)
            minimize(self.alpha_opt, alpha_loss.sum())
        with torch.no_grad():
            torch._foreach_lerp_(self.critic_target.params, self.critic.params, c.tau)
        self.updates += 1
        return {"train/q_mean": q.detach().mean(dim=(1, 2)), "loss/critic": critic_loss.detach(),
                "loss/actor": actor_loss.detach(), "train/alpha": self.alpha, "train/entropy": -log_prob.detach().mean(dim=1)}

    def state_dict(self, j: int) -> dict:
        return {"actor": self.actor.state_dict(j), "critic": self.critic.state_dict(j),
                "critic_target": self.critic_target.state_dict(j),
                "log_alpha": self.log_alpha.params[0].detach()[j].clone(),
                "actor_opt": opt_state(self.actor_opt, self.actor, j),
                "critic_opt": opt_state(self.critic_opt, self.critic, j),
                "alpha_opt": opt_state(self.alpha_opt, self.log_alpha, j), "updates": self.updates}

    def load_state_dict(self, j: int, state: dict) -> None:
        for name in ("actor", "critic", "critic_target"):
            getattr(self, name).load_state_dict(j, state[name])
        with torch.no_grad():
            self.log_alpha.params[0][j] = state["log_alpha"]
        load_opt_state(self.actor_opt, self.actor, j, state["actor_opt"])
        load_opt_state(self.critic_opt, self.critic, j, state["critic_opt"])
        load_opt_state(self.alpha_opt, self.log_alpha, j, state["alpha_opt"])
        self.updates = state["updates"]


class StackedDQN:
    """K DQN agents of one configuration, one per seed, trained as one (see the module docstring): each seed its own
    epsilon schedule and exploration draws, its own gradient-norm clip (``minimize(..., seeds=K)``)."""

    def __init__(self, agents: list):
        a0 = agents[0]
        self.cfg, self.spec, self.device, self.k = a0.cfg, a0.spec, a0.device, len(agents)
        self.rngs = [a.rng for a in agents]
        self.q = Stack([a.q for a in agents])
        self.q_target = Stack([a.q_target for a in agents])
        for p in self.q_target.params:
            p.requires_grad_(False)
        c = self.cfg
        self.optimizer = adam(self.q.params, c.lr, c.weight_decay, decoupled=True, amsgrad=c.amsgrad)
        self.explore_steps = [0] * self.k
        self.updates = 0

    def views(self) -> list[SeedView]:
        return [SeedView(self, j) for j in range(self.k)]

    def epsilon(self, j: int, steps: Optional[int] = None) -> float:
        """Seed j's exploration rate after ``steps`` exploratory actions (default: those it has taken)."""
        c = self.cfg
        steps = self.explore_steps[j] if steps is None else steps
        return c.eps_end + (c.eps_start - c.eps_end) * math.exp(-steps / c.eps_decay)

    def _greedy(self, stack_params: list[torch.Tensor], obs: torch.Tensor) -> torch.Tensor:
        one = Stack.__new__(Stack)
        one.params = stack_params
        return mlp_forward(one, obs).argmax(dim=-1)

    @torch.inference_mode()
    def act_all(self, obs: torch.Tensor, explore: list[bool]) -> torch.Tensor:
        """One action index per seed (K,) for (K, obs_dim) observations: greedy, or where ``explore[j]``
        epsilon-greedy with seed j's epsilon and the draws of ``DQN.act``, from seed j's generator, in its order."""
        out = self._greedy(self.q.params, obs.unsqueeze(1))[:, 0]
        for j in range(self.k):
            if explore[j]:
                eps = self.epsilon(j)
                self.explore_steps[j] += 1
                out[j] = epsilon_greedy(out[j:j + 1].clone, [eps], self.spec.n_actions, self.rngs[j].explore,
                                        self.device)[0]
        return out

    @torch.inference_mode()
    def act_one(self, j: int, obs: torch.Tensor, deterministic: bool, generator: Optional[torch.Generator]) -> torch.Tensor:
        """Seed j alone on a batch of observations (B, obs_dim): action indices (B,), as ``DQN.act``."""
        def greedy() -> torch.Tensor:
            return self._greedy([p[j:j + 1] for p in self.q.params], obs.unsqueeze(0))[0]

        if deterministic:
            return greedy()
        b = obs.shape[0]
        eps = [self.epsilon(j, self.explore_steps[j] + i) for i in range(b)]
        self.explore_steps[j] += b
        gen = self.rngs[j].explore if generator is None else generator
        return epsilon_greedy(greedy, eps, self.spec.n_actions, gen, self.device)

    def warmup_action(self, j: int, action: np.ndarray) -> np.ndarray:
        return action

    def update(self, batch: Batch) -> dict[str, Any]:
        """One DQN update of every seed on its own minibatch ((K, B, ...)); metrics (K,)."""
        c = self.cfg
        with torch.no_grad():
            next_all = mlp_forward(self.q_target, batch.next_obs)  # (K, B, n)
            if c.double:
                best = mlp_forward(self.q, batch.next_obs).argmax(dim=2, keepdim=True)
                next_q = next_all.gather(2, best).squeeze(2)
            else:
                next_q = next_all.max(dim=2).values
            target_q = batch.reward + c.gamma * (1.0 - batch.terminated) * next_q
        q = mlp_forward(self.q, batch.obs).gather(2, batch.action.long().unsqueeze(2)).squeeze(2)  # (K, B)
        loss = F.smooth_l1_loss(q, target_q, reduction="none").mean(dim=1)
        minimize(self.optimizer, loss.sum(), clip_value=c.grad_clip_value, clip_norm=c.grad_clip_norm, seeds=self.k)
        self.updates += 1
        with torch.no_grad():
            if c.target_update_every > 0:
                if self.updates % c.target_update_every == 0:
                    self.q_target.copy_(self.q)
            else:
                torch._foreach_lerp_(self.q_target.params, self.q.params, c.tau)
        return {"loss/q": loss.detach(), "train/q_mean": q.detach().mean(dim=1),
                "train/epsilon": [self.epsilon(j) for j in range(self.k)]}

    def state_dict(self, j: int) -> dict:
        return {"q": self.q.state_dict(j), "q_target": self.q_target.state_dict(j),
                "optimizer": opt_state(self.optimizer, self.q, j), "explore_steps": self.explore_steps[j],
                "updates": self.updates}

    def load_state_dict(self, j: int, state: dict) -> None:
        self.q.load_state_dict(j, state["q"])
        self.q_target.load_state_dict(j, state["q_target"])
        load_opt_state(self.optimizer, self.q, j, state["optimizer"])
        self.explore_steps[j], self.updates = state["explore_steps"], state["updates"]
