"""Network builders and target-network updates shared by the algorithms."""

from __future__ import annotations

import math
from typing import Sequence

import torch
from torch import nn


def mlp(in_dim: int, hidden: Sequence[int], out_dim: int, activation: type[nn.Module] = nn.ReLU,
        out_activation: type[nn.Module] | None = None) -> nn.Sequential:
    """A plain fully connected network: in -> hidden... -> out."""
    layers: list[nn.Module] = []
    last = in_dim
    for h in hidden:
        layers += [nn.Linear(last, h), activation()]
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
def soft_update(target: nn.Module, source: nn.Module, tau: float) -> None:
    """Polyak averaging: target <- tau * source + (1 - tau) * target, for every parameter."""
    tgt = [p for p in target.parameters()]
    src = [p for p in source.parameters()]
    torch._foreach_lerp_(tgt, src, tau)


@torch.no_grad()
def hard_update(target: nn.Module, source: nn.Module) -> None:
    target.load_state_dict(source.state_dict())
