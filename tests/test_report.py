"""bnnflow report (bnnflow.report): cycles equal the RTL's, the table, the files, the yosys path, errors."""

from __future__ import annotations

import builtins
import json

import numpy as np
import pytest

from bnnflow import costs, report
from bnnflow.fold import fold, layers_from_sizes
from bnnflow.folding import LayerFolding as F
from bnnflow.testing import random_artifact

from conftest import run_cli  # noqa: E402

XC7Z020 = costs.DEVICES["xc7z020"]

#: Small nets for the cycle check: (name, random_artifact options). The first is tests/test_rtl_bulk.py's
#: "wide-in-narrow-out" top (its Verilator build is shared by content); the second pads every layer.
NETS = {
    "bulk-shape": dict(input_features=100, hidden=(64, 32), classes=10, input_bits=5,
                       folding=[F(4, 32), F(8, 16), F(2, 8)]),
    "padded": dict(input_features=50, hidden=(40, 24), classes=6, input_bits=3,
                   folding=[F(8, 7), F(4, 9), F(3, 5)]),
}



@pytest.mark.rtl
@pytest.mark.parametrize("name", ["bulk-shape", *(pytest.param(n, marks=pytest.mark.slow) for n in ("padded", "folded"))])
def test_report_cycles_equal_rtl(tmp_path, name):
    """The report's cycles per image (max NF*SF) equal the cycles run_bulk measures back to back."""
    from bnnflow.sim import toolchain
    from bnnflow.sim.bulk import run_bulk

    toolchain.pytest_require("verilator")
    if name == "folded":   # a folding chosen by `fold` for 3 M images/s: padded SIMDs, balanced layers
        sizes = [60, 48, 20, 5]
        r = fold(layers_from_sizes(sizes, 4), XC7Z020, 100.0, target_fps=3_000_000)
        opts = dict(input_features=60, hidden=(48, 20), classes=5, input_bits=4, folding=r.folding)
    else:
        opts = NETS[name]
    a = random_artifact(tmp_path / name, seed=5, n_vectors=12, generate=("rtl",), **opts)
    rep = report.build_report(a.root, XC7Z020, 100.0, use_yosys=False)
    images = np.fromfile(a.path("vectors/images.bin"), dtype=np.uint8).reshape(12, -1)
    sim = run_bulk(a, images, check=True)
    assert sim.cycles_per_image == rep.core_cycles == rep.accel_cycles
    assert [r.cycles for r in rep.rows if r.cycles is not None] == [l.nf * l.sf for l in a.layers]
    assert rep.images_per_second == 100e6 / sim.cycles_per_image


def _expected_layer_line(res, *cols) -> str:
    r = res.rounded()
    return "| " + " | ".join([*map(str, cols), f"{r.lut:,}", f"{r.ff:,}", f"{r.bram36:g}", f"{r.dsp:g}"]) + " |"


def test_report_table_and_files(tmp_path, capsys):
    a = random_artifact(tmp_path / "net", seed=2, n_vectors=2, generate=("rtl",), **NETS["bulk-shape"])
    code, out, err = run_cli(capsys, "report", a.root, "--no-yosys", "--clock", "125", "--out", tmp_path / "rep")
    assert code == 0, err
    model = costs.load_model()
    units = dict(model.network(a.layers))
    lines = out.splitlines()
    # per layer: kind, MW(padded) -> MH, PE, SIMD, NF x SF, cycles, weight + threshold bits, the model's estimate
    assert _expected_layer_line(units["layer 0"], "layer 0", "int_threshold 5-bit in", "100(128) -> 64", 4, 32,
                                "16 x 4", 64, f"{64 * 128 + 64 * a.layers[0].threshold_bits:,}") in lines
    assert _expected_layer_line(units["layer 1"], "layer 1", "xnor_threshold", "64 -> 32", 8, 16, "4 x 4", 16,
                                f"{32 * 64 + 32 * a.layers[1].threshold_bits:,}") in lines
    assert _expected_layer_line(units["layer 2"], "layer 2", "xnor_score", "32 -> 10", 2, 8, "5 x 4", 20,
                                f"{10 * 32:,}") in lines
    total = costs.total(units.values()).rounded()
    assert f"- Frame rate at 125 MHz: {125e6 / 64:,.0f} images/s (compute bound of the accelerator; DMA and host " \
           "time not included)." in lines
    assert lines[3] == ("Resources: model estimate (bnnflow.costs unit-cost model, measured with yosys); not Vivado "
                        "results.")
    assert (f"| bnnflow (this export) | 100-64-32-10, 5-bit input | xc7z020 | 125 MHz | {125e6 / 64:,.0f} (RTL cycles) "
            f"| | {total.lut:,} (model estimate) | {total.bram36:g} | {125e6 / 64 / total.lut:.2f} |") in lines
    assert ("| BNN-PYNQ | LFC W1A1 (784-1024x3-10, binarized input) | Pynq-Z1 | 100 MHz | 118,883 | 98.4% MNIST | "
            "28,400 | 110 | 4.19 |") in lines
    assert "| BNN-PYNQ | CNV W1A1 | Pynq-Z1 | 100 MHz | 3,050 | 79.2% CIFAR-10 | 26,100 | 124 | 0.12 |" in lines
    assert lines[-1] == (f"wrote {tmp_path / 'rep' / 'report.md'}, {tmp_path / 'rep' / 'report.json'}; chart: "
                         f"{tmp_path / 'rep' / 'report.png'}")
    data = json.loads((tmp_path / "rep" / "report.json").read_text())
    assert data["core_cycles_per_image"] == 64 and data["estimate_source"] == "model estimate"
    assert data["total"]["lut"] == total.lut and [u["cycles"] for u in data["units"]] == [64, None, 16, None, 20, None]
    assert (tmp_path / "rep" / "report.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (tmp_path / "rep" / "report.md").read_text() == "\n".join(lines[:-2]) + "\n"


def test_report_stream_beats_bound(tmp_path):
    """A 784 x 8-bit input word is 7 beats of 1024 bits: with NF*SF = 1 the DMA stream sets the pace."""
    a = random_artifact(tmp_path / "wide", seed=1, input_features=784, hidden=(4,), classes=2, input_bits=8,
                        folding=[F(4, 784), F(2, 4)], n_vectors=1, generate=())
    rep = report.build_report(a.root, XC7Z020, 100.0, use_yosys=False)
    assert (rep.core_cycles, rep.accel_cycles) == (1, 7)
    assert ("- Cycles per image: 1 (the slowest layer's NF*SF, what the RTL core measures); the accelerator's DMA "
            "streams need 7 beats per image.") in report.render(rep).splitlines()


def test_report_without_matplotlib(tmp_path, capsys, monkeypatch):
    a = random_artifact(tmp_path / "net", seed=2, n_vectors=1, generate=(), **NETS["padded"])
    real_import = builtins.__import__

    def no_matplotlib(name, *args, **kwargs):
        if name.split(".")[0] == "matplotlib":
            raise ImportError("No module named 'matplotlib'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_matplotlib)
    code, out, err = run_cli(capsys, "report", a.root, "--no-yosys")
    assert code == 0, err
    assert out.splitlines()[-1] == (f"wrote {tmp_path / 'report' / 'report.md'}, {tmp_path / 'report' / 'report.json'}; "
                                    "chart: no chart: matplotlib (the 'train' extra) is not installed")
    assert not (tmp_path / "report" / "report.png").exists()


def _require_yosys():
    if costs.find_yosys() is None:
        pytest.skip("yosys not installed (apt-get install yosys)")


def test_model_matches_yosys_on_one_layer(tmp_path):
    """One small bnn_mvtu through yosys (seconds): its memories are the primitives the model's rule names,
    its LUTs within the model's error."""
    _require_yosys()
    shape = costs.LayerShape("xnor_threshold", 48, 12, 3, 16)
    params, files = costs.mvtu_unit(shape, np.random.default_rng(0))
    cells, _ = costs.synth_unit("bnn_mvtu", params, files, tmp_path / "w", timeout=120)
    spec = shape.spec()
    want: dict[str, int] = {}
    for m in costs.mvtu_memories(spec).values():
        for k, v in m.cells().items():
            want[k] = want.get(k, 0) + v
    assert {k: v for k, v in cells.items() if k.startswith(("RAMB", "RAM32", "RAM64"))} == want
    measured, model = costs.cells_to_resources(cells), costs.load_model().layer(spec)
    assert abs(model.lut - measured.lut) <= 0.25 * measured.lut, (model, measured)


@pytest.mark.slow
def test_report_yosys_one_layer(tmp_path):
    """yosys on a one-layer export (layer + shell, about a minute): every unit labelled "yosys estimate"."""
    _require_yosys()
    a = random_artifact(tmp_path / "one", seed=4, input_features=16, hidden=(), classes=4, input_bits=2,
                        folding=[F(2, 8)], n_vectors=1, generate=("rtl",))
    rep = report.build_report(a.root, XC7Z020, 100.0, timeout=300, whole=True)
    assert [r.name for r in rep.rows] == ["layer 0", "shell"]
    # the whole accelerator in one run: the total; the same memories, LUTs close to the units' sum
    assert rep.total == rep.whole and rep.whole.bram36 == rep.unit_total.bram36
    assert abs(rep.whole.lut - rep.unit_total.lut) <= 0.15 * rep.unit_total.lut, (rep.whole, rep.unit_total)
    w = rep.whole.rounded()
    assert (f"| **whole accelerator** (flattened, one yosys run, {rep.whole_seconds:.0f} s) | | | | | | | | "
            f"**{w.lut:,}** | {w.ff:,} | **{w.bram36:g}** | {w.dsp:g} |") in report.render(rep).splitlines()
    assert {r.source for r in rep.rows} == {"yosys estimate"}
    layer = rep.rows[0]
    want: dict[str, int] = {}
    for m in costs.mvtu_memories(a.layers[0]).values():
        for k, v in m.cells().items():
            want[k] = want.get(k, 0) + v
    assert {k: v for k, v in layer.cells.items() if k.startswith(("RAMB", "RAM32", "RAM64"))} == want
    assert layer.resources.lut > 0 and rep.unit_total == layer.resources + rep.rows[1].resources
    assert "Resources: yosys estimate (yosys 0.23 synth_xilinx -family xc7 on the generated RTL, unit by unit); " \
           "not Vivado results." in report.render(rep).splitlines()


def test_report_errors(tmp_path, capsys, digits_run):
    code, _, err = run_cli(capsys, "report", digits_run, "--no-yosys")
    assert code == 2
    lines = err.strip().splitlines()
    assert lines == [f"bnnflow report: error: {digits_run}: the run is not exported (no "
                     f"{digits_run / 'export' / 'manifest.json'}); run `bnnflow export {digits_run}` first (with "
                     f"`--folding` from `bnnflow fold {digits_run}`)"] or (digits_run / "export").is_dir(), err
    code, _, err = run_cli(capsys, "report", tmp_path, "--no-yosys")
    assert code == 2 and err.strip() == (f"bnnflow report: error: {tmp_path}: neither an export folder "
                                         "(manifest.json) nor a run folder with an export")
    code, _, err = run_cli(capsys, "report", tmp_path, "--device", "zynq")
    assert code == 2 and "argument --device: unknown device 'zynq'" in err


#: A small conv net (12x12x3 8-bit map): 16C3 - 16C3 MP2 - FC10 score.
CONV_IFM = (12, 12, 3)
CONV_LAYERS = [dict(mh=16, kind="int_threshold", kernel=3), dict(mh=16, kind="xnor_threshold", kernel=3, pool=2),
               dict(mh=10, kind="xnor_score")]
CONV_FOLDING = [F(8, 3), F(4, 8), F(2, 16)]


def test_report_conv_rows(tmp_path):
    """A conv net: the sliding-window and pool units get rows; a conv layer's cycles are NF*SF*output pixels."""
    from bnnflow.testing import conv_artifact

    a = conv_artifact(tmp_path / "conv", 1, CONV_IFM, 8, CONV_LAYERS, folding=CONV_FOLDING, n_vectors=1)
    rep = report.build_report(a.root, XC7Z020, 100.0, use_yosys=False)
    model = costs.load_model()
    units = dict(model.network(a.layers))
    assert [r.name for r in rep.rows] == ["swu 0", "layer 0", "repack 0->1", "swu 1", "layer 1", "pool 1",
                                          "repack 1->2", "layer 2", "shell"]
    assert all(r.resources == units[r.name] for r in rep.rows)
    assert units["swu 0"].lut > 0 and units["pool 1"].lut > 0
    # 10x10 output pixels of 2 x 9 folds; 8x8 of 4 x 18; the FC score layer: 5 x (256/16) once
    assert [(r.nf, r.sf, r.vectors, r.cycles) for r in rep.rows if r.cycles is not None] == [
        (2, 9, 100, 1800), (4, 18, 64, 4608), (5, 16, 1, 80)]
    assert rep.core_cycles == rep.accel_cycles == 4608
    lines = report.render(rep).splitlines()
    assert ("| unit | kind | shape (MW -> MH) | PE | SIMD | NF x SF x vectors | cycles | weight bits | LUT | FF | "
            "BRAM36 | DSP |") in lines
    assert _expected_layer_line(units["layer 1"], "layer 1", "xnor_threshold", "10x10x16 16C3 MP2 (144 -> 16)", 4, 8,
                                "4 x 18 x 64", 4608, f"{16 * 144 + 16 * a.layers[1].threshold_bits:,}") in lines
    assert _expected_layer_line(units["swu 1"], "swu 1", "bnn_swu", "3x3 window over 10x10x16", "", 8, "", "",
                                "") in lines
    assert _expected_layer_line(units["pool 1"], "pool 1", "bnn_maxpool", "2x2 max of 8x8x16", 4, "", "", "",
                                "") in lines
    assert ("- Cycles per image: 4608 (the slowest layer's NF*SF times its vectors (a conv's output pixels), what "
            "the RTL core measures).") in lines
    assert rep.network == "12x12x3: 16C3-16C3 MP2-FC10, 8-bit input"
    data = rep.to_json()
    assert [u["vectors"] for u in data["units"]] == [None, 100, None, None, 64, None, None, 1, None]


@pytest.mark.slow
def test_report_yosys_conv_units(tmp_path):
    """yosys unit by unit on a conv net (a few minutes): swu / pool rows measured, their memories as the model's."""
    from bnnflow.testing import conv_artifact

    _require_yosys()
    a = conv_artifact(tmp_path / "conv", 1, CONV_IFM, 8, CONV_LAYERS, folding=CONV_FOLDING, n_vectors=1,
                      generate=("rtl",))
    rep = report.build_report(a.root, XC7Z020, 100.0, timeout=600)
    assert [r.name for r in rep.rows] == [r.name for r in rep.model_rows]
    assert {r.source for r in rep.rows} == {"yosys estimate"}
    from bnnflow import rtlgen

    for r in rep.rows:
        if r.name.startswith(("swu ", "pool ")):
            spec = a.layers[int(r.name.split()[1])]
            mems = (costs.swu_memories(rtlgen.swu_parameters(spec)) if r.name.startswith("swu ")
                    else costs.maxpool_memories(rtlgen.maxpool_parameters(spec)))
            want: dict[str, int] = {}
            for m in mems.values():
                for k, v in m.cells().items():
                    want[k] = want.get(k, 0) + v
            assert {k: v for k, v in r.cells.items() if k.startswith(("RAMB", "RAM32", "RAM64"))} == want, r.name
            model = dict(costs.load_model().network(a.layers))[r.name]
            assert abs(model.lut - r.resources.lut) <= 0.25 * r.resources.lut, (r.name, model, r.resources)
