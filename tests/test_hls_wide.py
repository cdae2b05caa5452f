"""HLS words wider than 64 bits: the values the compiled C++ holds, and the 4096-bit limit.

The weight literals of words over 64 bits go through ap_uint's string
constructor, whose prefix parsing once turned hex words starting "0b" or
"0d" into other numbers. These tests read the memories back from the
compiled header (not its text) and compare them with the artifact's bytes,
over SIMD 1..4096 with every leading-two-hex-digit pattern forced, and over
multi-bit weight words (SIMD x weight_bits, up to 4096 bits).
"""

from __future__ import annotations

import dataclasses
import re

import numpy as np
import pytest

from bnnflow import artifact as art
from bnnflow import hlsflow, hlsgen
from bnnflow.folding import FoldingError
from bnnflow.folding import LayerFolding as F
from bnnflow.testing import random_artifact, random_stack, simd_sweep_artifact
from bnnflow.writer import read_vectors, write_artifact
from test_hls import INT_S, Net, _int, _sym, v3_artifact

#: SIMD 1..4096 (the HLS limit); g++ needs ~40 s for this header, so CI runs it for one seed.
FULL = (65, 96, 128, 130, 256, 512, 784, 1025, 2048, 4096)
MID = (65, 96, 100, 128, 130, 255, 256, 512)



def _leading_pairs(header: str) -> set[str]:
    """First two hex digits of every wide literal in the header text."""
    return {m[:2] for m in re.findall(r'ap_uint<\d+>\("(?:0x)?([0-9a-f]+)", 16\)', header)}


def _compare_read_back(artifact, held):
    for k, layer in enumerate(artifact.layers):
        expected = np.fromfile(artifact.path(layer.weights), dtype=np.uint8).reshape(held[k].shape)
        bad = np.argwhere(held[k] != expected)
        assert bad.size == 0, (f"layer {k} (SIMD {layer.simd} x {layer.weight_bits} bits): word [p, d] = "
                               f"{bad[0][:2].tolist()} holds {held[k][tuple(bad[0][:2])].tolist()}, the artifact has "
                               f"{expected[tuple(bad[0][:2])].tolist()}")


def check_read_back(root, wide, seed):
    artifact = simd_sweep_artifact(root / "export", wide_simds=wide, seed=seed, generate=("hls",))
    simds = {layer.simd for layer in artifact.layers}
    assert set(wide) | {1, 2, 3, 7, 8, 31, 32, 33, 63, 64} <= simds
    header = (artifact.root / hlsgen.HEADER).read_text()
    assert {"0b", "0d", "00", "ff"} <= _leading_pairs(header)   # the patterns that broke, and the ends
    held = hlsflow.read_back_weights(artifact, build_dir=root / "build")
    _compare_read_back(artifact, held)


#: Multi-bit weight words: 4096 (512 x 8), 520 (130 x 4), 192 (96 x 2), 64 (8 x 8, a `ull` literal) and 32 bits
#: (8 x 4, a `u` literal), sym and int codes.
KBIT_WORDS = Net(512, 1, (
    dict(mh=130, n_thresholds=1, **_sym(8)),
    dict(mh=96, n_thresholds=3, **_sym(4)),
    dict(mh=40, n_thresholds=1, **_sym(2)),
    dict(mh=16, n_thresholds=1, **_int(8)),
    dict(mh=10, kind=INT_S, **_int(4)),
), (F(13, 512), F(8, 130), F(8, 96), F(4, 8), F(5, 8)))

#: The top bytes forced into wide words (the patterns ap_int's prefix parsing broke, and the ends).
TOP_BYTES = (0x0B, 0x0D, 0x00, 0xFF)


def _force_top_bytes(codes: np.ndarray, simd: int, bits: int) -> np.ndarray:
    """Give the words of neuron 0..3 at synapse fold 0 the top byte TOP_BYTES[i] (sym codes: any value is a code)."""
    codes = codes.copy()
    for n, value in enumerate(TOP_BYTES[:codes.shape[0]]):
        for lane in range(-(-8 // bits)):                     # the top ceil(8/K) lanes hold the top byte
            codes[n, simd - 1 - lane] = (value >> (8 - bits * (lane + 1))) & ((1 << bits) - 1)
    return codes


@pytest.mark.hls
def test_multibit_weight_memories_hold_the_artifact_words(tmp_path, hls_toolchain):
    """SIMD x weight_bits words (lane j at bits [j*K, (j+1)*K)), read back from the compiled header."""
    rng = np.random.default_rng(8)
    net = KBIT_WORDS
    layers = random_stack(rng, net.input_features, net.input_bits, [dict(l) for l in net.layers])
    for k, (layer, fold) in enumerate(zip(layers, net.folding)):
        if layer.weight_encoding == art.SYM and fold.simd * layer.weight_bits > 64:
            layers[k] = dataclasses.replace(layer, weights=_force_top_bytes(layer.weights, fold.simd, layer.weight_bits))
    network = {"name": "kbit_words", "input_features": net.input_features, "input_shape": [net.input_features],
               "input_bits": net.input_bits, "num_classes": 10, "method": "random", "dataset": "random"}
    artifact = write_artifact(tmp_path / "export", network, layers, list(net.folding), generate=("hls",))
    assert [l.weight_word_bits for l in artifact.layers] == [4096, 520, 192, 64, 32]
    header = (artifact.root / hlsgen.HEADER).read_text()
    assert {"0b", "0d", "00", "ff"} <= _leading_pairs(header)
    assert "#define AP_INT_MAX_W 4096" in header
    held = hlsflow.read_back_weights(artifact, build_dir=tmp_path / "build")
    assert [h.shape[2] for h in held] == [512, 65, 24, 8, 4]   # ceil(SIMD * K / 8) bytes per word
    _compare_read_back(artifact, held)


@pytest.mark.hls
@pytest.mark.parametrize("wide,seed", [pytest.param(FULL, 0, id="simd1-4096-seed0", marks=pytest.mark.slow),
                                       # 25 s of g++; the multi-bit read-back above covers the path in CI
                                       pytest.param(MID, 1, id="simd1-512-seed1", marks=pytest.mark.slow),
                                       pytest.param(MID, 2, id="simd1-512-seed2", marks=pytest.mark.slow)])
def test_weight_memories_hold_the_artifact_words(tmp_path, hls_toolchain, wide, seed):
    check_read_back(tmp_path, wide, seed)


@pytest.mark.hls
@pytest.mark.slow
@pytest.mark.parametrize("seed", [3, 4, 5])
def test_weight_memories_full_sweep(tmp_path, hls_toolchain, seed):
    check_read_back(tmp_path, FULL, seed)


@pytest.mark.hls
@pytest.mark.slow
def test_simd_sweep_network_csim(tmp_path, hls_toolchain):
    """The whole 29-layer sweep network through the C-simulation (about 2.5 minutes of g++)."""
    artifact = simd_sweep_artifact(tmp_path / "export", seed=6, n_vectors=16, generate=("hls",))
    result = hlsflow.run_csim(artifact, build_dir=tmp_path / "build")
    assert result.passed, result.output[-3000:]
    np.testing.assert_array_equal(result.scores, read_vectors(artifact)[2])


@pytest.mark.hls
@pytest.mark.parametrize("seed", [0, pytest.param(1, marks=pytest.mark.slow), pytest.param(2, marks=pytest.mark.slow)])
def test_simd128_network_csim(tmp_path, hls_toolchain, seed):
    """The network that found the bug: 512-256-256-10 at SIMD 128 gave 197/284/262 wrong scores."""
    artifact = random_artifact(tmp_path / "export", seed=seed, input_features=512, hidden=(256, 256), classes=10,
                               input_bits=1, folding=[F(16, 128), F(16, 128), F(10, 128)], n_vectors=64,
                               generate=("hls",))
    result = hlsflow.run_csim(artifact, build_dir=tmp_path / "build")
    assert result.mismatches == 0 and result.passed, result.output[-2000:]
    np.testing.assert_array_equal(result.scores, read_vectors(artifact)[2])


@pytest.mark.hls
# 3136 bits is slow: the 4096-bit limit here and tests/test_hls_accel.py's 1568-bit two-beat input words
# (AP_INT_MAX_W too) cover words over 1024 bits in the default suite.
@pytest.mark.parametrize("features,bits,simd", [pytest.param(784, 8, 392, id="3136-bit-input-word",
                                                             marks=pytest.mark.slow),
                                                pytest.param(1024, 4, 1024, id="4096-bit-input-word")])
def test_words_over_1024_bits_csim(tmp_path, hls_toolchain, features, bits, simd):
    """Input words beyond ap_int's default 1024 bits compile (AP_INT_MAX_W) and compute the golden scores."""
    artifact = random_artifact(tmp_path / "export", seed=5, input_features=features, hidden=(64,), classes=10,
                               input_bits=bits, folding=[F(16, simd), F(10, 64)], n_vectors=12, generate=("hls",))
    header = (artifact.root / hlsgen.HEADER).read_text()
    assert "#define AP_INT_MAX_W 4096" in header
    assert header.index("#define AP_INT_MAX_W") < header.index("#include <ap_int.h>")
    result = hlsflow.run_csim(artifact, build_dir=tmp_path / "build")
    assert result.passed, result.output[-2000:]
    np.testing.assert_array_equal(result.scores, read_vectors(artifact)[2])


def test_default_width_header_keeps_ap_int_default(tmp_path):
    artifact = random_artifact(tmp_path / "export", seed=1, n_vectors=2, generate=("hls",))
    header = (artifact.root / hlsgen.HEADER).read_text()
    assert "AP_INT_MAX_W 4096" not in header and "static_assert(AP_INT_MAX_W >= kWidestWordBits" in header


@pytest.mark.parametrize("features,bits,simd,bits_total", [(784, 8, 784, 6272), (4097, 1, 4097, 4097),
                                                          (1040, 4, 1040, 4160)])
def test_export_refuses_words_beyond_the_hls_limit(tmp_path, features, bits, simd, bits_total):
    out = tmp_path / "export"
    with pytest.raises(hlsgen.HlsWidthError) as info:
        random_artifact(out, seed=0, input_features=features, hidden=(16,), classes=4, input_bits=bits,
                        folding=[F(16, simd), F(4, 16)], n_vectors=2)
    msg = str(info.value)
    assert isinstance(info.value, FoldingError)
    for part in ("layer 0", f"SIMD={simd} x {bits} input bit(s)", f"{bits_total} bits", "4096",
                 "--generate rtl"):
        assert part in msg, msg
    assert not out.exists(), "nothing is written for a refused folding"


def test_export_refuses_weight_words_beyond_the_hls_limit(tmp_path):
    """600 lanes of 8-bit weights: a 4800-bit weight word, though the input word is 600 bits."""
    net = Net(600, 1, (dict(mh=8, n_thresholds=1, **_sym(8)), dict(mh=4, kind=INT_S, **_sym(1))), (F(4, 600), F(2, 8)))
    out = tmp_path / "export"
    with pytest.raises(hlsgen.HlsWidthError) as info:
        v3_artifact(out, net, seed=0, n_vectors=2)
    msg = str(info.value)
    for part in ("layer 0", "SIMD=600 x 8 weight bit(s) = weight word of 4800 bits", "4096", "smaller SIMD",
                 "--generate rtl"):
        assert part in msg, msg
    assert not out.exists()


def test_output_word_limit_names_pe(tmp_path):
    """A score layer of 500 classes fully parallel: PE=500 x 10-bit scores = 5000 bits."""
    with pytest.raises(hlsgen.HlsWidthError, match=r"layer 1 .*PE=500 x 10 output bit\(s\).*5000 bits.*smaller PE"):
        random_artifact(tmp_path / "e", seed=0, input_features=8, hidden=(500,), classes=500, input_bits=1,
                        folding=[F(20, 8), F(500, 500)], n_vectors=2)


@pytest.mark.rtl
def test_rtl_only_export_has_no_width_limit(tmp_path):
    """--generate rtl accepts the 6272-bit input word, and the Verilog computes the golden scores."""
    from bnnflow.sim import toolchain as sims
    from bnnflow.sim.network import run_network

    sims.pytest_require("verilator")
    artifact = random_artifact(tmp_path / "export", seed=0, input_features=784, hidden=(16,), classes=4,
                               input_bits=8, folding=[F(16, 784), F(4, 16)], n_vectors=8, generate=("rtl",))
    assert "hls" not in artifact.manifest and artifact.layers[0].in_stream_bits == 6272
    images, _, golden = read_vectors(artifact)
    np.testing.assert_array_equal(run_network(artifact, images, "verilator").scores, golden)
    with pytest.raises(Exception, match=r"no 'hls' section.*--generate rtl,hls"):
        hlsflow.run_csim(artifact)
