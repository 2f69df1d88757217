"""Settings with their allowed values declared beside their defaults.

A config field is written ``batch_size: int = positive(256)  # what it is``: the default, and what the one generic
validator (:func:`check`) accepts, in one place. Every numeric field of every schema declares one of these (a test
holds that); ``any_value`` says explicitly that every value is allowed. The messages are the one-liners a user
sees: ``algo.policy_freq=0 must be a positive integer``, ``algo.gamma=1.5 is out of range; allowed: 0 <= gamma <= 1``.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Optional

from omegaconf import MISSING

KEY = "allowed"


@dataclasses.dataclass(frozen=True)
class Allowed:
    low: Optional[float] = None
    high: Optional[float] = None
    low_open: bool = False  # low itself is not allowed
    high_open: bool = False
    choices: Optional[tuple] = None

    def ok(self, v: Any) -> bool:
        if v is None:  # Optional fields: None means "not set" (their meaning is documented at the field)
            return True
        if self.choices is not None:
            return v in self.choices
        if isinstance(v, float) and math.isnan(v):
            return False
        if self.low is not None and (v <= self.low if self.low_open else v < self.low):
            return False
        return not (self.high is not None and (v >= self.high if self.high_open else v > self.high))

    def message(self, name: str, v: Any) -> str:
        key = name.rsplit(".", 1)[-1]
        if self.choices is not None:
            return f"{name}={v} is not supported; allowed: {', '.join(map(str, self.choices))}"
        if self.high is None and self.low is not None:
            if self.low == 0 and self.low_open:
                return f"{name}={v} must be {'a positive integer' if isinstance(v, int) else '> 0'}"
            return f"{name}={v} must be {'>' if self.low_open else '>='} {self.low:g}"
        if self.low is None and self.high is not None:
            return f"{name}={v} must be {'<' if self.high_open else '<='} {self.high:g}"
        lo, hi = ("<" if self.low_open else "<="), ("<" if self.high_open else "<=")
        return f"{name}={v} is out of range; allowed: {self.low:g} {lo} {key} {hi} {self.high:g}"


def _field(default, allowed: Allowed, factory=None):
    if factory is not None:
        return dataclasses.field(default_factory=factory, metadata={KEY: allowed})
    return dataclasses.field(default=default, metadata={KEY: allowed})


def positive(default):
    """> 0 (a count, a size, a learning rate)."""
    return _field(default, Allowed(low=0, low_open=True))


def non_negative(default):
    """>= 0 (0 usually switches the thing off; the field's comment says)."""
    return _field(default, Allowed(low=0))


def at_least(low, default):
    return _field(default, Allowed(low=low))


def unit(default, *, low_open: bool = False, high_open: bool = False):
    """In [0, 1] (a probability, a discount, an averaging rate), either end excluded if asked."""
    return _field(default, Allowed(low=0, high=1, low_open=low_open, high_open=high_open))


def between(low, high, default):
    return _field(default, Allowed(low=low, high=high))


def one_of(default, *choices):
    return _field(default, Allowed(choices=tuple(choices)))


def any_value(default):
    """Every value is allowed (a log-std, an offset, a seed-free constant): declared, not forgotten."""
    return _field(default, Allowed())


@dataclasses.dataclass
class AlgoConfig:
    """What every algorithm's settings start with: its name and discount. Each loop kind's config extends it."""

    name: str = MISSING  # each algo yaml sets it
    gamma: float = unit(0.99)  # discount


@dataclasses.dataclass
class MinibatchConfig(AlgoConfig):
    """Settings of the algorithms that learn from minibatches of stored transitions (off-policy and offline)."""

    batch_size: int = positive(256)  # transitions per gradient update


def allowed(f: dataclasses.Field) -> Optional[Allowed]:
    return f.metadata.get(KEY)


def check(node, schema: type, prefix: str) -> Optional[str]:
    """The first value of ``node`` (a config of ``schema``) outside what its field allows, as one line; else None."""
    for f in dataclasses.fields(schema):
        a = allowed(f)
        if a is None or f.name not in node:
            continue
        v = node[f.name]
        if isinstance(v, bool) and a.choices is None:
            continue
        if not a.ok(v):
            return a.message(f"{prefix}{f.name}", v)
    return None
