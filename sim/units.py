"""Run the RTL library's units on their own (one ``bnn_mvtu``, one ``bnn_axis_repack``) and the accelerator.

Used by the unit tests; each call builds (cached) and runs one cocotb testbench
that checks every output word under random idle/backpressure and then
measures the back-to-back cycles per vector.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from .. import artifact as art
from .. import rtlgen
from . import runner


def mvtu_build(layer: art.LayerSpec, sim: str) -> runner.Build:
    params = rtlgen.mvtu_parameters(layer, rtlgen.weight_file(0), rtlgen.threshold_file(0))
    return runner.build(sim, "bnn_mvtu", rtlgen.library_sources(), params)


def run_mvtu(artifact: art.Artifact, images: np.ndarray, sim: str, *, seed: int = 0, idle: float = 0.3,
             backpressure: float = 0.4, timing_vectors: int = 12) -> dict[str, Any]:
    """Check layer 0 of a one-layer ``artifact`` as a bare ``bnn_mvtu``; return the tb result."""
    if len(artifact.layers) != 1:
        raise ValueError("run_mvtu needs a one-layer artifact (its golden scores are the unit's outputs)")
    if not (artifact.root / "rtl" / rtlgen.weight_file(0)).is_file():
        rtlgen.write_rtl(artifact, artifact.root)
    b = mvtu_build(artifact.layers[0], sim)
    mems = {p.name: p for p in (artifact.root / "rtl").glob("L0_*.mem")}
    with tempfile.TemporaryDirectory(prefix="bnnflow-mvtu-") as tmp:
        np.save(Path(tmp) / "images.npy", np.asarray(images, dtype=np.uint8))
        cfg = {"artifact": str(artifact.root.resolve()), "images": "images.npy", "check": True, "seed": seed,
               "idle": idle, "backpressure": backpressure, "timing_vectors": timing_vectors}
        return runner.run(b, "bnnflow.sim.tb_mvtu", cfg, files={**mems, "images.npy": Path(tmp) / "images.npy"},
                          seed=seed)


def run_accel(artifact: art.Artifact, images: np.ndarray, sim: str, scenarios: list[str], *,
              alt: art.Artifact | None = None, seed: int = 0, idle: float = 0.3, backpressure: float = 0.4,
              timing_images: int = 12) -> dict[str, Any]:
    """Run ``scenarios`` of :mod:`bnnflow.sim.tb_accel` on ``artifact``'s ``bnnflow_accel``; the tb result.

    The build (cached) is the artifact's generated RTL with its ``.mem`` files
    as power-on parameters; ``alt`` (same hardware signature) supplies the
    parameters of the ``load_alt`` scenario.
    """
    from .network import design_files

    with tempfile.TemporaryDirectory(prefix="bnnflow-accel-") as tmp:
        tmp = Path(tmp)
        sources, memories = design_files(artifact, tmp)
        b = runner.build(sim, rtlgen.ACCEL_MODULE, sources)
        np.save(tmp / "images.npy", np.asarray(images, dtype=np.uint8))
        cfg = {"artifact": str(artifact.root.resolve()), "alt_artifact": str(alt.root.resolve()) if alt else None,
               "images": "images.npy", "scenarios": list(scenarios), "seed": seed, "idle": idle,
               "backpressure": backpressure, "timing_images": timing_images}
        return runner.run(b, "bnnflow.sim.tb_accel", cfg, files={**memories, "images.npy": tmp / "images.npy"},
                          seed=seed)


def run_repack(params: dict[str, int], sim: str, *, vectors: int = 16, seed: int = 0, idle: float = 0.3,
               backpressure: float = 0.4, timing_vectors: int = 12) -> dict[str, Any]:
    """Check one ``bnn_axis_repack`` configuration; return the tb result."""
    b = runner.build(sim, "bnn_axis_repack", [rtlgen.library_dir() / "bnn_axis_repack.v"], params)
    cfg = {**params, "vectors": vectors, "seed": seed, "idle": idle, "backpressure": backpressure,
           "timing_vectors": timing_vectors}
    return runner.run(b, "bnnflow.sim.tb_repack", cfg, seed=seed)


def single_layer_artifact(out_dir: str | Path, kind: str, mw: int, mh: int, pe: int, simd: int,
                          input_bits: int = 1, seed: int = 0, n_vectors: int = 16) -> art.Artifact:
    """A random one-layer artifact (any layer kind) with RTL files and test vectors."""
    from ..folding import LayerFolding
    from ..writer import LayerData, write_artifact

    rng = np.random.default_rng(seed)
    w = rng.integers(0, 2, size=(mh, mw), dtype=np.uint8)
    if kind == art.INT_THRESHOLD:
        peak = mw * ((1 << input_bits) - 1)
        t = rng.integers(-max(1, peak // 8), max(1, peak // 8) + 1, size=mh)
        t[0], t[-1] = -peak, peak + 1                  # always on / always off
    elif kind == art.XNOR_THRESHOLD:
        input_bits = 1
        t = rng.integers(max(0, mw // 2 - max(2, mw // 8)), mw // 2 + max(2, mw // 8) + 1, size=mh)
        t[0], t[-1] = 0, mw + 1
    elif kind == art.XNOR_SCORE:
        input_bits, t = 1, None
    else:
        raise ValueError(f"unknown layer kind {kind!r}")
    images = rng.integers(0, 1 << input_bits, size=(n_vectors, mw), dtype=np.uint8)
    network = {"name": f"unit-{kind}", "input_features": mw, "input_shape": [mw], "input_bits": input_bits,
               "num_classes": mh, "method": "random", "dataset": "random"}
    return write_artifact(out_dir, network, [LayerData(kind, w, t, input_bits=input_bits)],
                          [LayerFolding(pe=pe, simd=simd)], vectors=(images, rng.integers(0, mh, size=n_vectors)),
                          generate=("rtl",))
