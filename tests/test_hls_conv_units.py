"""HLS convolution units (hls/bnn_conv.hpp), C-simulated with g++, against bnnflow.conv word by word.

Every setting runs several seeded random images back to back through one
unit; the whole output stream must equal ``conv.im2col`` / ``conv.max_pool``
packed the same way (bnnflow.packing). The loop trip counts (cycles at II=1)
check the throughput claims of the header: the sliding window writes one
word per cycle after a stated fill, with no gap between images; the max-pool
takes one input word per cycle. All settings of a tier compile into one
binary (bnnflow.hls_units), cached by content hash.
"""

from __future__ import annotations

import itertools
import subprocess

import numpy as np
import pytest

from bnnflow import hls_units as hu
from bnnflow import hlsflow
from bnnflow.conv import ConvGeometry, PoolGeometry

pytestmark = pytest.mark.hls

SW = hu.SlidingWindow
MP = hu.MaxPool
C = ConvGeometry
P = PoolGeometry

# kernel 1/2/3/5, pad 0 and K//2 (and K-1), CH/SIMD 1..4, 1/2/8-bit elements, non-square maps, nonzero pad codes.
FAST = [
    SW(C(5, 4, 4, 1, 0), simd=2, elem_bits=2),                  # 1x1: a pass-through, CF 2
    SW(C(5, 7, 3, 2, 0), simd=3, elem_bits=8),                  # even kernel, no pad, CF 1
    SW(C(4, 6, 4, 2, 1), simd=1, elem_bits=1, pad_code=1),      # even kernel, pad K//2, CF 4, 1-bit (+1 pads)
    SW(C(6, 7, 4, 3, 1), simd=2, elem_bits=2, pad_code=3),      # the usual 3x3 "same"
    SW(C(7, 5, 2, 3, 0), simd=1, elem_bits=8),                  # 3x3 valid, CF 2
    SW(C(6, 8, 3, 5, 2), simd=1, elem_bits=1, pad_code=1),      # 5x5 same, CF 3
    SW(C(5, 9, 2, 5, 0), simd=2, elem_bits=2),                  # 5x5 on a map of its height
    SW(C(3, 4, 2, 3, 2), simd=1, elem_bits=8, pad_code=200),    # pad K-1: the widest pad
    SW(C(1, 5, 1, 3, 1), simd=1, elem_bits=2, pad_code=2),      # one row: the map is lower than the window
    MP(P(6, 6, 4, 2), pe=2, elem_bits=2),
    MP(P(7, 5, 3, 2), pe=1, elem_bits=1),                       # odd map: last row and column dropped; OR
    MP(P(9, 8, 2, 3), pe=2, elem_bits=8),
    MP(P(4, 6, 4, 4), pe=1, elem_bits=2),                       # CF 4, one output row, columns dropped
    MP(P(3, 5, 3, 1), pe=3, elem_bits=8),                       # pool 1: a pass-through
]
#: Images per run: several, so the image boundaries (and the sliding window's overlap of them) are exercised.
IMAGES = 4


def _ids(settings):
    out = []
    for s in settings:
        g = s.geom
        if isinstance(s, SW):
            out.append(f"sw-{g.ifm_h}x{g.ifm_w}x{g.channels}-k{g.kernel}p{g.pad}-s{s.simd}-b{s.elem_bits}"
                       f"-c{s.pad_code}")
        else:
            out.append(f"mp-{g.ifm_h}x{g.ifm_w}x{g.channels}-k{g.pool}-pe{s.pe}-b{s.elem_bits}")
    return out


def _images(setting, n: int, seed: int) -> np.ndarray:
    g = setting.geom
    rng = np.random.default_rng(seed)
    return rng.integers(0, 1 << setting.elem_bits, size=(n, g.ifm_h, g.ifm_w, g.channels))


@pytest.fixture(scope="module")
def fast_build(hls_toolchain):
    return hu.build(FAST)


def _check_run(unit: hu.UnitBuild, index: int, n: int, seed: int) -> hu.UnitRun:
    """Run setting ``index`` on ``n`` random images; every output word equals the conv.py reference."""
    setting = unit.settings[index]
    fmaps = _images(setting, n, seed)
    result = hu.run(unit, index, fmaps)
    want = hu.expected_words(setting, fmaps)
    assert result.passed, result.output
    assert result.words.shape == want.shape == (n * setting.out_words, -(-setting.word_elems * setting.elem_bits // 8))
    bad = np.flatnonzero((result.words != want).any(axis=1))
    assert bad.size == 0, (f"{bad.size} of {want.shape[0]} words differ, first at word {bad[0]}: "
                           f"got {result.fields()[bad[0]].tolist()}")
    assert result.buffer_words == setting.buffer_words
    return result


@pytest.mark.parametrize("index", range(len(FAST)), ids=_ids(FAST))
def test_unit_equals_conv_reference(fast_build, index):
    setting = FAST[index]
    result = _check_run(fast_build, index, IMAGES, seed=100 + index)
    if isinstance(setting, SW):
        # one output word per cycle after the stated fill, and the fill is paid once, not per image
        assert IMAGES * setting.out_words <= result.iterations <= IMAGES * setting.out_words + setting.fill
        assert setting.out_words >= setting.in_words  # so out_words is max(input words, output words)
        one = hu.run(fast_build, index, _images(setting, 1, seed=7))
        assert result.iterations - one.iterations == (IMAGES - 1) * setting.out_words
    else:
        assert result.iterations == IMAGES * setting.in_words  # one input word per cycle, never a stall


def test_sliding_window_buffer_is_rows_not_an_image():
    """The line buffer is the stated K-1 rows + K+1 pixels for a 'same' convolution, far below an image."""
    s = SW(C(16, 12, 4, 3, 1), simd=2, elem_bits=1, pad_code=1)
    assert s.buffer_words == (2 * 12 + 4) * 2
    assert s.buffer_words < s.in_words / 5
    s0 = SW(C(16, 12, 4, 3, 0), simd=2, elem_bits=1)
    assert s0.buffer_words == (2 * 2 * 12 + 2 * 3) * 2  # PAD = 0: 2(K-1) rows + 2K pixels for the overlap


def test_one_bit_max_pool_is_or_and_all_ones_survive(fast_build):
    """1-bit maps: the pooled bit is the OR of its window (all-zero and all-one images as whole outputs)."""
    index = 10
    setting = FAST[index]
    g = setting.geom
    fmaps = np.zeros((2, g.ifm_h, g.ifm_w, g.channels), dtype=np.int64)
    fmaps[1] = 1
    fmaps[0, 1, 1, 2] = 1            # one bit in window (0, 0) of channel 2
    fmaps[0, 6, 4, 0] = 1            # in the dropped last row and column: must not appear
    result = hu.run(fast_build, index, fmaps)
    got = result.fields().reshape(2, g.ofm_h, g.ofm_w, g.channels)
    want = np.zeros_like(got)
    want[0, 0, 0, 2] = 1
    want[1] = 1
    np.testing.assert_array_equal(got, want)


def test_a_wrong_reference_is_caught(fast_build):
    """The comparison can fail: the unit's pad code differs from the reference's, so the padded words differ."""
    index = 3
    setting = FAST[index]
    fmaps = _images(setting, 2, seed=3)
    result = hu.run(fast_build, index, fmaps)
    other = SW(setting.geom, setting.simd, setting.elem_bits, pad_code=0)
    wrong = hu.expected_words(other, fmaps)
    differ = (result.words != wrong).any(axis=1)
    g = setting.geom
    # words of out-of-map window positions: first/last output rows and columns, per im2col
    padded = sum(1 for oy, ox, ky, kx in itertools.product(range(g.ofm_h), range(g.ofm_w), range(3), range(3))
                 if not (0 <= oy + ky - 1 < g.ifm_h and 0 <= ox + kx - 1 < g.ifm_w))
    assert int(differ.sum()) == 2 * padded * setting.folds


def test_build_is_cached(fast_build):
    again = hu.build(FAST)
    assert not again.compiled and again.binary == fast_build.binary


# -- refused settings ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("make, message", [
    (lambda: SW(C(4, 4, 6, 3, 1), simd=4, elem_bits=1), "sliding window: simd=4 does not divide the 6 channels"),
    (lambda: SW(C(4, 4, 2, 3, 3), simd=1, elem_bits=1), "pad must be an integer in 0..kernel-1 = 2, got 3"),
    (lambda: SW(C(2, 6, 2, 5, 0), simd=1, elem_bits=1), "a 5x5 kernel with pad 0 does not fit the 2x6 input map"),
    (lambda: SW(C(4, 4, 2, 3, 1), simd=1, elem_bits=2, pad_code=4),
     "pad_code must be a code in 0..3 (elem_bits=2), got 4"),
    (lambda: SW(C(4, 4, 2, 3, 1), simd=0, elem_bits=2), "sliding window: simd must be a positive integer, got 0"),
    (lambda: MP(P(6, 6, 6, 2), pe=4, elem_bits=1), "max-pool: pe=4 does not divide the 6 channels"),
    (lambda: MP(P(2, 6, 1, 3), pe=1, elem_bits=1), "a 3x3 window does not fit the 2x6 input map"),
    (lambda: MP(P(6, 6, 2, 2), pe=2, elem_bits=40), "elem_bits must be at most 32, got 40"),
])
def test_bad_settings_are_refused_before_compiling(make, message):
    with pytest.raises(ValueError) as exc:
        make()
    assert message in str(exc.value)


def test_bad_inputs_are_refused(fast_build):
    setting = FAST[3]
    with pytest.raises(ValueError, match=r"feature maps have shape \(2, 7, 6, 4\), the unit takes \(N, 6, 7, 4\)"):
        hu.run(fast_build, 3, np.zeros((2, 7, 6, 4), dtype=np.int64))
    with pytest.raises(ValueError, match=r"a feature map code is outside 0\.\.3 \(elem_bits=2\)"):
        hu.run(fast_build, 3, np.full((1, 6, 7, 4), 4))
    with pytest.raises(ValueError, match=r"unit index 14 is not in this build's 0\.\.13"):
        hu.run(fast_build, len(FAST), _images(setting, 1, 0))
    with pytest.raises(ValueError, match="no settings given"):
        hu.build([])


def test_static_asserts_name_the_parameter(hls_toolchain, tmp_path):
    """Past the Python checks, the templates themselves refuse the same settings at compile time."""
    cxx, ap_include = hls_toolchain
    src = tmp_path / "bad.cpp"
    src.write_text('#include "bnn_conv.hpp"\n'
                   "void f(hls::stream<ap_uint<4> > &a, hls::stream<ap_uint<4> > &b) {\n"
                   "  bnn::sliding_window<4, 4, 6, 3, 1, 4, 1, 0>(a, b, 1);\n"   # CH % SIMD
                   "  bnn::sliding_window<4, 4, 4, 3, 3, 4, 1, 0>(a, b, 1);\n"   # PAD >= K
                   "  bnn::sliding_window<1, 6, 4, 5, 1, 4, 1, 0>(a, b, 1);\n"   # map + pad lower than the window
                   "  bnn::max_pool<4, 4, 6, 2, 4, 1>(a, b, 1);\n"               # CH % PE
                   "  bnn::max_pool<2, 6, 4, 3, 4, 1>(a, b, 1);\n"               # map smaller than the window
                   "}\n")
    proc = subprocess.run([cxx, "-std=c++14", "-fsyntax-only", "-w", "-I", str(hlsflow.hls_source_dir()),
                           "-isystem", str(ap_include), str(src)], capture_output=True, text=True)
    assert proc.returncode != 0
    for message in ("sliding_window: CH must be a multiple of SIMD",
                    "sliding_window: PAD must be smaller than KERNEL",
                    "sliding_window: the padded input map is smaller than the KERNEL x KERNEL window",
                    "max_pool: CH must be a multiple of PE",
                    "max_pool: the input map is smaller than the POOL x POOL window"):
        assert message in proc.stderr, (message, proc.stderr)


# -- the wider sweep -----------------------------------------------------------------------------------------
def _sweep():
    """Seeded random settings: kernels 1..7 with pads 0, K//2 and K-1, CH/SIMD 1..4, elements 1..32 bits."""
    rng = np.random.default_rng(2024)
    settings = []
    for k in (1, 2, 3, 4, 5, 7):
        for pad in sorted({0, k // 2, k - 1}):
            for cf, simd in ((1, 1), (2, 2), (3, 1), (4, 3)):
                h = int(rng.integers(max(1, k - 2 * pad), 12))
                w = int(rng.integers(max(1, k - 2 * pad), 13))
                bits = int(rng.choice([1, 2, 3, 4, 8, 16, 32]))
                code = int(rng.integers(0, 1 << bits))
                settings.append(SW(C(h, w, cf * simd, k, pad), simd=simd, elem_bits=bits, pad_code=code))
    for pool in (1, 2, 3, 4, 5):
        for cf, pe in ((1, 4), (2, 1), (3, 2), (4, 1)):
            h, w = (int(v) for v in rng.integers(pool, 3 * pool + 2, size=2))
            settings.append(MP(P(h, w, cf * pe, pool), pe=pe, elem_bits=int(rng.choice([1, 2, 3, 8, 16, 32]))))
    # layer-sized: a CNV-like 3x3 'same' and 'valid' layer, 64 channels in words of 16, and its pool
    settings += [SW(C(32, 32, 64, 3, 1), simd=16, elem_bits=2, pad_code=0),
                 SW(C(30, 30, 64, 3, 0), simd=16, elem_bits=1, pad_code=1),
                 MP(P(28, 28, 64, 2), pe=16, elem_bits=2)]
    return settings


SWEEP = _sweep()


@pytest.fixture(scope="module")
def sweep_build(hls_toolchain):
    return hu.build(SWEEP)


@pytest.mark.slow
@pytest.mark.parametrize("index", range(len(SWEEP)), ids=_ids(SWEEP))
def test_sweep(sweep_build, index):
    setting = SWEEP[index]
    result = _check_run(sweep_build, index, 5, seed=500 + index)
    if isinstance(setting, SW):
        assert 5 * setting.out_words <= result.iterations <= 5 * setting.out_words + setting.fill
    else:
        assert result.iterations == 5 * setting.in_words
