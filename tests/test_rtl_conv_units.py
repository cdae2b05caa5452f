"""bnn_swu (sliding window) and bnn_maxpool: every output word and TLAST against bnnflow.conv, throughput, lint.

Each simulation streams at least 3 random seeded images with random input idle
and output backpressure, then back-to-back images without either; the
testbenches compare each output word with conv.im2col / conv.max_pool packed by
bnnflow.packing, and the cycles per image must meet the units' documented
bound (sim/conv_units.py): one word per cycle on the busier side. The random
phase groups the images into frames 2, 1, ... (sim/tb_swu.py ``frames``), so
the first image's last input word has no TLAST and the second's has: each
image's last output word must carry TLAST exactly when its last input word
did (the max-pool cases with dropped rows/columns hold the last window's word
until the image ends for that).
"""

from __future__ import annotations

import subprocess

import pytest

from bnnflow import conv
from bnnflow.sim import conv_units, toolchain
from conftest import on_both_simulators
from test_rtl_lint import _icarus_2005, _verilator_lint

SIMS = ["icarus", "verilator"]

# (IFM_H, IFM_W, CH, KERNEL, PAD, SIMD, ELEM_BITS, PAD_CODE)
SWU_FAST = [
    pytest.param(6, 5, 4, 3, 1, 2, 1, 1, id="k3-pad1-cf2-pm1"),          # +-1 maps pad with the +1 code
    pytest.param(5, 7, 6, 2, 0, 3, 2, 3, id="k2-nonsquare-2bit"),
]
SWU_SLOW = [
    pytest.param(4, 3, 8, 1, 0, 2, 1, 0, id="k1-cf4"),
    pytest.param(4, 5, 2, 5, 2, 1, 8, 0x80, id="k5-pad2-cf2-8bit"),
    pytest.param(7, 6, 3, 5, 2, 1, 2, 1, id="k5-pad2-wide"),
    pytest.param(6, 9, 4, 5, 0, 4, 1, 0, id="k5-pad0"),
    pytest.param(8, 5, 8, 3, 0, 2, 2, 2, id="k3-pad0-cf4"),
    pytest.param(3, 3, 2, 3, 0, 2, 1, 1, id="map-equals-window"),
    pytest.param(2, 1, 1, 3, 2, 1, 8, 0xff, id="map-smaller-than-kernel-padded"),
    pytest.param(1, 6, 2, 1, 0, 1, 2, 0, id="one-row-k1"),
    pytest.param(4, 6, 4, 2, 1, 4, 8, 7, id="k2-pad1-simd-all"),
    pytest.param(9, 4, 12, 3, 1, 3, 2, 0, id="k3-pad1-cf4-tall"),
]
SWU_VERILATOR_FAST = ["k3-pad1-cf2-pm1"]

# (IFM_H, IFM_W, CH, POOL, PE, ELEM_BITS)
POOL_FAST = [
    pytest.param(6, 5, 4, 2, 2, 1, id="k2-odd-width-1bit"),        # the OR of 1-bit codes, last column dropped
    pytest.param(7, 8, 6, 3, 2, 8, id="k3-drop-rows-cols-8bit"),
    pytest.param(2, 3, 1, 2, 1, 2, id="k2-cf1-forward"),           # one accumulator: back-to-back forwarding
]
POOL_SLOW = [
    pytest.param(4, 6, 3, 2, 1, 2, id="k2-cf3-pe1"),
    pytest.param(5, 5, 4, 1, 4, 1, id="k1-identity"),
    pytest.param(6, 8, 8, 2, 4, 2, id="k2-cf2"),
    pytest.param(9, 7, 4, 4, 1, 8, id="k4-cf4"),
    pytest.param(5, 9, 12, 2, 3, 1, id="k2-cf4-1bit"),
    pytest.param(3, 3, 2, 3, 2, 8, id="map-equals-window"),
]
POOL_VERILATOR_FAST = ["k2-cf1-forward"]


def check_swu(sim, h, w, ch, k, pad, simd, bits, pad_code, seed=0, timing_images=4):
    toolchain.pytest_require(sim)
    geom = conv.ConvGeometry(h, w, ch, k, pad)
    result = conv_units.run_swu(geom, simd, bits, pad_code, sim, images=3, seed=seed, timing_images=timing_images)
    bound = conv_units.swu_cycles_per_image(geom, simd)
    assert bound == geom.output_pixels * k * k * ch // simd
    # the documented bound: one output word per cycle back to back (no stall between images)
    assert bound <= result["cycles_per_image"] <= bound * 1.05 + 2, (result, bound)
    assert result["latency"] == 3, result


def check_maxpool(sim, h, w, ch, pool, pe, bits, seed=0, timing_images=4):
    toolchain.pytest_require(sim)
    geom = conv.PoolGeometry(h, w, ch, pool)
    result = conv_units.run_maxpool(geom, pe, bits, sim, images=3, seed=seed, timing_images=timing_images)
    bound = conv_units.maxpool_cycles_per_image(geom, pe)
    assert bound == h * w * ch // pe
    assert bound <= result["cycles_per_image"] <= bound * 1.05 + 2, (result, bound)
    # the window's last input word: pixel (pool-1, pool-1), fold 0; its output word 2 cycles later -- unless
    # that word is the image's only output word and rows/columns are dropped: it waits for the image's last
    # input word (the one whose TLAST it carries)
    cf = ch // pe
    if geom.ofm_h * geom.ofm_w * cf == 1 and h * w > pool * pool:
        assert result["latency"] == h * w * cf - 1 + 2, result
    else:
        assert result["latency"] == ((pool - 1) * w + pool - 1) * cf + 2, result


@pytest.mark.rtl
@pytest.mark.parametrize("sim,h,w,ch,k,pad,simd,bits,pad_code", on_both_simulators(SWU_FAST, SIMS, SWU_VERILATOR_FAST))
def test_swu(sim, h, w, ch, k, pad, simd, bits, pad_code):
    check_swu(sim, h, w, ch, k, pad, simd, bits, pad_code)


@pytest.mark.rtl
@pytest.mark.slow
@pytest.mark.parametrize("sim", SIMS)
@pytest.mark.parametrize("h,w,ch,k,pad,simd,bits,pad_code", SWU_SLOW)
def test_swu_sweep(sim, h, w, ch, k, pad, simd, bits, pad_code):
    check_swu(sim, h, w, ch, k, pad, simd, bits, pad_code, seed=3, timing_images=6)


@pytest.mark.rtl
@pytest.mark.parametrize("sim,h,w,ch,pool,pe,bits", on_both_simulators(POOL_FAST, SIMS, POOL_VERILATOR_FAST))
def test_maxpool(sim, h, w, ch, pool, pe, bits):
    check_maxpool(sim, h, w, ch, pool, pe, bits)


@pytest.mark.rtl
@pytest.mark.slow
@pytest.mark.parametrize("sim", SIMS)
@pytest.mark.parametrize("h,w,ch,pool,pe,bits", POOL_SLOW)
def test_maxpool_sweep(sim, h, w, ch, pool, pe, bits):
    check_maxpool(sim, h, w, ch, pool, pe, bits, seed=3, timing_images=6)


# -- parameters refused before building -------------------------------------------------

@pytest.mark.parametrize("make,message", [
    (lambda: conv_units.swu_parameters(conv.ConvGeometry(5, 5, 6, 3, 1), 4, 1), "SIMD=4 does not divide the 6"),
    (lambda: conv_units.swu_parameters(conv.ConvGeometry(5, 5, 6, 3, 1), 0, 1),
     "SIMD must be a positive integer, got 0"),
    (lambda: conv_units.swu_parameters(conv.ConvGeometry(5, 5, 6, 3, 1), 3, 9), "ELEM_BITS must be an integer in 1..8, got 9"),
    (lambda: conv_units.swu_parameters(conv.ConvGeometry(5, 5, 6, 3, 1), 3, 2, 4),
     "PAD_CODE must be a code of ELEM_BITS=2 bits (0..3), got 4"),
    (lambda: conv_units.swu_parameters(conv.ConvGeometry(5, 5, 6, 3, 3), 3, 1),
     "pad must be an integer in 0..kernel-1 = 2, got 3"),
    (lambda: conv_units.swu_parameters(conv.ConvGeometry(2, 5, 6, 3, 0), 3, 1),
     "a 3x3 kernel with pad 0 does not fit the 2x5 input map"),
    (lambda: conv_units.maxpool_parameters(conv.PoolGeometry(4, 4, 6, 2), 4, 1), "PE=4 does not divide the 6"),
    (lambda: conv_units.maxpool_parameters(conv.PoolGeometry(4, 4, 6, 2), 2, 0),
     "ELEM_BITS must be an integer in 1..8, got 0"),
    (lambda: conv_units.maxpool_parameters(conv.PoolGeometry(4, 1, 6, 2), 2, 1),
     "a 2x2 window does not fit the 4x1 input map"),
], ids=["swu-ch-simd", "swu-simd-0", "swu-elem-bits", "swu-pad-code", "swu-pad-ge-kernel", "swu-map-small",
        "pool-ch-pe", "pool-elem-bits", "pool-map-small"])
def test_bad_parameters_refused(make, message):
    with pytest.raises(ValueError) as err:
        make()
    assert message in str(err.value)


def test_parameters_and_bounds():
    """The parameter dicts the units are built with, and their cycle formulas, for one typical layer each."""
    geom = conv.ConvGeometry(32, 32, 64, 3, 1)
    assert conv_units.swu_parameters(geom, 32, 1, 1) == {
        "IFM_H": 32, "IFM_W": 32, "CH": 64, "KERNEL": 3, "PAD": 1, "SIMD": 32, "ELEM_BITS": 1, "PAD_CODE": 1}
    assert conv_units.swu_words(geom, 32) == (2048, 18432)
    assert conv_units.swu_cycles_per_image(geom, 32) == 18432
    pool = conv.PoolGeometry(30, 30, 64, 2)
    assert conv_units.maxpool_parameters(pool, 16, 1) == {
        "IFM_H": 30, "IFM_W": 30, "CH": 64, "POOL": 2, "PE": 16, "ELEM_BITS": 1}
    assert conv_units.maxpool_words(pool, 16) == (3600, 900)
    assert conv_units.maxpool_cycles_per_image(pool, 16) == 3600


# -- lint, and the refusal at elaboration ------------------------------------------------

LINT = [
    ("bnn_swu", {}),
    ("bnn_swu", {"IFM_H": 5, "IFM_W": 7, "CH": 12, "SIMD": 3, "ELEM_BITS": 2, "PAD_CODE": 3, "KERNEL": 5, "PAD": 2}),
    ("bnn_swu", {"KERNEL": 1, "PAD": 0, "CH": 4, "SIMD": 4}),
    ("bnn_swu", {"IFM_H": 2, "IFM_W": 1, "CH": 1, "SIMD": 1, "KERNEL": 3, "PAD": 2, "ELEM_BITS": 8, "PAD_CODE": 255}),
    ("bnn_swu", {"IFM_H": 32, "IFM_W": 32, "CH": 64, "SIMD": 32, "KERNEL": 3, "PAD": 1}),
    ("bnn_maxpool", {}),
    ("bnn_maxpool", {"POOL": 1}),
    ("bnn_maxpool", {"IFM_H": 7, "IFM_W": 5, "CH": 6, "PE": 2, "POOL": 3, "ELEM_BITS": 8}),
    ("bnn_maxpool", {"IFM_H": 2, "IFM_W": 2, "CH": 1, "PE": 1, "POOL": 2}),
    ("bnn_maxpool", {"IFM_H": 30, "IFM_W": 30, "CH": 64, "PE": 16, "POOL": 2}),
]


@pytest.mark.rtl
@pytest.mark.parametrize("top,params", LINT, ids=[f"{t}-{i}" for i, (t, _) in enumerate(LINT)])
def test_lint(tmp_path, top, params):
    files = conv_units.unit_sources(top)
    toolchain.pytest_require("verilator")
    _verilator_lint(files, top, params)
    toolchain.pytest_require("icarus")
    _icarus_2005(files, top, tmp_path, params)


@pytest.mark.rtl
@pytest.mark.parametrize("top,params,problem", [
    ("bnn_swu", {"CH": 6, "SIMD": 4}, "bnn_swu_error_CH_must_be_a_positive_multiple_of_SIMD"),
    ("bnn_swu", {"KERNEL": 3, "PAD": 3}, "bnn_swu_error_PAD_must_be_0_to_KERNEL_minus_1"),
    ("bnn_swu", {"IFM_H": 2, "KERNEL": 3, "PAD": 0}, "bnn_swu_error_map_smaller_than_the_padded_window"),
    ("bnn_swu", {"ELEM_BITS": 2, "PAD_CODE": 4}, "bnn_swu_error_PAD_CODE_must_fit_ELEM_BITS"),
    ("bnn_maxpool", {"CH": 6, "PE": 4}, "bnn_maxpool_error_CH_must_be_a_positive_multiple_of_PE"),
    ("bnn_maxpool", {"IFM_W": 1, "POOL": 2}, "bnn_maxpool_error_map_smaller_than_the_POOL_window"),
], ids=["swu-ch-simd", "swu-pad", "swu-map", "swu-pad-code", "pool-ch-pe", "pool-map"])
def test_bad_parameters_refused_at_elaboration(tmp_path, top, params, problem):
    """Both simulators stop at elaboration and name the problem."""
    files = [str(f) for f in conv_units.unit_sources(top)]
    toolchain.pytest_require("icarus")
    proc = subprocess.run(["iverilog", "-g2012", "-o", str(tmp_path / "x.vvp"), "-s", top,
                           *[f"-P{top}.{k}={v}" for k, v in params.items()], *files],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode != 0 and problem in proc.stdout + proc.stderr, proc.stdout + proc.stderr
    toolchain.pytest_require("verilator")
    proc = subprocess.run([toolchain.verilator_executable(), "--lint-only", "--top-module", top,
                           *[f"-G{k}={v}" for k, v in params.items()], *files],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode != 0 and problem in proc.stderr, proc.stderr
