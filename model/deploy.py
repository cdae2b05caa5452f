"""The deployed form of a trained MLP, for every method (issue 8), and its torch reference.

A deployed layer takes unsigned integer codes in (bipolar bits for an XNOR
layer), forms the exact integer dot product with integer weight *values*, and
maps each neuron's dot through a **level function** built from the trained
model's own modules -- the input and weight scales, BatchNorm in eval mode,
ReLU, the method's activation quantizer, the next block's BatchNorm and sign
(XNOR-Net, BNN) -- to the next layer's input code. The last layer maps its dot
to an integer score ``mul*dot + add`` (or the dot itself). Evaluating that
chain layer by layer is *the quantized torch model*: :meth:`DeployedNet.trace`
is the reference ``bnnflow verify`` compares the golden model and every
hardware level with, integer dots included.

The exporter never derives thresholds from a formula: :func:`search_thresholds`
finds, for every neuron and level t, the smallest integer dot whose level
function value reaches t, by a vectorized binary search that evaluates the
level function itself, and then checks the thresholds against it. So the
thresholds agree with the reference bit for bit by construction, whatever
float arithmetic the modules do; a level function that is not monotone is
refused naming the layer and neuron.

What is not in the trained model and had to be defined for deployment
(docs/DEPLOY.md explains each with a worked example):

- real activations (BinaryConnect, XNOR-Net's input to a real last layer, BWN)
  are quantized to ``abits``-bit codes with a per-layer scale calibrated on the
  training split: ``scale = max(v) / (2^abits - 1)`` for non-negative
  activations (after a ReLU), ``scale = max|v| / (2^(abits-1) - 1)`` with codes
  offset by ``2^(abits-1)`` for signed ones (BWN's BatchNorm output);
- real (first/last) layer weights become 8-bit narrow integers with the
  per-layer scale ``max|W| / 127``;
- XNOR-Net's per-sample input scale beta is the per-layer constant
  ``mean |x|`` over the training split (the calibration set);
- a score layer's offsets are centred (a constant shared by all classes is
  dropped); one whose per-neuron factor is shared by every neuron keeps
  ``mul = 1`` and ``add = round(offset / factor)``; otherwise ``(mul, add)``
  are the factor and offset in fixed point with the largest fraction that fits
  ``affine_bits`` (at most 24, fewer when the 32-bit score needs it).

Calibration runs the deployed (already quantized) preceding layers, and its
constants are stored in the artifact (``network.deployment``) so that verify
rebuilds the same reference without the training data.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np
import torch
import torch.nn as nn

from ..conv import ConvGeometry, PoolGeometry, chw_to_hwc_columns, im2col, max_pool, torch_to_im2col_weights
from .quantizers import (BinaryConnectQuantizer, DorefaActQuantizer, DorefaWeightQuantizer, Identity,
                         SignQuantizer, WageActQuantizer, WageWeightQuantizer, XnorSignQuantizer,
                         XnorWeightQuantizer, _pm1, wage_sigma)

#: Default activation bits of the export quantization of real activations (``export --abits``).
DEFAULT_ABITS = 8
#: Widest input code and weight code the engines take (artifact.MAX_INPUT_BITS / MAX_WEIGHT_BITS).
MAX_CODE_BITS = 8
#: Bits of the 8-bit integer weights of a real (first/last) layer.
REAL_WEIGHT_BITS = 8
#: Widest affine field chosen for a fixed-point score (fewer when the 32-bit score bound needs it).
AFFINE_BITS = 24
#: Widest signed score the engines produce (artifact.MAX_SCORE_BITS).
SCORE_BITS = 32
#: Rows per block when the reference runs many images (keeps the int64 products small).
BLOCK_ROWS = 4096
#: Random dots per neuron that the threshold check compares with the level function.
CHECK_SAMPLES = 256
#: Dot ranges up to this many values are checked exhaustively instead.
EXHAUSTIVE_RANGE = 4096

SIGN_QUANTIZERS = (SignQuantizer, XnorSignQuantizer)


class DeployError(ValueError):
    """A trained model (or one of its layers) that the engines cannot run; the message names it."""


# ---------------------------------------------------------------------------
# Codes on a layer boundary
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Codes:
    """How the integer codes between two layers read as the model's real values.

    ``bipolar``: a bit b stands for ``2b - 1`` (sign activations; XNOR layers).
    ``unsigned``: a code c stands for ``scale * (c - offset)``; the encoder is
    ``clamp(round(v / scale), lo, hi) + offset``. Grid outputs (DoReFa, WAGE)
    are on the grid already, so the clamp never acts there; calibrated ones
    (``calibrated``) are the export quantization of real activations.
    """

    kind: str
    bits: int
    scale: float = 1.0
    offset: int = 0
    lo: int = 0
    hi: int = 1
    calibrated: bool = False

    @property
    def levels(self) -> int:
        """Thresholds a layer needs to produce these codes: 2^bits - 1."""
        return (1 << self.bits) - 1

    def encode(self, v: torch.Tensor) -> torch.Tensor:
        """int64 codes of the real values ``v`` (sign(0) = +1 for bipolar codes)."""
        if self.kind == "bipolar":
            return (v >= 0).to(torch.int64)
        return torch.round(v / self.scale).clamp_(self.lo, self.hi).to(torch.int64) + self.offset

    def values(self, codes: torch.Tensor) -> torch.Tensor:
        """The integers the engine multiplies: 2b - 1 (bipolar) or the code itself (unsigned)."""
        return 2 * codes - 1 if self.kind == "bipolar" else codes


def pixel_codes(input_bits: int, input_scale: float) -> Codes:
    """The network input: unsigned ``input_bits``-bit pixels that the model multiplies by ``input_scale``."""
    return Codes("unsigned", input_bits, float(input_scale), 0, 0, (1 << input_bits) - 1)


# ---------------------------------------------------------------------------
# Weights
# ---------------------------------------------------------------------------


@dataclass
class Weights:
    """A layer's weights as integer values times a per-neuron scale: W ~= scale[n] * values[n, i]."""

    values: torch.Tensor      # (MH, MW) int64
    scale: torch.Tensor       # (MH,) float64
    bits: int
    encoding: str             # "sym" (odd levels 2q - (2^K - 1)) or "int" (narrow two's complement)


def weight_matrix(weight: torch.Tensor) -> torch.Tensor:
    """A linear weight as it is; a conv weight (C_out, C_in, K, K) as (C_out, K*K*C_in) in im2col order."""
    if weight.dim() != 4:
        return weight
    return torch.from_numpy(np.ascontiguousarray(torch_to_im2col_weights(weight.numpy())))


def layer_weights(layer: nn.Linear | nn.Conv2d, index: int) -> Weights:
    """The integer form of ``layer``'s quantized weights, from its weight quantizer.

    Each quantizer's forward value is an integer grid times a scale: sign
    (BNN, BinaryConnect: scale 1; XNOR-Net/BWN: alpha = mean|W| per neuron;
    DoReFa k = 1: E = mean|W| of the layer) -> 1-bit sym; DoReFa k > 1: the
    values (2q - (2^k-1)) / (2^k-1) -> k-bit sym; WAGE Q(W, k): sigma(k) times
    narrow integers -> k-bit int (k = 2: ternary). A real layer (no weight
    quantizer) becomes 8-bit narrow integers with scale max|W| / 127. The
    decomposition is checked against the quantizer's own output.
    """
    q = getattr(layer, "weight_quant", None)
    with torch.no_grad():
        w = weight_matrix(layer.weight.detach()).double()
        mh = w.shape[0]
        ones = torch.ones(mh, dtype=torch.float64)
        expected = None
        if q is None or isinstance(q, Identity) or (isinstance(q, DorefaWeightQuantizer) and q.bits == 32):
            top = (1 << (REAL_WEIGHT_BITS - 1)) - 1
            peak = float(w.abs().max())
            s = peak / top if peak > 0 else 1.0
            values = torch.round(w / s).clamp_(-top, top).to(torch.int64)
            return Weights(values, ones * s, REAL_WEIGHT_BITS, "int")
        if isinstance(q, (SignQuantizer, BinaryConnectQuantizer)):
            # BinaryConnect deploys sign(w) for both variants (the stochastic variant's test-time real
            # weights have no binary hardware form); the check uses sign(w) for it.
            values, scale, bits, enc = _pm1(w).to(torch.int64), ones, 1, "sym"
            expected = _pm1(w)
        elif isinstance(q, XnorWeightQuantizer):
            values, scale, bits, enc = _pm1(w).to(torch.int64), w.abs().mean(dim=1), 1, "sym"
        elif isinstance(q, DorefaWeightQuantizer):
            k = q.bits
            if k > MAX_CODE_BITS:
                raise DeployError(f"layer {index}: {k}-bit DoReFa weights; the engines take 1..{MAX_CODE_BITS}-bit "
                                  f"weights (train with --wbits 1..{MAX_CODE_BITS})")
            if k == 1:
                values, scale, bits, enc = _pm1(w).to(torch.int64), ones * float(w.abs().mean()), 1, "sym"
            else:
                n = (1 << k) - 1
                wq = weight_matrix(q(layer.weight.detach())).double()
                codes = torch.round((wq + 1) / 2 * n).to(torch.int64)
                values, scale, bits, enc = 2 * codes - n, ones / n, k, "sym"
        elif isinstance(q, WageWeightQuantizer):
            k = q.bits
            if k > MAX_CODE_BITS:
                raise DeployError(f"layer {index}: {k}-bit WAGE weights; the engines take at most "
                                  f"{MAX_CODE_BITS}-bit weights (train with --wbits 2..{MAX_CODE_BITS})")
            sigma = wage_sigma(k)
            wq = weight_matrix(q(layer.weight.detach())).double()
            values, scale, bits, enc = torch.round(wq / sigma).to(torch.int64), ones * sigma, k, "int"
        else:
            raise DeployError(f"layer {index}: weight quantizer {type(q).__name__} has no integer form "
                              f"(known: sign, binaryconnect, xnor_weight, dorefa_weight, wage_weight)")
        if expected is None:
            expected = weight_matrix(q(layer.weight.detach())).double()
        rebuilt = scale[:, None] * values.double()
        if not torch.allclose(rebuilt, expected, rtol=1e-5, atol=1e-7):
            n = int((rebuilt - expected).abs().amax(dim=1).argmax())
            raise DeployError(f"layer {index}, neuron {n}: the {type(q).__name__} weights are not integers "
                              f"times a scale ({bits}-bit {enc})")
        return Weights(values, scale, bits, enc)


# ---------------------------------------------------------------------------
# Threshold search
# ---------------------------------------------------------------------------

LevelFunction = Callable[[torch.Tensor], torch.Tensor]


def search_thresholds(level: LevelFunction, neurons: int, levels: int, lo: int, hi: int,
                      where: str = "layer") -> tuple[np.ndarray, np.ndarray]:
    """Integer thresholds of a per-neuron level function over the dot range [lo, hi].

    ``level(d)`` maps an int64 tensor (R, neurons) of dots (column n = neuron n)
    to int64 codes in 0..levels. A neuron is *negated* (sign -1) when
    ``f(lo) > f(hi)``: its level function is then searched on ``f(-d)``, which
    the engine computes with negated weights. For each neuron and level
    t = 1..levels, ``T_t = min{d in [lo, hi + 1] : f(sign*d) >= t}`` (``hi + 1``
    = never), found by a binary search over every (neuron, level) pair at
    once, evaluating ``level`` itself. Returns (T (neurons, levels) int64,
    sign (neurons,) int64). The range must be symmetric (lo = -hi) so that
    negation keeps it.

    The result is checked: the count ``#{t : d >= T_t}`` must equal
    ``f(sign*d)`` at every T_t - 1 and T_t, at the range ends and at
    :data:`CHECK_SAMPLES` random dots per neuron (every dot when the range has
    at most :data:`EXHAUSTIVE_RANGE` values); otherwise the function is not
    monotone and a :class:`DeployError` names ``where``, the neuron and the dot.
    """
    if lo != -hi:
        raise ValueError(f"{where}: the dot range [{lo}, {hi}] is not symmetric")
    with torch.no_grad():
        ends = level(torch.tensor([[lo] * neurons, [hi] * neurons], dtype=torch.int64))
        _check_codes(ends, levels, torch.tensor([lo, hi])[:, None].expand(2, neurons), where)
        sign = torch.where(ends[0] > ends[1], -1, 1).to(torch.int64)

        def g(d: torch.Tensor) -> torch.Tensor:
            return level(d * sign)

        t = torch.arange(1, levels + 1, dtype=torch.int64)[:, None]
        low = torch.full((levels, neurons), lo, dtype=torch.int64)
        high = torch.full((levels, neurons), hi + 1, dtype=torch.int64)
        while True:
            active = low < high
            if not bool(active.any()):
                break
            mid = torch.div(low + high, 2, rounding_mode="floor").clamp_(max=hi)
            reached = g(mid) >= t
            high = torch.where(active & reached, mid, high)
            low = torch.where(active & ~reached, mid + 1, low)
        thresholds = low.T.contiguous()                     # (neurons, levels)
        _check_thresholds(g, thresholds, levels, lo, hi, where)
    return thresholds.numpy(), sign.numpy()


def _check_codes(codes: torch.Tensor, levels: int, dots: torch.Tensor, where: str) -> None:
    bad = (codes < 0) | (codes > levels)
    if bool(bad.any()):
        r, n = (int(v) for v in torch.nonzero(bad)[0])
        raise DeployError(f"{where}, neuron {n}: the level function gives {int(codes[r, n])} at dot "
                          f"{int(dots[r, n])}, outside the codes 0..{levels}")


def _check_thresholds(g: LevelFunction, thresholds: torch.Tensor, levels: int, lo: int, hi: int,
                      where: str) -> None:
    neurons = thresholds.shape[0]
    if hi - lo + 1 <= EXHAUSTIVE_RANGE:
        probes = [torch.arange(lo, hi + 1, dtype=torch.int64)[:, None].expand(-1, neurons)]
    else:
        gen = torch.Generator().manual_seed(0x5eed)
        probes = [torch.tensor([[lo], [hi]], dtype=torch.int64).expand(2, neurons),
                  torch.randint(lo, hi + 1, (CHECK_SAMPLES, neurons), generator=gen, dtype=torch.int64)]
    probes += [thresholds.T - 1, thresholds.T]
    for d in probes:
        d = d.clamp(lo, hi).contiguous()
        f = g(d)
        _check_codes(f, levels, d, where)
        counted = torch.searchsorted(thresholds, d.T.contiguous(), right=True).T   # #{t : d >= T_t}
        wrong = counted != f
        if bool(wrong.any()):
            r, n = (int(v) for v in torch.nonzero(wrong)[0])
            raise DeployError(f"{where}, neuron {n}: the level function is not monotone on the integer dot range "
                              f"[{lo}, {hi}] (it gives {int(f[r, n])} at dot {int(d[r, n])} where thresholds "
                              f"would give {int(counted[r, n])}); no threshold unit can compute it")


# ---------------------------------------------------------------------------
# The deployed layers
# ---------------------------------------------------------------------------


@dataclass
class DeployedLayer:
    """One matrix-vector layer: input codes -> integer dot -> level function (or integer score).

    ``weights`` are the values the engine multiplies, in the engine's
    orientation: a negated neuron (``sign`` -1) holds its weights negated, so
    the engine's dot is ``-1`` times the model's; :meth:`level_hw` undoes that.
    """

    index: int
    mac: str                          # "xnor" (bipolar bits) or "int" (unsigned codes)
    weights: torch.Tensor             # (MH, MW) int64 values as the engine holds them (negation applied)
    weight_bits: int
    weight_encoding: str
    input: Codes
    gain: torch.Tensor                # (MH,) float64: y = (dot - offset_sum) * gain + bias (model orientation)
    bias: torch.Tensor                # (MH,) float64
    offset_sum: torch.Tensor          # (MH,) int64: input offset times the neuron's weight sum
    post: list[nn.Module]             # the model's modules after the layer, through the next input quantizer
    output: Codes | None              # None: score layer
    sign: torch.Tensor                # (MH,) int64, -1 where the neuron is negated
    dot_bound: int                    # every dot is in [-dot_bound, dot_bound]
    thresholds: np.ndarray | None = None   # (MH, N) int64, engine's dot domain
    affine: np.ndarray | None = None       # (MH, 2) int64 (mul, add), score layers
    affine_bits: int = 0
    conv: ConvGeometry | None = None       # a convolution: its vectors are im2col rows (bnnflow.conv)
    pad_code: int = 0                      # the input code of the padding (the model's pad value)
    pool: int = 0                          # k > 0: k x k max-pool of the output codes

    def vectors(self, x: torch.Tensor) -> torch.Tensor:
        """The layer's input vectors of (n, elements) input codes: x itself, or a conv's (n * pixels, MW) rows."""
        if self.conv is None:
            return x
        g = self.conv
        maps = x.numpy().reshape(len(x), g.ifm_h, g.ifm_w, g.channels)
        return torch.from_numpy(np.ascontiguousarray(im2col(maps, g, self.pad_code).reshape(-1, g.vector_length)))

    def pooled(self, codes: torch.Tensor, n: int) -> torch.Tensor:
        """(n * pixels, MH) output codes -> (n, elements) HWC maps, max-pooled when the layer pools."""
        if self.conv is None:
            return codes
        g = self.conv
        maps = codes.numpy().reshape(n, g.ofm_h, g.ofm_w, codes.shape[1])
        if self.pool:
            maps = max_pool(maps, PoolGeometry(g.ofm_h, g.ofm_w, codes.shape[1], self.pool))
        return torch.from_numpy(np.ascontiguousarray(maps.reshape(n, -1)))

    def apply(self, modules: list[nn.Module], v: torch.Tensor) -> torch.Tensor:
        """``modules`` on (R, MH) pre-activations; a conv's modules (BatchNorm2d, ...) see (R, MH, 1, 1)."""
        if self.conv is not None:
            v = v[:, :, None, None]
        for m in modules:
            v = m(v)
        return v.reshape(v.shape[0], -1) if self.conv is not None else v

    @property
    def kind(self) -> str:
        return f"{self.mac}_{'score' if self.output is None else 'threshold'}"

    @property
    def negated_neurons(self) -> int:
        return int((self.sign < 0).sum())

    def real_input(self, dot: torch.Tensor) -> torch.Tensor:
        """The model's pre-activation y (float32) for model-orientation integer dots (R, MH)."""
        return ((dot - self.offset_sum).double() * self.gain + self.bias).float()

    def level(self, dot: torch.Tensor) -> torch.Tensor:
        """The level function in the model's orientation: next layer's codes of integer dots (R, MH)."""
        return self.output.encode(self.apply(self.post, self.real_input(dot)))

    def level_hw(self, dot: torch.Tensor) -> torch.Tensor:
        """The level function of the engine's dot (negated neurons read ``-dot``)."""
        return self.level(dot * self.sign)

    def score(self, dot: torch.Tensor) -> torch.Tensor:
        """Integer scores of a score layer: ``mul*dot + add``, or the dot itself without an affine."""
        if self.affine is None:
            return dot
        a = torch.from_numpy(self.affine)
        return a[:, 0] * dot + a[:, 1]

    def real_score(self, dot: torch.Tensor) -> torch.Tensor:
        """The model's real score (float64) of integer dots, through copies of its modules in float64."""
        return self.apply(_double_copies(self.post), (dot - self.offset_sum).double() * self.gain + self.bias)


def _block_images(layers: list[DeployedLayer]) -> int:
    """Images per block: BLOCK_ROWS vectors, divided among a convolution's output pixels."""
    return max(1, BLOCK_ROWS // max(layer.conv.output_pixels if layer.conv else 1 for layer in layers))


def _double_copies(modules: list[nn.Module]) -> list[nn.Module]:
    return [copy.deepcopy(m).double().eval() for m in modules]


@dataclass
class ReferenceTrace:
    """Per-layer integer dots (engine orientation) and outputs (codes, then scores) of a batch."""

    dots: list[np.ndarray] = field(default_factory=list)
    outputs: list[np.ndarray] = field(default_factory=list)

    @property
    def scores(self) -> np.ndarray:
        return self.outputs[-1]


@dataclass
class DeployedNet:
    """A trained MLP as the engines run it; ``trace`` / ``scores`` are the verify reference."""

    layers: list[DeployedLayer]
    input: Codes
    constants: dict[str, Any]

    def trace(self, images: np.ndarray) -> ReferenceTrace:
        """Every layer's int64 dots and outputs for ``images`` (N, F) unsigned pixel codes (HWC maps).

        A conv layer's dots are those of every output pixel, (N, pixels*MH) in
        HWC order; its outputs the pooled maps the next layer reads.
        """
        x_all = torch.from_numpy(np.asarray(images).astype(np.int64))
        out = ReferenceTrace([[] for _ in self.layers], [[] for _ in self.layers])
        step = _block_images(self.layers)
        with torch.no_grad():
            for start in range(0, max(len(x_all), 1), step):
                x = x_all[start:start + step]
                n = len(x)
                for k, layer in enumerate(self.layers):
                    dot = exact_dot(layer.input.values(layer.vectors(x)), layer.weights, layer.dot_bound)
                    x = layer.score(dot) if layer.output is None else layer.pooled(layer.level_hw(dot), n)
                    out.dots[k].append(dot.numpy().reshape(n, -1))
                    out.outputs[k].append(x.numpy())
        out.dots = [np.concatenate(d) for d in out.dots]
        out.outputs = [np.concatenate(o) for o in out.outputs]
        return out

    def scores(self, images: np.ndarray) -> np.ndarray:
        """(N, classes) int64 integer scores of the deployed network."""
        return self.trace(images).scores


# ---------------------------------------------------------------------------
# Building the deployed network
# ---------------------------------------------------------------------------


def _is_identity_forward(m: nn.Module) -> bool:
    """Modules whose forward pass is the identity (backward-only quantizers) do not shape activations."""
    return isinstance(m, Identity) or getattr(m, "role", None) == "grad"


def _output_codes(post: list[nn.Module], index: int) -> Codes | None:
    """The codes the next layer reads, from the last quantizer in ``post``; None when the output is real."""
    shaping = [m for m in post if not _is_identity_forward(m)]
    if not shaping:
        return None
    last = shaping[-1]
    if isinstance(last, SIGN_QUANTIZERS):
        return Codes("bipolar", 1)
    if isinstance(last, DorefaActQuantizer) and last.bits != 32:
        k = last.bits
        if k > MAX_CODE_BITS:
            raise DeployError(f"layer {index}: {k}-bit DoReFa activations; the engines take at most "
                              f"{MAX_CODE_BITS}-bit inputs (train with --abits 1..{MAX_CODE_BITS})")
        return Codes("unsigned", k, 1.0 / ((1 << k) - 1), 0, 0, (1 << k) - 1)
    if isinstance(last, WageActQuantizer):
        if not any(isinstance(m, nn.ReLU) for m in shaping[:-1]):
            raise DeployError(f"layer {index}: WAGE activations without a ReLU before them are signed; "
                              f"the engines take unsigned codes")
        k = last.bits - 1          # Q(relu(a), k) = sigma(k) * c, c in 0..2^(k-1) - 1
        if k > MAX_CODE_BITS:
            raise DeployError(f"layer {index}: {last.bits}-bit WAGE activations need {k}-bit codes; the engines "
                              f"take at most {MAX_CODE_BITS} (train with --abits 2..{MAX_CODE_BITS + 1})")
        return Codes("unsigned", k, wage_sigma(last.bits), 0, 0, (1 << k) - 1)
    return None


def _non_negative(post: list[nn.Module]) -> bool:
    """True when the last activation-shaping module makes the output >= 0 (ReLU, DoReFa's clip)."""
    shaping = [m for m in post if not _is_identity_forward(m)]
    return bool(shaping) and isinstance(shaping[-1], (nn.ReLU, DorefaActQuantizer))


def _real_codes(scale: float, non_negative: bool, abits: int, index: int) -> Codes:
    """The export quantization of real activations with ``scale``: unsigned, or signed offset by 2^(abits-1)."""
    if isinstance(abits, bool) or not isinstance(abits, int) or not 2 <= abits <= MAX_CODE_BITS:
        raise DeployError(f"layer {index}: --abits {abits!r}: calibrated activation codes take 2..{MAX_CODE_BITS} bits")
    if non_negative:
        return Codes("unsigned", abits, scale, 0, 0, (1 << abits) - 1, calibrated=True)
    half = 1 << (abits - 1)
    return Codes("unsigned", abits, scale, half, -half, half - 1, calibrated=True)


def _calibrated_codes(stats: _Statistics, non_negative: bool, abits: int, index: int) -> Codes:
    """Codes of real activations by the scale rule of the module docstring (training-split statistics)."""
    _real_codes(1.0, non_negative, abits, index)          # the bit width is checked before any division
    peak, top = (stats.peak, (1 << abits) - 1) if non_negative else (stats.abs_peak, (1 << (abits - 1)) - 1)
    return _real_codes(peak / top if peak > 0 else 1.0, non_negative, abits, index)


@dataclass
class _Statistics:
    """What calibration needs of a layer's real activations over the training split."""

    peak: float          # max(v)
    abs_peak: float      # max |v|
    mean_abs: float      # mean |v| (XNOR-Net's beta)


def _statistics(layer: DeployedLayer, x: torch.Tensor, modules: list[nn.Module]) -> _Statistics:
    """max, max|.| and mean|.| of ``modules`` applied to the layer's real pre-activations, block by block.

    The maxima are exact; the mean adds numpy's (fixed-order) block sums with
    ``math.fsum``, so it does not depend on torch's threads. Blocks keep the
    memory at a few BLOCK_ROWS x MH tensors for any training set.
    """
    peak, abs_peak, sums, count = -math.inf, 0.0, [], 0
    step = _block_images([layer])
    for start in range(0, len(x), step):
        dot = exact_dot(layer.input.values(layer.vectors(x[start:start + step].to(torch.int64))), layer.weights,
                        layer.dot_bound)
        v = layer.apply(modules, layer.real_input(dot))
        a = v.double().abs().numpy()
        peak, abs_peak = max(peak, float(v.max())), max(abs_peak, float(a.max()))
        sums.append(float(a.sum()))
        count += a.size
    return _Statistics(peak, abs_peak, math.fsum(sums) / count)


def _next_codes(layer: DeployedLayer, x: torch.Tensor) -> torch.Tensor:
    """The layer's output codes (uint8, pooled maps of a conv) of its input codes ``x``, block by block."""
    blocks = []
    step = _block_images([layer])
    for start in range(0, len(x), step):
        rows = x[start:start + step].to(torch.int64)
        dot = exact_dot(layer.input.values(layer.vectors(rows)), layer.weights, layer.dot_bound)
        blocks.append(layer.pooled(layer.level_hw(dot), len(rows)).to(torch.uint8))
    return torch.cat(blocks)


def _score_affine(layer: DeployedLayer, index: int) -> tuple[np.ndarray | None, int]:
    """(mul, add) integers of a score layer and their field width (None, 0: the score is the dot).

    The model's real score is affine in the dot: A[n] * dot + B[n], read from the
    modules in float64 at dots 0 and +-D (and checked at D/2). The midpoint of the
    B range is subtracted from every B first: a constant shared by all classes
    does not change the argmax, and centred offsets leave more of the field to
    the factors. When every A[n] is
    the same positive factor (one scale per layer: DoReFa/XNOR-Net real last
    layers, WAGE, BNN), argmax is unchanged by dividing it out: mul = 1,
    add = round(B / A) (no affine at all when every add is 0). Otherwise mul and
    add are A and B in fixed point with the largest fraction F whose integers
    fit ``affine_bits``: the widest of at most 24 bits for which the 32-bit
    score bound 2^(bits-1) * (D + 1) holds.
    """
    mh = layer.weights.shape[0]
    bound = layer.dot_bound
    probe = torch.tensor([[0] * mh, [bound] * mh, [-bound] * mh, [bound // 2] * mh], dtype=torch.int64)
    with torch.no_grad():
        s = layer.real_score(probe).numpy()
    b = s[0]
    a = (s[1] - s[0]) / bound
    for row, d in ((2, -bound), (3, bound // 2)):
        err = np.abs(s[row] - (a * d + b))
        tol = 1e-9 * (np.abs(a) * abs(d) + np.abs(b)) + 1e-12
        if (err > tol).any():
            n = int(np.argmax(err - tol))
            raise DeployError(f"layer {index}, neuron {n}: the score is not an affine function of the integer dot "
                              f"(at dot {d}: {s[row, n]:.9g}, the line through dots 0 and {bound} gives "
                              f"{a[n] * d + b[n]:.9g}); the score unit computes mul*dot + add")
    b = b - (b.max() + b.min()) / 2      # a constant shared by every class leaves the argmax alone
    max_bits = AFFINE_BITS
    while max_bits >= 2 and (1 << (max_bits - 1)) * (bound + 1) > (1 << (SCORE_BITS - 1)) - 1:
        max_bits -= 1
    shared = a.size and a.min() > 0 and (a.max() - a.min()) <= 1e-9 * a.max()
    if shared:
        add = np.round(b / a.mean()).astype(np.int64)
        if not add.any():
            return None, 0
        bits = max(2, _signed_bits(int(add.min()), int(add.max())))
        if bound + int(np.abs(add).max()) > (1 << (SCORE_BITS - 1)) - 1:
            n = int(np.argmax(np.abs(add)))
            raise DeployError(f"layer {index}, neuron {n}: the score offset {int(add[n])} (bias / scale) plus a dot "
                              f"of up to {bound} does not fit the {SCORE_BITS}-bit score")
        return np.stack([np.ones(mh, dtype=np.int64), add], axis=1), bits
    if max_bits < 2:
        raise DeployError(f"layer {index}: a dot of up to {bound} leaves no room for an affine within the "
                          f"{SCORE_BITS}-bit score")
    top = (1 << (max_bits - 1)) - 1
    peak = float(max(np.abs(a).max(), np.abs(b).max()))
    if peak == 0:
        return None, 0
    frac = math.floor(math.log2(top / peak))
    while True:
        mul, add = np.round(a * 2.0 ** frac).astype(np.int64), np.round(b * 2.0 ** frac).astype(np.int64)
        if max(np.abs(mul).max(), np.abs(add).max()) <= top:
            break
        frac -= 1
    if not mul.any():
        raise DeployError(f"layer {index}: the score factors {a.min():.3g}..{a.max():.3g} round to 0 in "
                          f"{max_bits}-bit fixed point (offsets up to {np.abs(b).max():.3g} take the range)")
    return np.stack([mul, add], axis=1), max_bits


def _signed_bits(lo: int, hi: int) -> int:
    bits = 1
    while not (-(1 << (bits - 1)) <= lo and hi <= (1 << (bits - 1)) - 1):
        bits += 1
    return bits


def exact_dot(x: torch.Tensor, weights: torch.Tensor, bound: int) -> torch.Tensor:
    """int64 ``x @ weights.T`` of integer tensors whose every partial sum is within +-``bound``.

    Below 2^24 (2^53) the float32 (float64) GEMM is exact: every partial sum is
    an integer the float holds exactly. It is some 20x faster than torch's int64
    matmul, which has no BLAS; above 2^53, the int64 product.
    """
    for dtype, limit in ((torch.float32, 1 << 24), (torch.float64, 1 << 53)):
        if bound < limit:
            return (x.to(dtype) @ weights.to(dtype).T).to(torch.int64)
    return x @ weights.T


def _model_chain(model: nn.Module) -> tuple[float, list[nn.Module], list[int]]:
    """(input scale, flat module chain, positions of its linear layers); refuses what has no integer form."""
    if not hasattr(model, "deployment_chain"):
        raise DeployError(f"{type(model).__name__} has no hardware mapping (no deployment_chain)")
    model.eval()
    input_scale, chain = model.deployment_chain()
    linears = [i for i, m in enumerate(chain) if isinstance(m, (nn.Linear, nn.Conv2d))]
    if not linears:
        raise DeployError("the model has no linear layer to deploy")
    if linears[0] != 0:
        names = ", ".join(type(m).__name__ for m in chain[:linears[0]])
        raise DeployError(f"layer 0: the model applies {names} to the pixels before the first layer, which the "
                          f"engines do not (export XNOR-Net/DoReFa with --first-layer real)")
    quantizers = (*SIGN_QUANTIZERS, DorefaActQuantizer, WageActQuantizer)
    if all(isinstance(getattr(chain[i], "weight_quant", Identity()), Identity) for i in linears) \
            and not any(isinstance(m, quantizers) for m in chain):
        method = getattr(model, "method", "float")
        raise DeployError(f"--method {method} has no hardware mapping: its weights and activations are real; "
                          f"train a quantized method (bnn, binaryconnect, xnor, dorefa, wage) to export")
    return float(input_scale), chain, linears


def _before_sign(post: list[nn.Module]) -> list[nn.Module]:
    """``post`` up to (without) a final sign quantizer: the real values XNOR-Net's beta averages."""
    shaping = [i for i, m in enumerate(post) if not _is_identity_forward(m)]
    if shaping and isinstance(post[shaping[-1]], SIGN_QUANTIZERS):
        return post[:shaping[-1]]
    return post


def deploy(model: nn.Module, input_bits: int, calibration: np.ndarray | None = None,
           abits: int = DEFAULT_ABITS, constants: dict[str, Any] | None = None) -> DeployedNet:
    """The deployed form of ``model`` (an MLP of any quantized method) with its thresholds and affines.

    ``calibration``: unsigned pixel codes of the training split, used for the
    calibrated constants (activation scales, XNOR-Net's beta); or
    ``constants`` as a previous call returned them (``DeployedNet.constants``,
    stored in the artifact), which rebuilds exactly the same network without
    the data (their ``abits`` wins over the argument). A network without
    calibrated constants (BNN, DoReFa, WAGE) needs neither. Raises
    :class:`DeployError` naming the layer for anything the engines cannot run
    (float, conv, widths beyond 8 bits, a non-monotone level function, a score
    that does not fit).
    """
    input_scale, chain, linears = _model_chain(model)
    stored = constants or {}
    abits = int(stored.get("abits", abits))
    n = len(linears)
    raw_posts = [chain[pos + 1:(linears[k + 1] if k + 1 < n else len(chain))] for k, pos in enumerate(linears)]
    pools = [_pool_of(post, k) for k, post in enumerate(raw_posts)]        # (k x k, level modules before it)
    posts = [[m for m in post if not isinstance(m, (nn.MaxPool2d, nn.Flatten))] for post in raw_posts]
    in_map = _image_map(model)
    # which layers' outputs must be measured on the training split: a real output without a stored
    # scale, or the input of an XNOR-Net layer (its beta) without a stored beta
    needs_scale = [k + 1 < n and _output_codes(posts[k], k) is None
                   and "activation_scale" not in _layer_entry(stored, k) for k in range(n)]
    needs_beta = [k + 1 < n and bool(getattr(chain[linears[k + 1]], "input_scaling", False))
                  and "beta" not in _layer_entry(stored, k + 1) for k in range(n)]
    measured = [k for k in range(n) if needs_scale[k] or needs_beta[k]]
    if measured and calibration is None:
        raise DeployError(f"layer {measured[0]}: its output needs calibration; pass the training images "
                          f"(or the constants stored at export in network.deployment)")
    x = torch.from_numpy(np.asarray(calibration).astype(np.uint8)) if measured else None
    record: dict[str, Any] = {"abits": abits, "layers": []}
    codes = pixel_codes(input_bits, input_scale)
    beta_next: float | None = None
    layers: list[DeployedLayer] = []
    for k, pos in enumerate(linears):
        lin, post = chain[pos], posts[k]
        entry: dict[str, Any] = {}
        beta = 1.0
        if getattr(lin, "input_scaling", False):
            beta = entry["beta"] = _constant(stored, k, "beta", beta_next)
        layer = _layer(k, lin, codes, post, beta, in_map)
        layer.pool = pools[k][0]
        with torch.no_grad():
            if k + 1 == n:
                layer.affine, layer.affine_bits = _score_affine(layer, k)
            else:
                stats = _statistics(layer, x, _before_sign(post)) if k in measured else None
                if needs_beta[k]:
                    beta_next = stats.mean_abs
                out = _output_codes(post, k)
                if out is None:
                    non_negative = _non_negative(post)
                    out = (_calibrated_codes(stats, non_negative, abits, k) if needs_scale[k]
                           else _stored_codes(stored, k, non_negative, abits))
                    entry["activation_scale"] = out.scale
                layer.output = out
                t, sign = search_thresholds(layer.level, layer.weights.shape[0], out.levels, -layer.dot_bound,
                                            layer.dot_bound, where=f"layer {k}")
                layer.sign = torch.from_numpy(sign)
                layer.weights = layer.weights * layer.sign[:, None]
                layer.thresholds = t
                if layer.pool:
                    _check_pool_order(layer, pools[k][1], k)
                x = _next_codes(layer, x) if measured and k < measured[-1] else None
        record["layers"].append(entry)
        layers.append(layer)
        codes = layer.output
        if layer.conv is not None:
            g, mh = layer.conv, layer.weights.shape[0]
            in_map = (mh, g.ofm_h // layer.pool, g.ofm_w // layer.pool) if layer.pool else (mh, g.ofm_h, g.ofm_w)
        else:
            in_map = None
    return DeployedNet(layers, pixel_codes(input_bits, input_scale), record)


def _image_map(model: nn.Module) -> tuple[int, int, int] | None:
    """(C, H, W) of a conv net's input image, None for an MLP; multi-channel images are refused (for now)."""
    shape = getattr(model, "image_shape", None)
    if shape is None:
        return None
    c, h, w = (int(v) for v in shape)
    if c != 1:
        raise DeployError(f"layer 0: {c}-channel images: the exported vectors would have to be reordered to "
                          "pixel-major (HWC); only single-channel images export for now")
    return c, h, w


def _pool_of(post: list[nn.Module], k: int) -> tuple[int, int]:
    """(k, position): the max-pool in ``post`` (k x k, stride k) and how many level modules precede it; (0, 0)."""
    pools = [i for i, m in enumerate(post) if isinstance(m, nn.MaxPool2d)]
    if not pools:
        return 0, 0
    if len(pools) > 1:
        raise DeployError(f"layer {k}: {len(pools)} max-pools follow it; the engines pool once per layer")
    m = post[pools[0]]
    size, stride = m.kernel_size, m.stride
    size = size if isinstance(size, int) else size[0] if len(set(size)) == 1 else None
    stride = stride if isinstance(stride, int) else stride[0] if len(set(stride)) == 1 else None
    pad = m.padding if isinstance(m.padding, int) else max(m.padding)
    dil = m.dilation if isinstance(m.dilation, int) else max(m.dilation)
    if size is None or stride != size or pad or dil != 1 or m.ceil_mode:
        raise DeployError(f"layer {k}: {m} is not a k x k max-pool with stride k (no padding, dilation or "
                          "ceil_mode), the one the max-pool unit computes")
    before = sum(1 for x in post[:pools[0]] if not isinstance(x, (nn.MaxPool2d, nn.Flatten)))
    return size, before


def _check_pool_order(layer: DeployedLayer, before: int, k: int) -> None:
    """The hardware pools the output codes; the model pools ``post[:before]``'s values and applies the rest.

    The two agree exactly when everything after the pool (and the encoder) is
    non-decreasing on the values that reach it; checked on the sorted values
    of every neuron over a grid of dots (XNOR-Net's BatchNorm after the pool
    fails it when a gamma is negative).
    """
    after = layer.post[before:]
    if not any(not _is_identity_forward(m) for m in after):
        return
    mh, bound = layer.weights.shape[0], layer.dot_bound
    dots = torch.linspace(-bound, bound, 1025).round().to(torch.int64)[:, None].expand(-1, mh).contiguous()
    with torch.no_grad():
        values = layer.apply(layer.post[:before], layer.real_input(dots)).sort(dim=0).values
        codes = layer.output.encode(layer.apply(after, values))
    falling = torch.nonzero(codes[1:] < codes[:-1])
    if falling.numel():
        n = int(falling[0][1])
        names = ", ".join(type(m).__name__ for m in after if not _is_identity_forward(m))
        raise DeployError(f"layer {k}, channel {n}: the modules after its max-pool ({names}) decrease for this "
                          "channel; the max-pool unit pools the output codes, which equals the model's pool only "
                          "when what follows the pool is non-decreasing (move the pool after the activation)")


def _pad_code(codes: Codes, conv: nn.Conv2d, k: int) -> int:
    """The input code of the value ``conv`` pads its (quantized) input with."""
    if not any(conv.padding):
        return 0
    value = float(getattr(conv, "pad_value", 0.0))
    if codes.kind == "bipolar":
        if value not in (1.0, -1.0):
            raise DeployError(f"layer {k}: pads its +-1 inputs with {value:g}, which has no 1-bit code; pad them "
                              "with +1 (QuantConv2d pad_value=1, the default of bnnflow's sign-input "
                              "convolutions) and retrain")
        return int(value > 0)
    code = round(value / codes.scale) + codes.offset
    if not codes.lo + codes.offset <= code <= codes.hi + codes.offset \
            or abs(codes.scale * (code - codes.offset) - value) > 1e-9 * max(1.0, abs(value)):
        raise DeployError(f"layer {k}: pads with {value:g}, which is not one of its {codes.bits}-bit input codes")
    return int(code)


def _layer(k: int, lin: nn.Linear | nn.Conv2d, codes: Codes, post: list[nn.Module], beta: float,
           in_map: tuple[int, int, int] | None = None) -> DeployedLayer:
    """Layer ``k`` before its output is known: weights, the scales folded into ``gain``, the input offset.

    ``in_map`` (C, H, W) is the feature map the layer reads: a convolution
    slides over it; a fully connected layer after a convolution reads it
    flattened pixel-major (HWC), so its weight columns are reordered from
    torch's (C, H, W) flatten.
    """
    w = layer_weights(lin, k)
    geometry, pad_code = None, 0
    if isinstance(lin, nn.Conv2d):
        if in_map is None:
            raise DeployError(f"layer {k}: a convolution without an input feature map")
        stride = lin.stride if isinstance(lin.stride, tuple) else (lin.stride,)
        if set(stride) != {1} or set(lin.dilation) != {1} or lin.groups != 1 \
                or len(set(lin.kernel_size)) != 1 or len(set(lin.padding)) != 1:
            raise DeployError(f"layer {k}: {lin.__class__.__name__}(kernel {lin.kernel_size}, stride {lin.stride}, "
                              f"padding {lin.padding}, dilation {lin.dilation}, groups {lin.groups}): the "
                              "sliding-window unit takes square kernels, stride 1, equal padding, no groups")
        per_feature = [m for m in post if isinstance(m, nn.BatchNorm1d)]
        if per_feature:
            raise DeployError(f"layer {k}: {type(per_feature[0]).__name__}({per_feature[0].num_features}) normalizes "
                              "the flattened map feature by feature, so every pixel would need its own thresholds; "
                              "the engines hold one set per output channel (normalize per channel before the "
                              "flatten)")
        c, h, wd = in_map
        geometry = ConvGeometry(h, wd, c, lin.kernel_size[0], lin.padding[0])
        pad_code = _pad_code(codes, lin, k)
    elif in_map is not None:
        w = Weights(torch.from_numpy(np.ascontiguousarray(chw_to_hwc_columns(w.values.numpy(), *in_map))),
                    w.scale, w.bits, w.encoding)
    mac = "xnor" if codes.kind == "bipolar" else "int"
    if mac == "xnor" and (w.bits != 1 or w.encoding != "sym"):
        raise DeployError(f"layer {k}: bipolar (sign) inputs need 1-bit weights for the XNOR engine, "
                          f"got {w.bits}-bit {w.encoding} weights")
    mh, mw = w.values.shape
    gain = codes.scale * w.scale * beta * float(getattr(lin, "output_scale", 1.0))
    bias = lin.bias.detach().double() if lin.bias is not None else torch.zeros(mh, dtype=torch.float64)
    wmax = (1 << w.bits) - 1 if w.encoding == "sym" else (1 << (w.bits - 1)) - 1
    xmax = 1 if mac == "xnor" else (1 << codes.bits) - 1
    return DeployedLayer(
        index=k, mac=mac, weights=w.values, weight_bits=w.bits, weight_encoding=w.encoding, input=codes,
        gain=gain, bias=bias, offset_sum=codes.offset * w.values.sum(dim=1), post=list(post), output=None,
        sign=torch.ones(mh, dtype=torch.int64), dot_bound=mw * xmax * wmax, conv=geometry, pad_code=pad_code)


def _layer_entry(stored: dict[str, Any], k: int) -> dict[str, Any]:
    entries = stored.get("layers") or []
    return entries[k] if k < len(entries) and isinstance(entries[k], dict) else {}


def _constant(stored: dict[str, Any], k: int, key: str, calibrated: float | None) -> float:
    value = _layer_entry(stored, k).get(key, calibrated)
    if value is None:
        raise DeployError(f"layer {k}: {key} is calibrated on the training images; pass them (or the constants "
                          f"stored at export in network.deployment)")
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
        raise DeployError(f"layer {k}: deployment constant {key} is {value!r}, expected a positive number")
    return float(value)


def _stored_codes(stored: dict[str, Any], k: int, non_negative: bool, abits: int) -> Codes:
    return _real_codes(_constant(stored, k, "activation_scale", None), non_negative, abits, k)
