"""bnn_axis_repack: width conversion, zero padding, TLAST and throughput."""

from __future__ import annotations

import pytest

from bnnflow.sim import toolchain

SIMS = ["icarus", "verilator"]

# IN_ELEMS, OUT_ELEMS, ELEM_BITS, ELEMS, ELEMS_PAD
FAST = [
    pytest.param(4, 16, 1, 64, 64, id="widen"),
    pytest.param(2, 32, 1, 10, 32, id="widen-pad"),
    pytest.param(5, 3, 7, 10, 12, id="scores-narrow-pad"),
]
SLOW = [
    pytest.param(8, 8, 1, 32, 32, id="equal-width"),
    pytest.param(16, 4, 1, 64, 64, id="narrow"),
    pytest.param(1, 1, 1, 7, 7, id="one-by-one"),
    pytest.param(10, 32, 1, 100, 128, id="pad-100-128"),
    pytest.param(3, 3, 1, 9, 12, id="same-width-pad"),
]


def check_repack(sim, ie, oe, eb, elems, pad, seed=0):
    from bnnflow.sim.units import run_repack

    toolchain.pytest_require(sim)
    params = {"IN_ELEMS": ie, "OUT_ELEMS": oe, "ELEM_BITS": eb, "ELEMS": elems, "ELEMS_PAD": pad}
    result = run_repack(params, sim, seed=seed)
    expected = max(elems // ie, pad // oe)
    assert expected <= result["cycles_per_vector"] <= expected * 1.02 + 0.5


@pytest.mark.rtl
@pytest.mark.parametrize("sim", SIMS)
@pytest.mark.parametrize("ie,oe,eb,elems,pad", FAST)
def test_repack(sim, ie, oe, eb, elems, pad):
    check_repack(sim, ie, oe, eb, elems, pad)


@pytest.mark.rtl
@pytest.mark.slow
@pytest.mark.parametrize("sim", SIMS)
@pytest.mark.parametrize("ie,oe,eb,elems,pad", SLOW)
def test_repack_sweep(sim, ie, oe, eb, elems, pad):
    check_repack(sim, ie, oe, eb, elems, pad, seed=5)
