"""Quantized layers: keep real (latent) weights, quantize them in forward (Brevitas style).

``QuantLinear(in, out, weight_quant=..., input_quant=...)`` and
``QuantConv2d(...)`` take quantizers as modules, callables or registered names
(``"ste_sign"``); see :mod:`bnnflow.model.quantizers`.
"""

from __future__ import annotations

import math
from typing import Callable

import torch
import torch.nn as nn
import torch.nn.functional as F

from .quantizers import Quantizer, get_quantizer

Quantizer_ = Callable[[torch.Tensor], torch.Tensor]


def _resolve(q) -> Quantizer_:
    if q is None:
        return get_quantizer("identity")
    return get_quantizer(q) if isinstance(q, str) else q


def quant_bits(q) -> int | None:
    """Precision of a quantizer (None for a plain callable that does not say)."""
    return getattr(q, "bits", None)


class _QuantMixin:
    """Shared by QuantLinear and QuantConv2d.

    - ``weight_quant(W)`` is what the layer multiplies with; ``input_quant(x)``
      what it multiplies.
    - ``output_quant`` is applied to the layer's output: a backward-only
      quantizer (DoReFa gradients, WAGE errors) goes here.
    - ``input_scaling``: XNOR-Net's input scale (beta for linear layers, the K
      map for convolutions, sec. 3.2) multiplies the output; computed from the
      real input before ``input_quant``.
    - ``output_scale``: a constant factor (WAGE's 1/alpha).
    - ``weight_clip``: bound for the latent weights, applied by
      :func:`clip_weights` after each optimizer step (BinaryConnect/BNN).
    - ``lr_scale``: per-layer learning-rate factor for this layer's weight (the
      Glorot scaling of BinaryConnect/BNN); the trainer builds param groups from it.
    """

    def _setup(self, weight_quant, input_quant, output_quant, weight_clip, input_scaling, output_scale):
        self.weight_quant = _resolve(weight_quant)
        self.input_quant = _resolve(input_quant)
        self.output_quant = _resolve(output_quant)
        self.weight_clip = weight_clip
        self.input_scaling = input_scaling
        self.output_scale = float(output_scale)
        self.lr_scale = 1.0

    def quantized_weight(self) -> torch.Tensor:
        return self.weight_quant(self.weight)

    def _finish(self, y: torch.Tensor, scale: torch.Tensor | None) -> torch.Tensor:
        if scale is not None:
            y = y * scale
        if self.output_scale != 1.0:
            y = y * self.output_scale
        return self.output_quant(y)

    def fans(self) -> tuple[int, int]:
        """(fan_in, fan_out) as BinaryConnect counts them (conv: k*k*C_in, k*k*C_out)."""
        w = self.weight
        receptive = int(w[0, 0].numel())
        return w.shape[1] * receptive, w.shape[0] * receptive


class QuantLinear(_QuantMixin, nn.Linear):
    """``nn.Linear`` whose weight and input pass through quantizers (see :class:`_QuantMixin`).

    ``weight_quant`` / ``input_quant`` / ``output_quant`` are quantizer modules,
    callables or registered names (``"ste_sign"``).
    """

    def __init__(self, in_features: int, out_features: int, bias: bool = False,
                 weight_quant=None, input_quant=None, weight_clip: float | None = None,
                 output_quant=None, input_scaling: bool = False, output_scale: float = 1.0):
        super().__init__(in_features, out_features, bias=bias)
        self._setup(weight_quant, input_quant, output_quant, weight_clip, input_scaling, output_scale)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        scale = x.abs().mean(dim=1, keepdim=True) if self.input_scaling else None   # XNOR-Net beta
        y = F.linear(self.input_quant(x), self.quantized_weight(), self.bias)
        return self._finish(y, scale)


class QuantConv2d(_QuantMixin, nn.Conv2d):
    """``nn.Conv2d`` with weight/input/output quantizers (see :class:`_QuantMixin`).

    With ``input_scaling`` the output is multiplied by XNOR-Net's K map
    (sec. 3.2): A = mean over channels of |I|, K = A convolved with a k x k box
    filter of value 1/(k*k), with the layer's stride and padding.

    ``pad_value``: the value the quantized input is padded with. Binarized
    (+-1) inputs have no 0, so a zero border would be a third value that an
    XNOR-popcount engine cannot represent; padding them with +1 (Larq's
    ``pad_values=1``) keeps the hardware's arithmetic exact
    (docs/ARTIFACT.md, "Convolutions"). Other inputs pad with 0.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1,
                 padding: int = 0, bias: bool = False, weight_quant=None, input_quant=None,
                 weight_clip: float | None = None, output_quant=None, input_scaling: bool = False,
                 output_scale: float = 1.0, pad_value: float = 0.0):
        super().__init__(in_channels, out_channels, kernel_size, stride=stride, padding=padding, bias=bias)
        self._setup(weight_quant, input_quant, output_quant, weight_clip, input_scaling, output_scale)
        self.pad_value = float(pad_value)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        scale = None
        if self.input_scaling:
            a = x.abs().mean(dim=1, keepdim=True)
            kh, kw = self.kernel_size
            box = torch.full((1, 1, kh, kw), 1.0 / (kh * kw), dtype=x.dtype, device=x.device)
            scale = F.conv2d(a, box, stride=self.stride, padding=self.padding)
        xq = self.input_quant(x)
        if self.pad_value != 0.0 and any(self.padding):
            ph, pw = self.padding
            xq = F.pad(xq, (pw, pw, ph, ph), value=self.pad_value)
            y = F.conv2d(xq, self.quantized_weight(), self.bias, self.stride, 0)
        else:
            y = F.conv2d(xq, self.quantized_weight(), self.bias, self.stride, self.padding)
        return self._finish(y, scale)


QUANT_LAYERS = (QuantLinear, QuantConv2d)


class BinaryLinear(QuantLinear):
    """Binary weights (sign + saturated STE), latent weights clipped to [-1, 1]; no bias."""

    def __init__(self, in_features: int, out_features: int, input_quant=None):
        super().__init__(in_features, out_features, bias=False, weight_quant="ste_sign",
                         input_quant=input_quant, weight_clip=1.0)


@torch.no_grad()
def clip_weights(model: nn.Module) -> None:
    """Clip every quantized layer's latent weights to its ``weight_clip`` (after optimizer.step()).

    Quantized layers are found by type (as :func:`bnnflow.model.optim.param_groups`
    does), not by ``getattr(module, "weight_clip", None)``: on the other modules
    that lookup goes through ``nn.Module.__getattr__`` and raises and catches an
    AttributeError each, which cost more than the clamps (this runs every step).
    """
    for module in model.modules():
        if isinstance(module, _QuantMixin) and module.weight_clip is not None:
            module.weight.clamp_(-module.weight_clip, module.weight_clip)


def glorot_lr_scale(layer: nn.Module) -> float:
    """BinaryConnect/BNN per-layer LR factor 1 / sqrt(1.5 / (fan_in + fan_out)) (the
    BinaryConnect/BNN papers' "W_LR_scale = Glorot" setting)."""
    fan_in, fan_out = layer.fans()
    return 1.0 / math.sqrt(1.5 / (fan_in + fan_out))


def bitplane_linear(x: torch.Tensor, w_b: torch.Tensor, bits: int) -> torch.Tensor:
    """BNN's first layer as its bit-plane sum: s = sum_{n=1..bits} 2^(n-1) * (x^n . w_b).

    ``x`` holds unsigned integers of ``bits`` bits, ``w_b`` is +-1. Equals
    ``x @ w_b.T`` exactly (the BNN paper's "First layer" paragraph: an
    integer engine, not XNOR); here as a reference for tests and the hardware docs.
    """
    xi = x.to(torch.int64)
    total = torch.zeros(x.shape[0], w_b.shape[0], dtype=torch.float64)
    for n in range(bits):
        plane = ((xi >> n) & 1).to(torch.float64)
        total += (2 ** n) * (plane @ w_b.to(torch.float64).T)
    return total


def summary(model: nn.Module) -> str:
    """A larq-style table: each quantized layer's shape, weight/input bits and weight memory."""
    rows = [("layer", "kind", "shape", "w bits", "in bits", "params", "memory")]
    total_bits = 0
    total_params = 0
    for name, m in model.named_modules():
        if isinstance(m, QUANT_LAYERS) or isinstance(m, (nn.Linear, nn.Conv2d)):
            wb = quant_bits(getattr(m, "weight_quant", None)) or 32
            ib = quant_bits(getattr(m, "input_quant", None)) or 32
            n = m.weight.numel()
            total_params += n
            total_bits += n * wb
            rows.append((name, type(m).__name__, "x".join(map(str, m.weight.shape)), str(wb), str(ib),
                         str(n), f"{n * wb / 8 / 1024:.1f} KiB"))
    rows.append(("total", "", "", "", "", str(total_params), f"{total_bits / 8 / 1024:.1f} KiB"))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows)
