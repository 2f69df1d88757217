"""PPO: proximal policy optimisation with the clipped surrogate objective.

Paper: Schulman et al., "Proximal Policy Optimization Algorithms", arXiv:1707.06347, 2017 (defaults: its MuJoCo
settings, Table 3: 2048 steps per rollout (one actor there, 8 envs x 256 here), 10 epochs, minibatch 64 = 32 minibatches, Adam 3e-4, clip 0.2,
gamma 0.99, lambda 0.95). GAE: Schulman et al., 2016. Details beyond the paper follow OpenAI baselines' ppo2,
as Huang et al. list them in "The 37 Implementation Details of Proximal Policy Optimization" (ICLR blog, 2022).

Implementation details:
1. One rollout = ``num_envs`` x ``n_steps`` transitions from the vector env (the loop shared with A2C,
   ``algos/common/on_policy.py``), with the log-probability and V(s) of each action when it was taken.
2. GAE(lambda) advantages and returns; a truncated episode bootstraps from V(real final observation) exactly as
   in A2C (``algos/common/rollout.py``), a terminated one does not.
3. ``n_epochs`` passes over the rollout, each in ``n_minibatches`` shuffled minibatches. Per minibatch:
   ratio r = exp(log pi(a|s) - log pi_old(a|s)); policy loss = mean(max(-A r, -A clip(r, 1 - eps, 1 + eps)))
   with ``clip_range`` eps, so a sample whose ratio is already outside 1 +- eps in the direction its advantage
   favours gives no gradient. Advantages are standardised per minibatch (``normalize_advantage``).
4. Value loss mean((R - V)^2) (SB3's scale; ppo2 and CleanRL halve it, which ``value_coef`` can match), or with ``clip_value`` the larger of that and (R - V_clipped)^2, V_clipped =
   V_old + clip(V - V_old, -eps, eps) (baselines' ppo2). Loss = policy + ``value_coef`` x value -
   ``entropy_coef`` x entropy; one Adam step (eps 1e-5) per minibatch after clipping the global gradient norm
   at ``max_grad_norm``.
5. ``target_kl`` > 0 stops the remaining epochs of a rollout once an epoch's mean approximate KL
   (mean((r - 1) - log r), Schulman's low-variance estimator) exceeds it.
6. ``lr_anneal`` decays the learning rate linearly to 0 over ``lr_anneal_steps`` env steps (default ``total_steps``).
7. Networks: separate actor and critic MLPs (tanh; ``activation=relu`` for ReLU) with orthogonal initialisation
   (gain sqrt 2 for hidden layers, 0.01 for the policy output, 1 for the value output, zero biases); Gaussian
   policy with a state-independent log-std; the sample is clipped to the action bounds for the env and its
   log-probability is of the unclipped sample (as in A2C).
8. Observation normalisation and reward scaling (``env.normalize_obs``, ``env.normalize_reward``) are
   ``envs.VecNormalize`` on the training vector env; their statistics are in the checkpoint and the evaluation
   env reads them frozen. ``algo.return_norm`` instead divides only the critic's targets by the returns'
   running std (Tianshou's ``reward_normalization``; see A2C's detail 6).
9. ``recompute_advantage`` (off by default; Tianshou's MuJoCo PPO has it on, after Andrychowicz et al. 2021,
   "What Matters in On-Policy RL", Sec. 3.5): before each epoch after the first, GAE runs again over the rollout
   with the current critic, so later epochs fit the policy to fresher advantages. Two parts keep the collecting
   critic's values: the bootstrap gamma V(final obs) already added to a truncated step's reward, and the old
   values that ``clip_value`` clips around (Tianshou recomputes those too). Under ``algo.return_norm`` (detail 8)
   every epoch uses the return scale the rollout was built with; Tianshou updates its scale at each recompute.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
from torch import nn

from rlbase.algos.a2c import A2C, ACTIVATIONS, check_config  # noqa: F401 - check_config: the same relations
from rlbase.core.rollout import RolloutBatch, compute_returns
from rlbase.core.settings import any_value, non_negative, one_of, positive, unit
from rlbase.loops.on_policy import OnPolicyConfig

ACTION_SPACES = ("discrete", "continuous")
SAMPLES_POLICY = True  # act(deterministic=False) samples the learned policy (eval.sample, load_policy)
LOOP = "on_policy"


@dataclass
class PPOConfig(OnPolicyConfig):
    name: str = "ppo"
    num_envs: int = positive(8)  # 8 envs x 256 steps: the paper's 2048 transitions per rollout, in 8x fewer forward passes
    n_steps: int = positive(256)  # env steps per env per rollout
    gae_lambda: float = unit(0.95)  # GAE(lambda)
    lr: float = positive(3e-4)  # Adam learning rate
    eps: float = positive(1e-5)  # Adam epsilon
    n_epochs: int = positive(10)  # passes over each rollout
    n_minibatches: int = positive(32)  # minibatches per pass (2048 / 32 = 64 transitions each)
    clip_range: float = positive(0.2)  # epsilon of the clipped objective
    clip_value: bool = False  # clip the value update to +- clip_range around the old value (ppo2)
    value_coef: float = non_negative(0.5)  # weight of the value loss
    entropy_coef: float = non_negative(0.0)  # weight of the entropy bonus (0 in the paper's MuJoCo runs)
    max_grad_norm: float = any_value(0.5)  # global gradient norm clip (<= 0: off)
    target_kl: float = non_negative(0.0)  # > 0: stop a rollout's epochs once the approximate KL exceeds it
    normalize_advantage: bool = True  # standardise advantages per minibatch
    recompute_advantage: bool = False  # before each epoch after the first, GAE again with the current critic
    hidden: list[int] = field(default_factory=lambda: [64, 64])  # hidden sizes of each network (or the trunk)
    activation: str = one_of("tanh", *ACTIVATIONS)  # hidden-layer nonlinearity: tanh | relu
    shared_trunk: bool = False  # one trunk with policy and value heads instead of two networks
    log_std_init: float = any_value(0.0)  # initial log-std of the Gaussian policy (continuous actions)
    orthogonal_init: bool = True  # orthogonal weights, zero biases (detail 7); false: PyTorch's default init
    init_zero_inputs: int = non_negative(0)  # see A2CConfig: the observation layers drawn as if it had this many zeros


def clipped_surrogate(log_prob: torch.Tensor, old_log_prob: torch.Tensor, adv: torch.Tensor,
                      clip: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Detail 3: the policy loss (to minimise), the approximate KL and the fraction of clipped ratios."""
    log_ratio = log_prob - old_log_prob
    ratio = log_ratio.exp()
    loss = torch.max(-adv * ratio, -adv * ratio.clamp(1.0 - clip, 1.0 + clip)).mean()
    with torch.no_grad():
        approx_kl = ((ratio - 1.0) - log_ratio).mean()
        clipped = ((ratio - 1.0).abs() > clip).float().mean()
    return loss, approx_kl, clipped


def standardise(x: torch.Tensor) -> torch.Tensor:
    return (x - x.mean()) / (x.std() + 1e-8) if x.numel() > 1 else x - x.mean()


class PPO(A2C):
    """A2C's networks, initialisation, acting, value and state methods; PPO's own optimiser and update."""

    cfg: PPOConfig

    def make_optimizer(self) -> torch.optim.Optimizer:
        # fused: one kernel for all parameters (about 20% off an update phase on this CPU; same arithmetic)
        return torch.optim.Adam(self.net.parameters(), lr=self.cfg.lr, eps=self.cfg.eps, fused=True)

    def _losses(self, b: RolloutBatch, idx: torch.Tensor):
        c = self.cfg
        dist, values = self.net(b.obs[idx])
        log_prob, entropy = dist.log_prob(b.actions[idx]), dist.entropy()
        if not self.spec.discrete:
            log_prob, entropy = log_prob.sum(-1), entropy.sum(-1)
        adv = b.advantages[idx]
        if c.normalize_advantage:
            adv = standardise(adv)
        policy_loss, approx_kl, clipped = clipped_surrogate(log_prob, b.log_probs[idx], adv, c.clip_range)
        returns = b.returns[idx]
        value_loss = (returns - values).pow(2)
        if c.clip_value:
            old = b.values[idx]
            v_clipped = old + (values - old).clamp(-c.clip_range, c.clip_range)
            value_loss = torch.max(value_loss, (returns - v_clipped).pow(2))
        value_loss = value_loss.mean()
        entropy_mean = entropy.mean()
        loss = policy_loss + c.value_coef * value_loss - c.entropy_coef * entropy_mean
        return loss, policy_loss, value_loss, entropy_mean, approx_kl, clipped

    @torch.no_grad()
    def recompute(self, b: RolloutBatch) -> RolloutBatch:
        """Detail 9: the rollout's advantages and returns by GAE with the current critic (the time-limit
        bootstraps inside ``b.rewards`` keep the collecting critic's values)."""
        if b.last_obs is None:
            raise ValueError("recompute_advantage needs the rollout's last observations: RolloutStorage.batch(..., last_obs=obs)")
        unit = b.value_scale  # algo.return_norm: the critic's values times this are in the rewards' units
        values = self.net.value(b.obs).view_as(b.rewards) * unit
        returns, adv = compute_returns(b.rewards, values, b.dones, self.net.value(b.last_obs) * unit, self.cfg.gamma,
                                       self.cfg.gae_lambda)
        return b._replace(returns=returns.reshape(-1) / unit, advantages=adv.reshape(-1))

    def update(self, batch: RolloutBatch) -> dict:
        c = self.cfg
        n = batch.obs.shape[0]
        clip_norm = c.max_grad_norm if c.max_grad_norm > 0 else math.inf
        sums: dict[str, torch.Tensor] = {}
        steps, epochs = 0, 0
        collected = batch
        for epoch in range(c.n_epochs):
            if epoch > 0 and c.recompute_advantage:
                batch = self.recompute(collected)
            kl_sum, count = 0.0, 0
            for idx in torch.randperm(n, generator=self.rng.update, device=batch.obs.device).tensor_split(min(c.n_minibatches, n)):
                loss, pl, vl, ent, kl, clipped = self._losses(batch, idx)
                self.optimizer.zero_grad(set_to_none=True)
                loss.backward()
                grad_norm = nn.utils.clip_grad_norm_(self.net.parameters(), clip_norm)
                self.optimizer.step()
                for key, v in (("loss/policy", pl), ("loss/value", vl), ("train/entropy", ent),
                               ("train/approx_kl", kl), ("train/clip_fraction", clipped), ("train/grad_norm", grad_norm)):
                    sums[key] = sums[key] + v.detach() if key in sums else v.detach()
                kl_sum, count, steps = kl_sum + kl, count + 1, steps + 1
            epochs += 1
            if c.target_kl > 0 and float(kl_sum) / count > c.target_kl:
                break
        metrics = {k: float(v) / steps for k, v in sums.items()}
        var = float(collected.returns.var())
        metrics["train/explained_variance"] = (1.0 - float((collected.returns - collected.values).var()) / var
                                               if var > 0 else 0.0)
        metrics["train/epochs"] = epochs
        metrics["updates"] = steps  # gradient steps in this phase (the loop counts them; not logged as a metric)
        return metrics


Config, Agent = PPOConfig, PPO
