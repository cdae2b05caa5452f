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

FORMAT_NAME = "bnnflow-artifact"
#: 2: the 'hardware' section (the accelerator's signature, docs/ACCEL.md) is required.
FORMAT_VERSION = 2
MANIFEST = "manifest.json"
#: Widest unsigned input element the engines and the driver's byte layout take.
MAX_INPUT_BITS = 8

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

    @property
    def signature(self) -> int:
        """The hardware signature a bitstream for this network reports (docs/ACCEL.md)."""
        return int(self.manifest["hardware"]["signature"], 16)

    def path(self, relative: str) -> Path:
        """``root / relative``; refuses a path that would leave the export folder."""
        return safe_relative(self.root, relative, str(self.root / MANIFEST))

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
        lanes = packing.bytes_to_lanes(raw.reshape(layer.pe, layer.weight_depth, nbytes), layer.simd)
        spare = np.unpackbits(raw.reshape(-1, nbytes), axis=1, bitorder="little")[:, layer.simd:]
        if spare.any():
            raise ArtifactError(f"{self.path(layer.weights)}: layer {i} has bits set above lane {layer.simd - 1} "
                                "of a word (the bytes beyond SIMD lanes must be 0)")
        if layer.in_features_padded > layer.in_features:
            # fold_weight_bits pads with 1: folding an all-0 matrix marks exactly the padded lanes
            pad_mask = packing.fold_weight_bits(np.zeros((layer.out_features, layer.in_features), np.uint8),
                                                layer.pe, layer.simd) == 1
            if (lanes[pad_mask] != 1).any():
                raise ArtifactError(f"{self.path(layer.weights)}: layer {i} has a padded lane (synapse >= "
                                    f"{layer.in_features}) whose weight bit is 0; padding weights must be 1 "
                                    "(docs/ARTIFACT.md, Padding)")
        return lanes

    def weight_bits(self, i: int) -> np.ndarray:
        """(MH, MW) weight bits of layer ``i`` in neuron/synapse order (padding removed)."""
        return packing.unfold_weight_bits(self.weight_lanes(i), self.layers[i].in_features)

    def folded_thresholds(self, i: int) -> np.ndarray | None:
        """(PE, NF) int64 thresholds of layer ``i`` (None for a score layer)."""
        layer = self.layers[i]
        if layer.thresholds is None:
            return None
        path = self.path(layer.thresholds)
        size = path.stat().st_size
        if size != 4 * layer.out_features:
            raise ArtifactError(f"{path}: {size} bytes, layer {i} expects {4 * layer.out_features} "
                                f"({layer.out_features} int32 thresholds)")
        raw = np.fromfile(path, dtype="<i4")
        lo, hi = -(1 << (layer.threshold_bits - 1)), (1 << (layer.threshold_bits - 1)) - 1
        if raw.min() < lo or raw.max() > hi:
            bad = int(raw[(raw < lo) | (raw > hi)][0])
            raise ArtifactError(f"{self.path(layer.thresholds)}: threshold {bad} of layer {i} does not fit its "
                                f"{layer.threshold_bits}-bit field [{lo}, {hi}]")
        return raw.astype(np.int64).reshape(layer.pe, layer.nf)

    def thresholds(self, i: int) -> np.ndarray | None:
        """(MH,) thresholds of layer ``i`` in neuron order (None for a score layer)."""
        folded = self.folded_thresholds(i)
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
            out += [(f"layers[{i}].{key}", layer[key]) for key in ("weights", "thresholds")
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
        if key == "thresholds":
            values[key] = _require(raw, key, lw, (str, type(None)))
        elif key in ("kind", "weights"):
            values[key] = _require(raw, key, lw, str)
        else:
            values[key] = _require_int(raw, key, lw, 0 if key == "index" else 1,
                                       MAX_INPUT_BITS if key == "input_bits" else None)
    if values["index"] != i:
        raise ArtifactError(f"{lw}: field 'index' is {values['index']}, expected {i} (layers are listed in order)")
    if values["kind"] not in LAYER_KINDS:
        raise ArtifactError(f"{lw}: field 'kind' is {values['kind']!r}, expected one of {LAYER_KINDS}")
    if values["out_features"] % values["pe"]:
        raise ArtifactError(f"{lw}: PE={values['pe']} does not divide out_features={values['out_features']}")
    if values["simd"] > values["in_features"]:
        raise ArtifactError(f"{lw}: SIMD={values['simd']} is wider than in_features={values['in_features']}")
    if values["kind"] != INT_THRESHOLD and values["input_bits"] != 1:
        raise ArtifactError(f"{lw}: a {values['kind']} layer reads 1-bit inputs, field 'input_bits' is {values['input_bits']}")
    layer = LayerSpec(**values)
    for derived in ("in_features_padded", "nf", "sf", "acc_bits", "threshold_bits", "output_bits"):
        got = _require(raw, derived, lw, int)
        if got != getattr(layer, derived):
            raise ArtifactError(
                f"{lw}: field '{derived}' is {got}, but shape and folding give {getattr(layer, derived)}")
    signed = _require(raw, "output_signed", lw, bool)
    if signed != layer.output_signed:
        raise ArtifactError(f"{lw}: field 'output_signed' is {signed}, a {layer.kind} layer's is {layer.output_signed}")
    if (layer.thresholds is None) != (layer.kind == XNOR_SCORE):
        raise ArtifactError(f"{lw}: a {layer.kind} layer {'needs' if layer.thresholds is None else 'has no'} thresholds")
    return layer


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
        if cycles != max(l.cycles_per_vector for l in layers):
            raise ArtifactError(f"{rw}: field 'cycles_per_image' is {cycles}, the layers give "
                                f"{max(l.cycles_per_vector for l in layers)}")
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
    if type(version) is not int or version != FORMAT_VERSION:
        older = ("; the export is older than this bnnflow: run `bnnflow export` again"
                 if type(version) is int and 0 < version < FORMAT_VERSION else "")
        raise ArtifactError(
            f"{where}: field 'format_version' is {version!r}; this bnnflow reads version {FORMAT_VERSION} "
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
    for layer in layers:
        for rel in filter(None, (layer.weights, layer.thresholds)):
            if rel not in files:
                raise ArtifactError(f"{where}: layers[{layer.index}]: data file '{rel}' is not listed in 'files'")

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
        if prev.kind == XNOR_SCORE:
            raise ArtifactError(f"{where}: layers[{prev.index}] is a score layer but is not the last layer")
    if layers[-1].out_features != network["num_classes"]:
        raise ArtifactError(
            f"{where}: last layer has {layers[-1].out_features} outputs but network.num_classes={network['num_classes']}")
    _check_sections(manifest, layers, where)

    artifact = Artifact(root, manifest, layers)
    for i in range(len(layers)):  # decode once so size and value errors surface now
        artifact.weight_lanes(i)
        artifact.folded_thresholds(i)
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
