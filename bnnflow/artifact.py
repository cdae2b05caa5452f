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

from . import packing

FORMAT_NAME = "bnnflow-artifact"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"

#: Layer kinds the engines implement.
INT_THRESHOLD = "int_threshold"    # unsigned k-bit input x binary weights -> threshold -> 1 bit
XNOR_THRESHOLD = "xnor_threshold"  # binary input, XNOR-popcount -> threshold -> 1 bit
XNOR_SCORE = "xnor_score"          # binary input, XNOR-popcount -> signed score, no threshold
LAYER_KINDS = (INT_THRESHOLD, XNOR_THRESHOLD, XNOR_SCORE)


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


@dataclass
class LayerSpec:
    """One matrix-vector layer as the engines see it (all fields are in the manifest)."""

    index: int
    kind: str
    in_features: int          # MW, real inputs
    out_features: int         # MH
    pe: int
    simd: int
    input_bits: int           # bits per input element (1 for binary activations)
    weights: str              # relative path of the packed weight file
    thresholds: str | None    # relative path of the threshold file (None for xnor_score)
    in_features_padded: int = 0
    nf: int = 0
    sf: int = 0
    acc_bits: int = 0         # accumulator width (signed for int_threshold, unsigned popcount for xnor_*)
    threshold_bits: int = 0   # two's-complement width of each threshold (0 for xnor_score)
    output_bits: int = 1      # 1 for threshold layers, signed score width for xnor_score
    output_signed: bool = False
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.derive()

    def derive(self) -> None:
        """Fill the fields that follow from shape, folding and kind."""
        self.in_features_padded = packing.pad_to_multiple(self.in_features, self.simd)
        self.nf = self.out_features // self.pe
        self.sf = self.in_features_padded // self.simd
        mw = self.in_features_padded
        if self.kind == INT_THRESHOLD:
            peak = mw * ((1 << self.input_bits) - 1)
            self.acc_bits = bit_length_signed(-peak, peak)
            self.threshold_bits = bit_length_signed(-peak, peak + 1)
            self.output_bits, self.output_signed = 1, False
        elif self.kind == XNOR_THRESHOLD:
            self.acc_bits = max(1, mw.bit_length())
            self.threshold_bits = bit_length_signed(0, mw + 1)
            self.output_bits, self.output_signed = 1, False
        elif self.kind == XNOR_SCORE:
            self.acc_bits = max(1, mw.bit_length())
            self.threshold_bits = 0
            self.output_bits = bit_length_signed(-self.in_features, self.in_features)
            self.output_signed = True

    @property
    def weight_depth(self) -> int:
        return self.nf * self.sf

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
        data.update(self.extra)
        return data


_LAYER_FIELDS = ("index", "kind", "in_features", "out_features", "pe", "simd", "input_bits", "weights", "thresholds")


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

    def path(self, relative: str) -> Path:
        return self.root / relative

    # -- decoded data ----------------------------------------------------------
    def weight_lanes(self, i: int) -> np.ndarray:
        """(PE, NF*SF, SIMD) weight bits of layer ``i``, as the engines address them."""
        layer = self.layers[i]
        nbytes = -(-layer.simd // 8)
        raw = np.fromfile(self.path(layer.weights), dtype=np.uint8)
        expected = layer.pe * layer.weight_depth * nbytes
        if raw.size != expected:
            raise ArtifactError(
                f"{self.path(layer.weights)}: {raw.size} bytes, layer {i} expects {expected} "
                f"(PE={layer.pe} x depth={layer.weight_depth} x {nbytes} bytes per SIMD={layer.simd} word)")
        return packing.bytes_to_lanes(raw.reshape(layer.pe, layer.weight_depth, nbytes), layer.simd)

    def weight_bits(self, i: int) -> np.ndarray:
        """(MH, MW) weight bits of layer ``i`` in neuron/synapse order (padding removed)."""
        return packing.unfold_weight_bits(self.weight_lanes(i), self.layers[i].in_features)

    def folded_thresholds(self, i: int) -> np.ndarray | None:
        """(PE, NF) int64 thresholds of layer ``i`` (None for a score layer)."""
        layer = self.layers[i]
        if layer.thresholds is None:
            return None
        raw = np.fromfile(self.path(layer.thresholds), dtype="<i4")
        if raw.size != layer.out_features:
            raise ArtifactError(
                f"{self.path(layer.thresholds)}: {raw.size} thresholds, layer {i} has {layer.out_features} neurons")
        return raw.astype(np.int64).reshape(layer.pe, layer.nf)

    def thresholds(self, i: int) -> np.ndarray | None:
        """(MH,) thresholds of layer ``i`` in neuron order (None for a score layer)."""
        folded = self.folded_thresholds(i)
        return None if folded is None else packing.unfold_thresholds(folded)


def _require(mapping: dict[str, Any], key: str, where: str, kind: type | tuple[type, ...]) -> Any:
    if key not in mapping:
        raise ArtifactError(f"{where}: missing field '{key}'")
    value = mapping[key]
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise ArtifactError(f"{where}: field '{key}' has {type(value).__name__} {value!r}")
    return value


def load(root: str | Path, verify_checksums: bool = True) -> Artifact:
    """Load and validate the artifact in ``root`` (the export directory)."""
    root = Path(root)
    manifest_path = root / MANIFEST
    if not manifest_path.is_file():
        raise ArtifactError(f"{manifest_path}: manifest not found (run `bnnflow export` first)")
    try:
        manifest = json.loads(manifest_path.read_text())
    except json.JSONDecodeError as exc:
        raise ArtifactError(f"{manifest_path}: not valid JSON ({exc})") from None
    where = str(manifest_path)
    if manifest.get("format") != FORMAT_NAME:
        raise ArtifactError(f"{where}: field 'format' is {manifest.get('format')!r}, expected {FORMAT_NAME!r}")
    version = manifest.get("format_version")
    if version != FORMAT_VERSION:
        raise ArtifactError(
            f"{where}: field 'format_version' is {version!r}; this bnnflow reads version {FORMAT_VERSION}")
    network = _require(manifest, "network", where, dict)
    for key in ("input_features", "input_bits", "num_classes"):
        _require(network, key, f"{where}: network", int)
    files = _require(manifest, "files", where, dict)

    if verify_checksums:
        for rel, info in files.items():
            path = root / rel
            if not path.is_file():
                raise ArtifactError(f"{path}: listed in {MANIFEST} 'files' but missing")
            expected = info.get("sha256") if isinstance(info, dict) else None
            if expected is None:
                raise ArtifactError(f"{where}: files['{rel}'] has no sha256")
            actual = sha256_file(path)
            if actual != expected:
                raise ArtifactError(
                    f"{path}: checksum mismatch (sha256 {actual[:16]}..., manifest says {expected[:16]}...); "
                    "the file was changed or corrupted after export")

    layers = []
    raw_layers = _require(manifest, "layers", where, list)
    if not raw_layers:
        raise ArtifactError(f"{where}: field 'layers' is empty")
    for i, raw in enumerate(raw_layers):
        lw = f"{where}: layers[{i}]"
        if not isinstance(raw, dict):
            raise ArtifactError(f"{lw}: expected an object")
        values = {}
        for key in _LAYER_FIELDS:
            kind = (str, type(None)) if key == "thresholds" else (str if key in ("kind", "weights") else int)
            values[key] = _require(raw, key, lw, kind)
        if values["kind"] not in LAYER_KINDS:
            raise ArtifactError(f"{lw}: field 'kind' is {values['kind']!r}, expected one of {LAYER_KINDS}")
        if values["out_features"] % values["pe"]:
            raise ArtifactError(f"{lw}: PE={values['pe']} does not divide out_features={values['out_features']}")
        layer = LayerSpec(**values)
        for derived in ("in_features_padded", "nf", "sf", "acc_bits", "threshold_bits", "output_bits"):
            if derived in raw and raw[derived] != getattr(layer, derived):
                raise ArtifactError(
                    f"{lw}: field '{derived}' is {raw[derived]}, but shape and folding give {getattr(layer, derived)}")
        if (layer.thresholds is None) != (layer.kind == XNOR_SCORE):
            raise ArtifactError(f"{lw}: a {layer.kind} layer {'needs' if layer.thresholds is None else 'has no'} thresholds")
        for rel in filter(None, (layer.weights, layer.thresholds)):
            if rel not in files:
                raise ArtifactError(f"{lw}: data file '{rel}' is not listed in 'files'")
        layers.append(layer)

    # Chaining: each layer consumes what the previous one produces.
    if layers[0].in_features != network["input_features"]:
        raise ArtifactError(
            f"{where}: layers[0].in_features={layers[0].in_features} but network.input_features={network['input_features']}")
    if layers[0].input_bits != network["input_bits"]:
        raise ArtifactError(f"{where}: layers[0].input_bits={layers[0].input_bits} but network.input_bits={network['input_bits']}")
    for prev, nxt in zip(layers, layers[1:]):
        if nxt.in_features != prev.out_features or nxt.input_bits != prev.output_bits:
            raise ArtifactError(
                f"{where}: layers[{nxt.index}] expects {nxt.in_features} inputs of {nxt.input_bits} bit(s), "
                f"layers[{prev.index}] produces {prev.out_features} of {prev.output_bits}")
    if layers[-1].out_features != network["num_classes"]:
        raise ArtifactError(
            f"{where}: last layer has {layers[-1].out_features} outputs but network.num_classes={network['num_classes']}")

    artifact = Artifact(root, manifest, layers)
    for i in range(len(layers)):  # decode once so size mismatches surface now
        artifact.weight_lanes(i)
        artifact.folded_thresholds(i)
    return artifact
