"""The golden model: a bit-exact integer model of the engines, in numpy.

It reads only the exported artifact (never the torch model) and computes what
the hardware computes, layer by layer, with the padding and negation exactly as
stored. Every other level (torch, RTL, HLS, driver) is compared against it.

Speed without giving up exactness: every layer's accumulator is one integer
matrix product plus a per-neuron constant,

    acc[n] = sum_i x[i] * v[n][i]  +  c[n]

(``int_*`` layers: ``v`` the weight values, ``c = 0``, unsigned input codes
times weights; ``xnor_*``: ``v = 2w - 1`` and
``popcount(XNOR(a, w)) = sum a*w + sum (1-a)(1-w) = sum a (2w - 1) + #zeros(w)``,
so ``c[n]`` is the number of 0 weight bits in neuron ``n``'s stored, padded row).
A threshold layer outputs ``#{t : acc >= T[n][t]}``; a score layer
``mul*dot + add`` (``dot = 2 acc - MW`` for xnor, ``acc`` for int; no affine:
``mul = 1, add = 0``), as docs/ARTIFACT.md defines them.
Padded inputs are 0, so the product runs over the real ``MW`` inputs only and
needs no padded copy; ``c`` still counts the stored padded lanes.
numpy has no BLAS for int64, so the product runs in float32 or float64 (BLAS
GEMM) whenever that is exact, which :func:`choose_arithmetic` decides from a
worst-case bound computed per layer (:func:`layer_bound`). Where the bound
allows, two neurons share one float column (``lo + R * hi`` with ``R`` a power
of two beyond twice any single sum), halving the GEMM; LFC's 1024-wide binary
layers do, in float32.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from . import artifact as art
from . import conv, packing

#: (dtype, M): every integer of magnitude <= M is exactly representable in dtype
#: (2^significand precision: 2^24, 2^53). A sum of integer terms whose absolute
#: values add up to at most M has every partial sum, in any order and with or
#: without fused multiply-add, in [-M, M]: each one is an exact integer, so no
#: rounding ever happens. Ordered from fastest; int64 (numpy's integer matmul,
#: exact up to 2^63 - 1 but without BLAS) is the fallback.
EXACT_FLOAT_LIMITS: tuple[tuple[type, int], ...] = ((np.float32, 1 << 24), (np.float64, 1 << 53))

#: Images per block: the intermediate activations of a block stay in cache.
BLOCK_ROWS = 1024


def argmax_lowest(scores: np.ndarray) -> np.ndarray:
    """Prediction rule of every level: argmax over classes, ties to the lowest index."""
    return np.argmax(np.asarray(scores), axis=-1)


def exact_limit(dtype: np.dtype) -> int:
    """Largest magnitude up to which every integer is exact in ``dtype`` (per EXACT_FLOAT_LIMITS)."""
    for d, limit in EXACT_FLOAT_LIMITS:
        if np.dtype(d) == dtype:
            return limit
    return int(np.iinfo(dtype).max)


def product_bound(layer: art.LayerSpec) -> int:
    """Largest ``|x . v|`` of one neuron: ``MW`` terms of at most ``(2^input_bits - 1) * max|v|``."""
    return layer.product_bound(layer.in_features)


def pair_radix(layer: art.LayerSpec) -> int:
    """Power of two ``R > 2 * product_bound``: two neurons' sums ``lo + R*hi`` separate exactly."""
    return 1 << (2 * product_bound(layer)).bit_length()


def layer_bound(layer: art.LayerSpec, offset: np.ndarray, thresholds: np.ndarray | None, pack: int = 1) -> int:
    """Largest integer magnitude the arithmetic of ``layer`` can meet, packing ``pack`` neurons per column.

    ``pack == 1``: each partial sum of ``x . v`` is within
    ``m = MW * (2^input_bits - 1) * max|v|`` (:func:`product_bound`). ``pack == 2``: the
    product runs against ``v_lo + R v_hi`` (``R`` = :func:`pair_radix`), whose
    terms are at most ``(2^input_bits - 1) max|v| (1 + R)``,
    so every partial sum is within ``m (1 + R)``; splitting it (``hi =
    rint(P / R)``, ``lo = P - R hi``) meets nothing larger. Thresholds are
    compared in the product's domain as ``T - c``, which must be exact too.
    """
    m = product_bound(layer)
    bound = m if pack == 1 else m * (1 + pair_radix(layer))
    if thresholds is not None and thresholds.size:
        shifted = thresholds - offset[:, None]
        bound = max(bound, int(shifted.max()), -int(shifted.min()))   # no np.abs: it wraps at -2^63
    return bound


def choose_arithmetic(layer: art.LayerSpec, offset: np.ndarray, thresholds: np.ndarray | None) -> tuple[np.dtype, int]:
    """The cheapest exact (dtype, neurons per product column) for ``layer``.

    Tried in order: float32 with two neurons per column (half the GEMM),
    float32, float64 with two, float64, then int64 (one per column); the first
    whose :func:`layer_bound` is within the dtype's :data:`EXACT_FLOAT_LIMITS`
    wins. LFC's hidden layers (MW 1024, 0/1 inputs: 1024 * 4097 < 2^24) pair up
    in float32; its 8-bit first layer (784 * 255 * (1 + 2^19) > 2^24) does not.
    """
    for dtype, limit in EXACT_FLOAT_LIMITS:
        for pack in (2, 1):
            if pack <= layer.out_features and layer_bound(layer, offset, thresholds, pack) <= limit:
                return np.dtype(dtype), pack
    bound = layer_bound(layer, offset, thresholds)
    if bound > np.iinfo(np.int64).max:
        raise OverflowError(f"layer {layer.index}: accumulator bound {bound} does not fit int64")
    return np.dtype(np.int64), 1


@dataclass
class GoldenTrace:
    """Per-layer integer values for a batch: accumulators (pre-threshold) and outputs."""

    accumulators: list[np.ndarray]  # (N, pixels*MH) int64 per layer: signed sum / popcount (FC: pixels = 1)
    outputs: list[np.ndarray]       # (N, out_elements) per layer: threshold counts (0/1 bits for N = 1), pooled
                                    # maps of a conv (HWC), or scores

    @property
    def scores(self) -> np.ndarray:
        return self.outputs[-1]


@dataclass(frozen=True)
class _LayerPlan:
    """What one layer's exact product needs, prepared once."""

    layer: art.LayerSpec
    codes: np.ndarray            # (MH, MW_pad) uint8 weight codes as stored, padding included
    dtype: np.dtype              # arithmetic of the product (float32, float64 or int64)
    pack: int                    # neurons per product column: 1, or 2 (neuron j + R * neuron j + ceil(MH/2))
    radix: int                   # R of a paired layer (pair_radix), 0 otherwise
    bound: int                   # layer_bound(): every value the arithmetic meets is within +-bound
    weights_t: np.ndarray        # (MW, ceil(MH/pack)) in dtype, C-contiguous: x @ weights_t is a plain GEMM
    offset: np.ndarray           # (MH,) int64 c: 0, or the count of 0 weight bits over the padded row
    thresholds: np.ndarray | None        # (MH, N) int64 as stored
    thresholds_product: np.ndarray | None  # (MH, N) T - c in dtype: acc >= T  <=>  product >= T - c
    affine: np.ndarray | None    # (MH, 2) int64 (mul, add) of a score layer

    def values(self) -> np.ndarray:
        """(MH, MW_pad) int64 per-lane multipliers v: ``acc = x . v + c``."""
        layer = self.layer
        if layer.mac == "xnor":
            return self.codes.astype(np.int64) * 2 - 1
        return art.weight_values(self.codes, layer.weight_bits, layer.weight_encoding)

    def score(self, acc: np.ndarray) -> np.ndarray:
        """Scores from int64 accumulators: dot (2 acc - MW or acc), then mul*dot + add under an affine."""
        dot = 2 * acc - self.layer.in_features if self.layer.mac == "xnor" else acc
        if self.affine is None:
            return dot
        return self.affine[:, 0] * dot + self.affine[:, 1]

    def split(self, product: np.ndarray) -> list[tuple[slice, np.ndarray]]:
        """(neuron columns, their exact products x . (2w - 1)) from a GEMM result (reused in place)."""
        mh = self.layer.out_features
        if self.pack == 1:
            return [(slice(0, mh), product)]
        half = product.shape[1]
        high = np.rint(product * (1.0 / self.radix))   # P / R = hi + lo / R, |lo / R| < 1/2; R a power of two
        product -= high * self.radix                    # lo = P - R hi: exact integers within the bound
        return [(slice(0, half), product), (slice(half, mh), high[:, :mh - half])]


class GoldenModel:
    """Integer reference of the deployed network described by an artifact."""

    def __init__(self, artifact: art.Artifact):
        self.artifact = artifact
        self._plans: list[_LayerPlan] = []
        for i, layer in enumerate(artifact.layers):
            # (MH, MW_pad) codes with the stored padding, neuron/synapse order
            codes = packing.unfold_weight_bits(artifact.weight_lanes(i), layer.in_features_padded)
            t = artifact.thresholds(i)
            t = None if t is None else t.astype(np.int64)
            if layer.mac == "xnor":
                offset = (codes == 0).sum(axis=1, dtype=np.int64)
            else:
                offset = np.zeros(layer.out_features, dtype=np.int64)
            dtype, pack = choose_arithmetic(layer, offset, t)
            bound = layer_bound(layer, offset, t, pack)
            assert bound <= exact_limit(dtype), \
                f"layer {i}: bound {bound} exceeds the exact range {exact_limit(dtype)} of {dtype}"
            plan = _LayerPlan(layer, codes, dtype, pack, 0, bound, np.empty(0), offset, t,
                              None if t is None else (t - offset[:, None]).astype(dtype), artifact.affine(i))
            v = plan.values()[:, :layer.in_features].astype(dtype)   # padded inputs are 0: real lanes only
            radix = 0
            if pack == 2:
                radix = pair_radix(layer)
                half = -(-layer.out_features // 2)
                high = np.zeros((half, layer.in_features), dtype=dtype)
                high[:layer.out_features - half] = v[half:]      # odd MH: the last column's high half is 0
                v = v[:half] + radix * high
            self._plans.append(dataclasses.replace(plan, radix=radix, weights_t=np.ascontiguousarray(v.T)))

    @property
    def layer_dtypes(self) -> list[np.dtype]:
        """The arithmetic each layer's product runs in (chosen from its exactness bound)."""
        return [p.dtype for p in self._plans]

    @property
    def layer_packing(self) -> list[int]:
        """Neurons per product column of each layer (2: two neurons share one float, see layer_bound)."""
        return [p.pack for p in self._plans]

    def _checked(self, images: np.ndarray) -> np.ndarray:
        """``images`` validated (shape, integer dtype, value range), not converted."""
        images = np.asarray(images)
        if images.ndim != 2 or images.shape[1] != self.artifact.input_features:
            raise ValueError(
                f"images must have shape (N, {self.artifact.input_features}), got {images.shape}")
        if images.dtype == np.bool_ or not np.issubdtype(images.dtype, np.integer):
            # a float 0.9 would silently become pixel 0: the hardware reads integers, so must the caller
            raise TypeError(f"images must be an integer array (unsigned {self.artifact.input_bits}-bit values), "
                            f"got dtype {images.dtype}")
        if images.size:
            lo, hi = (0 if images.dtype.kind == "u" else images.min()), images.max()
            if lo < 0 or hi >= (1 << self.artifact.input_bits):
                raise ValueError(f"image values must be unsigned {self.artifact.input_bits}-bit integers, "
                                 f"got values in [{images.min()}, {images.max()}]")
        return images

    def check_images(self, images: np.ndarray) -> np.ndarray:
        """``images`` validated against the artifact's input shape and width, as int64."""
        return self._checked(images).astype(np.int64)

    @property
    def block_rows(self) -> int:
        """Images per block: BLOCK_ROWS vectors, divided among a convolution's output pixels."""
        return max(1, BLOCK_ROWS // max(p.layer.pixels for p in self._plans))

    def _run(self, images: np.ndarray, keep_trace: bool) -> GoldenTrace:
        """Scores (and with ``keep_trace`` every layer's accumulators and outputs), block by block.

        A convolution's vectors are the im2col rows of its input maps (one per
        output pixel, :func:`bnnflow.conv.im2col`); its outputs are pooled
        after the thresholds. Per image, a trace holds a conv layer's
        accumulators for every output pixel (HWC order) and its outputs after
        the pool: what the next layer reads.
        """
        x_all = self._checked(images)
        n = x_all.shape[0]
        plans = self._plans
        accs = [np.empty((n, p.layer.acc_elements), dtype=np.int64) for p in plans] if keep_trace else []
        outs = [np.empty((n, p.layer.out_elements), dtype=np.int64) for p in plans] if keep_trace else []
        scores = None if keep_trace else np.empty((n, plans[-1].layer.out_elements), dtype=np.int64)
        step = self.block_rows
        for start in range(0, n, step):
            rows = slice(start, start + step)
            x = x_all[rows].astype(plans[0].dtype)          # values < 2^8: exact in every dtype
            m = x.shape[0]
            for k, p in enumerate(plans):
                layer = p.layer
                last, score = k == len(plans) - 1, layer.is_score   # the loader keeps score last
                if layer.conv is not None:
                    x = self._vectors(p, x, m)
                mh = layer.out_features
                fc = layer.conv is None
                out_all = outs[k] if keep_trace and fc else (scores if last and fc else None)
                acc = np.empty((x.shape[0], mh), dtype=np.int64) if score or keep_trace else None
                # a conv layer's codes are pooled below, also when it is the last layer (a one-layer
                # artifact of bnnflow.layer_cycles: its output is the pooled map)
                x_next = None if last and layer.conv is None else \
                    np.empty((x.shape[0], mh), dtype=np.int64 if last else plans[k + 1].dtype)
                for cols, product in p.split(x @ p.weights_t):  # exact: |every partial sum| <= p.bound
                    if acc is not None:
                        acc[:, cols] = product                  # exact integers, so the cast is exact
                    if not score:
                        tp = p.thresholds_product[cols]
                        count = product >= tp[:, 0]             # == (acc >= T): both sides exact
                        if tp.shape[1] > 1:
                            count = count.astype(np.int64)
                            for t in range(1, tp.shape[1]):
                                count += product >= tp[:, t]
                        if x_next is not None:
                            x_next[:, cols] = count             # next layer's input codes
                        if out_all is not None:
                            out_all[rows, cols] = count
                if acc is not None:
                    acc += p.offset
                    if keep_trace:
                        accs[k][rows] = acc.reshape(m, layer.acc_elements)
                    if score:
                        out_all[rows] = p.score(acc)
                if layer.conv is not None and x_next is not None:
                    x_next = self._pooled(layer, x_next, m)
                    if keep_trace:
                        outs[k][rows] = x_next
                    elif last:
                        scores[rows] = x_next
                x = x_next
        if not keep_trace:
            return GoldenTrace([], [scores])
        return GoldenTrace(accs, outs)

    @staticmethod
    def _vectors(p: _LayerPlan, x: np.ndarray, m: int) -> np.ndarray:
        """(m, H*W*C) input maps -> (m * pixels, K*K*C) im2col vectors of a conv layer."""
        c = p.layer.conv
        cols = conv.im2col(x.reshape(m, c.ifm_h, c.ifm_w, c.channels), c.geometry, c.pad_code)
        return np.ascontiguousarray(cols.reshape(-1, p.layer.in_features))

    @staticmethod
    def _pooled(layer: art.LayerSpec, codes: np.ndarray, m: int) -> np.ndarray:
        """(m * pixels, MH) output codes of a conv layer -> (m, out_elements): max-pooled when it pools."""
        g = layer.conv.geometry
        maps = codes.reshape(m, g.ofm_h, g.ofm_w, layer.out_features)
        pool = layer.conv.pool_geometry(layer.out_features)
        if pool is not None:
            maps = conv.max_pool(maps, pool)
        return np.ascontiguousarray(maps.reshape(m, layer.out_elements))

    def trace(self, images: np.ndarray) -> GoldenTrace:
        """Every layer's int64 accumulators and outputs for ``images`` (N, input_features)."""
        return self._run(images, keep_trace=True)

    def scores(self, images: np.ndarray) -> np.ndarray:
        """(N, num_classes) int64 scores."""
        return self._run(images, keep_trace=False).scores

    def predict(self, images: np.ndarray) -> np.ndarray:
        """Predicted class per image (argmax of the scores, ties to the lowest class)."""
        return argmax_lowest(self.scores(images))

    def _trace_int64(self, images: np.ndarray) -> GoldenTrace:
        """The straightforward int64 computation (padded input, two products per XNOR layer).

        Kept as the reference the fast path is tested and benchmarked against
        (tests/test_golden_fast.py, bench/golden_speed.py); about 100x slower.
        """
        x = self.check_images(images)
        m = x.shape[0]
        accs, outs = [], []
        for p in self._plans:
            layer, t = p.layer, p.thresholds
            if layer.conv is not None:
                x = self._vectors(p, x, m)
            padded = np.zeros((x.shape[0], layer.in_features_padded), dtype=np.int64)
            padded[:, :layer.in_features] = x
            if layer.mac == "int":
                acc = padded @ p.values().T               # unsigned codes times weight values
            else:
                # popcount of XNOR = matches of ones + matches of zeros
                w = p.codes.astype(np.int64)
                acc = padded @ w.T + (1 - padded) @ (1 - w).T
            accs.append(acc.reshape(m, layer.acc_elements))
            if layer.is_score:
                x = p.score(acc)
            else:
                x = (acc[:, :, None] >= t[None, :, :]).sum(axis=2, dtype=np.int64)
                if layer.conv is not None:
                    x = self._pooled(layer, x, m)
            outs.append(x)
        return GoldenTrace(accs, outs)
