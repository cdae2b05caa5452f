"""Write an artifact directory from integer layer data (no torch needed).

``bnnflow.export`` turns a trained model into :class:`LayerData`; tests and
benchmarks build random :class:`LayerData` directly. Both end here, so the
files on disk always come from one writer.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from . import artifact as art
from . import accel, packing
from .folding import LayerFolding, validate


@dataclass
class LayerData:
    """One layer in neuron/synapse order, before folding (the fields mirror :class:`~bnnflow.artifact.LayerSpec`)."""

    kind: str                        # xnor_threshold | int_threshold | xnor_score | int_score
    weights: np.ndarray              # (MH, MW) uint8 weight codes (1-bit: 1 = +1; artifact.weight_codes)
    thresholds: np.ndarray | None    # (MH,) or (MH, N) int, accumulator domain, non-decreasing; None for scores
    input_bits: int = 1
    negated_neurons: int = 0
    weight_bits: int = 1
    weight_encoding: str = art.SYM
    affine: np.ndarray | None = None   # (MH, 2) int (mul, add) of a score layer: score = mul*dot + add
    affine_bits: int = 0
    mul_bits: int = 0                  # range of mul (<= affine_bits; 0: affine_bits), see LayerSpec.score_bound
    conv: art.ConvSpec | None = None   # a convolution: weights (MH, K*K*C) in im2col column order (bnnflow.conv)

    @property
    def shape(self) -> tuple[int, int]:
        """(MW, MH): inputs and neurons, the order folding takes."""
        return self.weights.shape[1], self.weights.shape[0]

    @property
    def n_thresholds(self) -> int:
        if self.thresholds is None:
            return 0
        t = np.asarray(self.thresholds)
        return 1 if t.ndim == 1 else t.shape[1]


def _write(path: Path, data: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    np.ascontiguousarray(data).tofile(path)


def write_artifact(
    out_dir: str | Path,
    network: dict[str, Any],
    layers: list[LayerData],
    folding: list[LayerFolding],
    vectors: tuple[np.ndarray, np.ndarray] | None = None,
    generate: tuple[str, ...] = ("rtl", "hls"),
    source: dict[str, Any] | None = None,
) -> art.Artifact:
    """Fold, pack and write ``layers``; return the loaded (re-validated) artifact.

    ``vectors`` = (images uint8 (N, F), labels (N,)) are stored with the golden
    model's scores for them. ``generate`` names the consumers whose files are
    generated as well (RTL memory files + top, HLS header). ``source`` (the
    model file and its sha256, see :mod:`bnnflow.export`) is recorded so a
    retrained model can be told from the one exported.

    Everything is written into a staging folder beside ``out_dir`` and moved
    into place only once it loads, so an interrupted export leaves the
    previous export (or nothing) and a ``.NAME.partial-PID`` folder, never a
    half-written artifact.
    """
    out = Path(out_dir)
    validate([l.shape for l in layers], folding)
    specs = [layer_spec(i, layer, fold) for i, (layer, fold) in enumerate(zip(layers, folding))]
    for i, (layer, spec) in enumerate(zip(layers, specs)):
        _check_values(i, spec, layer)
    if "hls" in generate:
        from . import hlsgen

        hlsgen.check_widths(specs)   # before anything is written
    _check_target(out)
    final, out = out, out.parent / f".{out.name}.partial-{os.getpid()}"
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    try:
        _write_all(out, network, layers, folding, specs, vectors, generate, source)
    except BaseException:
        shutil.rmtree(out, ignore_errors=True)
        raise
    _replace_dir(out, final)
    return art.load(final)


def layer_spec(index: int, layer: LayerData, fold: LayerFolding) -> art.LayerSpec:
    """The manifest entry of ``layer``; ValueError naming the layer when the engines cannot run it."""
    mw, mh = layer.shape
    spec = art.LayerSpec(
        index=index, kind=layer.kind, in_features=mw, out_features=mh, pe=fold.pe, simd=fold.simd,
        input_bits=layer.input_bits, weights=f"L{index}_weights.bin",
        thresholds=None if layer.thresholds is None else f"L{index}_thresholds.bin",
        weight_bits=layer.weight_bits, weight_encoding=layer.weight_encoding, n_thresholds=layer.n_thresholds,
        affine=None if layer.affine is None else f"L{index}_affine.bin", affine_bits=layer.affine_bits,
        mul_bits=layer.mul_bits, conv=layer.conv,
        extra={"negated_neurons": int(layer.negated_neurons)})
    problem = spec.problem()
    if problem is None and not 1 <= layer.input_bits <= art.MAX_INPUT_BITS:
        problem = f"input_bits is {layer.input_bits}, expected 1..{art.MAX_INPUT_BITS}"
    if problem is None and spec.has_thresholds != (layer.thresholds is not None):
        problem = f"a {layer.kind} layer {'needs' if spec.has_thresholds else 'has no'} thresholds"
    if problem:
        raise ValueError(f"layer {index}: {problem}")
    return spec


def _check_values(index: int, spec: art.LayerSpec, layer: LayerData) -> None:
    """Refuse values the layer's fields cannot hold, naming the layer, neuron and value."""
    codes = np.asarray(layer.weights)
    top = (1 << spec.weight_bits) - 1
    if codes.size and (codes.min() < 0 or codes.max() > top):
        raise ValueError(f"layer {index}: weight code {int(codes.max()) if codes.max() > top else int(codes.min())} "
                         f"does not fit weight_bits={spec.weight_bits}")
    if spec.weight_encoding == art.INT and (codes == 1 << (spec.weight_bits - 1)).any():
        raise ValueError(f"layer {index}: weight code {1 << (spec.weight_bits - 1)} is -{1 << (spec.weight_bits - 1)}, "
                         f"outside the narrow {spec.weight_bits}-bit int range")
    if layer.thresholds is not None:
        t = np.asarray(layer.thresholds, dtype=np.int64).reshape(spec.out_features, spec.n_thresholds)
        lo, hi = -(1 << (spec.threshold_bits - 1)), (1 << (spec.threshold_bits - 1)) - 1
        if t.min() < lo or t.max() > hi:
            bad = int(t.max()) if t.max() > hi else int(t.min())
            raise ValueError(f"layer {index}: threshold {bad} outside [{lo}, {hi}] ({spec.threshold_bits} bits)")
        falling = np.argwhere(np.diff(t, axis=1) < 0)
        if falling.size:
            n, k = (int(v) for v in falling[0])
            raise ValueError(f"layer {index}, neuron {n}: thresholds are not non-decreasing "
                             f"(threshold {k + 1} = {int(t[n, k + 1])} < threshold {k} = {int(t[n, k])})")
    if layer.affine is not None:
        a = np.asarray(layer.affine, dtype=np.int64)
        if a.shape != (spec.out_features, 2):
            raise ValueError(f"layer {index}: affine has shape {a.shape}, expected ({spec.out_features}, 2) (mul, add)")
        lo, hi = -(1 << (spec.affine_bits - 1)), (1 << (spec.affine_bits - 1)) - 1
        if a.min() < lo or a.max() > hi:
            bad = int(a.max()) if a.max() > hi else int(a.min())
            raise ValueError(f"layer {index}: affine value {bad} does not fit affine_bits={spec.affine_bits} "
                             f"[{lo}, {hi}]")
        lo, hi = -(1 << (spec.mul_bits - 1)), (1 << (spec.mul_bits - 1)) - 1
        if a[:, 0].min() < lo or a[:, 0].max() > hi:
            bad = int(a[:, 0].max()) if a[:, 0].max() > hi else int(a[:, 0].min())
            raise ValueError(f"layer {index}: mul {bad} does not fit mul_bits={spec.mul_bits} [{lo}, {hi}]")


def _check_target(out: Path) -> None:
    """Refuse to replace a folder that is not an export (it may hold the user's files)."""
    if out.exists() and not out.is_dir():
        raise art.ArtifactError(f"{out}: exists and is not a folder; choose another export folder")
    if out.is_dir() and not (out / art.MANIFEST).is_file() and any(out.iterdir()):
        raise art.ArtifactError(f"{out}: folder exists, is not empty and holds no {art.MANIFEST}; "
                                "an export replaces its folder, so choose a new or empty one")


def _replace_dir(staged: Path, final: Path) -> None:
    """Move ``staged`` to ``final``, replacing a previous export there."""
    final.parent.mkdir(parents=True, exist_ok=True)
    if final.exists():
        old = final.parent / f".{final.name}.old-{os.getpid()}"
        shutil.rmtree(old, ignore_errors=True)
        os.replace(final, old)
        os.replace(staged, final)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(staged, final)


def _write_all(out: Path, network: dict[str, Any], layers: list[LayerData], folding: list[LayerFolding],
               specs: list[art.LayerSpec], vectors: tuple[np.ndarray, np.ndarray] | None,
               generate: tuple[str, ...], source: dict[str, Any] | None) -> None:
    for i, (layer, fold, spec) in enumerate(zip(layers, folding, specs)):
        lanes = packing.fold_weight_codes(layer.weights, fold.pe, fold.simd,
                                          pad=art.pad_weight_code(spec.weight_bits, spec.weight_encoding))
        _write(out / spec.weights, packing.codes_to_bytes(lanes, spec.weight_bits))
        if layer.thresholds is not None:
            t = np.asarray(layer.thresholds, dtype=np.int64).reshape(spec.out_features, spec.n_thresholds)
            _write(out / spec.thresholds, packing.fold_thresholds(t, fold.pe).astype("<i4"))
        if layer.affine is not None:
            _write(out / spec.affine, packing.fold_thresholds(np.asarray(layer.affine, np.int64), fold.pe).astype("<i4"))

    manifest: dict[str, Any] = {
        "format": art.FORMAT_NAME,
        "format_version": art.FORMAT_VERSION,
        "network": network,
        "layers": [s.to_json() for s in specs],
        "hardware": hardware_section(specs),
        "files": {},
    }
    if source is not None:
        manifest["source"] = dict(source)
    _finish_manifest(out, manifest)
    artifact = art.load(out)

    if vectors is not None:
        from .golden import GoldenModel  # the golden model reads the artifact just written

        images, labels = vectors
        images = np.asarray(images)
        if images.max(initial=0) >= (1 << artifact.input_bits) or images.min(initial=0) < 0:
            raise ValueError(f"test images do not fit in {artifact.input_bits} unsigned bits")
        scores = GoldenModel(artifact).scores(images)
        _write(out / "vectors/images.bin", images.astype(np.uint8))
        _write(out / "vectors/labels.bin", np.asarray(labels).astype("<i4"))
        _write(out / "vectors/scores.bin", scores.astype("<i4"))
        manifest["vectors"] = {"count": int(images.shape[0]), "images": "vectors/images.bin",
                               "labels": "vectors/labels.bin", "scores": "vectors/scores.bin"}

    if "rtl" in generate:
        from . import rtlgen

        manifest["rtl"] = rtlgen.write_rtl(artifact, out)
    if "hls" in generate:
        from . import hlsgen

        manifest["hls"] = hlsgen.write_hls(artifact, out)
    _finish_manifest(out, manifest)
    artifact = art.load(out)   # the staged export must load before it replaces anything
    if "hls" in generate and vectors is not None:
        # the Vitis testbench's DMA buffers (docs/HLS.md), made from the vectors just written
        from .hlsflow import write_tb_files

        files = write_tb_files(artifact, out / "hls" / "tb")
        manifest["hls"]["tb"] = [path.relative_to(out).as_posix() for path in files.values()]
        _finish_manifest(out, manifest)
        art.load(out)


def hardware_section(specs: list[art.LayerSpec]) -> dict[str, Any]:
    """The manifest's ``hardware`` section: what a bitstream for these layers is built for (docs/ACCEL.md)."""
    description = accel.hardware_description(specs)
    return {"signature": f"0x{accel.signature_of(description):08x}", "description": description}


def _finish_manifest(out: Path, manifest: dict[str, Any]) -> None:
    """Checksum every file the layers and sections name (:func:`bnnflow.artifact.section_paths`)."""
    manifest["files"] = {
        rel: {"sha256": art.sha256_file(out / rel), "bytes": (out / rel).stat().st_size}
        for rel in sorted({rel for _, rel in art.section_paths(manifest)})
    }
    (out / art.MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")


def read_vectors(artifact: art.Artifact) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(images uint8 (N,F), labels (N,), golden scores (N,C)) stored by the exporter."""
    info = artifact.manifest.get("vectors")
    if not info:
        raise art.ArtifactError(f"{artifact.root / art.MANIFEST}: no 'vectors' section (export with test data)")
    n = int(info["count"])
    arrays = {}
    for name, dtype, width in (("images", np.uint8, artifact.input_features), ("labels", "<i4", 1),
                               ("scores", "<i4", artifact.num_classes)):
        path = artifact.path(info[name])
        size, expected = path.stat().st_size, n * width * np.dtype(dtype).itemsize
        if size != expected:
            raise art.ArtifactError(f"{path}: {size} bytes, expected {expected} ({n} x {width} {np.dtype(dtype).name})")
        arrays[name] = np.fromfile(path, dtype=dtype).reshape(n, width)
    images = arrays["images"]
    if images.size and int(images.max()) >= (1 << artifact.input_bits):
        raise art.ArtifactError(f"{artifact.path(info['images'])}: a pixel is {int(images.max())}, more than "
                                f"input_bits={artifact.input_bits} hold")
    return images, arrays["labels"].reshape(n).astype(np.int64), arrays["scores"].astype(np.int64)
