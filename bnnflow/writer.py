"""Write an artifact directory from integer layer data (no torch needed).

``bnnflow.export`` turns a trained model into :class:`LayerData`; tests and
benchmarks build random :class:`LayerData` directly. Both end here, so the
files on disk always come from one writer.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from . import artifact as art
from . import packing
from .folding import LayerFolding, validate


@dataclass
class LayerData:
    """One layer in neuron/synapse order, before folding."""

    kind: str
    weight_bits: np.ndarray          # (MH, MW) uint8, 1 = +1
    thresholds: np.ndarray | None    # (MH,) int, accumulator domain; None for xnor_score
    input_bits: int = 1
    negated_neurons: int = 0


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
) -> art.Artifact:
    """Fold, pack and write ``layers``; return the loaded (re-validated) artifact.

    ``vectors`` = (images uint8 (N, F), labels (N,)) are stored with the golden
    model's scores for them. ``generate`` names the consumers whose files are
    generated as well (RTL memory files + top, HLS header).
    """
    out = Path(out_dir)
    validate([(l.weight_bits.shape[1], l.weight_bits.shape[0]) for l in layers], folding)
    specs = [
        art.LayerSpec(
            index=i, kind=layer.kind, in_features=layer.weight_bits.shape[1], out_features=layer.weight_bits.shape[0],
            pe=fold.pe, simd=fold.simd, input_bits=layer.input_bits, weights=f"L{i}_weights.bin",
            thresholds=None if layer.thresholds is None else f"L{i}_thresholds.bin",
            extra={"negated_neurons": int(layer.negated_neurons)})
        for i, (layer, fold) in enumerate(zip(layers, folding))
    ]
    if "hls" in generate:
        from . import hlsgen

        hlsgen.check_widths(specs)   # before anything is written
    out.mkdir(parents=True, exist_ok=True)
    for i, (layer, fold, spec) in enumerate(zip(layers, folding, specs)):
        lanes = packing.fold_weight_bits(layer.weight_bits, fold.pe, fold.simd)
        _write(out / spec.weights, packing.lanes_to_bytes(lanes))
        if layer.thresholds is not None:
            t = np.asarray(layer.thresholds, dtype=np.int64)
            lo, hi = -(1 << (spec.threshold_bits - 1)), (1 << (spec.threshold_bits - 1)) - 1
            if t.min() < lo or t.max() > hi:
                raise ValueError(f"layer {i}: thresholds outside [{lo}, {hi}] ({spec.threshold_bits} bits)")
            _write(out / spec.thresholds, packing.fold_thresholds(t, fold.pe).astype("<i4"))

    manifest: dict[str, Any] = {
        "format": art.FORMAT_NAME,
        "format_version": art.FORMAT_VERSION,
        "network": network,
        "layers": [s.to_json() for s in specs],
        "files": {},
    }
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
    return art.load(out)


def _collect_files(manifest: dict[str, Any]) -> list[str]:
    files = []
    for layer in manifest["layers"]:
        files += [p for p in (layer["weights"], layer["thresholds"]) if p]
    for section in ("vectors", "rtl", "hls"):
        for key, value in manifest.get(section, {}).items():
            if isinstance(value, str):
                files.append(value)
            elif isinstance(value, list):
                files += [v for v in value if isinstance(v, str)]
    return files


def _finish_manifest(out: Path, manifest: dict[str, Any]) -> None:
    """Checksum every file the sections name (strings that are paths of files in ``out``)."""
    manifest["files"] = {
        rel: {"sha256": art.sha256_file(out / rel), "bytes": (out / rel).stat().st_size}
        for rel in sorted(set(_collect_files(manifest))) if (out / rel).is_file()
    }
    (out / art.MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")


def read_vectors(artifact: art.Artifact) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(images uint8 (N,F), labels (N,), golden scores (N,C)) stored by the exporter."""
    info = artifact.manifest.get("vectors")
    if not info:
        raise art.ArtifactError(f"{artifact.root / art.MANIFEST}: no 'vectors' section (export with test data)")
    n = int(info["count"])
    images = np.fromfile(artifact.path(info["images"]), dtype=np.uint8)
    labels = np.fromfile(artifact.path(info["labels"]), dtype="<i4")
    scores = np.fromfile(artifact.path(info["scores"]), dtype="<i4")
    for name, arr, width in (("images", images, artifact.input_features), ("labels", labels, 1),
                             ("scores", scores, artifact.num_classes)):
        if arr.size != n * width:
            raise art.ArtifactError(f"{artifact.path(info[name])}: {arr.size} values, expected {n} x {width}")
    return images.reshape(n, -1), labels.astype(np.int64), scores.reshape(n, -1).astype(np.int64)
