"""Network builders and target-network updates shared by the algorithms."""

from __future__ import annotations

import contextlib
import logging
import math
from collections.abc import Sequence

import torch
from torch import nn

log = logging.getLogger(__name__)


def mlp(in_dim: int, hidden: Sequence[int], out_dim: int, activation: type[nn.Module] = nn.ReLU,
        out_activation: type[nn.Module] | None = None) -> nn.Sequential:
    """A plain fully connected network: in -> hidden... -> out."""
    layers: list[nn.Module] = []
    last = in_dim
    for h in hidden:
        # ReLU in place: a Linear's backward needs its input, not its output, so nothing saved is overwritten
        layers += [nn.Linear(last, h), nn.ReLU(inplace=True) if activation is nn.ReLU else activation()]
        last = h
    layers.append(nn.Linear(last, out_dim))
    if out_activation is not None:
        layers.append(out_activation())
    return nn.Sequential(*layers)


class EnsembleLinear(nn.Module):
    """``k`` independent linear layers evaluated as one batched matmul.

    Input (k, B, in) -> output (k, B, out). Each member is initialised like ``nn.Linear``.
    """

    def __init__(self, k: int, in_dim: int, out_dim: int):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(k, in_dim, out_dim))
        self.bias = nn.Parameter(torch.empty(k, 1, out_dim))
        bound = 1.0 / math.sqrt(in_dim)
        nn.init.uniform_(self.weight, -bound, bound)
        nn.init.uniform_(self.bias, -bound, bound)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.baddbmm(self.bias, x, self.weight)


class EnsembleMLP(nn.Module):
    """``k`` MLPs with the same shape (e.g. twin critics) run as one batched network.

    A 2-D input (B, in) is shared by every member; a 3-D input (k, B, in) feeds each member its own rows.
    Output: (k, B, out).
    """

    def __init__(self, k: int, in_dim: int, hidden: Sequence[int], out_dim: int):
        super().__init__()
        self.k = k
        dims = [in_dim, *hidden, out_dim]
        self.layers = nn.ModuleList(EnsembleLinear(k, a, b) for a, b in zip(dims[:-1], dims[1:]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() == 2:
            x = x.unsqueeze(0).expand(self.k, -1, -1)
        for i, layer in enumerate(self.layers):
            x = layer(x)
            if i < len(self.layers) - 1:
                x = torch.relu(x)
        return x


@torch.no_grad()
def init_(module: nn.Module, gen: torch.Generator) -> nn.Module:
    """Initialise every linear layer of ``module`` (``nn.Linear``, ``EnsembleLinear``) as PyTorch's default does,
    weights and biases uniform in +-1/sqrt(fan_in), drawing from ``gen`` (the agent's ``init`` stream) instead of
    the process-global generator. Agents call it on each network they build, in a fixed order; parameters with a
    constant start (log-stds, temperatures) are left as built."""
    for m in module.modules():
        if isinstance(m, nn.Linear):
            bound = 1.0 / math.sqrt(m.in_features)
            m.weight.uniform_(-bound, bound, generator=gen)
            if m.bias is not None:
                m.bias.uniform_(-bound, bound, generator=gen)
        elif isinstance(m, EnsembleLinear):
            bound = 1.0 / math.sqrt(m.weight.shape[1])
            m.weight.uniform_(-bound, bound, generator=gen)
            m.bias.uniform_(-bound, bound, generator=gen)
    return module


@torch.no_grad()
def soft_update(target: nn.Module, source: nn.Module, tau: float) -> None:
    """Polyak averaging: target <- tau * source + (1 - tau) * target, for every parameter."""
    tgt = [p for p in target.parameters()]
    src = [p for p in source.parameters()]
    torch._foreach_lerp_(tgt, src, tau)


@torch.no_grad()
def hard_update(target: nn.Module, source: nn.Module) -> None:
    target.load_state_dict(source.state_dict())


class Critic(nn.Module):
    """``k`` Q-networks Q(s, a) evaluated as one batched ensemble; returns (k, B).

    ``action_layer`` says where the action enters: 0 concatenates it with the observation at the input
    (Fujimoto's DDPG/TD3), 1 concatenates it with the first hidden layer's output (Lillicrap et al. 2016).
    """

    def __init__(self, k: int, obs_dim: int, action_dim: int, hidden: Sequence[int], action_layer: int = 0):
        super().__init__()
        if action_layer not in (0, 1) or (action_layer == 1 and len(hidden) < 2):
            raise ValueError("action_layer must be 0, or 1 with at least two hidden layers")
        self.k, self.action_layer = k, action_layer
        dims = [obs_dim, *hidden, 1]
        self.layers = nn.ModuleList()
        for i, (a, b) in enumerate(zip(dims[:-1], dims[1:])):
            extra = action_dim if i == action_layer else 0
            self.layers.append(EnsembleLinear(k, a + extra, b))

    def forward(self, obs: torch.Tensor, action: torch.Tensor, members: int | None = None) -> torch.Tensor:
        """Q-values (k, B); ``members=m`` evaluates only the first m critics (e.g. TD3's actor loss uses Q1)."""
        k = self.k if members is None else members
        x = obs.unsqueeze(0).expand(k, -1, -1)
        act = action.unsqueeze(0).expand(k, -1, -1)
        last = len(self.layers) - 1
        for i, layer in enumerate(self.layers):
            if i == self.action_layer:
                x = torch.cat([x, act], dim=-1)
            x = layer(x) if k == self.k else torch.baddbmm(layer.bias[:k], x, layer.weight[:k])
            if i < last:
                x = torch.relu_(x)  # in place: the matmul's backward does not need its output
        return x.squeeze(-1)


class ActionScaler(nn.Module):
    """Maps [-1, 1] to the env's bounds [low, high] (and back), kept as buffers on the agent's device."""

    def __init__(self, low, high):
        super().__init__()
        low, high = torch.as_tensor(low, dtype=torch.float32), torch.as_tensor(high, dtype=torch.float32)
        self.register_buffer("scale", (high - low) / 2)
        self.register_buffer("center", (high + low) / 2)
        self.register_buffer("low", low)
        self.register_buffer("high", high)

    def forward(self, unit: torch.Tensor) -> torch.Tensor:
        return self.center + self.scale * unit

    def unit(self, action: torch.Tensor) -> torch.Tensor:
        """The inverse map: env actions in [low, high] to [-1, 1]."""
        return (action - self.center) / self.scale


def bf16_autocast(device: torch.device, enabled: bool = True) -> contextlib.AbstractContextManager:
    """The context of ``precision=bf16``: bfloat16 autocast on ``device``. Inside it the matmuls (linear, mm, bmm,
    baddbmm) take bf16 copies of their inputs and accumulate in fp32, with bf16 outputs; every weight, gradient and
    optimizer state stays fp32 (autograd casts the gradients back). Callers cast what they compute a loss or a
    target from back to fp32 (``.float()``). With ``enabled=False`` a no-op context (fp32: nothing changes).

    One context per forward phase, closed before the optimizer step of the weights it used: autocast caches its bf16
    copy of each fp32 weight that requires grad until the outermost context exits, so a weight stepped in place
    inside one context would still be read as its old bf16 copy there.
    """
    if not enabled:
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=torch.bfloat16)


@contextlib.contextmanager
def compiler_marks_skipped():
    """Within it, torch's optimizer code does not import torch's compiler (``torch._dynamo``, about as much CPU and
    memory as ``import torch`` itself) just to mark itself as not to be compiled. torch wraps ``Optimizer.
    add_param_group``, ``zero_grad``, ``state_dict``, ``load_state_dict`` and the functional updates' fallbacks in
    ``torch._disable_dynamo``, which imports the compiler on the first call to cache that mark on the wrapped
    function; here the mark is the plain function (which is what it amounts to when nothing is compiled), and on
    exit the marks set here are taken away again, so the process is as before for whatever runs next. The command
    line's job function runs in it (rlbase never compiles); ``rlbase.runtime.api`` does not (a user's process may).
    ``Optimizer.step()`` imports the compiler regardless, so only algorithms that step through :func:`minimize` are
    spared it (DQN, DDPG, TD3, SAC, IQL; not A2C, A3C, PPO, BC, CQL's and BCQ's other optimizers). Yields how many
    functions it marked: none where the compiler is already imported, or where this torch keeps the mark otherwise
    (then only the time differs)."""
    import sys

    marked: list = []
    if "torch._dynamo" not in sys.modules:  # imported already (or compiling): nothing to spare
        import torch.optim.optimizer as optimizer
        from torch._compile import _disable_dynamo

        code = _disable_dynamo(lambda: None).__code__  # the wrapper's code object, shared by every wrapped function

        def mark(f) -> None:
            fn = getattr(f, "__wrapped__", None)
            if getattr(f, "__code__", None) is code and fn is not None and getattr(fn, "__dynamo_disable", None) is None:
                setattr(fn, "__dynamo_disable", fn)
                marked.append(fn)

        modules = [m for name, m in list(sys.modules.items()) if name.startswith("torch.optim") and m is not None]
        for module in [optimizer, *modules]:
            for obj in list(vars(module).values()):
                for f in (vars(obj).values() if isinstance(obj, type) else [obj]):
                    mark(f)
                    for cell in getattr(f, "__closure__", None) or ():  # the functional updates' maybe_fallback
                        try:
                            mark(cell.cell_contents)
                        except ValueError:  # an empty cell
                            pass
    try:
        yield len(marked)
    finally:
        for fn in marked:
            if getattr(fn, "__dynamo_disable", None) is fn:
                delattr(fn, "__dynamo_disable")


def adam(params, lr: float, weight_decay: float = 0.0, *, decoupled: bool = False, amsgrad: bool = False) -> torch.optim.Optimizer:
    """Adam (or AdamW with ``decoupled``) with the fused kernel: same math, about 3x faster steps on CPU."""
    cls = torch.optim.AdamW if decoupled else torch.optim.Adam
    return cls(params, lr=lr, weight_decay=weight_decay, amsgrad=amsgrad, fused=True)


def minimize(opt: torch.optim.Optimizer, loss: torch.Tensor, clip_value: float = 0.0, clip_norm: float = 0.0,
             seeds: int = 0) -> None:
    """One optimizer step on ``loss`` for the parameters of ``opt`` (an optimizer made by ``adam``).

    The same computation as ``zero_grad(); loss.backward(); opt.step()`` -- the same fused Adam kernel on the
    same state, so parameters and ``opt.state_dict()`` are bit-identical -- without that path's per-call
    Python overhead (about 40 us a step, a few % of a small network's update): gradients come from
    ``torch.autograd.grad`` for these parameters only (no ``.grad`` to zero or accumulate into, and no weight
    gradients for networks the loss merely passes through, such as the critic in an actor loss), and the kernel
    is called directly. ``clip_value > 0`` clamps each gradient element to [-v, v] first; ``clip_norm > 0``
    then rescales all gradients together so their global L2 norm is at most ``clip_norm`` (as
    ``torch.nn.utils.clip_grad_norm_``, which SB3 applies with max_grad_norm). ``seeds=K``: the parameters are K
    seeds' stacked along their first axis (``algos/stacked.py``), and each seed's gradients are rescaled by that
    seed's own norm.
    """
    group = opt.param_groups[0]
    params = [p for g in opt.param_groups for p in g["params"]]
    grads = list(torch.autograd.grad(loss, params))
    if clip_value > 0:
        torch._foreach_clamp_min_(grads, -clip_value)
        torch._foreach_clamp_max_(grads, clip_value)
    if clip_norm > 0 and seeds > 0:
        total = torch.stack([g.reshape(seeds, -1).square().sum(dim=1) for g in grads]).sum(dim=0).sqrt()  # (K,)
        scale = torch.clamp(clip_norm / (total + 1e-6), max=1.0)
        for g in grads:
            g.mul_(scale.view(seeds, *([1] * (g.dim() - 1))))
    elif clip_norm > 0:
        total = torch.linalg.vector_norm(torch.stack(torch._foreach_norm(grads)))
        torch._foreach_mul_(grads, torch.clamp(clip_norm / (total + 1e-6), max=1.0))
    state = opt.state
    if _FAST["ok"] and len(opt.param_groups) == 1 and group.get("fused") and len(state) < len(params):
        _init_state(opt, params, grads)  # first step: torch's own state creation, then the same kernel as below
    if not _FAST["ok"] or len(opt.param_groups) > 1 or not group.get("fused") or len(state) < len(params):
        _public_step(opt, params, grads)  # a case the fast path does not cover (or the state could not be made)
        return
    st = [state[p] for p in params]
    steps = [s["step"] for s in st]
    beta1, beta2 = group["betas"]
    kernel = _fused_kernel(bool(group.get("decoupled_weight_decay")))
    with torch.no_grad():
        torch._foreach_add_(steps, 1)
        try:
            if kernel is None:
                raise AttributeError("torch has no fused Adam kernel")
            kernel(params, grads, [s["exp_avg"] for s in st], [s["exp_avg_sq"] for s in st],
                   [s["max_exp_avg_sq"] for s in st] if group["amsgrad"] else [], steps,
                   amsgrad=group["amsgrad"], lr=group["lr"], beta1=beta1, beta2=beta2,
                   weight_decay=group["weight_decay"], eps=group["eps"], maximize=group["maximize"], grad_scale=None,
                   found_inf=None)
        except (AttributeError, TypeError, RuntimeError) as e:  # a torch whose private kernel moved or changed
            torch._foreach_sub_(steps, 1)  # opt.step() counts this step itself
            _FAST["ok"] = False
            log.warning("torch's private fused Adam kernel is not usable here (%s); using opt.step(), the same "
                        "arithmetic through the public path", str(e).splitlines()[0] if str(e) else type(e).__name__)
            _public_step(opt, params, grads)


# The fast path of ``minimize`` calls torch's private fused Adam kernel; the first call that fails (an upgrade
# moved or changed it) switches every later step to the public ``opt.step()`` for the rest of the process.
_FAST = {"ok": True}


def _init_state(opt: torch.optim.Optimizer, params: list, grads: list) -> None:
    """Create the optimizer's missing per-parameter state (step, moments) with torch's own code, as its first
    ``opt.step()`` would before the same kernel. Not through ``opt.step()``: that imports torch's compiler
    (``torch._dynamo``, about as much CPU as ``import torch``) on its first call, in every process. Where this torch's
    private ``_init_group`` is missing or fails, the state it was making is taken away again (state made before is
    kept) and the caller takes the public step."""
    missing = [p for p in params if p not in opt.state]
    for p, g in zip(params, grads):
        p.grad = g
    try:
        with torch.no_grad():
            opt._init_group(opt.param_groups[0], [], [], [], [], [], [])
    except Exception as e:  # any failure of a private call: the public step does it instead
        for p in missing:
            opt.state.pop(p, None)
        if not _FAST.get("init_warned"):
            _FAST["init_warned"] = True
            log.warning("torch's private Adam._init_group is not usable here (%s); the first step goes through "
                        "opt.step() (the same arithmetic; it imports torch's compiler)", type(e).__name__)
    finally:
        for p in params:
            p.grad = None


def _public_step(opt: torch.optim.Optimizer, params: list, grads: list) -> None:
    """``opt.step()`` with ``grads`` as the parameters' gradients (left unset afterwards)."""
    for p, g in zip(params, grads):
        p.grad = g
    opt.step()
    for p in params:
        p.grad = None


def _fused_kernel(decoupled: bool):
    """torch's private fused Adam(W) kernel, or None where this torch has none."""
    return getattr(torch, "_fused_adamw_" if decoupled else "_fused_adam_", None)


def state_of(obj, names: Sequence[str]) -> dict:
    """``state_dict()`` of each named network or optimizer attribute of ``obj``."""
    return {name: getattr(obj, name).state_dict() for name in names}


def load_state_of(obj, names: Sequence[str], state: dict) -> None:
    for name in names:
        getattr(obj, name).load_state_dict(state[name])
