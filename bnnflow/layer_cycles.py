"""Per-layer cycles measured in the RTL simulation, against the NF*SF*vectors model.

In the generated network every layer runs at the pace of the slowest one (a
faster layer waits on its input or its output stream), so the network's
interval between images measures only the bottleneck. To measure each layer,
:func:`measure_layer_cycles` cuts the export into one-layer artifacts -- the
layer's weights, thresholds, affine and conv geometry read back from the
export, written again through :func:`bnnflow.writer.write_artifact` with the
generated RTL -- and streams each one the inputs it sees in the network (the
golden model's outputs of the layer before it, after any pool) back to back.
The measured interval is compared with :attr:`LayerSpec.cycles_per_image`
(NF*SF per vector times the vectors of one image: a conv's output pixels).

Each layer's output words are also compared with the golden model's, so a
per-layer measurement is a per-layer bit-exactness check as well.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from . import artifact as art
from .folding import LayerFolding
from .golden import GoldenModel
from .writer import LayerData, write_artifact

#: A layer's measured interval may differ from its NF*SF*vectors model by this fraction
#: and still count as agreeing (issue 9's criterion; measured figures are exact in practice).
TOLERANCE = 0.05
#: Images streamed through each one-layer design (the simulators add a timing tail of their own).
DEFAULT_IMAGES = 4


@dataclass(frozen=True)
class LayerCycles:
    """One layer simulated alone: its model and measured cycles per image."""

    index: int
    kind: str
    shape: str                 # "FC 64->32", or "12x12x4 8C3 MP2" for a convolution
    vectors: int               # matrix-vector products per image (a conv's output pixels)
    model: int                 # NF*SF*vectors
    measured: float            # steady-state cycles between output images, this layer alone
    outputs_equal_golden: bool

    @property
    def ratio(self) -> float:
        return self.measured / self.model

    @property
    def within_tolerance(self) -> bool:
        return abs(self.ratio - 1.0) <= TOLERANCE


def layer_shape(spec: art.LayerSpec) -> str:
    """A layer's shape as BNN-PYNQ names it: ``FC 256->512`` or ``30x30x64 64C3 MP2`` (the input map)."""
    if not spec.is_conv:
        return f"FC {spec.in_features}->{spec.out_features}"
    c = spec.conv
    text = f"{c.ifm_h}x{c.ifm_w}x{c.channels} {spec.out_features}C{c.kernel}"
    if c.pad:
        text += f" pad{c.pad}"
    if c.pool > 1:
        text += f" MP{c.pool}"
    return text


def layer_data(artifact: art.Artifact, index: int) -> LayerData:
    """Layer ``index`` of ``artifact`` as the writer takes it (codes, thresholds, affine read back)."""
    spec = artifact.layers[index]
    return LayerData(
        kind=spec.kind, weights=artifact.weight_codes(index), thresholds=artifact.thresholds(index),
        input_bits=spec.input_bits, negated_neurons=int(spec.extra.get("negated_neurons", 0)),
        weight_bits=spec.weight_bits, weight_encoding=spec.weight_encoding, affine=artifact.affine(index),
        affine_bits=spec.affine_bits, mul_bits=spec.mul_bits, conv=spec.conv)


def layer_inputs(artifact: art.Artifact, images: np.ndarray, outputs: list[np.ndarray] | None = None
                 ) -> list[np.ndarray]:
    """The (N, in_elements) input codes each layer of ``artifact`` sees for ``images`` (golden model).

    ``outputs``: the golden trace's per-layer outputs for ``images``, when the caller has them already.
    """
    if outputs is None:
        outputs = GoldenModel(artifact).trace(images).outputs
    return [np.asarray(images)] + [np.asarray(out) for out in outputs[:-1]]


def one_layer_artifact(artifact: art.Artifact, index: int, inputs: np.ndarray, out_dir: str | Path,
                       generate: tuple[str, ...] = ("rtl",)) -> art.Artifact:
    """Write layer ``index`` of ``artifact`` alone, with ``inputs`` (N, in_elements) as its test vectors.

    The one-layer network keeps the layer's folding, widths and conv geometry;
    its "classes" are the layer's output elements and its stored scores are
    the golden model's outputs of the layer.
    """
    spec = artifact.layers[index]
    c = spec.conv
    network = {"name": f"{artifact.network.get('name', 'net')}-layer{index}",
               "input_features": spec.in_elements,
               "input_shape": [c.ifm_h, c.ifm_w, c.channels] if c else [spec.in_features],
               "input_bits": spec.input_bits, "num_classes": spec.out_elements,
               "method": artifact.network.get("method", "unknown"),
               "dataset": artifact.network.get("dataset", "unknown")}
    inputs = np.asarray(inputs, dtype=np.uint8)
    labels = np.zeros(len(inputs), dtype=np.int64)
    return write_artifact(out_dir, network, [layer_data(artifact, index)],
                          [LayerFolding(pe=spec.pe, simd=spec.simd)], vectors=(inputs, labels), generate=generate)


def simulate(artifact: art.Artifact, inputs: np.ndarray, sim: str):
    """(scores, measured cycles per image) of ``artifact`` on ``sim``: Verilator's bulk harness, or cocotb."""
    if sim == "verilator":
        from .sim.bulk import run_bulk

        result = run_bulk(artifact, inputs)
    else:
        from .sim.network import run_network

        result = run_network(artifact, inputs, sim=sim)
    return np.asarray(result.scores), float(result.cycles_per_image)


def measure_layer_cycles(artifact: art.Artifact | str | Path, images: np.ndarray, sim: str = "verilator",
                         layers: Sequence[int] | None = None, scratch: str | Path | None = None,
                         progress: Callable[[str], None] | None = None) -> list[LayerCycles]:
    """Simulate each layer of ``artifact`` alone on ``sim`` with the inputs ``images`` give it.

    ``images`` (N, input_features): the network's inputs (a few are enough:
    the simulators append a timing tail of back-to-back images). ``layers``
    picks layers by index (default: all). One-layer artifacts go to
    ``scratch`` (default: a temporary folder, removed afterwards).
    Raises ValueError for an unknown layer index; the simulators' errors
    (:class:`bnnflow.sim.toolchain.SimulatorMissing`, SimulationError) pass through.
    """
    if not isinstance(artifact, art.Artifact):
        artifact = art.load(artifact)
    count = len(artifact.layers)
    picked = list(range(count)) if layers is None else [int(i) for i in layers]
    for i in picked:
        if not 0 <= i < count:
            raise ValueError(f"{artifact.root}: no layer {i} (the export has layers 0..{count - 1})")
    golden = GoldenModel(artifact).trace(images).outputs
    inputs = layer_inputs(artifact, images, golden)
    rows = []
    with tempfile.TemporaryDirectory(prefix="bnnflow-layers-") as tmp:
        root = Path(scratch) if scratch is not None else Path(tmp)
        for i in picked:
            spec = artifact.layers[i]
            if progress:
                progress(f"layer {i} ({layer_shape(spec)}): simulating alone on {sim}")
            one = one_layer_artifact(artifact, i, inputs[i], root / f"layer{i}")
            scores, measured = simulate(one, inputs[i], sim)
            equal = scores.shape == golden[i].shape and bool(np.array_equal(scores, golden[i]))
            rows.append(LayerCycles(index=i, kind=spec.kind, shape=layer_shape(spec), vectors=spec.pixels,
                                    model=spec.cycles_per_image, measured=measured, outputs_equal_golden=equal))
    return rows


def format_table(rows: Sequence[LayerCycles], sim: str) -> str:
    """The per-layer table verify prints, with a closing line on the 5% criterion."""
    header = ("layer", "kind", "shape", "vectors", "NF*SF*vectors", "measured", "meas/model", "outputs == golden")
    body = [(str(r.index), r.kind, r.shape, str(r.vectors), f"{r.model:,}", f"{r.measured:,.1f}",
             f"{r.ratio:.4f}", "yes" if r.outputs_equal_golden else "NO") for r in rows]
    widths = [max(len(h), *(len(b[i]) for b in body)) for i, h in enumerate(header)]
    lines = [f"per-layer cycles, each layer simulated alone (rtl, {sim}):",
             "  ".join(h.ljust(w) for h, w in zip(header, widths))]
    lines += ["  ".join(v.ljust(w) for v, w in zip(b, widths)) for b in body]
    off = [r.index for r in rows if not r.within_tolerance]
    lines.append(f"every layer within {TOLERANCE:.0%} of NF*SF*vectors" if not off else
                 f"layer(s) {', '.join(map(str, off))} differ from NF*SF*vectors by more than {TOLERANCE:.0%}")
    return "\n".join(lines)
