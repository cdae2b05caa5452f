"""HLS level, convolutional networks: the generated header's infer() chain of sliding windows, matrix-vector
units, max-pools and repackers, C-simulated with g++, against the golden model.

Each net compiles once (g++ on bnn_top.cpp + bnn_tb.cpp, about 15 s on one core) and every run reuses the
binary: the golden vectors through run_csim, every layer's output words (the C simulation's taps, a conv
layer's after its pool) against ``GoldenModel.trace``, a corrupted golden score, and a runtime reload of a
second artifact of the same hardware signature (load B, B's images, A's images under B, load A, A again).
The thresholds of the random nets are fitted to their own test images (bnnflow.testing.conv_artifact), and
the tests check that every threshold layer's outputs vary, so the comparisons are not of constants.
The two CI nets cover the contract's example (docs/ARTIFACT.md, issue 9) and a second geometry: kernel 2
without padding, a pad code that is not 0, 2-bit int convolutions with 3 thresholds, a pool after the
second convolution, SIMD below the channels, a per-pixel repacker and a padded whole-map repacker. A
seeded sweep of further geometries runs under ``slow``.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from bnnflow import artifact as art
from bnnflow import hlsflow, hlsgen
from bnnflow.folding import LayerFolding as F
from bnnflow.golden import GoldenModel
from bnnflow.testing import conv_artifact
from bnnflow.writer import read_vectors

from test_hls import check_layer_outputs, run_reload

#: name -> (ifm (H, W, C), input_bits, conv_artifact layers, folding or None for the default).
CI_NETS = {
    # The contract's example: a pooled int conv on 5-bit pixels, an XNOR conv (pad code 1), FC on the map.
    "example": ((8, 8, 1), 5, [
        dict(mh=8, kernel=3, pad=1, pool=2, n_thresholds=1),
        dict(mh=16, kind="xnor_threshold", kernel=3, pad=1),
        dict(mh=12, kind="xnor_threshold"),
        dict(mh=10, kind="xnor_score")], None),
    # 7x6x2 3-bit map: 3x3 same conv padding with code 5 into 3 thresholds (2-bit codes) ->
    # per-pixel repacker (PE 4 -> SIMD 2) -> 2x2 valid 2-bit int conv, 2-bit int weights, 3 thresholds,
    # 2x2 pool of a 6x5 map (last row dropped) -> whole-map repacker (36 -> 40 padded, PE 3 -> SIMD 8) -> FC.
    "valid_k2_2bit": ((7, 6, 2), 3, [
        dict(mh=4, kernel=3, pad=1, pad_code=5, n_thresholds=3),
        dict(mh=6, kernel=2, pad=0, pool=2, n_thresholds=3, weight_bits=2, weight_encoding=art.INT),
        dict(mh=8, n_thresholds=1),
        dict(mh=5, kind="int_score")],
        [F(pe=4, simd=2), F(pe=3, simd=2), F(pe=4, simd=8), F(pe=5, simd=8)]),
}


def make_pair(root: Path, net: tuple, seeds: tuple[int, int] = (1, 2)) -> tuple[art.Artifact, art.Artifact]:
    """Two artifacts of ``net`` (different random weights and thresholds, the same hardware signature)."""
    ifm, bits, layers, folding = net
    a, b = (conv_artifact(root / f"s{seed}", seed, ifm, bits, layers, folding=folding, generate=("hls",))
            for seed in seeds)
    assert a.signature == b.signature
    return a, b


def check_conv_outputs_vary(artifact: art.Artifact, images: np.ndarray) -> None:
    """Most output channels of every threshold layer change between test images (at some pixel), and the
    layer uses several of its codes: a layer whose outputs were constant would test nothing."""
    trace = GoldenModel(artifact).trace(images)
    for layer, outputs in zip(artifact.layers, trace.outputs):
        if not layer.has_thresholds:
            continue
        maps = outputs.reshape(images.shape[0], -1, layer.out_features)        # (N, pixels after the pool, MH)
        varying = int(((maps != maps[:1]).any(axis=(0, 1))).sum())
        assert varying >= (layer.out_features - 2) // 2, (layer.index, layer.kind, varying)
        seen = np.unique(outputs)
        assert seen.size >= min(layer.n_thresholds + 1, 3), (layer.index, layer.kind, seen.tolist())


def check_net(a: art.Artifact, b: art.Artifact, build: Path) -> None:
    """run_csim on A's golden vectors (0 mismatches, every layer's outputs), then the reload of B and back."""
    images, _, golden = read_vectors(a)
    check_conv_outputs_vary(a, images)
    check_conv_outputs_vary(b, read_vectors(b)[0])
    result = hlsflow.run_csim(a, build_dir=build)
    assert result.passed and result.mismatches == 0, result.output[-3000:]
    assert "mismatches=0 tlast_errors=0 format_errors=0 check_errors=0 -> PASS" in result.output
    np.testing.assert_array_equal(result.scores, golden)
    for layer, got in zip(a.layers, result.layer_outputs):
        assert got.shape == (images.shape[0], layer.out_elements)
    check_layer_outputs(result.layer_outputs, a, images, "run_csim")
    reload = run_reload(a, b, build)
    assert not reload.compiled                              # the same binary as run_csim's


@pytest.fixture(scope="module", params=list(CI_NETS))
def conv_build(request, tmp_path_factory, hls_toolchain):
    """(A, B, build folder) of a CI conv net: two seeds of one signature, A's testbench compiled."""
    root = tmp_path_factory.mktemp(f"conv_{request.param}")
    a, b = make_pair(root, CI_NETS[request.param])
    _binary, compiled, _log = hlsflow.build_csim(a, root / "build")
    assert compiled
    return a, b, root / "build"


@pytest.mark.hls
def test_conv_network_csim_layers_and_reload(conv_build):
    """Every score and every layer's output words equal the golden model, before and after a reload."""
    check_net(*conv_build)


@pytest.mark.hls
def test_conv_corrupted_golden_score_fails(conv_build, tmp_path):
    """One golden score off by its lowest bit is exactly one mismatch, named by image and class."""
    a, _b, build = conv_build
    _, _, golden = read_vectors(a)
    where = (golden.shape[0] - 1, golden.shape[1] - 1)
    bad = golden.copy()
    bad[where] ^= 1
    path = tmp_path / "bad.bin"
    bad.astype("<i4").tofile(path)
    result = hlsflow.run_csim(a, build_dir=build, golden_scores=path)
    assert not result.compiled and result.returncode == 1 and result.mismatches == 1
    assert f"MISMATCH image {where[0]} class {where[1]}: hls {golden[where]}, golden {bad[where]}" in result.output
    np.testing.assert_array_equal(result.scores, golden)


def _infer_body(artifact: art.Artifact) -> str:
    text = (artifact.root / hlsgen.HEADER).read_text()
    start = text.index("void infer(")
    return text[start:text.index("\n}\n", start)]


def test_conv_header_chain(tmp_path):
    """The infer() chain of the second CI net, call by call: window -> mvtu (one vector per output pixel)
    [-> max-pool], the per-pixel and whole-map repackers, taps after the pool, the top's word counts."""
    a, _b = make_pair(tmp_path, CI_NETS["valid_k2_2bit"], seeds=(3, 4))
    text = (a.root / hlsgen.HEADER).read_text()
    body = _infer_body(a)
    calls = [line.strip().split("<")[0] for line in body.splitlines()
             if re.match(r"\s+bnn::\w+<", line) and "tap<" not in line]
    assert calls == ["bnn::beats_to_words",
                     "bnn::sliding_window", "bnn::mvtu", "bnn::repack",
                     "bnn::sliding_window", "bnn::mvtu", "bnn::max_pool", "bnn::repack",
                     "bnn::mvtu", "bnn::repack", "bnn::mvtu", "bnn::words_to_beats"]
    assert ("bnn::sliding_window<L0::IFM_H, L0::IFM_W, L0::CH, L0::K, L0::PAD, L0::SIMD, L0::IN_BITS, "
            "L0::PAD_CODE>(s_in, s_l0_win, reps);") in body
    assert "s_l0_win, s_l0, L0_weights, L0_thresholds, reps * L0::PIXELS);" in body
    assert ("bnn::repack<L0::PE, L1::CH, L1::SIMD, L1::CH, L0::OUT_BITS>(s_l0, s_l1_in, "
            "reps * L1::IFM_H * L1::IFM_W);") in body
    assert "s_l1_win, s_l1_mv, L1_weights, L1_thresholds, reps * L1::PIXELS);" in body
    assert "bnn::max_pool<L1::OFM_H, L1::OFM_W, L1::MH, L1::POOL, L1::PE, L1::OUT_BITS>(s_l1_mv, s_l1, reps);" in body
    assert "bnn::tap<6, 1>(s_l1, reps * L1::OUT_WORDS);" in body          # after the pool: PE 3 x 2 bits
    assert ("bnn::repack<L1::PE, L1::OUT_WORDS * L1::PE, L2::SIMD, L2::MW_PAD, L1::OUT_BITS>(s_l1, s_l2_in, reps);"
            in body)
    values = {"L0": dict(IFM_H=7, IFM_W=6, CH=2, K=3, PAD=1, PAD_CODE=5, PIXELS=42, POOL=0, OFM_H=7, OFM_W=6,
                         OUT_H=7, OUT_W=6, IN_WORDS=42, OUT_WORDS=42, MW=18, SF=9),
              "L1": dict(IFM_H=7, IFM_W=6, CH=4, K=2, PAD=0, PAD_CODE=0, PIXELS=30, POOL=2, OFM_H=6, OFM_W=5,
                         OUT_H=3, OUT_W=2, IN_WORDS=84, OUT_WORDS=12, MW=16, SF=8, IN_BITS=2, OUT_BITS=2),
              "L2": dict(MW=36, MW_PAD=40, SF=5)}
    for name, fields in values.items():
        struct = text[text.index(f"struct {name} {{"):text.index("};", text.index(f"struct {name} {{"))]
        for key, value in fields.items():
            assert re.search(rf"static constexpr unsigned {key} += {value};", struct), (name, key, value)
    assert "IFM_H" not in text[text.index("struct L2 {"):text.index("};", text.index("struct L2 {"))]
    first, last = a.layers[0], a.layers[-1]
    assert f"constexpr unsigned kInWords = {first.in_stream_words};" in text and first.in_stream_words == 7 * 6 * 2 // 2
    assert f"constexpr unsigned kOutWords = {last.out_stream_words};" in text
    assert '#include "bnn_conv.hpp"' in text
    assert hlsgen.render_header(a) == text                  # a pure function of the artifact


def test_conv_sources_are_in_the_build_key():
    """bnn_conv.hpp is part of every C-simulation build's cache key (a change to it recompiles)."""
    assert "bnn_conv.hpp" in hlsflow.HLS_SOURCES
    assert (hlsflow.hls_source_dir() / "bnn_conv.hpp").is_file()


# -- slow: a seeded sweep of geometries ------------------------------------------------------------------------
def sweep_nets() -> dict[str, tuple]:
    """Further geometries, each chosen for what it adds: kernels 1 and 5, pools 3 (rows and columns dropped),
    PE below the next layer's SIMD (a widening per-pixel repacker), a first XNOR conv on 1-bit pixels, 8-bit
    pixels, 4-bit int weights, a conv whose output is one pixel, 255 thresholds, several channel folds."""
    return {
        "k1_pe_lt_simd": ((5, 4, 3), 4, [
            dict(mh=4, kernel=1, n_thresholds=3),
            dict(mh=8, kernel=3, pad=1, pool=2, n_thresholds=1),
            dict(mh=6, kind="xnor_threshold"),
            dict(mh=4, kind="xnor_score")],
            [F(pe=1, simd=3), F(pe=2, simd=4), F(pe=3, simd=16), F(pe=2, simd=6)]),
        "xnor_first_k5": ((9, 8, 1), 1, [
            dict(mh=6, kind="xnor_threshold", kernel=5, pad=2, pool=3),
            dict(mh=8, kind="xnor_threshold", kernel=2, pad=1),
            dict(mh=3, kind="xnor_score")],
            [F(pe=3, simd=1), F(pe=4, simd=3), F(pe=3, simd=32)]),
        "pixels8_w4": ((6, 6, 3), 8, [
            dict(mh=8, kernel=3, pad=0, n_thresholds=15, weight_bits=4, weight_encoding=art.INT),
            dict(mh=4, kernel=4, pad=0, n_thresholds=1),
            dict(mh=7, kind="int_score", affine_bits=12)],
            [F(pe=2, simd=3), F(pe=4, simd=2), F(pe=7, simd=4)]),
        "one_pixel_255": ((4, 4, 2), 2, [
            dict(mh=4, kernel=3, pad=1, pool=2, n_thresholds=255),
            dict(mh=6, kernel=2, pad=0, n_thresholds=1, weight_bits=2, weight_encoding=art.INT),
            dict(mh=5, kind="xnor_score")],
            [F(pe=2, simd=2), F(pe=6, simd=1), F(pe=5, simd=2)]),
        "wide_simd_32ch": ((6, 5, 32), 2, [
            dict(mh=32, kernel=3, pad=1, pool=2, n_thresholds=1),
            dict(mh=16, kind="xnor_threshold", kernel=3, pad=1),
            dict(mh=10, kind="xnor_score")],
            [F(pe=8, simd=32), F(pe=16, simd=16), F(pe=5, simd=64)]),
    }


@pytest.mark.hls
@pytest.mark.slow
@pytest.mark.parametrize("name", list(sweep_nets()))
def test_conv_sweep_csim(tmp_path, hls_toolchain, name):
    """Each sweep net: golden scores, every layer's words, and a reload, as for the CI nets."""
    # Seeds 10 and 11: max-pools of 1-bit codes saturate, and with these every threshold layer still varies.
    a, b = make_pair(tmp_path, sweep_nets()[name], seeds=(10, 11))
    check_net(a, b, tmp_path / "build")
