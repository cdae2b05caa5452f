"""bnn_mvtu against the golden model, on Icarus and Verilator.

Each case builds a random one-layer artifact, runs the unit with random source
idle and sink backpressure (every output word and TLAST checked), then a
back-to-back phase whose measured cycles per vector must equal NF*SF.
"""

from __future__ import annotations

import pytest

from bnnflow import artifact as art
from bnnflow.sim import toolchain
from bnnflow.writer import read_vectors
from conftest import on_both_simulators

SIMS = ["icarus", "verilator"]

# (kind, MW, MH, PE, SIMD, input_bits)
FAST = [
    pytest.param(art.INT_THRESHOLD, 100, 16, 4, 32, 5, id="int-mw100pad128-pe4-simd32"),
    pytest.param(art.XNOR_THRESHOLD, 37, 12, 3, 8, 1, id="xnor-thr-mw37pad40-pe3-simd8"),
    pytest.param(art.XNOR_SCORE, 20, 10, 1, 1, 1, id="xnor-score-pe1-simd1"),
    pytest.param(art.XNOR_THRESHOLD, 16, 8, 8, 16, 1, id="xnor-thr-nf1-sf1"),
]
SLOW = [
    pytest.param(art.INT_THRESHOLD, 64, 32, 16, 32, 5, id="int-digits-like"),
    pytest.param(art.INT_THRESHOLD, 30, 6, 2, 4, 8, id="int-8bit-pad32"),
    pytest.param(art.INT_THRESHOLD, 9, 5, 5, 1, 1, id="int-1bit-simd1"),
    pytest.param(art.INT_THRESHOLD, 12, 4, 1, 12, 3, id="int-pe1-sf1"),
    pytest.param(art.XNOR_THRESHOLD, 256, 64, 16, 64, 1, id="xnor-simd64"),
    pytest.param(art.XNOR_THRESHOLD, 7, 3, 1, 2, 1, id="xnor-tiny-pad8"),
    pytest.param(art.XNOR_SCORE, 64, 10, 2, 8, 1, id="score-64-10"),
    pytest.param(art.XNOR_SCORE, 33, 4, 4, 32, 1, id="score-pad64-nf1"),
    pytest.param(art.XNOR_SCORE, 100, 12, 6, 16, 1, id="score-pad112"),
]


def check_mvtu(tmp_path, sim, kind, mw, mh, pe, simd, input_bits, seed=0):
    from bnnflow.sim.units import run_mvtu, single_layer_artifact

    toolchain.pytest_require(sim)
    a = single_layer_artifact(tmp_path / "a", kind, mw, mh, pe, simd, input_bits, seed=seed)
    images, _, _ = read_vectors(a)
    result = run_mvtu(a, images, sim, seed=seed)
    layer = a.layers[0]
    expected = layer.nf * layer.sf
    assert expected <= result["cycles_per_vector"] <= expected * 1.02 + 0.5, (
        f"measured {result['cycles_per_vector']} cycles/vector, NF*SF = {expected}")


#: FAST cases also run on Verilator in the default suite: the integer layer (multi-bit input, padding) and
#: the score layer at PE = SIMD = 1 (1-bit buses). The threshold layer and NF = SF = 1 reach Verilator in
#: the default suite inside networks (tests/test_rtl_network.py, tests/test_rtl_bulk.py); their unit
#: cases on Verilator are slow (a cold Verilator build each), Icarus runs every FAST case.
VERILATOR_FAST = ("int-mw100pad128-pe4-simd32", "xnor-score-pe1-simd1")


@pytest.mark.rtl
@pytest.mark.parametrize("sim,kind,mw,mh,pe,simd,input_bits", on_both_simulators(FAST, SIMS, VERILATOR_FAST))
def test_mvtu(tmp_path, sim, kind, mw, mh, pe, simd, input_bits):
    check_mvtu(tmp_path, sim, kind, mw, mh, pe, simd, input_bits)


@pytest.mark.rtl
@pytest.mark.slow
@pytest.mark.parametrize("sim", SIMS)
@pytest.mark.parametrize("kind,mw,mh,pe,simd,input_bits", SLOW)
def test_mvtu_sweep(tmp_path, sim, kind, mw, mh, pe, simd, input_bits):
    check_mvtu(tmp_path, sim, kind, mw, mh, pe, simd, input_bits, seed=3)
