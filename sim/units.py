"""Run the RTL library's units on their own (one ``bnn_mvtu``, one ``bnn_axis_repack``) and the accelerator.

Used by the unit tests; each call builds (cached) and runs one cocotb testbench
that checks every output word under random idle/backpressure and then
measures the back-to-back cycles per vector.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from .. import artifact as art
from .. import rtlgen
from . import runner


def mvtu_build(layer: art.LayerSpec, sim: str) -> runner.Build:
    """The (cached) simulator build of one layer's ``bnn_mvtu``, reading its .mem files from the run directory."""
    params = rtlgen.mvtu_parameters(layer, rtlgen.weight_file(layer.index), rtlgen.param_file(layer))
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
                          input_bits: int = 1, seed: int = 0, n_vectors: int = 16, *, weight_bits: int = 1,
                          weight_encoding: str = art.SYM, n_thresholds: int = 1, affine_bits: int = 0,
                          extremes: bool = False) -> art.Artifact:
    """A random one-layer artifact of any layer kind and width (format v3) with RTL files and test vectors.

    Weights are uniform over the encoding's legal codes
    (:func:`bnnflow.testing.random_codes`); threshold layers get
    ``n_thresholds`` non-decreasing thresholds per neuron drawn from the
    accumulators the test vectors actually produce (the golden model's trace of
    a probe export), so the output counts vary, plus one neuron at acc_lo
    (always: its count is N) and one at acc_hi + 1 (never: 0): neurons 0 and
    MH-1, or 2 and 3 with ``extremes``.
    Score layers get random (mul, add) pairs over the full ``affine_bits``
    range when ``affine_bits`` > 0.

    ``extremes``: the overflow corners -- vector 0 all inputs at their maximum,
    vector 1 all zero; neuron rows alternate all-largest and all-smallest
    weight values (then two random rows), and those rows' thresholds are drawn
    from acc_lo, acc_lo + 1, acc_hi and acc_hi + 1; their affines are mul =
    add = -2^(AB-1) and mul = add = 2^(AB-1) - 1. Without padding (SIMD
    divides MW) the accumulators reach exactly the manifest's bounds, and an
    affine score layer's lowest score is exactly -score_bound.
    """
    from ..folding import LayerFolding
    from ..golden import GoldenModel
    from ..testing import random_codes
    from ..writer import LayerData, write_artifact

    rng = np.random.default_rng(seed)
    has_thresholds = kind.endswith("_threshold")
    if kind.startswith("xnor"):
        input_bits = 1
    w = random_codes(rng, (mh, mw), weight_bits, weight_encoding)
    images = rng.integers(0, 1 << input_bits, size=(n_vectors, mw), dtype=np.uint8)
    if extremes:
        top = art.weight_max(weight_bits, weight_encoding)
        w[0::4], w[1::4] = art.weight_codes(np.array([top, -top]), weight_bits, weight_encoding)
        images[0], images[1] = (1 << input_bits) - 1, 0
    affine = None
    if affine_bits:
        a = 1 << (affine_bits - 1)
        affine = rng.integers(-a, a, size=(mh, 2), dtype=np.int64)
        if extremes:
            affine[0::4], affine[1::4] = -a, a - 1
    network = {"name": f"unit-{kind}", "input_features": mw, "input_shape": [mw], "input_bits": input_bits,
               "num_classes": mh, "method": "random", "dataset": "random"}
    folding = [LayerFolding(pe=pe, simd=simd)]
    vectors = (images, rng.integers(0, mh, size=n_vectors))

    def layer(thresholds: np.ndarray | None) -> LayerData:
        return LayerData(kind, w, thresholds, input_bits=input_bits, weight_bits=weight_bits,
                         weight_encoding=weight_encoding, affine=affine, affine_bits=affine_bits)

    t = None
    if has_thresholds:
        # probe: the same layer with every threshold at acc_lo, only to read the accumulators the vectors give
        probe_dir = Path(out_dir).with_name(Path(out_dir).name + "-probe")
        probe = write_artifact(probe_dir, network, [layer(np.zeros((mh, n_thresholds), np.int64))], folding,
                               vectors=vectors, generate=())
        lo, hi = probe.layers[0].acc_range()
        acc = GoldenModel(probe).trace(images).accumulators[0]              # (n_vectors, MH)
        shutil.rmtree(probe_dir)
        picks = acc[rng.integers(0, n_vectors, size=(mh, n_thresholds)), np.arange(mh)[:, None]]
        t = np.clip(picks + rng.integers(-1, 2, size=picks.shape), lo, hi + 1)
        always, never = 0, mh - 1
        if extremes:
            # the all-largest / all-smallest rows meet acc_hi / acc_lo on vector 0: thresholds on both sides
            corners = np.array([lo, lo + 1, hi, hi + 1])
            t[0::4] = corners[rng.integers(0, 4, size=t[0::4].shape)]
            t[1::4] = corners[rng.integers(0, 4, size=t[1::4].shape)]
            always, never = (2, 3) if mh > 3 else (always, never)
        t[always], t[never] = lo, hi + 1               # always on (count N) / always off (count 0)
        t = np.sort(t, axis=1)
    return write_artifact(out_dir, network, [layer(t)], folding, vectors=vectors, generate=("rtl",))
