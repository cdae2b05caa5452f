"""Quantized layers: keep real (latent) weights, quantize them in forward."""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn as nn
import torch.nn.functional as F

from .quantizers import get_quantizer

Quantizer = Callable[[torch.Tensor], torch.Tensor]


def _resolve(q: str | Quantizer | None) -> Quantizer:
    if q is None:
        return get_quantizer("identity")
    return get_quantizer(q) if isinstance(q, str) else q


class QuantLinear(nn.Linear):
    """``nn.Linear`` whose weight and input pass through quantizers.

    ``weight_quant`` / ``input_quant`` are callables or registered names
    (``"ste_sign"``). ``weight_clip`` bounds the latent weights after each
    optimizer step (call :func:`clip_weights` on the model), as BinaryConnect
    and BNN do so that latent weights cannot drift beyond the STE's reach.
    """

    def __init__(self, in_features: int, out_features: int, bias: bool = False,
                 weight_quant: str | Quantizer | None = None, input_quant: str | Quantizer | None = None,
                 weight_clip: float | None = None):
        super().__init__(in_features, out_features, bias=bias)
        self.weight_quant = _resolve(weight_quant)
        self.input_quant = _resolve(input_quant)
        self.weight_clip = weight_clip

    def quantized_weight(self) -> torch.Tensor:
        return self.weight_quant(self.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(self.input_quant(x), self.quantized_weight(), self.bias)


class BinaryLinear(QuantLinear):
    """Binary weights (sign + saturated STE), latent weights clipped to [-1, 1]; no bias."""

    def __init__(self, in_features: int, out_features: int, input_quant: str | Quantizer | None = None):
        super().__init__(in_features, out_features, bias=False, weight_quant="ste_sign",
                         input_quant=input_quant, weight_clip=1.0)


@torch.no_grad()
def clip_weights(model: nn.Module) -> None:
    """Clip every quantized layer's latent weights to its ``weight_clip`` (after optimizer.step())."""
    for module in model.modules():
        clip = getattr(module, "weight_clip", None)
        if clip is not None:
            module.weight.clamp_(-clip, clip)
