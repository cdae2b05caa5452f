"""Optimizers, learning-rate schedules and losses of the five methods.

- :class:`ShiftAdaMax`: BNN's shift-based AdaMax (Hubara et al. 2016).
- :class:`WageSGD`: WAGE's quantized-gradient SGD (Wu et al. 2018, sec. 3.3).
- :func:`param_groups`: per-layer learning-rate factors (Glorot scaling).
- :func:`make_scheduler`: cosine annealing or WAGE's power-of-two steps.
- losses: cross-entropy, squared hinge (BinaryConnect/BNN), SSE (WAGE).
"""

from __future__ import annotations

import math
from typing import Any, Iterable

import torch
import torch.nn as nn
import torch.nn.functional as F

from .layers import QUANT_LAYERS, glorot_lr_scale
from .quantizers import ap2, stochastic_round, wage_sigma, wage_shift


class ShiftAdaMax(torch.optim.Optimizer):
    """Shift-based AdaMax (BNN paper, "Shift based AdaMax"; AdaMax is Kingma & Ba 2015, Alg. 2).

    Per parameter, at step t::

        m = b1 * m + (1 - b1) * g
        v = max(b2 * v, |g|)
        theta -= AP2(lr / (1 - b1^t)) * m / (AP2(v) + eps)

    Both the bias-corrected step size and the division by v are powers of two
    (shifts). The paper writes the update as ``(alpha <<>> (1 - b1)) . m <<>> v^-1``;
    we read it, as the authors' Torch7 code does, with the bias correction
    1 - b1^t and eps added after AP2(v). Defaults are the paper's:
    lr = 2^-10, 1 - b1 = 2^-3, 1 - b2 = 2^-10.
    """

    def __init__(self, params, lr: float = 2 ** -10, betas: tuple[float, float] = (1 - 2 ** -3, 1 - 2 ** -10),
                 eps: float = 1e-8):
        if lr <= 0:
            raise ValueError(f"learning rate must be positive, got {lr}")
        super().__init__(params, dict(lr=lr, betas=betas, eps=eps))

    @torch.no_grad()
    def step(self, closure=None):
        loss = closure() if closure is not None else None
        for group in self.param_groups:
            b1, b2 = group["betas"]
            steps: dict[int, float] = {}    # AP2 step size by t: the same for every parameter of the group
            for p in group["params"]:
                if p.grad is None:
                    continue
                g = p.grad
                state = self.state[p]
                if not state:
                    state["step"] = 0
                    state["m"] = torch.zeros_like(p)
                    state["v"] = torch.zeros_like(p)
                state["step"] += 1
                t = state["step"]
                m, v = state["m"], state["v"]
                m.mul_(b1).add_(g, alpha=1 - b1)
                torch.maximum(v.mul_(b2), g.abs(), out=v)
                if t not in steps:
                    steps[t] = float(ap2(torch.tensor(group["lr"] / (1 - b1 ** t), dtype=torch.float64)))
                step = steps[t]
                p.sub_(step * m / (ap2(v) + group["eps"]))
        return loss


class WageSGD(torch.optim.Optimizer):
    """WAGE's weight update (Wu et al. 2018, sec. 3.3, gradient paragraph), plain SGD, no momentum::

        g_s = lr * g / Shift(max|g|)
        dW  = sigma(k_G) * sr(g_s),  sr = sign * (floor|.| + Bernoulli(frac))   (stochastic rounding)
        W   = clip(W - dW, -1 + sigma(k_G), 1 - sigma(k_G))

    ``lr`` is WAGE's eta, a power of two (8, then 1, then 1/8). The max is over
    each parameter tensor. Weights that start on the sigma(k_G) grid stay on it.
    """

    def __init__(self, params, lr: float = 8.0, bits: int = 8, generator: torch.Generator | None = None):
        super().__init__(params, dict(lr=lr, bits=bits))
        self.generator = generator

    @torch.no_grad()
    def step(self, closure=None):
        loss = closure() if closure is not None else None
        for group in self.param_groups:
            s = wage_sigma(group["bits"])
            for p in group["params"]:
                if p.grad is None:
                    continue
                g = p.grad
                gmax = g.abs().max()
                if gmax == 0:
                    continue
                g_s = group["lr"] * g / wage_shift(gmax)
                p.sub_(s * stochastic_round(g_s, generator=self.generator)).clamp_(-1 + s, 1 - s)
        return loss


def param_groups(model: nn.Module, lr: float, lr_scale: str) -> list[dict[str, Any]]:
    """Parameter groups with each quantized layer's weight at ``lr * layer.lr_scale``.

    ``lr_scale = "glorot"`` sets each quantized layer's factor to
    1 / sqrt(1.5 / (fan_in + fan_out)) first; ``"none"`` keeps 1.
    """
    if lr_scale not in ("none", "glorot"):
        raise ValueError(f"unknown lr scaling {lr_scale!r}; use none or glorot")
    scaled: dict[int, float] = {}
    for m in model.modules():
        if isinstance(m, QUANT_LAYERS) and m.weight_clip is not None:
            if lr_scale == "glorot":
                m.lr_scale = glorot_lr_scale(m)
            if m.lr_scale != 1.0:
                scaled[id(m.weight)] = m.lr_scale
    plain = [p for p in model.parameters() if id(p) not in scaled]
    groups = [{"params": plain, "lr": lr}] if plain else []
    for m in model.modules():
        if isinstance(m, QUANT_LAYERS) and id(m.weight) in scaled:
            groups.append({"params": [m.weight], "lr": lr * scaled[id(m.weight)]})
    return groups


def make_optimizer(name: str, model: nn.Module, lr: float, lr_scale: str = "none",
                   gbits: int = 8, generator: torch.Generator | None = None) -> torch.optim.Optimizer:
    """``adam``, ``shift-adamax``, ``sgd`` (momentum 0.9) or ``wage-sgd``."""
    if name == "wage-sgd":
        return WageSGD(model.parameters(), lr=lr, bits=gbits, generator=generator)
    groups = param_groups(model, lr, lr_scale)
    if name == "adam":
        return torch.optim.Adam(groups, lr=lr)
    if name == "shift-adamax":
        return ShiftAdaMax(groups, lr=lr)
    if name == "sgd":
        return torch.optim.SGD(groups, lr=lr, momentum=0.9)
    raise ValueError(f"unknown optimizer {name!r}; use adam, shift-adamax, sgd or wage-sgd")


def wage_lr_factor(epoch: int, epochs: int) -> float:
    """WAGE's power-of-two schedule as a factor of the initial eta: 1 for the first 2/3 of the epochs,
    then 1/8 (eta 8 -> 1), then 1/64 for the last 1/6 (eta -> 1/8), as the paper's 200/50/50 split."""
    if epoch < math.ceil(epochs * 2 / 3):
        return 1.0
    if epoch < math.ceil(epochs * 5 / 6):
        return 1.0 / 8
    return 1.0 / 64


def make_scheduler(name: str, optimizer: torch.optim.Optimizer, epochs: int):
    """``cosine`` (annealed to 0 over the run) or ``pow2`` (WAGE's 8 -> 1 -> 1/8 steps)."""
    if name == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(1, epochs))
    if name == "pow2":
        return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda e: wage_lr_factor(e, epochs))
    raise ValueError(f"unknown lr schedule {name!r}; use cosine or pow2")


def squared_hinge_loss(output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """mean((max(0, 1 - t * y))^2) with t = +-1 one-hot targets (BinaryConnect sec. 3 / BNN code)."""
    t = 2 * F.one_hot(target, output.shape[1]).to(output.dtype) - 1
    return torch.clamp(1 - t * output, min=0).pow(2).mean()


def sse_loss(output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """WAGE's SSE 0.5 * sum (y - out)^2 with one-hot y, summed over classes, averaged over the batch."""
    y = F.one_hot(target, output.shape[1]).to(output.dtype)
    return 0.5 * (y - output).pow(2).sum(dim=1).mean()


LOSSES = {"ce": nn.CrossEntropyLoss(), "sqhinge": squared_hinge_loss, "sse": sse_loss}


def get_loss(name: str):
    try:
        return LOSSES[name]
    except KeyError:
        raise ValueError(f"unknown loss {name!r}; use {', '.join(LOSSES)}") from None
