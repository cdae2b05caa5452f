"""Convolutional artifacts through the generated network (bnnflow_top, bnnflow_accel) against the golden model.

Each net is a seeded :func:`bnnflow.testing.conv_artifact` (thresholds drawn
from its own accumulators, so the layers' outputs vary over the test images).
The network testbench (sim/tb_network.py) streams the images with random
source idle and sink backpressure, then back to back; it checks every score
word and its TLAST, and records the words every inner layer hands to the next
(after its pool), which must equal ``GoldenModel(a).trace(images).outputs``.
The back-to-back cycles per image must be the slowest layer's
``LayerSpec.cycles_per_image`` (NF*SF*pixels) within 5%; every inner layer's
output stream runs at that same rate (a pipeline runs at its slowest layer).
Each CI net has a different bottleneck: the pooled first conv (net ``example``)
and the pooled second conv (net ``k2-int-multi``).
"""

from __future__ import annotations

import numpy as np
import pytest

from bnnflow import artifact as art
from bnnflow import rtlgen
from bnnflow.folding import LayerFolding as F
from bnnflow.golden import GoldenModel
from bnnflow.sim import toolchain
from bnnflow.testing import conv_artifact
from bnnflow.writer import read_vectors

SIMS = ["icarus", "verilator"]

#: name -> (ifm (H, W, C), input_bits, layers, folding or None = default, test images, seed); the seeds are
#: ones whose layers vary enough over the test images (assert_layers_vary)
NETS = {
    # the contract's example: int conv on 5-bit pixels (pooled 2x2), XNOR conv (pad code 1), FC on the map, score
    "example": ((8, 8, 1), 5, [
        dict(mh=8, kernel=3, pad=1, pool=2, n_thresholds=1),
        dict(mh=16, kind=art.XNOR_THRESHOLD, kernel=3, pad=1),
        dict(mh=12, kind=art.XNOR_THRESHOLD),
        dict(mh=10, kind=art.XNOR_SCORE)], None, 8, 1),
    # pad 0 and kernel 2 on a non-square map; a 2-bit int conv with 3 thresholds (2-bit codes); the second
    # conv pads with code 1, is pooled 2x2 with its last row dropped (5x4 -> 2x2), and is the bottleneck;
    # SIMD < channels everywhere (2 and 2 words per pixel), NF > 1 in both convs
    "k2-int-multi": ((6, 5, 2), 2, [
        dict(mh=6, kernel=2, pad=0, n_thresholds=3, weight_bits=2, weight_encoding="int"),
        dict(mh=8, kernel=3, pad=1, pad_code=1, pool=2, n_thresholds=1, weight_bits=2, weight_encoding="sym"),
        dict(mh=5, kind=art.INT_SCORE, weight_bits=2, weight_encoding="int")],
        [F(3, 1), F(4, 3), F(5, 8)], 6, 6),
}
SLOW_NETS = {
    # one-row-of-words pixels (SIMD = channels), pool 3 dropping a column, FC reading a wide map, 8-bit pixels
    "pool3-wide": ((7, 8, 3), 8, [
        dict(mh=4, kernel=3, pad=1, pool=3, n_thresholds=7),
        dict(mh=12, kernel=1, n_thresholds=1),
        dict(mh=6)], [F(2, 3), F(6, 4), F(3, 16)], 6, 3),
    # XNOR convs all the way (binary input, pad code 1), kernel 5 pad 2, conv -> conv -> conv, FC score
    "xnor-deep": ((6, 6, 1), 1, [
        dict(mh=8, kind=art.XNOR_THRESHOLD, kernel=5, pad=2),
        dict(mh=8, kind=art.XNOR_THRESHOLD, kernel=3, pad=0, pool=2),
        dict(mh=16, kind=art.XNOR_THRESHOLD, kernel=2, pad=1),
        dict(mh=4, kind=art.XNOR_SCORE)], [F(4, 1), F(2, 4), F(8, 8), F(4, 16)], 6, 1),
}


def make_net(root, name: str, seed: int | None = None, generate=("rtl",)) -> art.Artifact:
    """The named net's artifact (its own seed unless ``seed`` is given), exported with ``generate``."""
    ifm, bits, layers, folding, n, own_seed = {**NETS, **SLOW_NETS}[name]
    return conv_artifact(root, own_seed if seed is None else seed, ifm, bits, layers, folding=folding,
                         n_vectors=n, generate=generate)


def assert_layers_vary(a: art.Artifact, images: np.ndarray) -> None:
    """Many output elements of every inner layer change with the image, so the comparisons can fail.

    (Channel 0 and the last channel are constant by design at every pixel: always the top code, always 0.)
    """
    trace = GoldenModel(a).trace(images)
    for k, layer in enumerate(a.layers[:-1]):
        outputs = trace.outputs[k].reshape(len(images), -1, layer.out_features)[:, :, 1:-1]
        varying = (outputs.min(axis=0) != outputs.max(axis=0)).mean()
        assert varying >= 0.35, f"layer {k}: only {varying:.0%} of the outputs vary over the test images"


def check_conv_network(tmp_path, sim: str, name: str, seed: int = 1):
    from bnnflow.sim.network import run_network

    toolchain.pytest_require(sim)
    a = make_net(tmp_path / "a", name)
    assert any(l.is_conv for l in a.layers)
    images, _, golden = read_vectors(a)
    np.testing.assert_array_equal(GoldenModel(a).scores(images), golden)
    assert_layers_vary(a, images)
    result = run_network(a, images, sim, check=True, seed=seed, idle=0.3, backpressure=0.4, timing_vectors=6)
    np.testing.assert_array_equal(result.scores, golden)
    trace = GoldenModel(a).trace(images)
    assert len(result.layer_outputs) == len(a.layers) - 1
    for k, outputs in enumerate(result.layer_outputs):          # every layer, not only the scores
        np.testing.assert_array_equal(outputs, trace.outputs[k], err_msg=f"layer {k}")
    model = max(l.cycles_per_image for l in a.layers)
    assert result.model_cycles == model == a.manifest["rtl"]["cycles_per_image"] == rtlgen.cycles_per_image(a)
    assert model <= result.cycles_per_image <= model * 1.05, (
        f"{name}: measured {result.cycles_per_image} cycles/image, slowest layer NF*SF*pixels = {model}")
    for k, cycles in enumerate(result.layer_cycles):
        assert model <= cycles <= model * 1.05, f"{name}: layer {k} output stream: {cycles} cycles/image, model {model}"
    return a, result


#: the CI pairs: each net on Icarus, the example also on Verilator (a cold Verilator build is ~25 s)
FAST = [pytest.param("icarus", "example", id="icarus-example"),
        pytest.param("verilator", "example", id="verilator-example"),
        pytest.param("icarus", "k2-int-multi", id="icarus-k2-int-multi"),
        pytest.param("verilator", "k2-int-multi", id="verilator-k2-int-multi", marks=pytest.mark.slow)]


@pytest.mark.rtl
@pytest.mark.parametrize("sim,name", FAST)
def test_conv_network(tmp_path, sim, name):
    check_conv_network(tmp_path, sim, name)


@pytest.mark.rtl
@pytest.mark.slow
@pytest.mark.parametrize("sim", SIMS)
@pytest.mark.parametrize("name", list(SLOW_NETS))
def test_conv_network_sweep(tmp_path, sim, name):
    check_conv_network(tmp_path, sim, name, seed=2)   # the tb's idle/backpressure seed


def test_top_wiring(tmp_path):
    """What the generator instantiates for the example: swu -> mvtu -> maxpool, repack per pixel / per map."""
    a = make_net(tmp_path / "a", "example", generate=())
    text = rtlgen.top_text(a)
    l0, l1, l2, l3 = a.layers
    for unit in ("bnn_swu", "bnn_maxpool", "bnn_out_fifo4"):
        assert f"{unit}.v" in rtlgen.LIBRARY
    assert [line.split()[-2] for line in text.splitlines() if line.strip().startswith(") u_")] == [
        "u_swu0", "u_layer0", "u_pool0", "u_repack0", "u_swu1", "u_layer1", "u_repack1", "u_layer2",
        "u_repack2", "u_layer3"]
    assert rtlgen.swu_parameters(l0) == {"IFM_H": 8, "IFM_W": 8, "CH": 1, "KERNEL": 3, "PAD": 1, "SIMD": 1,
                                         "ELEM_BITS": 5, "PAD_CODE": 0}
    assert rtlgen.swu_parameters(l1) == {"IFM_H": 4, "IFM_W": 4, "CH": 8, "KERNEL": 3, "PAD": 1,
                                         "SIMD": l1.simd, "ELEM_BITS": 1, "PAD_CODE": 1}
    assert rtlgen.maxpool_parameters(l0) == {"IFM_H": 8, "IFM_W": 8, "CH": 8, "POOL": 2, "PE": l0.pe,
                                             "ELEM_BITS": 1}
    assert rtlgen.maxpool_parameters(l1) is None
    # conv -> conv: one pixel's channels; conv -> FC: the whole 4x4x16 map (HWC); FC -> FC: the vector
    assert rtlgen.repack_parameters(l0, l1) == {"IN_ELEMS": l0.pe, "OUT_ELEMS": l1.simd, "ELEM_BITS": 1,
                                                "ELEMS": 8, "ELEMS_PAD": 8}
    assert rtlgen.repack_parameters(l1, l2) == {"IN_ELEMS": l1.pe, "OUT_ELEMS": l2.simd, "ELEM_BITS": 1,
                                                "ELEMS": 256, "ELEMS_PAD": l2.in_features_padded}
    assert rtlgen.repack_parameters(l2, l3)["ELEMS"] == 12
    assert rtlgen.cycles_per_image(a) == max(l.nf * l.sf * l.pixels for l in a.layers) == 576


@pytest.mark.rtl
def test_bulk_verilator(tmp_path):
    """The Verilated C++ harness (sim/bulk.py) runs a conv net: its stream sizes are the layers' stream words."""
    from bnnflow.sim.bulk import StreamShape, run_bulk

    toolchain.pytest_require("verilator")
    a = make_net(tmp_path / "a", "example")
    last = a.layers[-1]
    assert (last.pe, last.nf) == (10, 1)
    # 64 one-pixel words of one 5-bit element in; one word of the 10 scores out
    assert StreamShape.of(a) == StreamShape(5, 10 * last.output_bits, 64, 1)
    images, _, golden = read_vectors(a)
    result = run_bulk(a, images, check=True, seed=3, idle=0.2, backpressure=0.3)
    np.testing.assert_array_equal(result.scores, golden)
    assert result.model_cycles == 576
    assert 576 <= result.cycles_per_image <= 576 * 1.05, result.cycles_per_image


def test_board_sim_equals_golden(tmp_path):
    """The PYNQ driver on the simulated board (weights loaded at run time through the DMA) == golden."""
    from bnnflow.verify import run_level

    a = make_net(tmp_path / "a", "k2-int-multi", generate=())
    images, _, golden = read_vectors(a)
    np.testing.assert_array_equal(run_level("board-sim", a, images, "icarus").scores, golden)
