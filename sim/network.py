"""Simulate an artifact's generated network top: images in, scores and cycles out.

:func:`run_network` is the RTL backend of ``bnnflow verify --against rtl`` and of
the host driver's simulated device. It builds the artifact's ``rtl/`` design
(cached by content, see :mod:`bnnflow.sim.runner`), streams the images through
``bnnflow_top`` with cocotb and returns the scores the hardware produced.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .. import artifact as art
from .. import rtlgen
from ..golden import GoldenModel
from . import runner

TIMING_VECTORS = 12


@dataclass
class RtlResult:
    scores: np.ndarray          # (N, num_classes) int64, what the RTL produced
    cycles_per_image: float     # measured steady-state cycles between output vectors (no backpressure)
    model_cycles: int           # max over layers of NF*SF*pixels (LayerSpec.cycles_per_image)
    sim: str
    build_dir: Path
    #: every layer but the last: (N, out_elements) int64, the words it handed to the next layer (after a pool)
    layer_outputs: list[np.ndarray] = field(default_factory=list)
    #: every layer but the last: steady-state cycles between images on its output stream (timing pass)
    layer_cycles: list[float] = field(default_factory=list)


def design_files(artifact: art.Artifact, scratch: Path) -> tuple[list[Path], dict[str, Path]]:
    """(Verilog sources, memory files by name) of the artifact's RTL.

    Uses the artifact's own ``rtl/`` folder when the manifest lists it, else
    generates it into ``scratch`` (an artifact exported without RTL).
    """
    section = artifact.manifest.get("rtl") or {}
    root = artifact.root
    sources = [root / p for p in section.get("sources", [])]
    memories = [root / p for p in section.get("memories", [])]
    if not sources or not all(p.is_file() for p in sources + memories):
        section = rtlgen.write_rtl(artifact, scratch)
        root = scratch
        sources = [root / p for p in section["sources"]]
        memories = [root / p for p in section["memories"]]
    return sources, {p.name: p for p in memories}


def run_network(artifact: art.Artifact | str | Path, images: np.ndarray, sim: str = "verilator", *,
                check: bool = False, seed: int = 0, idle: float = 0.0, backpressure: float = 0.0,
                timing_vectors: int = TIMING_VECTORS) -> RtlResult:
    """Run ``images`` (N, F) uint8 through the RTL network; return scores and cycles.

    With ``check`` the testbench also compares every output word (and TLAST)
    with the golden model and fails on the first difference; ``idle`` /
    ``backpressure`` > 0 add a first pass with random source idle and sink
    backpressure. The cycle count always comes from a back-to-back pass of at
    least ``timing_vectors`` images. Convolutional artifacts run the same way
    (an image is layer 0's ``in_stream_words`` words). The result also holds
    every inner layer's output (``layer_outputs``, comparable with
    ``GoldenModel.trace(images).outputs[k]``) and the steady-state cycles per
    image on each inner layer's output stream (``layer_cycles``). Raises
    :class:`bnnflow.sim.toolchain.SimulatorMissing` (with an install hint) when
    the simulator is not available, :class:`bnnflow.sim.runner.SimulationError`
    when the build or the simulation fails.
    """
    from . import toolchain

    toolchain.require(sim)
    if not isinstance(artifact, art.Artifact):
        artifact = art.load(artifact)
    images = GoldenModel(artifact).check_images(images).astype(np.uint8)
    model_cycles = rtlgen.cycles_per_image(artifact)
    if images.shape[0] == 0:
        return RtlResult(np.zeros((0, artifact.num_classes), dtype=np.int64), float("nan"), model_cycles, sim, Path())
    with tempfile.TemporaryDirectory(prefix="bnnflow-rtl-") as tmp:
        tmp = Path(tmp)
        sources, memories = design_files(artifact, tmp)
        build = runner.build(sim, rtlgen.TOP_MODULE, sources)
        np.save(tmp / "images.npy", images)
        config = {"artifact": str(artifact.root.resolve()), "images": "images.npy", "check": check,
                  "seed": seed, "idle": idle, "backpressure": backpressure, "timing_vectors": timing_vectors}
        result = runner.run(build, "bnnflow.sim.tb_network", config,
                            files={**memories, "images.npy": tmp / "images.npy"}, seed=seed)
    n = images.shape[0]
    scores = np.asarray(result["scores"], dtype=np.int64).reshape(n, artifact.num_classes)
    cycles = result.get("cycles_per_vector")
    inner = result.get("layer_outputs", {})
    layer_outputs = [np.asarray(inner[str(k)], dtype=np.int64).reshape(n, artifact.layers[k].out_elements)
                     for k in range(len(artifact.layers) - 1) if str(k) in inner]
    layer_cycles = [float(c) for _, c in sorted(result.get("layer_cycles", {}).items(), key=lambda kv: int(kv[0]))]
    return RtlResult(scores, float("nan") if cycles is None else float(cycles), model_cycles, sim, build.build_dir,
                     layer_outputs=layer_outputs, layer_cycles=layer_cycles)
