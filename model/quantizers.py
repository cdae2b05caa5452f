"""Quantizers as autograd functions with a string name each (``get_quantizer("ste_sign")``)."""

from __future__ import annotations

from typing import Callable

import torch


class SignSTE(torch.autograd.Function):
    """BNN sign with the saturated straight-through estimator (Hubara et al. 2016, eq. 1-4).

    Forward: +1 where x >= 0 (sign(0) = +1, as the hardware's bit 1), else -1.
    Backward: g_in = g_out * 1{|x| <= 1} (the gradient of hardtanh).
    """

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(x)
        return torch.where(x >= 0, torch.ones_like(x), -torch.ones_like(x))

    @staticmethod
    def backward(ctx, grad_output: torch.Tensor) -> torch.Tensor:
        (x,) = ctx.saved_tensors
        return grad_output * (x.abs() <= 1).to(grad_output.dtype)


def ste_sign(x: torch.Tensor) -> torch.Tensor:
    """Binarize to {-1, +1} with the saturated STE."""
    return SignSTE.apply(x)


def identity(x: torch.Tensor) -> torch.Tensor:
    """No quantization (float path)."""
    return x


#: Quantizers by the names configs and the CLI use.
QUANTIZERS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "ste_sign": ste_sign,
    "identity": identity,
}


def get_quantizer(name: str) -> Callable[[torch.Tensor], torch.Tensor]:
    try:
        return QUANTIZERS[name]
    except KeyError:
        raise ValueError(f"unknown quantizer {name!r}; known: {sorted(QUANTIZERS)}") from None
