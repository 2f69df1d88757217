"""CQL: Conservative Q-Learning for offline RL, as SAC plus a conservative term in the critic loss.

Paper: Kumar, Zhou, Tucker, Levine, "Conservative Q-Learning for Offline Reinforcement Learning", NeurIPS 2020.
Reference implementation: github.com/aviralkumar2907/CQL (the CQL(H) variant with importance-sampled actions).

Implementation details:
1. Everything of SAC (algos/sac.py) is kept: twin critics with target critics, soft Bellman target, learned
   temperature, tanh-squashed Gaussian policy. Only ``critic_loss`` changes, by adding the term below.
2. Conservative term, per critic Q_i and dataset state s (eq. 4 of the paper, the "CQL(H)" form):
       cql_alpha * ( T * logsumexp_j( x_j / T ) - Q_i(s, a_data) ),
   where the x_j are ``num_random`` samples from each of three proposals, each corrected by its log-density
   (importance sampling of the logsumexp's integral):
       Q_i(s, a_unif) - log U(a_unif)     a_unif uniform over the unit action box [-1, 1]^|A|, log U = -|A| log 2
       Q_i(s, a_pi)   - log pi(a_pi|s)    a_pi ~ pi(.|s)
       Q_i(s, a_pi')  - log pi(a_pi'|s')  a_pi' ~ pi(.|s'), the next state's policy, evaluated at s
   It pushes Q down on actions the policy or a uniform proposal would pick and up on the data's actions.
   The proposals are sampled without gradient (only the critics train on this loss). Every action is in SAC's unit
   space, as the critics read them (algos/sac.py detail 3): the data's mapped by (a - center) / scale, the
   policy's tanh(u) before scaling, the uniform ones drawn in [-1, 1].
3. Lagrangian version (``lagrange=true``): the weight becomes alpha' * cql_alpha, with alpha' = exp(log alpha')
   clamped to [0, 1e6], learned by gradient ascent on alpha' * (cql_alpha * gap - target_gap) so the gap stays
   near ``target_gap`` (eq. 30 of the paper's appendix).
4. All Q-values of the term, including the data actions', come from one batched critic call.
5. Offline: trained by the ``offline`` loop on a fixed dataset; the env is used for evaluation only.
6. ``precision=bf16`` (opt-in; fp32 is the default) runs that one critic call (about 97% of an update's FLOPs at
   Hopper's sizes) under bfloat16 autocast: its matmuls take bf16 inputs with fp32 accumulation; the logsumexp,
   the losses and every weight stay fp32. The mathematics are unchanged, the rounding is not (bf16 keeps 8 bits
   of mantissa); see docs/results.md for its speed and learning next to fp32.
Defaults: cql_alpha 5.0 and num_random 10 as in the reference code for MuJoCo; lr 3e-4 for all networks.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional

import torch

from rlbase.algos.sac import SAC, SACLoss
from rlbase.core.buffer import Batch
from rlbase.core.nets import adam, bf16_autocast
from rlbase.core.seeding import AgentRandom, uniform
from rlbase.core.settings import non_negative, one_of, positive
from rlbase.envs import EnvSpec
from rlbase.loops.offline import OfflineConfig

ACTION_SPACES = ("continuous",)
SAMPLES_POLICY = True  # act(deterministic=False) samples the learned policy (eval.sample, load_policy)
LOOP = "offline"
OFFLINE = True


@dataclass
class CQLConfig(SACLoss, OfflineConfig):
    name: str = "cql"
    cql_alpha: float = non_negative(5.0)  # weight of the conservative term (min_q_weight in the reference code)
    num_random: int = positive(10)  # action samples per proposal (uniform, pi(s), pi(s')) per dataset state
    temperature: float = positive(1.0)  # T of the logsumexp
    lagrange: bool = False  # learn the weight so the gap stays near target_gap
    target_gap: float = non_negative(10.0)  # Lagrangian version: the allowed gap (tau in the paper)
    alpha_prime_lr: float = positive(3e-4)  # Lagrangian version: Adam learning rate of log(alpha')
    init_alpha_prime: float = positive(1.0)  # Lagrangian version: initial alpha'
    precision: str = one_of("fp32", "fp32", "bf16")  # the conservative term's critic call: fp32, or bf16 autocast


class CQL(SAC):
    def __init__(self, cfg: CQLConfig, spec: EnvSpec, device: torch.device, rng: Optional[AgentRandom] = None):
        super().__init__(cfg, spec, device, rng)
        self.update_bf16 = False  # precision=bf16 covers the conservative term's critic call only (detail 6), not SAC's
        # log-density of the uniform proposal in the unit action space, where SAC's log-probabilities live
        self.log_uniform = -spec.action_dim * math.log(2.0)
        self.log_alpha_prime = torch.tensor(math.log(cfg.init_alpha_prime), device=device, requires_grad=True)
        self.alpha_prime_opt = adam([self.log_alpha_prime], cfg.alpha_prime_lr)

    def uniform_actions(self, n: int) -> torch.Tensor:
        """n actions uniform over the unit box [-1, 1]^|A|, where the critics read actions."""
        return -1.0 + 2.0 * uniform((n, self.spec.action_dim), self.rng.update, self.device)

    def conservative_gap(self, batch: Batch) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Per critic, the batch mean of T * logsumexp(x / T) - Q(s, a_data): a (k,) tensor with gradient to the
        critics; also the logsumexp and data Q-values themselves, (k, B) each, detached (for logging and tests)."""
        b, n = batch.obs.shape[0], self.cfg.num_random
        obs_n = batch.obs.repeat_interleave(n, dim=0)  # (B*n, obs): state j of the batch, n times in a row
        with torch.no_grad():
            a_unif = self.uniform_actions(b * n)
            a_pi, logp_pi = self.actor.sample_unit(obs_n, self.rng.update)
            a_next, logp_next = self.actor.sample_unit(batch.next_obs.repeat_interleave(n, dim=0), self.rng.update)
        with bf16_autocast(self.device, self.cfg.precision == "bf16"):
            q = self.critic(torch.cat([obs_n, obs_n, obs_n, batch.obs]),
                            torch.cat([a_unif, a_pi, a_next, self.actor.unit(batch.action)]))  # (k, 3*B*n + B), one call
        q = q.float()
        k, bn = q.shape[0], b * n
        q_data = q[:, 3 * bn:]
        x = torch.cat([(q[:, :bn] - self.log_uniform).view(k, b, n),
                       (q[:, bn:2 * bn] - logp_pi.view(1, bn)).view(k, b, n),
                       (q[:, 2 * bn:3 * bn] - logp_next.view(1, bn)).view(k, b, n)], dim=2)  # (k, B, 3n)
        t = self.cfg.temperature
        lse = t * torch.logsumexp(x / t, dim=2)
        return (lse - q_data).mean(dim=1), lse.detach(), q_data.detach()

    @property
    def alpha_prime(self) -> torch.Tensor:
        return self.log_alpha_prime.detach().exp().clamp(0.0, 1e6)

    def critic_loss(self, batch: Batch) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        loss, metrics = super().critic_loss(batch)
        gap, lse, q_data = self.conservative_gap(batch)
        c = self.cfg
        if c.lagrange:
            # alpha' rises while the weighted gap exceeds target_gap and falls below it (the critics see it as a constant)
            excess = c.cql_alpha * gap.detach() - c.target_gap
            alpha_prime_loss = -(self.log_alpha_prime.exp().clamp(0.0, 1e6) * excess).mean()
            self.alpha_prime_opt.zero_grad(set_to_none=True)
            alpha_prime_loss.backward()
            self.alpha_prime_opt.step()
            penalty = (self.alpha_prime * (c.cql_alpha * gap - c.target_gap)).sum()
        else:
            penalty = c.cql_alpha * gap.sum()
        metrics = {**metrics, "loss/cql_penalty": penalty.detach(), "train/cql_gap": gap.detach().mean(),
                   "train/q_logsumexp": lse.mean(), "train/q_data": q_data.mean()}
        if c.lagrange:
            metrics["train/alpha_prime"] = self.alpha_prime
        return loss + penalty, metrics

    def state_dict(self) -> dict:
        return {**super().state_dict(), "log_alpha_prime": self.log_alpha_prime.detach().clone(),
                "alpha_prime_opt": self.alpha_prime_opt.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        super().load_state_dict(state)
        with torch.no_grad():
            self.log_alpha_prime.copy_(state["log_alpha_prime"])
        self.alpha_prime_opt.load_state_dict(state["alpha_prime_opt"])


Config, Agent = CQLConfig, CQL
