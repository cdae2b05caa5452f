"""The exported artifact: manifest.json plus packed data files (docs/ARTIFACT.md).

This module reads and validates an artifact and hands every consumer the same
decoded view (layer specs, weight bits, thresholds). Anything wrong with the
files -- missing, corrupted, another format version, shapes that disagree --
raises :class:`ArtifactError` naming the file and field.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from . import accel, packing
from .conv import ConvGeometry, PoolGeometry

FORMAT_NAME = "bnnflow-artifact"
#: 3: layers are described by parameters (weight bits and encoding, multi-thresholds, score affine).
#: 2: the 'hardware' section (the accelerator's signature, docs/ACCEL.md) is required.
FORMAT_VERSION = 4
#: Versions this reader accepts: version 3 is version 4 without convolutions.
READABLE_VERSIONS = (3, 4)
MANIFEST = "manifest.json"
#: Widest unsigned input element the engines and the driver's byte layout take.
MAX_INPUT_BITS = 8
#: Widest weight code, most thresholds per neuron, widest affine field, widest score.
MAX_WEIGHT_BITS = 8
MAX_THRESHOLDS = 255
MAX_AFFINE_BITS = 32
MAX_SCORE_BITS = 32

#: Layer kinds: (how the accumulator is formed) x (what the layer outputs). Widths are parameters.
INT_THRESHOLD = "int_threshold"    # unsigned codes x weight values -> N thresholds -> unsigned count
XNOR_THRESHOLD = "xnor_threshold"  # bipolar bits, XNOR-popcount -> N thresholds -> unsigned count
XNOR_SCORE = "xnor_score"          # bipolar bits, XNOR-popcount -> signed score (2*acc - MW, optional affine)
INT_SCORE = "int_score"            # unsigned codes x weight values -> signed score (dot, optional affine)
LAYER_KINDS = (INT_THRESHOLD, XNOR_THRESHOLD, XNOR_SCORE, INT_SCORE)

#: Weight encodings (docs/ARTIFACT.md, "Values and arithmetic").
SYM = "sym"   # code q in [0, 2^K - 1] is the value 2q - (2^K - 1): odd levels, K = 1 is +-1
INT = "int"   # K-bit two's complement, narrow: [-(2^(K-1) - 1), 2^(K-1) - 1]; K >= 2 (K = 2 is ternary)
WEIGHT_ENCODINGS = (SYM, INT)


class ArtifactError(ValueError):
    """A missing, corrupted or inconsistent artifact."""


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def bit_length_signed(lo: int, hi: int) -> int:
    """Bits of a two's-complement field that holds every integer in [lo, hi]."""
    bits = 1
    while not (-(1 << (bits - 1)) <= lo and hi <= (1 << (bits - 1)) - 1):
        bits += 1
    return bits


def weight_max(bits: int, encoding: str) -> int:
    """Largest weight magnitude of a ``bits``-bit code: 2^K - 1 (sym), 2^(K-1) - 1 (int)."""
    return (1 << bits) - 1 if encoding == SYM else (1 << (bits - 1)) - 1


def weight_values(codes: np.ndarray, bits: int, encoding: str) -> np.ndarray:
    """Integer values (int64) of weight codes: sym ``2q - (2^K - 1)``, int two's complement."""
    q = np.asarray(codes).astype(np.int64)
    if encoding == SYM:
        return 2 * q - ((1 << bits) - 1)
    return np.where(q >= (1 << (bits - 1)), q - (1 << bits), q)


def weight_codes(values: np.ndarray, bits: int, encoding: str) -> np.ndarray:
    """Inverse of :func:`weight_values` (uint8 codes); ValueError for a value the encoding cannot hold."""
    v = np.asarray(values).astype(np.int64)
    top = weight_max(bits, encoding)
    if encoding == SYM:
        ok = (np.abs(v) <= top) & ((v + top) % 2 == 0)
        codes = (v + top) // 2
    else:
        ok = np.abs(v) <= top
        codes = v & ((1 << bits) - 1)
    if not ok.all():
        bad = int(v[~ok].flat[0])
        allowed = f"odd values -{top}..{top}" if encoding == SYM else f"-{top}..{top}; narrow, -{top + 1} is unused"
        raise ValueError(f"weight value {bad} has no {bits}-bit {encoding} code (allowed: {allowed})")
    return codes.astype(np.uint8)


def pad_weight_code(bits: int, encoding: str) -> int:
    """The code of a padded lane: all ones for sym (XNOR 0 against a 0 input), 0 for int."""
    return (1 << bits) - 1 if encoding == SYM else 0


@dataclass(frozen=True)
class ConvSpec:
    """The convolution a layer computes, one output pixel per matrix-vector product (docs/ARTIFACT.md).

    The layer slides a ``kernel`` x ``kernel`` window (stride 1) over an
    ``ifm_h`` x ``ifm_w`` map of ``channels`` channels framed by ``pad``
    pixels of ``pad_code``; its MW inputs are the window's im2col vector
    (:func:`bnnflow.conv.im2col`), its MH neurons the output channels. With
    ``pool`` > 0 a ``pool`` x ``pool`` max-pool (stride ``pool``) follows the
    activation. Feature maps stream pixel by pixel, channels together (HWC).
    """

    ifm_h: int
    ifm_w: int
    channels: int
    kernel: int
    pad: int = 0
    pad_code: int = 0
    pool: int = 0

    @property
    def geometry(self) -> ConvGeometry:
        """Raises ValueError naming the field when the window does not fit the map."""
        return ConvGeometry(self.ifm_h, self.ifm_w, self.channels, self.kernel, self.pad)

    def pool_geometry(self, out_channels: int) -> PoolGeometry | None:
        if not self.pool:
            return None
        g = self.geometry
        return PoolGeometry(g.ofm_h, g.ofm_w, out_channels, self.pool)

    @property
    def out_dims(self) -> tuple[int, int]:
        """(H, W) of the layer's output map, after the pool."""
        g = self.geometry
        return (g.ofm_h // self.pool, g.ofm_w // self.pool) if self.pool else (g.ofm_h, g.ofm_w)

    def problem(self, in_features: int, input_bits: int) -> str | None:
        """Why this convolution cannot be one the layer computes (None if it can)."""
        for key in ("ifm_h", "ifm_w", "channels", "kernel"):
            value = getattr(self, key)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                return f"field 'conv.{key}' is {value!r}, expected a positive integer"
        for key in ("pad", "pad_code", "pool"):
            value = getattr(self, key)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                return f"field 'conv.{key}' is {value!r}, expected an integer >= 0"
        if self.pad >= self.kernel:
            return f"field 'conv.pad' is {self.pad}, expected 0..kernel-1 = {self.kernel - 1}"
        if self.pad_code >= 1 << input_bits:
            return f"field 'conv.pad_code' is {self.pad_code}, not a {input_bits}-bit input code"
        if self.pool == 1:
            return "field 'conv.pool' is 1: use 0 for no pool, k >= 2 for a k x k max-pool"
        g_h, g_w = self.ifm_h + 2 * self.pad - self.kernel + 1, self.ifm_w + 2 * self.pad - self.kernel + 1
        if g_h < 1 or g_w < 1:
            return (f"a {self.kernel}x{self.kernel} kernel with pad {self.pad} does not fit the "
                    f"{self.ifm_h}x{self.ifm_w} input map (fields 'conv.kernel', 'conv.ifm_h', 'conv.ifm_w')")
        if self.pool and (self.pool > g_h or self.pool > g_w):
            return f"field 'conv.pool' is {self.pool}: the window does not fit the {g_h}x{g_w} output map"
        if in_features != self.kernel * self.kernel * self.channels:
            return (f"field 'in_features' is {in_features}, a {self.kernel}x{self.kernel} window over "
                    f"{self.channels} channels has {self.kernel * self.kernel * self.channels} (kernel^2 * channels)")
        return None


@dataclass
class LayerSpec:
    """One matrix-vector layer as the engines see it (all fields are in the manifest).

    The kind says how the accumulator is formed (``xnor``: popcount of XNOR of
    bipolar bits; ``int``: unsigned input codes times weight values) and what
    comes out (N thresholds -> an unsigned count, or a signed score); the other
    fields are widths. Every consumer asks this class for the ranges it needs
    (:meth:`acc_range`, :meth:`dot_bound`, ...) instead of switching on kinds.
    """

    index: int
    kind: str
    in_features: int          # MW, real inputs
    out_features: int         # MH
    pe: int
    simd: int
    input_bits: int           # bits per input element (1 for binary activations)
    weights: str              # relative path of the packed weight file
    thresholds: str | None    # relative path of the threshold file (None for score layers)
    weight_bits: int = 1      # K: bits per weight code
    weight_encoding: str = SYM
    n_thresholds: int = -1    # N per neuron (threshold kinds, default 1); 0 for score kinds
    affine: str | None = None  # score layers: relative path of the (mul, add) file, or None
    affine_bits: int = 0      # two's-complement width of the stored mul and add fields (0: no affine)
    mul_bits: int = 0         # the range of mul: two's complement of mul_bits <= affine_bits (default affine_bits)
    in_features_padded: int = 0
    nf: int = 0
    sf: int = 0
    acc_bits: int = 0         # accumulator width (signed for int kinds, unsigned popcount for xnor kinds)
    threshold_bits: int = 0   # two's-complement width of each threshold (0 for score layers)
    output_bits: int = 1      # count width for threshold layers, signed score width for score layers
    output_signed: bool = False
    conv: ConvSpec | None = None   # None: a fully connected layer (one vector per image)
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.n_thresholds < 0:
            self.n_thresholds = 1 if self.kind.endswith("_threshold") else 0
        if self.affine_bits and not self.mul_bits:
            self.mul_bits = self.affine_bits
        self.derive()

    # -- what the kind means ----------------------------------------------------
    @property
    def mac(self) -> str:
        """``xnor`` (popcount of XNOR on bipolar bits) or ``int`` (codes times weight values)."""
        return "xnor" if self.kind.startswith("xnor") else "int"

    @property
    def has_thresholds(self) -> bool:
        return self.kind.endswith("_threshold")

    @property
    def is_score(self) -> bool:
        return not self.has_thresholds

    @property
    def input_max(self) -> int:
        """Largest input code (1 for bipolar bits)."""
        return (1 << self.input_bits) - 1

    @property
    def weight_max(self) -> int:
        return weight_max(self.weight_bits, self.weight_encoding)

    def product_bound(self, lanes: int) -> int:
        """Largest ``|sum x*w|`` over ``lanes`` lanes of an int layer (the bound every width comes from)."""
        return lanes * self.input_max * self.weight_max

    def acc_range(self) -> tuple[int, int]:
        """Smallest and largest accumulator value: [0, MW_pad] (xnor), +-MW_pad*xmax*wmax (int)."""
        if self.mac == "xnor":
            return 0, self.in_features_padded
        peak = self.product_bound(self.in_features_padded)
        return -peak, peak

    def dot_bound(self) -> int:
        """Largest |dot| of a score layer: real MW (xnor: 2*acc - MW) or MW*xmax*wmax (int)."""
        return self.in_features if self.mac == "xnor" else self.product_bound(self.in_features)

    def score_bound(self) -> int:
        """Largest |score|: the dot bound, or ``2^(mul_bits-1) * D + 2^(affine_bits-1)`` under an affine.

        mul has its own (narrower) range because it multiplies the dot: a real
        last layer's one shared scale becomes mul = 1 (mul_bits = 2) and its
        bias a wide add, without a 2^(affine_bits-1)-fold score bound.
        """
        if not self.affine_bits:
            return self.dot_bound()
        return (1 << (self.mul_bits - 1)) * self.dot_bound() + (1 << (self.affine_bits - 1))

    # -- the image: one vector (fully connected) or one per output pixel (conv) --------
    @property
    def is_conv(self) -> bool:
        return self.conv is not None

    @property
    def pixels(self) -> int:
        """Matrix-vector products per image: the conv's output pixels (before a pool), 1 for a FC layer."""
        return self.conv.geometry.output_pixels if self.conv else 1

    @property
    def in_elements(self) -> int:
        """Input elements per image: the input map (H*W*C) of a conv, MW of a FC layer."""
        return self.conv.ifm_h * self.conv.ifm_w * self.conv.channels if self.conv else self.in_features

    @property
    def acc_elements(self) -> int:
        """Accumulators per image: output pixels x MH (before a pool)."""
        return self.pixels * self.out_features

    @property
    def out_elements(self) -> int:
        """Output elements per image, after a pool: what the next layer reads."""
        if not self.conv:
            return self.out_features
        h, w = self.conv.out_dims
        return h * w * self.out_features

    @property
    def in_stream_words(self) -> int:
        """Words of one image on the layer's input stream: SF (FC), or the input map's pixels x channels/SIMD."""
        return self.in_elements // self.simd if self.conv else self.sf

    @property
    def out_stream_words(self) -> int:
        """Words of one image on the layer's output stream (after a pool): NF (FC), or pixels x NF (conv)."""
        return self.out_elements // self.pe

    @property
    def cycles_per_image(self) -> int:
        """NF * SF per vector times the vectors of one image."""
        return self.cycles_per_vector * self.pixels

    def problem(self) -> str | None:
        """Why this combination of parameters is not one the engines implement (None if it is)."""
        if self.kind not in LAYER_KINDS:
            return f"field 'kind' is {self.kind!r}, expected one of {LAYER_KINDS}"
        if self.conv is not None:
            conv_problem = self.conv.problem(self.in_features, self.input_bits)
            if conv_problem:
                return conv_problem
            if self.conv.channels % self.simd:
                return (f"SIMD={self.simd} does not divide the convolution's {self.conv.channels} input channels: "
                        "a word holds the channels of one window position")
            if self.is_score:
                return f"a {self.kind} layer is the classifier and must be fully connected (field 'conv')"
        if self.weight_encoding not in WEIGHT_ENCODINGS:
            return f"field 'weight_encoding' is {self.weight_encoding!r}, expected one of {WEIGHT_ENCODINGS}"
        if not 1 <= self.weight_bits <= MAX_WEIGHT_BITS:
            return f"field 'weight_bits' is {self.weight_bits}, expected 1..{MAX_WEIGHT_BITS}"
        if self.weight_encoding == INT and self.weight_bits < 2:
            return "an 'int' weight encoding needs weight_bits >= 2 (1-bit weights are 'sym': +-1)"
        if self.mac == "xnor" and (self.input_bits != 1 or self.weight_bits != 1 or self.weight_encoding != SYM):
            return (f"a {self.kind} layer reads 1-bit inputs and 1-bit sym weights, got input_bits={self.input_bits}, "
                    f"weight_bits={self.weight_bits} {self.weight_encoding}")
        if self.has_thresholds:
            if not 1 <= self.n_thresholds <= MAX_THRESHOLDS:
                return f"field 'n_thresholds' is {self.n_thresholds}, expected 1..{MAX_THRESHOLDS} for a {self.kind} layer"
            if self.affine is not None or self.affine_bits or self.mul_bits:
                return (f"a {self.kind} layer has no affine (fields 'affine_bits', 'mul_bits' are "
                        f"{self.affine_bits}, {self.mul_bits})")
        else:
            if self.n_thresholds != 0:
                return f"field 'n_thresholds' is {self.n_thresholds}, a {self.kind} layer has none (0)"
            if self.affine_bits and not 2 <= self.affine_bits <= MAX_AFFINE_BITS:
                return f"field 'affine_bits' is {self.affine_bits}, expected 0 or 2..{MAX_AFFINE_BITS}"
            if self.affine_bits and not 2 <= self.mul_bits <= self.affine_bits:
                return f"field 'mul_bits' is {self.mul_bits}, expected 2..affine_bits ({self.affine_bits})"
            if not self.affine_bits and self.mul_bits:
                return f"field 'mul_bits' is {self.mul_bits} without an affine (affine_bits 0): expected 0"
            if (self.affine is None) != (self.affine_bits == 0):
                return (f"field 'affine' is {self.affine!r} but 'affine_bits' is {self.affine_bits} "
                        "(a file exactly when affine_bits > 0)")
            if self.output_bits > MAX_SCORE_BITS:
                return (f"scores need {self.output_bits} bits (|score| <= {self.score_bound()}), more than "
                        f"{MAX_SCORE_BITS}: use fewer affine_bits")
        return None

    def derive(self) -> None:
        """Fill the fields that follow from shape, folding and the parameters."""
        self.in_features_padded = packing.pad_to_multiple(self.in_features, self.simd)
        self.nf = self.out_features // self.pe
        self.sf = self.in_features_padded // self.simd
        lo, hi = self.acc_range()
        self.acc_bits = max(1, hi.bit_length()) if self.mac == "xnor" else bit_length_signed(lo, hi)
        if self.has_thresholds:
            self.threshold_bits = bit_length_signed(lo, hi + 1)
            self.output_bits, self.output_signed = max(1, self.n_thresholds.bit_length()), False
        else:
            bound = self.score_bound()
            self.threshold_bits = 0
            self.output_bits, self.output_signed = bit_length_signed(-bound, bound), True

    @property
    def weight_depth(self) -> int:
        return self.nf * self.sf

    @property
    def weight_word_bits(self) -> int:
        """Bits of one PE's weight word: SIMD lanes of K bits."""
        return self.simd * self.weight_bits

    @property
    def neuron_param_bits(self) -> int:
        """Bits of one PE's entry in the neuron-parameter memory: N*TB (thresholds), 2*AB (affine), else 0."""
        if self.has_thresholds:
            return self.n_thresholds * self.threshold_bits
        return 2 * self.affine_bits

    @property
    def cycles_per_vector(self) -> int:
        return self.nf * self.sf

    @property
    def in_stream_bits(self) -> int:
        """TDATA width of the layer's input stream: SIMD elements of input_bits."""
        return self.simd * self.input_bits

    @property
    def out_stream_bits(self) -> int:
        """TDATA width of the layer's output stream: PE elements of output_bits."""
        return self.pe * self.output_bits

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data.pop("extra")
        if data["conv"] is None:
            data.pop("conv")     # a fully connected layer has no 'conv' object
        data.update(self.extra)
        return data


_LAYER_FIELDS = ("index", "kind", "in_features", "out_features", "pe", "simd", "input_bits", "weights", "thresholds",
                 "weight_bits", "weight_encoding", "n_thresholds", "affine", "affine_bits", "mul_bits")


class Artifact:
    """A loaded, validated artifact directory."""

    def __init__(self, root: Path, manifest: dict[str, Any], layers: list[LayerSpec]):
        self.root = Path(root)
        self.manifest = manifest
        self.layers = layers

    # -- network-level facts -------------------------------------------------
    @property
    def network(self) -> dict[str, Any]:
        return self.manifest["network"]

    @property
    def input_features(self) -> int:
        return int(self.network["input_features"])

    @property
    def input_bits(self) -> int:
        return int(self.network["input_bits"])

    @property
    def num_classes(self) -> int:
        return int(self.network["num_classes"])

    @property
    def signature(self) -> int:
        """The hardware signature a bitstream for this network reports (docs/ACCEL.md)."""
        return int(self.manifest["hardware"]["signature"], 16)

    def path(self, relative: str) -> Path:
        """``root / relative``; refuses a path that would leave the export folder."""
        return safe_relative(self.root, relative, str(self.root / MANIFEST))

    # -- decoded data ----------------------------------------------------------
    def weight_lanes(self, i: int) -> np.ndarray:
        """(PE, NF*SF, SIMD) uint8 weight codes of layer ``i``, as the engines address them (1-bit: bits)."""
        layer = self.layers[i]
        k = layer.weight_bits
        path = self.path(layer.weights)
        nbytes = -(-layer.weight_word_bits // 8)
        raw = np.fromfile(path, dtype=np.uint8)
        expected = layer.pe * layer.weight_depth * nbytes
        if raw.size != expected:
            raise ArtifactError(
                f"{path}: {raw.size} bytes, layer {i} expects {expected} (PE={layer.pe} x depth="
                f"{layer.weight_depth} x {nbytes} bytes per word of SIMD={layer.simd} x {k}-bit codes)")
        lanes = packing.bytes_to_codes(raw.reshape(layer.pe, layer.weight_depth, nbytes), layer.simd, k)
        spare = np.unpackbits(raw.reshape(-1, nbytes), axis=1, bitorder="little")[:, layer.weight_word_bits:]
        if spare.any():
            raise ArtifactError(f"{path}: layer {i} has bits set above lane {layer.simd - 1} of a word "
                                f"(bits >= SIMD*weight_bits = {layer.weight_word_bits} must be 0)")
        if layer.weight_encoding == INT and (lanes == 1 << (k - 1)).any():
            raise ArtifactError(f"{path}: layer {i} has the weight code {1 << (k - 1)} (= -{1 << (k - 1)}), which the "
                                f"narrow {k}-bit int encoding does not use (values -{(1 << (k - 1)) - 1}.."
                                f"{(1 << (k - 1)) - 1})")
        if layer.in_features_padded > layer.in_features:
            pad = pad_weight_code(k, layer.weight_encoding)
            # fold_weight_codes fills padding with a marker: folding an all-0 matrix marks exactly the padded lanes
            pad_mask = packing.fold_weight_codes(np.zeros((layer.out_features, layer.in_features), np.uint8),
                                                 layer.pe, layer.simd, pad=1) == 1
            if (lanes[pad_mask] != pad).any():
                raise ArtifactError(f"{path}: layer {i} has a padded lane (synapse >= {layer.in_features}) whose "
                                    f"weight code is not {pad}; padding weights must be {pad} "
                                    "(docs/ARTIFACT.md, Padding)")
        return lanes

    def weight_codes(self, i: int) -> np.ndarray:
        """(MH, MW) weight codes of layer ``i`` in neuron/synapse order (padding removed)."""
        return packing.unfold_weight_bits(self.weight_lanes(i), self.layers[i].in_features)

    def weight_values(self, i: int) -> np.ndarray:
        """(MH, MW) int64 weight values of layer ``i`` (codes decoded per the layer's encoding)."""
        layer = self.layers[i]
        return weight_values(self.weight_codes(i), layer.weight_bits, layer.weight_encoding)

    def _int32_file(self, i: int, rel: str, per_neuron: int, what: str) -> np.ndarray:
        layer = self.layers[i]
        path = self.path(rel)
        size = path.stat().st_size
        count = layer.out_features * per_neuron
        if size != 4 * count:
            raise ArtifactError(f"{path}: {size} bytes, layer {i} expects {4 * count} "
                                f"({layer.out_features} neurons x {per_neuron} int32 {what})")
        return np.fromfile(path, dtype="<i4").astype(np.int64).reshape(layer.pe, layer.nf, per_neuron)

    def folded_thresholds(self, i: int) -> np.ndarray | None:
        """(PE, NF, N) int64 thresholds of layer ``i`` (None for a score layer)."""
        layer = self.layers[i]
        if layer.thresholds is None:
            return None
        path = self.path(layer.thresholds)
        folded = self._int32_file(i, layer.thresholds, layer.n_thresholds, "thresholds")
        lo, hi = -(1 << (layer.threshold_bits - 1)), (1 << (layer.threshold_bits - 1)) - 1
        if folded.min() < lo or folded.max() > hi:
            bad = int(folded[(folded < lo) | (folded > hi)][0])
            raise ArtifactError(f"{path}: threshold {bad} of layer {i} does not fit its "
                                f"{layer.threshold_bits}-bit field [{lo}, {hi}]")
        falling = np.argwhere(np.diff(folded, axis=2) < 0)
        if falling.size:
            p, nf, t = (int(v) for v in falling[0])
            raise ArtifactError(f"{path}: layer {i}, neuron {nf * layer.pe + p}: threshold {t + 1} "
                                f"({int(folded[p, nf, t + 1])}) is below threshold {t} ({int(folded[p, nf, t])}); "
                                "a neuron's thresholds must be non-decreasing")
        return folded

    def thresholds(self, i: int) -> np.ndarray | None:
        """(MH, N) thresholds of layer ``i`` in neuron order (None for a score layer)."""
        folded = self.folded_thresholds(i)
        return None if folded is None else packing.unfold_thresholds(folded)

    def folded_affine(self, i: int) -> np.ndarray | None:
        """(PE, NF, 2) int64 (mul, add) of score layer ``i`` (None without an affine)."""
        layer = self.layers[i]
        if layer.affine is None:
            return None
        folded = self._int32_file(i, layer.affine, 2, "(mul, add) pairs")
        lo, hi = -(1 << (layer.affine_bits - 1)), (1 << (layer.affine_bits - 1)) - 1
        if folded.min() < lo or folded.max() > hi:
            bad = int(folded[(folded < lo) | (folded > hi)][0])
            raise ArtifactError(f"{self.path(layer.affine)}: affine value {bad} of layer {i} does not fit its "
                                f"{layer.affine_bits}-bit field [{lo}, {hi}]")
        mul = folded[..., 0]
        lo, hi = -(1 << (layer.mul_bits - 1)), (1 << (layer.mul_bits - 1)) - 1
        if mul.min() < lo or mul.max() > hi:
            bad = int(mul[(mul < lo) | (mul > hi)][0])
            raise ArtifactError(f"{self.path(layer.affine)}: mul {bad} of layer {i} is outside its mul_bits="
                                f"{layer.mul_bits} range [{lo}, {hi}] (the score width assumes it)")
        return folded

    def affine(self, i: int) -> np.ndarray | None:
        """(MH, 2) (mul, add) of score layer ``i`` in neuron order (None without an affine)."""
        folded = self.folded_affine(i)
        return None if folded is None else packing.unfold_thresholds(folded)


def _require(mapping: dict[str, Any], key: str, where: str, kind: type | tuple[type, ...]) -> Any:
    """``mapping[key]``, which must exist and be of ``kind`` (a bool is never taken for an int)."""
    if key not in mapping:
        raise ArtifactError(f"{where}: missing field '{key}'")
    value = mapping[key]
    kinds = kind if isinstance(kind, tuple) else (kind,)
    if not isinstance(value, kinds) or (isinstance(value, bool) and bool not in kinds):
        expected = " or ".join("null" if k is type(None) else k.__name__ for k in kinds)
        raise ArtifactError(f"{where}: field '{key}' is {type(value).__name__} {value!r}, expected {expected}")
    return value


def _require_int(mapping: dict[str, Any], key: str, where: str, lo: int, hi: int | None = None) -> int:
    value = _require(mapping, key, where, int)
    if value < lo or (hi is not None and value > hi):
        allowed = f">= {lo}" if hi is None else f"in {lo}..{hi}"
        raise ArtifactError(f"{where}: field '{key}' is {value}, expected an integer {allowed}")
    return value


#: The fields of each manifest section that name files (relative to the export folder).
PATH_FIELDS = {"vectors": ("images", "labels", "scores"), "rtl": ("top", "accel_top", "sources", "memories"),
               "hls": ("header", "tb")}


def section_paths(manifest: dict[str, Any]) -> list[tuple[str, str]]:
    """(where, relative path) of every file the manifest's layers and sections name."""
    out = []
    layers = manifest.get("layers")
    for i, layer in enumerate(layers if isinstance(layers, list) else []):
        if isinstance(layer, dict):
            out += [(f"layers[{i}].{key}", layer[key]) for key in ("weights", "thresholds", "affine")
                    if isinstance(layer.get(key), str)]
    for section, keys in PATH_FIELDS.items():
        body = manifest.get(section)
        if not isinstance(body, dict):
            continue
        for key in keys:
            value = body.get(key)
            values = value if isinstance(value, list) else [value]
            out += [(f"{section}.{key}", v) for v in values if isinstance(v, str)]
    return out


def safe_relative(root: Path, rel: str, where: str) -> Path:
    """``root / rel``, refusing absolute paths and paths that leave ``root`` (``..``, symlinks)."""
    if not rel or Path(rel).is_absolute() or ".." in Path(rel).parts or "\\" in rel:
        raise ArtifactError(f"{where}: path {rel!r} must be relative and stay inside the export folder {root}")
    path = root / rel
    try:
        path.resolve().relative_to(root.resolve())
    except ValueError:
        raise ArtifactError(f"{where}: path {rel!r} resolves outside the export folder {root}") from None
    return path


def _check_files(root: Path, manifest: dict[str, Any], where: str, verify_checksums: bool) -> dict[str, Any]:
    files = _require(manifest, "files", where, dict)
    for rel, info in files.items():
        fw = f"{where}: files[{rel!r}]"
        path = safe_relative(root, rel, fw)
        if not isinstance(info, dict):
            raise ArtifactError(f"{fw}: expected an object with 'sha256' and 'bytes', got {info!r}")
        expected = _require(info, "sha256", fw, str)
        if len(expected) != 64 or any(c not in "0123456789abcdef" for c in expected):
            raise ArtifactError(f"{fw}: field 'sha256' is {expected!r}, expected 64 lowercase hex digits")
        size = _require_int(info, "bytes", fw, 0)
        if not path.is_file():
            raise ArtifactError(f"{path}: listed in {MANIFEST} 'files' but missing")
        actual_size = path.stat().st_size
        if actual_size != size:
            raise ArtifactError(f"{path}: {actual_size} bytes, {MANIFEST} 'files' says {size} "
                                "(truncated, extended or replaced after export)")
        if verify_checksums:
            actual = sha256_file(path)
            if actual != expected:
                raise ArtifactError(
                    f"{path}: checksum mismatch (sha256 {actual[:16]}..., manifest says {expected[:16]}...); "
                    "the file was changed or corrupted after export")
    for field_where, rel in section_paths(manifest):
        safe_relative(root, rel, f"{where}: {field_where}")
        if rel not in files:
            raise ArtifactError(f"{where}: {field_where} names '{rel}', which is not listed (nor checksummed) in 'files'")
    return files


def _load_layer(raw: Any, i: int, where: str) -> LayerSpec:
    lw = f"{where}: layers[{i}]"
    if not isinstance(raw, dict):
        raise ArtifactError(f"{lw}: expected an object, got {type(raw).__name__}")
    values: dict[str, Any] = {}
    for key in _LAYER_FIELDS:
        if key in ("thresholds", "affine"):
            values[key] = _require(raw, key, lw, (str, type(None)))
        elif key in ("kind", "weights", "weight_encoding"):
            values[key] = _require(raw, key, lw, str)
        else:
            low = 0 if key in ("index", "n_thresholds", "affine_bits", "mul_bits") else 1
            high = {"input_bits": MAX_INPUT_BITS, "weight_bits": MAX_WEIGHT_BITS, "n_thresholds": MAX_THRESHOLDS,
                    "affine_bits": MAX_AFFINE_BITS, "mul_bits": MAX_AFFINE_BITS}.get(key)
            values[key] = _require_int(raw, key, lw, low, high)
    if values["index"] != i:
        raise ArtifactError(f"{lw}: field 'index' is {values['index']}, expected {i} (layers are listed in order)")
    if values["kind"] not in LAYER_KINDS:
        raise ArtifactError(f"{lw}: field 'kind' is {values['kind']!r}, expected one of {LAYER_KINDS}")
    if values["out_features"] % values["pe"]:
        raise ArtifactError(f"{lw}: PE={values['pe']} does not divide out_features={values['out_features']}")
    if values["simd"] > values["in_features"]:
        raise ArtifactError(f"{lw}: SIMD={values['simd']} is wider than in_features={values['in_features']}")
    if "conv" in raw:
        values["conv"] = _load_conv(raw["conv"], lw, values["in_features"], values["input_bits"])
    layer = LayerSpec(**values)
    problem = layer.problem()
    if problem:
        raise ArtifactError(f"{lw}: {problem}")
    for derived in ("in_features_padded", "nf", "sf", "acc_bits", "threshold_bits", "output_bits"):
        got = _require(raw, derived, lw, int)
        if got != getattr(layer, derived):
            raise ArtifactError(
                f"{lw}: field '{derived}' is {got}, but shape, folding and widths give {getattr(layer, derived)}")
    signed = _require(raw, "output_signed", lw, bool)
    if signed != layer.output_signed:
        raise ArtifactError(f"{lw}: field 'output_signed' is {signed}, a {layer.kind} layer's is {layer.output_signed}")
    if (layer.thresholds is None) == layer.has_thresholds:
        raise ArtifactError(f"{lw}: a {layer.kind} layer {'needs' if layer.thresholds is None else 'has no'} thresholds")
    return layer


_CONV_FIELDS = ("ifm_h", "ifm_w", "channels", "kernel", "pad", "pad_code", "pool")


def _load_conv(raw: Any, lw: str, in_features: int, input_bits: int) -> ConvSpec:
    """A layer's 'conv' object: every field an integer, and a window that fits its map and in_features."""
    cw = f"{lw}: conv"
    if not isinstance(raw, dict):
        raise ArtifactError(f"{cw}: expected an object, got {type(raw).__name__}")
    unknown = sorted(set(raw) - set(_CONV_FIELDS))
    if unknown:
        raise ArtifactError(f"{cw}: unknown field '{unknown[0]}' (fields: {', '.join(_CONV_FIELDS)})")
    values = {key: _require_int(raw, key, cw, 0 if key in ("pad", "pad_code", "pool") else 1) for key in _CONV_FIELDS}
    spec = ConvSpec(**values)
    problem = spec.problem(in_features, input_bits)
    if problem:
        raise ArtifactError(f"{lw}: {problem}")
    return spec


def _check_chain(layers: list[LayerSpec], network: dict[str, Any], where: str) -> None:
    """Each layer consumes what the previous one produces: element counts, widths, and conv map shapes."""
    first = layers[0]
    if first.in_elements != network["input_features"]:
        what = "layers[0].in_features" if not first.is_conv else "layers[0]'s input map (conv.ifm_h*ifm_w*channels)"
        raise ArtifactError(f"{where}: {what}={first.in_elements} but network.input_features={network['input_features']}")
    if first.input_bits != network["input_bits"]:
        raise ArtifactError(f"{where}: layers[0].input_bits={first.input_bits} but network.input_bits={network['input_bits']}")
    for prev, nxt in zip(layers, layers[1:]):
        if nxt.in_elements != prev.out_elements or nxt.input_bits != prev.output_bits:
            raise ArtifactError(
                f"{where}: layers[{nxt.index}] expects {nxt.in_elements} inputs of {nxt.input_bits} bit(s), "
                f"layers[{prev.index}] produces {prev.out_elements} of {prev.output_bits}")
        if nxt.is_conv:
            c = nxt.conv
            if not prev.is_conv:
                raise ArtifactError(f"{where}: layers[{nxt.index}] is a convolution but layers[{prev.index}] is fully "
                                    "connected (it has no feature map)")
            made = (*prev.conv.out_dims, prev.out_features)
            if (c.ifm_h, c.ifm_w, c.channels) != made:
                raise ArtifactError(f"{where}: layers[{nxt.index}] reads a {c.ifm_h}x{c.ifm_w}x{c.channels} map, "
                                    f"layers[{prev.index}] produces {made[0]}x{made[1]}x{made[2]}")
        if prev.is_score:
            raise ArtifactError(f"{where}: layers[{prev.index}] is a score layer but is not the last layer")
        if nxt.mac == "xnor" and prev.n_thresholds != 1:
            raise ArtifactError(f"{where}: layers[{nxt.index}] is a {nxt.kind} layer (bipolar 1-bit inputs) but "
                                f"layers[{prev.index}] has {prev.n_thresholds} thresholds per neuron")
    if layers[-1].out_elements != network["num_classes"]:
        raise ArtifactError(
            f"{where}: last layer has {layers[-1].out_elements} outputs but network.num_classes={network['num_classes']}")


def _check_sections(manifest: dict[str, Any], layers: list[LayerSpec], where: str) -> None:
    """Types of the optional sections, and the facts they repeat from the layers."""
    if "vectors" in manifest:
        vw = f"{where}: vectors"
        _require_int(manifest["vectors"], "count", vw, 0)
        for key in PATH_FIELDS["vectors"]:
            _require(manifest["vectors"], key, vw, str)
    if "rtl" in manifest:
        rw, rtl = f"{where}: rtl", manifest["rtl"]
        for key in ("top", "top_module", "accel_top", "accel_module"):
            _require(rtl, key, rw, str)
        for key in ("sources", "memories"):
            values = _require(rtl, key, rw, list)
            if not all(isinstance(v, str) for v in values):
                raise ArtifactError(f"{rw}: field '{key}' must be a list of paths, got {values!r}")
        cycles = _require(rtl, "cycles_per_image", rw, int)
        if cycles != max(l.cycles_per_image for l in layers):
            raise ArtifactError(f"{rw}: field 'cycles_per_image' is {cycles}, the layers give "
                                f"{max(l.cycles_per_image for l in layers)}")
    if "hls" in manifest:
        hw, hls = f"{where}: hls", manifest["hls"]
        _require(hls, "header", hw, str)
        tb = hls.get("tb", [])
        if not isinstance(tb, list) or not all(isinstance(v, str) for v in tb):
            raise ArtifactError(f"{hw}: field 'tb' must be a list of paths, got {tb!r}")
        for key, bits in (("in_word_bits", layers[0].in_stream_bits), ("out_word_bits", layers[-1].out_stream_bits)):
            if _require(hls, key, hw, int) != bits:
                raise ArtifactError(f"{hw}: field '{key}' is {hls[key]}, the layers give {bits}")
    hw = f"{where}: hardware"
    hardware = _require(manifest, "hardware", where, dict)
    description = accel.hardware_description(layers)
    if _require(hardware, "description", hw, dict) != description:
        raise ArtifactError(f"{hw}: field 'description' does not match the layers "
                            f"({accel.describe_difference(hardware['description'], description)}; 'bitstream' "
                            "here means the manifest's description, 'export' the layers)")
    wanted = f"0x{accel.signature_of(description):08x}"
    if _require(hardware, "signature", hw, str) != wanted:
        raise ArtifactError(f"{hw}: field 'signature' is {hardware['signature']!r}, the layers give {wanted!r}")
    if "source" in manifest:
        _require(manifest["source"], "model", f"{where}: source", str)
        _require(manifest["source"], "sha256", f"{where}: source", str)


def load(root: str | Path, verify_checksums: bool = True, check_model: bool = True) -> Artifact:
    """Load and validate the artifact in ``root`` (the export directory).

    Every check names the file and field it refuses: the manifest's structure
    and types, the spec's ranges (docs/ARTIFACT.md), file sizes and checksums,
    paths (which must stay inside ``root``), the layer chain, and the data
    (file sizes, padded weight lanes, thresholds within their width). With
    ``check_model``, an export inside a training run whose model changed since
    is refused (:func:`check_source`).
    """
    root = Path(root)
    manifest_path = root / MANIFEST
    if not manifest_path.is_file():
        partial = sorted(root.parent.glob(f".{root.name}.partial-*")) if root.name else []
        hint = (f"; {partial[0]} is left from an interrupted export: run `bnnflow export` again" if partial
                else " (run `bnnflow export` first)")
        raise ArtifactError(f"{manifest_path}: manifest not found{hint}")
    try:
        manifest = json.loads(manifest_path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ArtifactError(f"{manifest_path}: not valid JSON ({exc})") from None
    where = str(manifest_path)
    if not isinstance(manifest, dict):
        raise ArtifactError(f"{where}: expected a JSON object, got {type(manifest).__name__}")
    if manifest.get("format") != FORMAT_NAME:
        raise ArtifactError(f"{where}: field 'format' is {manifest.get('format')!r}, expected {FORMAT_NAME!r}")
    version = manifest.get("format_version")
    if type(version) is not int or version not in READABLE_VERSIONS:
        older = ("; the export is older than this bnnflow: run `bnnflow export` again"
                 if type(version) is int and 0 < version < READABLE_VERSIONS[0] else "")
        raise ArtifactError(
            f"{where}: field 'format_version' is {version!r}; this bnnflow reads versions "
            f"{', '.join(map(str, READABLE_VERSIONS))} "
            f"(an integer){older}")
    network = _require(manifest, "network", where, dict)
    nw = f"{where}: network"
    _require_int(network, "input_features", nw, 1)
    _require_int(network, "input_bits", nw, 1, MAX_INPUT_BITS)
    _require_int(network, "num_classes", nw, 2)
    for section in ("vectors", "rtl", "hls", "source", "hardware"):
        if section in manifest:
            _require(manifest, section, where, dict)
    files = _check_files(root, manifest, where, verify_checksums)

    raw_layers = _require(manifest, "layers", where, list)
    if not raw_layers:
        raise ArtifactError(f"{where}: field 'layers' is empty")
    layers = [_load_layer(raw, i, where) for i, raw in enumerate(raw_layers)]
    if version < 4 and any(layer.is_conv for layer in layers):
        raise ArtifactError(f"{where}: format_version {version} has no convolutions, but a layer has a 'conv' object")
    for layer in layers:
        for rel in filter(None, (layer.weights, layer.thresholds, layer.affine)):
            if rel not in files:
                raise ArtifactError(f"{where}: layers[{layer.index}]: data file '{rel}' is not listed in 'files'")

    _check_chain(layers, network, where)
    _check_sections(manifest, layers, where)

    artifact = Artifact(root, manifest, layers)
    for i in range(len(layers)):  # decode once so size and value errors surface now
        artifact.weight_lanes(i)
        artifact.folded_thresholds(i)
        artifact.folded_affine(i)
    if check_model:
        check_source(artifact)
    return artifact


def check_source(artifact: Artifact, run_dir: str | Path | None = None) -> None:
    """Refuse an export whose model changed after it was exported.

    The exporter records the model file's sha256 under ``source``. ``run_dir``
    is the training run; by default the export's parent folder when that is a
    run (``RUN/export``). Exports outside a run, and artifacts that record no
    source (random test networks), are not checked.
    """
    source = artifact.manifest.get("source")
    if not isinstance(source, dict):
        return
    where = f"{artifact.root / MANIFEST}: source"
    run = Path(run_dir) if run_dir is not None else artifact.root.parent
    if run_dir is None and not (run / "config.json").is_file():
        return
    model = safe_relative(run, _require(source, "model", where, str), where)
    expected = _require(source, "sha256", where, str)
    actual = sha256_file(model) if model.is_file() else expected
    if actual != expected:
        raise ArtifactError(
            f"{artifact.root}: export is older than the model: {model} changed after this export was written "
            f"(sha256 {actual[:16]}..., export made from {expected[:16]}...); re-export with "
            f"`bnnflow export {run}`")
