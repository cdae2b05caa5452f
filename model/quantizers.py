"""Quantizers of the five classic methods, each registered under a short string name.

Layout (larq style): small pure functions with their custom gradients first,
then one thin ``nn.Module`` class per quantizer that carries its precision
(``bits``) and is registered in :data:`QUANTIZERS`, so that configs and the CLI
can say ``get_quantizer("dorefa_weight", bits=2)``.

Conventions shared by every quantizer here:

- ``sign(0) = +1`` (the hardware encodes +1 as bit 1, and x >= 0 maps to it).
- ``round`` is ``torch.round``: ties go to the even integer, as ``tf.round`` in
  the DoReFa (tensorpack) and WAGE reference code.
- Random draws use torch's global generator unless a ``generator`` is passed,
  so ``torch.manual_seed`` makes a run reproducible.

Paper references ("REFERENCE.md section 1" holds the formulas):
BinaryConnect = Courbariaux et al., NIPS 2015; BNN = Hubara et al., NIPS 2016;
XNOR-Net = Rastegari et al., ECCV 2016; DoReFa = Zhou et al., arXiv 1606.06160;
WAGE = Wu et al., ICLR 2018.
"""

from __future__ import annotations

from typing import Any, Callable

import torch
import torch.nn as nn

# ---------------------------------------------------------------------------
# Pure functions and autograd functions
# ---------------------------------------------------------------------------


def _pm1(x: torch.Tensor) -> torch.Tensor:
    """sign with sign(0) = +1, as float +-1 (-1 for NaN: x >= 0 is false).

    Computed as 2 * [x >= 0] - 1 with the comparison written straight into a float
    tensor: torch's CPU kernels for a bool result and for ``where`` are several
    times slower than these three float passes, and the values are the same
    (exact small integers).
    """
    return torch.ge(x, 0, out=torch.empty_like(x)).mul_(2).sub_(1)


def _mask(x: torch.Tensor, bound: float, inclusive: bool) -> torch.Tensor:
    """Float 1.0 where |x| <= bound (``inclusive``) or |x| < bound, else 0.0 (also for NaN); a new tensor.

    The same values as ``(x.abs() <= bound).to(x.dtype)`` without the slow bool
    intermediate (see :func:`_pm1`); the caller owns it (may multiply into it in place).
    """
    a = x.abs()
    return a.le_(bound) if inclusive else a.lt_(bound)


class SignSTE(torch.autograd.Function):
    """BNN sign with the saturated straight-through estimator (Hubara et al. 2016, eq. 1-4).

    Forward: +1 where x >= 0 (sign(0) = +1, as the hardware's bit 1), else -1.
    Backward: g_in = g_out * 1{|x| <= 1} (the gradient of hardtanh).
    """

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(x)
        return _pm1(x)

    @staticmethod
    def backward(ctx, grad_output: torch.Tensor) -> torch.Tensor:
        (x,) = ctx.saved_tensors
        return _mask(x, 1, inclusive=True).mul_(grad_output)


def ste_sign(x: torch.Tensor) -> torch.Tensor:
    """Binarize to {-1, +1} with the saturated STE."""
    return SignSTE.apply(x)


class _XnorSign(torch.autograd.Function):
    """XNOR-Net BinActiv (Rastegari et al. 2016, sec. 3.2/3.3): sign, gradient zero where |x| >= 1."""

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return _pm1(x)

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        return _mask(x, 1, inclusive=False).mul_(g)


class _Through(torch.autograd.Function):
    """Returns ``value`` in the forward pass and passes the gradient to ``x`` unchanged (identity STE)."""

    @staticmethod
    def forward(ctx, x, value):
        return value.clone()

    @staticmethod
    def backward(ctx, g):
        return g, None


def straight_through(x: torch.Tensor, value: torch.Tensor) -> torch.Tensor:
    """``value`` forward, identity gradient to ``x`` backward (the plain STE)."""
    return _Through.apply(x, value.detach())


def round_ste(x: torch.Tensor) -> torch.Tensor:
    """round(x) forward (ties to even), identity gradient backward."""
    return straight_through(x, torch.round(x))


def hard_sigmoid(x: torch.Tensor) -> torch.Tensor:
    """sigma(x) = clip((x + 1) / 2, 0, 1) (BinaryConnect, Courbariaux et al. 2015, eq. 3)."""
    return torch.clamp((x + 1) / 2, 0, 1)


def ap2(x: torch.Tensor) -> torch.Tensor:
    """AP2(z) = sign(z) * 2^round(log2|z|), the power-of-two approximation (BNN paper, shift-based BN / AdaMax).

    AP2(0) = 0. No gradient of its own (use :func:`ap2_ste` inside a graph).
    """
    mag = torch.exp2(torch.round(torch.log2(x.abs())))
    # sign(x) * mag is +-0 where x is +-0 (log2 0 = -inf, exp2 -inf = 0); adding +0.0 turns -0.0 into
    # +0.0 and leaves every other value (and NaN) as it is: AP2(0) = +0 without a bool mask and
    # torch.where, whose CPU kernels are slow (see _pm1).
    return torch.sign(x).mul_(mag).add_(0.0)


def ap2_ste(x: torch.Tensor) -> torch.Tensor:
    """AP2 in the forward pass, identity gradient (so shift-based BatchNorm's gamma still learns)."""
    return straight_through(x, ap2(x))


def quantize_k(r: torch.Tensor, k: int) -> torch.Tensor:
    """DoReFa sec. 2.3: quantize_k(r) = round((2^k - 1) r) / (2^k - 1), r in [0, 1]; straight-through gradient."""
    n = float(2 ** k - 1)
    return round_ste(r * n) / n


def wage_sigma(k: int) -> float:
    """WAGE sec. 3.1, eq. (1): the resolution sigma(k) = 2^(1-k) of a k-bit signed fixed-point number."""
    return 2.0 ** (1 - k)


def wage_q(x: torch.Tensor, k: int) -> torch.Tensor:
    """WAGE sec. 3.1, eq. (2): Q(x, k) = clip(sigma(k) * round(x / sigma(k)), -1 + sigma(k), 1 - sigma(k)). No gradient."""
    s = wage_sigma(k)
    return torch.clamp(s * torch.round(x / s), -1 + s, 1 - s)


def wage_shift(x: torch.Tensor | float) -> torch.Tensor:
    """WAGE sec. 3.1, eq. (3): Shift(x) = 2^round(log2 x), for x > 0."""
    x = torch.as_tensor(x, dtype=torch.float32)
    return torch.exp2(torch.round(torch.log2(x)))


def stochastic_round(x: torch.Tensor, u: torch.Tensor | None = None,
                     generator: torch.Generator | None = None) -> torch.Tensor:
    """WAGE sec. 3.3 (gradient update, stochastic rounding): sign(x) * (floor|x| + Bernoulli(|x| - floor|x|)).

    ``u`` (uniform in [0, 1), same shape) may be given to make the draw explicit;
    otherwise it is drawn from ``generator`` (or torch's global generator).
    Bernoulli(p) is 1 where u < p.
    """
    if u is None:
        u = torch.rand(x.shape, generator=generator, dtype=x.dtype, device=x.device)
    mag = x.abs()
    whole = torch.floor(mag)
    return torch.sign(x) * (whole + torch.lt(u, mag - whole, out=torch.empty_like(mag)))


class _DorefaGrad(torch.autograd.Function):
    """Identity forward; DoReFa sec. 2.5 gradient quantization with uniform noise in the backward pass."""

    @staticmethod
    def forward(ctx, x, k):
        ctx.k = k
        return x.view_as(x)

    @staticmethod
    def backward(ctx, g):
        n = float(2 ** ctx.k - 1)
        dims = tuple(range(1, g.dim()))
        m = g.abs().amax(dim=dims, keepdim=True) if dims else g.abs()
        safe = torch.where(m > 0, m, torch.ones_like(m))
        noise = (torch.rand_like(g) - 0.5) / n              # N(k) ~ U(-0.5, 0.5) / (2^k - 1)
        q = torch.round((g / (2 * safe) + 0.5 + noise) * n) / n
        out = 2 * safe * (q - 0.5)
        return torch.where(m > 0, out, torch.zeros_like(g)), None


class _WageError(torch.autograd.Function):
    """Identity forward; WAGE sec. 3.3 (error) error quantization e_q = Q(e / Shift(max|e|), k_E) backward."""

    @staticmethod
    def forward(ctx, x, k):
        ctx.k = k
        return x.view_as(x)

    @staticmethod
    def backward(ctx, e):
        m = e.abs().max()
        if m == 0:
            return torch.zeros_like(e), None
        return wage_q(e / wage_shift(m), ctx.k), None


class _XnorWeight(torch.autograd.Function):
    """BWN weights alpha * sign(W), alpha = mean|W| per output row/filter (XNOR-Net sec. 3.1).

    Backward follows XNOR-Net sec. 3.1 exactly:
    dC/dW_i = dC/dW~_i * (1/n + alpha * 1{|W_i| <= 1}), n = weights per filter.
    """

    @staticmethod
    def forward(ctx, w):
        flat = w.reshape(w.shape[0], -1)
        alpha = flat.abs().mean(dim=1).reshape((-1,) + (1,) * (w.dim() - 1))
        ctx.save_for_backward(w, alpha)
        ctx.n = flat.shape[1]
        return alpha * _pm1(w)

    @staticmethod
    def backward(ctx, g):
        w, alpha = ctx.saved_tensors
        return g * (1.0 / ctx.n + alpha * _mask(w, 1, inclusive=True))


# ---------------------------------------------------------------------------
# Quantizer modules (registered by name)
# ---------------------------------------------------------------------------


class Quantizer(nn.Module):
    """Base class: a quantizer is a module (so ``model.eval()`` reaches it) with a precision.

    ``bits``: the precision of the quantized values (32 = not quantized), shown
    by :func:`bnnflow.model.summary`. ``role``: what the quantizer is meant for
    (``weight``, ``input``, ``grad``: forward identity, backward quantized).
    """

    name = "?"
    role = "any"

    def __init__(self, bits: int = 32):
        super().__init__()
        self.bits = bits

    def extra_repr(self) -> str:
        return f"bits={self.bits}"


class Identity(Quantizer):
    """No quantization (the float path)."""

    name = "identity"

    def forward(self, x):
        return x


class SignQuantizer(Quantizer):
    """BNN: sign(x) forward, saturated STE g * 1{|x| <= 1} backward (Hubara et al. 2016, eq. 1-4)."""

    name = "ste_sign"

    def __init__(self):
        super().__init__(bits=1)

    def forward(self, x):
        return SignSTE.apply(x)


class BinaryConnectQuantizer(Quantizer):
    """BinaryConnect weights (Courbariaux et al. 2015, sec. 2.3 eq. 1-3; test-time choice sec. 2.6).

    Training: deterministic w_b = sign(w) (eq. 1) or stochastic w_b = +1 with
    probability hard_sigmoid(w), else -1 (eq. 2-3); the gradient w.r.t. w_b is
    applied to w unchanged (identity STE; the kept weights are clipped to
    [-1, 1] after each update, not saturated here).
    Evaluation (``model.eval()``): ``eval_weights = "binary"`` uses sign(w)
    (for the stochastic variant too: it is the deployable net), ``"real"``
    uses the kept real weights (the paper's test-time choice for stochastic
    nets).
    """

    name = "binaryconnect"
    role = "weight"

    def __init__(self, stochastic: bool = False, eval_weights: str = "binary"):
        super().__init__(bits=1)
        if eval_weights not in ("binary", "real"):
            raise ValueError(f"eval_weights must be 'binary' or 'real', got {eval_weights!r}")
        self.stochastic = stochastic
        self.eval_weights = eval_weights

    def forward(self, w):
        if not self.training and self.eval_weights == "real":
            return w
        if self.training and self.stochastic:
            p = hard_sigmoid(w.detach())
            wb = torch.lt(torch.rand_like(w), p, out=torch.empty_like(p)).mul_(2).sub_(1)   # +1 w.p. p
        else:
            wb = _pm1(w.detach())
        return straight_through(w, wb)

    def extra_repr(self):
        return f"stochastic={self.stochastic}, eval_weights={self.eval_weights!r}"


class XnorWeightQuantizer(Quantizer):
    """XNOR-Net / BWN weights alpha * sign(W), alpha = mean|W| per output neuron/filter (sec. 3.1, with its gradient)."""

    name = "xnor_weight"
    role = "weight"

    def __init__(self):
        super().__init__(bits=1)

    def forward(self, w):
        return _XnorWeight.apply(w)


class XnorSignQuantizer(Quantizer):
    """XNOR-Net BinActiv: sign(x), gradient g * 1{|x| < 1} (sec. 3.2-3.3, "BinActiv").

    The input scale (beta / K) is applied by the layer (``input_scaling=True``),
    since it multiplies the layer's output, not its input.
    """

    name = "xnor_sign"
    role = "input"

    def __init__(self):
        super().__init__(bits=1)

    def forward(self, x):
        return _XnorSign.apply(x)


def _check_bits(name: str, bits: int, allowed: range, full: bool) -> int:
    if not isinstance(bits, int) or isinstance(bits, bool) or not (bits in allowed or (full and bits == 32)):
        extra = " or 32 (no quantization)" if full else ""
        raise ValueError(f"{name}: bit width {bits!r} out of range; use {allowed.start}..{allowed.stop - 1}{extra}")
    return bits


class DorefaWeightQuantizer(Quantizer):
    """DoReFa k-bit weights (Zhou et al. 2016, sec. 2.3: the tanh form for k > 1, mean-|w| scaling for k = 1).

    k > 1: w_q = 2 * quantize_k(tanh(w) / (2 max|tanh(w)|) + 1/2) - 1, the
    gradient flows through tanh and the max (autograd), straight through round.
    k = 1: w_q = sign(w / E) * E with E = mean|w| over the whole layer, E
    treated as a constant, identity gradient. k = 32: w unchanged.
    """

    name = "dorefa_weight"
    role = "weight"

    def __init__(self, bits: int = 1):
        super().__init__(bits=_check_bits("DoReFa weight", bits, range(1, 17), full=True))

    def forward(self, w):
        k = self.bits
        if k == 32:
            return w
        if k == 1:
            e = w.detach().abs().mean()
            return straight_through(w, _pm1(w.detach()) * e)
        t = torch.tanh(w)
        return 2 * quantize_k(t / (2 * t.abs().max()) + 0.5, k) - 1


class DorefaActQuantizer(Quantizer):
    """DoReFa k-bit activations a_q = quantize_k(clip(a, 0, 1)) (sec. 2.4; the clip as in the authors' code).

    The clip's gradient is kept (zero outside [0, 1], passed at the boundaries),
    round is straight-through. k = 32: clip only.
    """

    name = "dorefa_act"
    role = "input"

    def __init__(self, bits: int = 2):
        super().__init__(bits=_check_bits("DoReFa activation", bits, range(1, 17), full=True))

    def forward(self, a):
        a = torch.clamp(a, 0, 1)
        return a if self.bits == 32 else quantize_k(a, self.bits)


class DorefaGradQuantizer(Quantizer):
    """DoReFa k-bit gradients (sec. 2.5): identity forward; backward, per sample with m = max|dr|,
    dr' = 2m * (quantize_k(dr / (2m) + 1/2 + N(k)) - 1/2), N(k) ~ U(-1/2, 1/2) / (2^k - 1).

    Put it on a layer's output (``output_quant``). k = 32: identity both ways.
    """

    name = "dorefa_grad"
    role = "grad"

    def __init__(self, bits: int = 32):
        super().__init__(bits=_check_bits("DoReFa gradient", bits, range(1, 17), full=True))

    def forward(self, x):
        return x if self.bits == 32 else _DorefaGrad.apply(x, self.bits)


class WageWeightQuantizer(Quantizer):
    """WAGE weights W_q = Q(W, k_W) (sec. 3.3, weights), straight through both round and clip.

    k_W = 2 gives the ternary {-1/2, 0, +1/2}.
    """

    name = "wage_weight"
    role = "weight"

    def __init__(self, bits: int = 2):
        super().__init__(bits=_check_bits("WAGE weight", bits, range(2, 17), full=False))

    def forward(self, w):
        return straight_through(w, wage_q(w.detach(), self.bits))


class WageActQuantizer(Quantizer):
    """WAGE activations a_q = Q(a, k_A) (sec. 3.3, activations; the layer divides by alpha first).

    Straight through round, but the clip to [-1 + sigma, 1 - sigma] keeps its gradient.
    """

    name = "wage_act"
    role = "input"

    def __init__(self, bits: int = 8):
        super().__init__(bits=_check_bits("WAGE activation", bits, range(2, 17), full=False))

    def forward(self, a):
        s = wage_sigma(self.bits)
        a = torch.clamp(a, -1 + s, 1 - s)
        return s * round_ste(a / s)


class WageErrorQuantizer(Quantizer):
    """WAGE errors (sec. 3.3, errors): identity forward, backward e_q = Q(e / Shift(max|e|), k_E)."""

    name = "wage_error"
    role = "grad"

    def __init__(self, bits: int = 8):
        super().__init__(bits=_check_bits("WAGE error", bits, range(2, 17), full=False))

    def forward(self, x):
        return _WageError.apply(x, self.bits)


#: Quantizer classes by the names configs and the CLI use.
QUANTIZERS: dict[str, type[Quantizer]] = {cls.name: cls for cls in (
    Identity, SignQuantizer, BinaryConnectQuantizer, XnorWeightQuantizer, XnorSignQuantizer,
    DorefaWeightQuantizer, DorefaActQuantizer, DorefaGradQuantizer,
    WageWeightQuantizer, WageActQuantizer, WageErrorQuantizer)}


def get_quantizer(name: str, **kwargs: Any) -> Quantizer:
    """A new quantizer by registered name, e.g. ``get_quantizer("dorefa_weight", bits=2)``."""
    try:
        cls = QUANTIZERS[name]
    except KeyError:
        raise ValueError(f"unknown quantizer {name!r}; known: {sorted(QUANTIZERS)}") from None
    return cls(**kwargs)


def identity(x: torch.Tensor) -> torch.Tensor:
    """No quantization (float path)."""
    return x


QuantizerLike = Callable[[torch.Tensor], torch.Tensor]
