"""The HLS top as docs/ACCEL.md specifies it, C-simulated with g++ against the golden model.

DMA beats around the engine words (words of several beats, padding),
runtime parameter loading (another network's parameters in, and back),
the signature and status registers, and the testbench files of the Vitis
flows. Three builds in CI (the two beat-format cases and the reload build);
the build with the status logic broken on purpose and the reload over more
foldings are under ``slow``. tests/test_hls.py reloads every format-v3 network
it builds as well.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from bnnflow import accel, hlsflow, hlsgen
from bnnflow.folding import LayerFolding as F
from bnnflow.golden import GoldenModel
from bnnflow.hlsflow import Infer, Load
from bnnflow.testing import random_artifact
from bnnflow.writer import read_vectors
from test_hls import INT_S, Net, _int, _sym, run_reload, v3_artifact

REPO = Path(__file__).resolve().parent.parent

# name -> (random_artifact keywords, (input beat bits, beats per input word), (output beat bits, beats per output word))
BEAT_CASES = {
    # 784 8-bit pixels at SIMD 196: 1568-bit words in two 1024-bit beats (480 padding bits); 10 classes,
    # 7-bit scores: a 70-bit output word in a 128-bit beat
    "two_beat_input": (dict(input_features=784, hidden=(32,), classes=10, input_bits=8,
                            folding=[F(16, 196), F(10, 16)]), (1024, 2), (128, 1)),
    # 100 classes of 11-bit scores in one word: 1100 bits, two output beats; in load mode the score
    # layer's memory word (PE 100 x SIMD 520 = 52,000 bits) is 813 beats of the 64-bit input stream
    "two_beat_output": (dict(input_features=32, hidden=(520,), classes=100, input_bits=2,
                             folding=[F(8, 32), F(100, 520)]), (64, 1), (1024, 2)),
}

#: Reload networks: 100 5-bit inputs padded to 128 (padding in the input beats and in the memories); 4-bit int
#: weights (128-bit weight words) and 3 thresholds per neuron (a grouped threshold memory), 2-bit sym weights,
#: a plain int score of 1-bit weights.
RELOAD = Net(100, 5, (dict(mh=48, n_thresholds=3, **_int(4)), dict(mh=24, n_thresholds=1, **_sym(2)),
                      dict(mh=10, kind=INT_S, **_sym(1))), (F(16, 32), F(8, 16), F(5, 16)))


def _header_constant(artifact, name: str) -> int:
    text = (artifact.root / hlsgen.HEADER).read_text()
    return int(re.search(rf"constexpr unsigned {name} = (0x[0-9a-f]+|\d+)u?;", text).group(1), 0)


def _check_lines(output: str) -> list[str]:
    return [line for line in output.splitlines() if line.startswith("CHECK ")]


@pytest.mark.hls
@pytest.mark.parametrize("name", list(BEAT_CASES))
def test_beats_of_wide_words_match_golden(tmp_path, hls_toolchain, name):
    kwargs, (in_beat, in_per_word), (out_beat, out_per_word) = BEAT_CASES[name]
    artifact = random_artifact(tmp_path / "export", seed=3, n_vectors=12, generate=("hls",), **kwargs)
    for constant, value in (("kInBeatBits", in_beat), ("kInBeatsPerWord", in_per_word), ("kOutBeatBits", out_beat),
                            ("kOutBeatsPerWord", out_per_word), ("kParamBeats", accel.param_beats(artifact))):
        assert _header_constant(artifact, constant) == value, constant
    images, _, golden = read_vectors(artifact)
    beats = hlsflow.input_beats(artifact, images)
    assert beats.shape == (12 * artifact.layers[0].sf * in_per_word, in_beat // 8)

    result = hlsflow.run_testbench(artifact, [Load(artifact), Infer(images, golden)], build_dir=tmp_path / "build")
    assert result.passed, result.output[-3000:]
    np.testing.assert_array_equal(result.scores[0], golden)
    np.testing.assert_array_equal(result.scores[0], GoldenModel(artifact).scores(images))
    checks = _check_lines(result.output)
    assert checks and all(line.endswith(": ok") for line in checks), checks
    padding = ("CHECK input padding bit set (top bit of word 0's last beat): status 0x1 (kStatusFormatError 0x1), "
               "0 score(s) differ: ok")
    if in_per_word * in_beat > artifact.layers[0].in_stream_bits:
        assert padding in checks
    else:
        assert padding not in checks and "bnn_tb: the input word fills its beats: no padding bits to check" in result.output
    assert result.errors == {"mismatches": 0, "tlast_errors": 0, "format_errors": 0, "check_errors": 0}


@pytest.fixture(scope="module")
def reload_pair(tmp_path_factory, hls_toolchain):
    """Networks A and B of one hardware signature (same shapes and folding, other weights); A's build."""
    root = tmp_path_factory.mktemp("hls_reload")
    a = v3_artifact(root / "a", RELOAD, seed=11, n_vectors=16)
    b = v3_artifact(root / "b", RELOAD, seed=12, n_vectors=16)
    return a, b, root / "build"


@pytest.mark.hls
def test_runtime_reload_and_back(reload_pair):
    """A's build: A's scores, B's after loading B (on B's and A's images), A's again after loading A."""
    a, b, build = reload_pair
    assert a.signature == b.signature and not np.array_equal(accel.param_stream(a), accel.param_stream(b))
    result = run_reload(a, b, build)       # scores and every layer's outputs of each step equal golden
    assert "bnn_tb: network v3_11: 6 steps, 64 images x 10 classes, mismatches=0 tlast_errors=0 " \
           "format_errors=0 check_errors=0 -> PASS" in result.output

    # run_csim's params=: the build of A computes B's golden vectors
    csim = hlsflow.run_csim(a, build_dir=build, params=b)
    assert not csim.compiled and csim.passed
    np.testing.assert_array_equal(csim.scores, read_vectors(b)[2])


@pytest.mark.hls
def test_status_and_signature_checks(reload_pair):
    """The testbench's interface checks, with the values the status register held."""
    a, b, build = reload_pair
    images, _, golden = read_vectors(a)
    result = hlsflow.run_testbench(a, [Load(b), Load(a), Infer(images, golden)], build_dir=build)
    assert result.passed, result.output[-3000:]
    checks = _check_lines(result.output)
    assert _header_constant(a, "kSignature") == a.signature == accel.signature(a)
    sig = f"0x{a.signature:x}"
    expected = [
        f"CHECK signature {sig} and reps = 0: status 0x0, nothing consumed or produced: ok",
        "CHECK mode 0x2: status 0x4 (kStatusBadMode 0x4), nothing consumed or produced: ok",
        "CHECK mode 0xffffffff: status 0x4 (kStatusBadMode 0x4), nothing consumed or produced: ok",
        "CHECK parameter stream one beat too long: status 0x2 (kStatusLoadLengthError 0x2), 1 beat left: ok",
        "CHECK parameter stream with TLAST one beat early: status 0x2: ok",
        "CHECK parameter stream with TKEEP bit 0 of beat 0 clear: status 0x1 (kStatusFormatError 0x1): ok",
        "CHECK input TKEEP bit 0 of beat 0 clear: status 0x1 (kStatusFormatError 0x1), 0 score(s) differ: ok",
        "CHECK input padding bit set (top bit of word 0's last beat): status 0x1 (kStatusFormatError 0x1), "
        "0 score(s) differ: ok",
    ]
    for line in expected:
        assert line in checks, f"{line!r} not in {checks}"
    assert len([c for c in checks if c.startswith("CHECK load ")]) == 2
    assert accel.STATUS_BAD_MODE == 0x4 and accel.STATUS_LOAD_LENGTH_ERROR == 0x2 and accel.STATUS_FORMAT_ERROR == 0x1


@pytest.mark.hls
def test_testbench_refuses_unusable_files(reload_pair, tmp_path):
    a, _b, build = reload_pair
    binary, compiled, _ = hlsflow.build_csim(a, build)
    assert not compiled
    short = tmp_path / "short.bin"
    accel.param_stream(a)[:-1].tofile(short)
    beats, beat_bytes = accel.param_beats(a), accel.input_stream(a).beat_bytes
    proc = subprocess.run([str(binary), "load", str(short)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert (f"{short} has {(beats - 1) * beat_bytes} bytes, the parameter stream of this build is {beats} beats of "
            f"{beat_bytes} bytes ({beats * beat_bytes}); was it written for another hardware signature?") in proc.stderr
    proc = subprocess.run([str(binary), "infer", str(short)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and "cannot parse step 'infer' (argument 1)" in proc.stderr
    proc = subprocess.run([str(binary)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and "usage: bnn_tb STEP..." in proc.stderr


@pytest.mark.hls
@pytest.mark.slow
def test_broken_status_logic_fails_the_checks(tmp_path, hls_toolchain, monkeypatch):
    """A top that never reports a bad mode, a padding bit or a wrong load length fails exactly those checks."""
    broken = tmp_path / "hls"
    shutil.copytree(REPO / "hls", broken, ignore=shutil.ignore_patterns("build"))
    for name, old, new in (("bnn_top.cpp", "bad_mode = 1;", "bad_mode = 0;"),
                           ("bnn_axis.hpp", "word_final && beat.data(BEAT_BITS - 1, USED) != 0", "false"),
                           ("bnn_load.hpp", "length_error = 1;", "length_error = 0;")):
        text = (broken / name).read_text()
        assert text.count(old) == 1, (name, old)
        (broken / name).write_text(text.replace(old, new))
    monkeypatch.setenv("BNNFLOW_HLS_DIR", str(broken))
    artifact = v3_artifact(tmp_path / "export", RELOAD, seed=11, n_vectors=6)
    images, _, golden = read_vectors(artifact)
    result = hlsflow.run_testbench(artifact, [Load(artifact), Infer(images, golden)], build_dir=tmp_path / "build")
    assert result.returncode == 1 and not result.passed
    failed = [line for line in _check_lines(result.output) if line.endswith(": FAIL")]
    assert failed == [
        "CHECK mode 0x2: status 0x0 (kStatusBadMode 0x4), nothing consumed or produced: FAIL",
        "CHECK mode 0xffffffff: status 0x0 (kStatusBadMode 0x4), nothing consumed or produced: FAIL",
        "CHECK parameter stream one beat too long: status 0x0 (kStatusLoadLengthError 0x2), 1 beat left: FAIL",
        "CHECK parameter stream with TLAST one beat early: status 0x0: FAIL",
        "CHECK input padding bit set (top bit of word 0's last beat): status 0x0 (kStatusFormatError 0x1), "
        "0 score(s) differ: FAIL",
    ]
    assert result.errors == {"mismatches": 0, "tlast_errors": 0, "format_errors": 0, "check_errors": 5}
    np.testing.assert_array_equal(result.scores[0], golden)   # the scores themselves are right


def test_load_of_another_signature_is_refused(tmp_path):
    """Parameters of another folding do not fit the build: refused before compiling, naming the fields."""
    a = random_artifact(tmp_path / "a", seed=1, n_vectors=2, generate=("hls",))
    c = random_artifact(tmp_path / "c", seed=1, n_vectors=2, generate=("hls",),
                        folding=[F(8, 32), F(16, 16), F(5, 16)])
    with pytest.raises(ValueError) as info:
        hlsflow.run_testbench(a, [Load(c)], build_dir=tmp_path / "never")
    msg = str(info.value)
    assert f"hardware signature 0x{c.signature:08x}, the build of {a.root} is 0x{a.signature:08x}" in msg
    assert "layer 0 pe: bitstream 16, export 8; layer 1 simd: bitstream 32, export 16" in msg
    with pytest.raises(ValueError, match="layer 0 pe: bitstream 16, export 8"):
        hlsflow.run_csim(a, build_dir=tmp_path / "never", params=c)
    assert not (tmp_path / "never").exists()


def test_tb_files_for_the_vitis_flows(tmp_path, capsys):
    """`python -m bnnflow.hlsflow EXPORT` writes the DMA buffers run_hls.tcl / hls_config.cfg name."""
    artifact = random_artifact(tmp_path / "export", seed=4, n_vectors=5, generate=("hls",))
    assert hlsflow.main([str(artifact.root)]) == 0
    folder = artifact.root / hlsflow.TB_DIR
    images, _, golden = read_vectors(artifact)
    instream, outstream = accel.input_stream(artifact), accel.output_stream(artifact)
    raw = {role: np.fromfile(folder / name, dtype=np.uint8) for role, name in hlsflow.TB_FILES.items()}
    assert raw["in"].size == 5 * instream.bytes_per_image
    assert raw["golden"].size == 5 * outstream.bytes_per_image
    np.testing.assert_array_equal(raw["params"], accel.param_stream(artifact).reshape(-1))
    np.testing.assert_array_equal(hlsflow.scores_from_beats(artifact, raw["golden"], 5), golden)
    out = capsys.readouterr().out
    assert (f"testbench arguments: load {folder / 'params.bin'} infer {folder / 'in_beats.bin'} "
            f"{folder / 'out_beats.bin'} hls_out_beats.bin") in out

    assert hlsflow.main([str(tmp_path / "missing")]) == 1
    assert "error: " in capsys.readouterr().err


def test_header_interface_constants(tmp_path):
    """The header states bnnflow.accel's numbers (no C++ derivation of the signature or the modes)."""
    artifact = v3_artifact(tmp_path / "export", RELOAD, seed=2, n_vectors=2)
    for name, value in (("kSignature", artifact.signature), ("kInterfaceVersion", accel.INTERFACE_VERSION),
                        ("kModeInfer", accel.MODE_INFER), ("kModeLoad", accel.MODE_LOAD),
                        ("kStatusFormatError", accel.STATUS_FORMAT_ERROR),
                        ("kStatusLoadLengthError", accel.STATUS_LOAD_LENGTH_ERROR),
                        ("kStatusBadMode", accel.STATUS_BAD_MODE), ("kParamBeats", accel.param_beats(artifact)),
                        ("kInBeatBits", accel.input_stream(artifact).beat_bits),
                        ("kOutBeatBits", accel.output_stream(artifact).beat_bits)):
        assert _header_constant(artifact, name) == value, name
    text = (artifact.root / hlsgen.HEADER).read_text()
    # the load path follows accel.param_segments, memory by memory (tests/test_hls.py checks each call)
    loads = re.findall(r"bnn::load_(?:grouped_)?memory<kInBeatBits, L(\d+)::PE, [^>]*>\(in, L\d+_(weights|thresholds)",
                       text)
    assert [(int(k), m) for k, m in loads] == [(s.layer, s.memory) for s in accel.param_segments(artifact)]
    assert [s.memory for s in accel.param_segments(artifact)] == ["weights", "thresholds"] * 2 + ["weights"]
    assert text.count(", true, fe, le);") == 1 and text.rstrip().endswith("#endif  // BNNFLOW_PARAMS_H")
    assert "static const ap_uint" not in text   # the memories are writable


@pytest.mark.hls
@pytest.mark.slow
@pytest.mark.parametrize("name", ["default", "mnist784_simd64", "pe1_simd1", "simd128_96", "fully_parallel",
                                  "one_layer_threshold", "no_repack"])
def test_runtime_reload_sweep(tmp_path, hls_toolchain, name):
    """Load B into A's build and back, over the foldings of tests/test_hls.py."""
    from test_hls import CASES

    a = random_artifact(tmp_path / "a", seed=21, n_vectors=10, generate=("hls",), **CASES[name])
    b = random_artifact(tmp_path / "b", seed=22, n_vectors=10, generate=("hls",), **CASES[name])
    images_a, _, golden_a = read_vectors(a)
    images_b, _, golden_b = read_vectors(b)
    result = hlsflow.run_testbench(a, [Load(b), Infer(images_b, golden_b), Load(a), Infer(images_a, golden_a)],
                                   build_dir=tmp_path / "build")
    assert result.passed, result.output[-3000:]
    np.testing.assert_array_equal(result.scores[0], golden_b)
    np.testing.assert_array_equal(result.scores[1], golden_a)
