"""Sparse L2-regularised logistic regression in pure Python: training, scoring, explanations.

Features are ``{name: value}`` dicts. Training is full-batch gradient descent with Adam steps:
the data sets here are a few hundred rows, so a deterministic batch optimiser is simple, exact
enough and reproducible bit for bit (no shuffling, no randomness at all).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

Features = Mapping[str, float]


def _sigmoid(z: float) -> float:
    if z >= 0:
        return 1.0 / (1.0 + math.exp(-z))
    e = math.exp(z)
    return e / (1.0 + e)


@dataclass
class LogReg:
    weights: dict[str, float] = field(default_factory=dict)
    bias: float = 0.0

    def margin(self, x: Features, extra: Features | None = None) -> float:
        """Bias plus weighted features; ``extra`` adds features shared by several models."""
        w = self.weights
        z = self.bias + sum(v * w[k] for k, v in x.items() if k in w)
        if extra:
            z += sum(v * w[k] for k, v in extra.items() if k in w)
        return z

    def prob(self, x: Features, extra: Features | None = None) -> float:
        return _sigmoid(self.margin(x, extra))

    def explain(self, x: Features, n: int = 4) -> list[tuple[str, float]]:
        """The ``n`` features that moved the margin most, with their signed contribution."""
        w = self.weights
        parts = [(k, v * w[k]) for k, v in x.items() if k in w and v * w[k]]
        return sorted(parts, key=lambda p: -abs(p[1]))[:n]

    def to_dict(self, digits: int = 4) -> dict[str, object]:
        kept = {k: round(v, digits) for k, v in sorted(self.weights.items())}
        return {"bias": round(self.bias, digits), "weights": {k: v for k, v in kept.items() if v}}

    @classmethod
    def from_dict(cls, d: Mapping[str, object]) -> LogReg:
        weights = d.get("weights", {})
        bias = d.get("bias", 0.0)
        assert isinstance(weights, dict) and isinstance(bias, int | float)
        return cls({str(k): float(v) for k, v in weights.items()}, float(bias))


def train(
    xs: Sequence[Features],
    ys: Sequence[bool],
    *,
    l2: float = 1.0,
    l2_of: Mapping[str, float] | None = None,
    steps: int = 300,
    lr: float = 0.1,
    balanced: bool = True,
) -> LogReg:
    """Minimise mean log-loss + l2/2n * |w|^2; ``l2_of`` maps a feature-name prefix to its own l2.

    ``balanced`` weighs the classes equally, so a rare category is not just predicted absent.
    """
    n = len(xs)
    if not n:
        return LogReg()
    pos = sum(ys)
    if pos in (0, n):  # one class only: a constant model
        p = (pos + 0.5) / (n + 1.0)
        return LogReg({}, math.log(p / (1 - p)))
    cw = {True: n / (2.0 * pos), False: n / (2.0 * (n - pos))} if balanced else None
    names = sorted({k for x in xs for k in x})
    index = {k: i for i, k in enumerate(names)}
    rows = [[(index[k], v) for k, v in x.items() if v] for x in xs]
    reg = [l2 for _ in names]
    for prefix, value in (l2_of or {}).items():
        for i, k in enumerate(names):
            if k.startswith(prefix):
                reg[i] = value
    w = [0.0] * len(names)
    b = 0.0
    m = [0.0] * (len(names) + 1)
    s = [0.0] * (len(names) + 1)
    beta1, beta2, eps = 0.9, 0.999, 1e-8
    for t in range(1, steps + 1):
        g = [reg[i] * w[i] / n for i in range(len(w))]
        gb = 0.0
        for row, y in zip(rows, ys, strict=True):
            z = b + sum(w[i] * v for i, v in row)
            err = (_sigmoid(z) - (1.0 if y else 0.0)) * (cw[y] if cw else 1.0) / n
            gb += err
            for i, v in row:
                g[i] += err * v
        g.append(gb)
        c1, c2 = 1 - beta1**t, 1 - beta2**t
        for i, gi in enumerate(g):
            m[i] = beta1 * m[i] + (1 - beta1) * gi
            s[i] = beta2 * s[i] + (1 - beta2) * gi * gi
            step = lr * (m[i] / c1) / (math.sqrt(s[i] / c2) + eps)
            if i < len(w):
                w[i] -= step
            else:
                b -= step
    # Tiny weights are dropped: they change no decision and would only bloat the file.
    return LogReg({k: w[i] for i, k in enumerate(names) if abs(w[i]) >= 0.01}, b)
