"""bench/cnv.py (BNN-PYNQ's CNV on the generated RTL) kept from rotting: its core on a scaled-down CNV-like net.

The full CNV run (minutes of Verilator build and yosys) is docs/PERFORMANCE.md's "CNV" section; here the
same ``run`` exports a 12x12x3 net (16C3 - 16C3 - MP2 - 32C3 - FC32 - FC10, 8-bit pixels, W1A1) through the
real writer, measures it in the Verilator bulk harness (scores must equal the golden model) and checks the
measured cycles against the NF*SF*pixels model; the built-in CNV foldings are checked layer by layer.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest

from bnnflow import artifact as art
from bnnflow import costs
from bnnflow.folding import FoldingError, LayerFolding as F
from bnnflow.writer import layer_spec

CNV_SCRIPT = Path(__file__).resolve().parent.parent / "bench" / "cnv.py"


def _load():
    spec = importlib.util.spec_from_file_location("bnnflow_bench_cnv", CNV_SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module          # dataclasses look their module up while the class is built
    spec.loader.exec_module(module)
    return module


cnv = _load()

X = art.XNOR_THRESHOLD
#: 12x12x3 -> 10x10x16 -> 8x8x16 pooled to 4x4x16 -> 2x2x32 -> FC 128->32 -> FC 32->10
SMALL = cnv.Net("small CNV 12x12x3", (12, 12, 3), 8, [
    dict(mh=16, kind=art.INT_THRESHOLD, kernel=3),
    dict(mh=16, kind=X, kernel=3, pool=2),
    dict(mh=32, kind=X, kernel=3),
    dict(mh=32, kind=X),
    dict(mh=10, kind=art.XNOR_SCORE)])
#: NF*SF*pixels per layer: 4*9*100, 4*9*64, 4*9*4, 8*16, 5*8 -- the first conv is the bottleneck
SMALL_FOLDING = [F(4, 3), F(4, 16), F(8, 16), F(4, 8), F(2, 4)]
SMALL_CYCLES = [3600, 2304, 144, 128, 40]


def test_builtin_foldings_on_cnv():
    """Both built-in foldings are legal on CNV (SIMD divides each conv's channels, PE each MH) with these cycles."""
    data = cnv.random_conv_stack(np.random.default_rng(0), cnv.CNV_IFM, cnv.CNV_INPUT_BITS, cnv.CNV_LAYERS)
    want = {"bnn-pynq": [32400, 28224, 20736, 28800, 20736, 18432, 32768, 32768, 1024],
            "fast": [16200, 14112, 10368, 14400, 10368, 9216, 16384, 16384, 2560]}
    for name, cycles in want.items():
        _, folding = cnv.parse_folding(name, len(data))
        specs = [layer_spec(k, d, f) for k, (d, f) in enumerate(zip(data, folding))]
        assert [s.cycles_per_image for s in specs] == cycles, name
        assert [s.conv.channels % s.simd for s in specs if s.is_conv] == [0] * 6
    assert 100e6 / max(want["fast"]) >= cnv.TARGET_FPS


def test_folding_errors(tmp_path):
    with pytest.raises(FoldingError) as err:
        cnv.parse_folding("nope", 9)
    assert str(err.value) == ("--folding 'nope': neither a built-in folding (bnn-pynq, fast, fold) nor an existing "
                              "folding JSON file")
    path = tmp_path / "f.json"
    path.write_text('{"layers": [{"pe": 16, "simd": 3}, {"pe": 32, "simd": 32}]}')
    with pytest.raises(FoldingError) as err:
        cnv.parse_folding(str(path), 9)
    assert str(err.value) == f"--folding {path}: 2 layer entries, the network has 9 layers"


@pytest.mark.rtl
@pytest.mark.slow   # a Verilator build of its own (about 20 s cold); the bench's figures are recorded in docs/
def test_small_cnv_run(tmp_path, monkeypatch):
    """run(): model cycles per layer, RTL-measured cycles within 5%, scores = golden, yosys skipped cleanly."""
    from bnnflow.sim import bulk

    if bulk.verilator_problem():
        pytest.skip(bulk.verilator_problem())
    monkeypatch.setattr(costs, "find_yosys", lambda: None)     # the "yosys missing" path, no synthesis in CI
    lines = []
    r = cnv.run(SMALL, "small", SMALL_FOLDING, tmp_path, seed=3, images=3, yosys=True,
                log=lambda *a, **k: lines.append(a[0]))
    assert [row["cycles"] for row in r["layers"]] == SMALL_CYCLES
    assert [(row["pe"], row["simd"], row["nf"], row["sf"], row["pixels"]) for row in r["layers"]] == [
        (4, 3, 4, 9, 100), (4, 16, 4, 9, 64), (8, 16, 4, 9, 4), (4, 8, 8, 16, 1), (2, 4, 5, 8, 1)]
    assert r["model_cycles"] == r["accel_cycles"] == 3600
    assert r["model_images_per_second"] == pytest.approx(100e6 / 3600)
    assert r["scores_equal_golden"] and r["images"] == 3
    assert 3600 <= r["measured_cycles"] <= 3600 * 1.05
    assert r["yosys"] is None
    assert r["yosys_skipped"] == "yosys not found on PATH (apt-get install yosys, or set BNNFLOW_YOSYS)"
    text = "\n".join(cnv.summary(r, costs.device("xc7z020")))
    assert "| 0 | int_threshold | 12x12x3 16C3 | 27 -> 16 | 4 | 3 | 4 | 9 | 100 | **3,600** |" in text
    assert "| 1 | xnor_threshold | 10x10x16 16C3 MP2 | 144 -> 16 | 4 | 16 | 4 | 9 | 64 | 2,304 |" in text
    assert "model: 3,600 cycles/image (slowest layer) -> 27,778 images/s at 100 MHz" in text
    assert "yosys: skipped (yosys not found on PATH" in text
    assert lines[0].startswith("exported small CNV 12x12x3, folding small, fitted thresholds")

    monkeypatch.undo()                          # a real yosys cut off by the timeout is skipped, not an error
    if costs.find_yosys() is None:
        return
    figures = cnv.yosys_figures(art.load(tmp_path / "export"), timeout=1)
    assert figures["yosys"] is None and figures["yosys_seconds"] is None
    assert figures["yosys_skipped"].startswith("yosys did not finish within 1 s (in ")


@pytest.mark.rtl
@pytest.mark.slow   # five Verilator builds, one per layer
def test_small_cnv_layer_cycles(tmp_path):
    """run(layer_cycles=True): each layer alone measures exactly its NF*SF*vectors; the summary prints the table."""
    from bnnflow.sim import bulk

    if bulk.verilator_problem():
        pytest.skip(bulk.verilator_problem())
    r = cnv.run(SMALL, "small", SMALL_FOLDING, tmp_path, seed=3, images=3, layer_cycles=True,
                log=lambda *a, **k: None)
    rows = r["layer_cycles"]
    assert [row["model"] for row in rows] == SMALL_CYCLES
    assert [row["measured"] for row in rows] == [float(c) for c in SMALL_CYCLES]
    assert all(row["outputs_equal_golden"] for row in rows)
    text = cnv.summary(r, costs.device("xc7z020"))
    assert text[-1] == "every layer within 5% of NF*SF*vectors"
    assert "per-layer cycles, each layer simulated alone (rtl, verilator):" in text


def test_w2a2_layers():
    """--precision w2a2: 2-bit int weights (-1/0/+1) and 2-bit activations everywhere; the first layer on 8-bit
    pixels, an int_score last layer on 2-bit codes; the same shapes (and cycles) as W1A1."""
    specs = cnv.net_specs(cnv.CNV_W2A2, [F(pe, simd) for pe, simd in cnv.FOLDINGS["bnn-pynq"]])
    assert [s.kind for s in specs] == [art.INT_THRESHOLD] * 8 + [art.INT_SCORE]
    assert [s.input_bits for s in specs] == [8] + [2] * 8
    assert {(s.weight_bits, s.weight_encoding) for s in specs} == {(2, art.INT)}
    assert [s.n_thresholds for s in specs] == [3] * 8 + [0] and [s.output_bits for s in specs[:8]] == [2] * 8
    w1 = cnv.net_specs(cnv.CNV, [F(pe, simd) for pe, simd in cnv.FOLDINGS["bnn-pynq"]])
    assert [s.cycles_per_image for s in specs] == [s.cycles_per_image for s in w1]
    def shape(s):   # the pad code differs (+1 pads XNOR's +-1 inputs) but CNV's convolutions are unpadded
        return s.in_features, s.out_features, s.conv and dataclasses.replace(s.conv, pad_code=0)

    assert [shape(s) for s in specs] == [shape(s) for s in w1]


#: the small net at W2A2: int layers with 2-bit weights and 3 thresholds, an int_score last layer
SMALL_W2A2 = cnv.Net("small CNV W2A2 12x12x3", (12, 12, 3), 8, [
    dict(mh=16, kind=art.INT_THRESHOLD, kernel=3, n_thresholds=3, **cnv.W2),
    dict(mh=16, kind=art.INT_THRESHOLD, kernel=3, pool=2, n_thresholds=3, **cnv.W2),
    dict(mh=32, kind=art.INT_THRESHOLD, kernel=3, n_thresholds=3, **cnv.W2),
    dict(mh=32, kind=art.INT_THRESHOLD, n_thresholds=3, **cnv.W2),
    dict(mh=10, kind=art.INT_SCORE, **cnv.W2)], "w2a2")


@pytest.mark.rtl
@pytest.mark.slow   # a Verilator build of its own (about 40 s cold); the W1A1 run above covers run() in CI
def test_small_cnv_w2a2_run(tmp_path, monkeypatch):
    """W2A2 through run(): the same cycles as W1A1 at the same folding, RTL scores = golden, set against
    BNN-PYNQ's CNV W2A2 (860 images/s) without the W1A1 rate / LUT targets."""
    from bnnflow.sim import bulk

    if bulk.verilator_problem():
        pytest.skip(bulk.verilator_problem())
    monkeypatch.setattr(costs, "find_yosys", lambda: None)
    r = cnv.run(SMALL_W2A2, "small", SMALL_FOLDING, tmp_path, seed=4, images=3, log=lambda *a, **k: None)
    assert [row["kind"] for row in r["layers"]] == ["int_threshold"] * 4 + ["int_score"]
    assert [row["cycles"] for row in r["layers"]] == SMALL_CYCLES
    assert r["precision"] == "w2a2" and r["scores_equal_golden"]
    assert 3600 <= r["measured_cycles"] <= 3600 * 1.05
    text = cnv.summary(r, costs.device("xc7z020"))
    assert text[-1] == f"targets: cycles <= 1.05 x model: met ({r['measured_cycles'] / 3600:.4f})"
    assert any(line.startswith("model: 3,600 cycles/image (slowest layer) -> 27,778 images/s at 100 MHz (x32.30 "
                               "BNN-PYNQ's 860)") for line in text)
