"""bnnflow fold (bnnflow.fold) and its cost model (bnnflow.costs): divisibility, budgets, balance, errors.

The model is the checked-in, yosys-measured table (bnnflow/cost_table.py); these tests need no
yosys except ``test_model_matches_yosys_on_one_layer``, which synthesizes one small layer.
"""

from __future__ import annotations

import dataclasses
import math

import json
import shutil

import numpy as np
import pytest

from bnnflow import artifact as art
from bnnflow import costs
from bnnflow.fold import (Budget, FoldError, LayerKind, candidates, describe, fold, layers_from_sizes, network_layers,
                          stream_beats)
from bnnflow.folding import load_folding

from conftest import assert_one_line, run_cli  # noqa: E402

LFC = layers_from_sizes([784, 1024, 1024, 1024, 10], 8)
DIGITS = layers_from_sizes([64, 64, 32, 10], 5)
XC7Z020 = costs.DEVICES["xc7z020"]




# -- the cost table ----------------------------------------------------------------------------------------------


def test_table_is_current_and_the_memory_rule_matches_yosys():
    """The table was measured on today's RTL; yosys's memory choice equals memory_map at every measured point."""
    table = costs.load_model().table
    assert costs.stale_files(table) == [], (
        f"rtl/ changed since bnnflow/cost_table.py was measured: run `{costs.REGENERATE_COMMAND}`")
    assert table["command"] == costs.REGENERATE_COMMAND and table["yosys"].startswith("Yosys")
    err = costs.errors(table)
    assert err["memory"]["mismatches"] == [] and err["memory"]["points"] == len(costs.MEMORY_GRID)
    assert len(table["points"]["mvtu"]) == len(costs.MVTU_GRID)
    # the convolution units are measured too, so a change to them makes the table stale
    assert len(table["points"]["swu"]) == len(costs.SWU_GRID)
    assert len(table["points"]["maxpool"]) == len(costs.MAXPOOL_GRID)
    assert {"bnn_swu.v", "bnn_maxpool.v", "bnn_out_fifo4.v"} <= set(table["rtl_sha256"])
    # the fitted logic reproduces its own points within these bounds (printed by `python -m bnnflow.costs --check`);
    # the worst points (about 40%) are layers whose multipliers yosys puts on DSP slices, which also absorb
    # registers and part of the adder tree
    assert err["mvtu.lut"]["max_abs"] < 0.45 and err["mvtu.lut"]["mean_abs"] < 0.12, err
    assert err["mvtu.ff"]["max_abs"] < 0.45 and err["mvtu.ff"]["mean_abs"] < 0.12, err
    # DSP slices are counted, not fitted: the rule (costs.dsp_slices) gives yosys's count at every point
    model = costs.load_model()
    for p in table["points"]["mvtu"]:
        shape = costs.LayerShape(p["kind"], p["mw"], p["mh"], p["pe"], p["simd"], p["input_bits"],
                                 **p.get("widths", {}))
        assert model.layer(shape).dsp == costs.cells_to_resources(p["cells"]).dsp, p


def test_wide_shallow_weights_go_to_block_ram():
    """weight_ram_block: LUT RAM of >= 1,024 LUT sites and block RAM of <= 32 BRAM36 -> block RAM (ram_style);
    rtlgen passes WEIGHT_RAM_BLOCK only then, and the model prices the block RAM."""
    from bnnflow import rtlgen

    wide = costs.LayerShape("xnor_threshold", 576, 64, 64, 32).spec()      # CNV layer 1 at PE 64: 18 x 2,048 bits
    assert costs.memory_map(18, 2048).cells() == {"RAM32M": 342}
    assert costs.weight_ram_block(wide)
    assert costs.mvtu_memories(wide)["weights"].cells() == {"RAMB18E1": 57}
    assert rtlgen.mvtu_parameters(wide)["WEIGHT_RAM_BLOCK"] == 1
    narrow = costs.LayerShape("xnor_threshold", 576, 64, 32, 32).spec()    # 36 x 1,024: 1,368 sites, 14.5 BRAM36
    assert costs.weight_ram_block(narrow)
    small = costs.LayerShape("xnor_threshold", 64, 32, 8, 16).spec()       # 16 x 128 bits: 88 sites of LUT RAM
    assert not costs.weight_ram_block(small) and "WEIGHT_RAM_BLOCK" not in rtlgen.mvtu_parameters(small)
    huge = costs.LayerShape("xnor_threshold", 6000, 8, 8, 3000).spec()     # 2 x 24,000 bits: 667 RAMB18, too many
    assert costs.memory_map(2, 24000, block=True).resources.bram36 > costs.BLOCK_WEIGHTS_MAX_BRAM36
    assert not costs.weight_ram_block(huge)


@pytest.mark.parametrize("depth,width,cells", [
    (32, 200, {"RAM32M": 34}),            # shallow: LUT RAM, 32 x 6 per RAM32M
    (64, 72, {"RAM64M": 24}),             # 64 x 3 per RAM64M
    (256, 8, {"RAM64M": 12}),             # narrow and 256 deep: still LUT RAM (4 banks) -- cheaper than a RAMB18
    (128, 36, {"RAMB18E1": 1}),
    (512, 200, {"RAMB36E1": 3}),          # 512 x 72 mode
    (1024, 1024, {"RAMB18E1": 57}),       # 1K x 18 RAMB18s beat 29 RAMB36s by yosys's costs
    (2048, 200, {"RAMB18E1": 23}),
])
def test_memory_map(depth, width, cells):
    assert costs.memory_map(depth, width).cells() == cells


def test_devices_and_unknown_device():
    assert {d: (v.lut, v.ff, v.bram36, v.dsp) for d, v in costs.DEVICES.items()} == {
        "xc7z020": (53_200, 106_400, 140, 220), "xck26": (117_120, 234_240, 144, 1_248),
        "xczu3eg": (70_560, 141_120, 216, 360)}
    with pytest.raises(costs.UnknownDeviceError, match=r"unknown device 'xc7z010'; known devices: xc7z020 "
                                                       r"\(PYNQ-Z1, PYNQ-Z2\), xck26 \(Kria KV260\), xczu3eg"):
        costs.device("xc7z010")


# -- candidates and the optimizer ------------------------------------------------------------------------------


@pytest.mark.parametrize("k", range(len(DIGITS)))
def test_candidates_divide_and_are_pareto(k):
    model = costs.load_model()
    layer = DIGITS[k]
    cands = candidates(DIGITS, k, model)
    assert cands
    for c in cands:
        spec = layer.shape(c.pe, c.simd).spec(k)
        assert layer.mh % c.pe == 0 and 1 <= c.simd <= layer.mw
        beats = [stream_beats(spec, "in")] if k == 0 else [stream_beats(spec, "out")] if k == len(DIGITS) - 1 else []
        assert c.cycles == max([spec.nf * spec.sf] + beats)
        # the narrowest SIMD for its synapse-fold count: one fewer lane would need another fold
        assert c.simd == -(-layer.mw // spec.sf)
    # Pareto: sorted by cycles, no candidate is at least as good as another in every respect
    for a in cands:
        for b in cands:
            if a is not b:
                assert not (a.cycles <= b.cycles and a.cost.lut <= b.cost.lut and a.cost.bram36 <= b.cost.bram36
                            and a.cost.ff <= b.cost.ff), (a, b)


@pytest.mark.parametrize("max_lut", [3_000, 6_000, 12_000, 25_000])
def test_fold_max_lut_respects_budget_and_balances(max_lut):
    r = fold(DIGITS, XC7Z020, 100.0, max_lut=max_lut)
    est = r.estimate
    assert est.lut <= max_lut and est.bram36 <= r.budget.bram36 and est.ff <= r.budget.ff
    assert all(l.mh % f.pe == 0 for l, f in zip(DIGITS, r.folding))
    assert max(r.cycles) == r.cycles_per_image == r.target_cycles
    specs = [l.shape(f.pe, f.simd).spec(k) for k, (l, f) in enumerate(zip(DIGITS, r.folding))]
    assert r.cycles == [s.nf * s.sf for s in specs]
    # the model's whole-network estimate is the sum of its units
    assert est == costs.total(res for _, res in costs.load_model().network(specs))
    # fastest that fits: the next faster cycle count any layer offers does not fit the same budget
    model = costs.load_model()
    faster = sorted(c.cycles for k in range(len(DIGITS)) for c in candidates(DIGITS, k, model)
                    if c.cycles < r.target_cycles)
    if faster:
        with pytest.raises(FoldError, match="the cheapest such folding needs about"):
            fold(DIGITS, XC7Z020, 100.0, target_fps=100e6 / faster[-1], budget=r.budget)


#: DoReFa/XNOR-Net-like: a real (8-bit int weights) first layer on 8-bit pixels, whose lanes are DSP multipliers.
INT8_FIRST = [LayerKind(art.INT_THRESHOLD, 784, 256, 8, weight_bits=8, weight_encoding="int", n_thresholds=3),
              LayerKind(art.INT_THRESHOLD, 256, 256, 2, n_thresholds=3),
              LayerKind(art.INT_SCORE, 256, 10, 2, weight_bits=8, weight_encoding="int", affine_bits=12, mul_bits=2)]


def test_fold_respects_the_dsp_budget():
    """Multiply lanes cost DSP slices (exact count): fold stays within the device's DSPs, or says DSP is short."""
    r = fold(INT8_FIRST, XC7Z020, 100.0)
    specs = [l.shape(f.pe, f.simd).spec(k) for k, (l, f) in enumerate(zip(INT8_FIRST, r.folding))]
    lanes = specs[0].pe * specs[0].simd + specs[2].pe * specs[2].simd
    assert 0 < r.estimate.dsp == lanes + specs[2].pe <= XC7Z020.dsp     # 9x8 lanes: 1 slice each; affine: 1 per PE
    unlimited = fold(INT8_FIRST, XC7Z020, 100.0, budget=dataclasses.replace(r.budget, dsp=math.inf))
    assert unlimited.estimate.dsp > XC7Z020.dsp and unlimited.cycles_per_image < r.cycles_per_image
    with pytest.raises(FoldError, match=r"DSP, the budget is 100"):
        fold(INT8_FIRST, XC7Z020, 100.0, target_fps=100e6 / unlimited.cycles_per_image,
             budget=dataclasses.replace(r.budget, dsp=100))


def test_more_budget_is_never_slower():
    cycles = [fold(DIGITS, XC7Z020, 100.0, max_lut=lut).cycles_per_image for lut in (3_000, 6_000, 12_000, 25_000)]
    assert cycles == sorted(cycles, reverse=True) and cycles[0] > cycles[-1]


@pytest.mark.parametrize("fps", [50_000, 400_000, 1_000_000, 3_000_000])
def test_fold_target_fps_every_layer_within_target(fps):
    r = fold(DIGITS, XC7Z020, 100.0, target_fps=fps)
    target = int(100e6 // fps)
    assert r.target_cycles == target
    assert all(c <= target for c in r.cycles) and r.images_per_second >= fps
    assert r.estimate.lut <= r.budget.lut


def test_fold_lfc_on_devices():
    """LFC (8-bit input) on the three devices: within each budget, and the bigger part is not slower."""
    results = {d: fold(LFC, costs.DEVICES[d], 100.0) for d in costs.DEVICES}
    for d, r in results.items():
        assert r.estimate.lut <= r.budget.lut and r.estimate.bram36 <= r.budget.bram36, d
        assert [l.mh % f.pe for l, f in zip(LFC, r.folding)] == [0, 0, 0, 0]
        assert all(f.simd * l.input_bits <= 4096 for l, f in zip(LFC, r.folding))
    assert results["xck26"].cycles_per_image <= results["xc7z020"].cycles_per_image


def test_hls_word_limit_only_with_hls():
    """One cycle per image needs a 5000-bit output word (PE 5000) and a 5000-bit input word (SIMD 5000):
    the Verilog engine takes them, the HLS engine (4096 bits at most) does not."""
    layers = [LayerKind(art.INT_THRESHOLD, 1, 5000, 1), LayerKind(art.XNOR_SCORE, 5000, 2, 1)]
    roomy = Budget(lut=1e7, ff=1e7, bram36=1e4)
    rtl_only = fold(layers, XC7Z020, 100.0, target_fps=100e6, hls=False, budget=roomy)
    assert [(f.pe, f.simd) for f in rtl_only.folding] == [(5000, 1), (2, 5000)] and rtl_only.cycles == [1, 1]
    with pytest.raises(FoldError, match=r"^--target-fps 1e\+08 at 100 MHz needs <= 1 cycles per image; layer 0 "
                                        r"\(1 -> 5000\) takes at least 2 \(at most 50,000,000 images/s\)$"):
        fold(layers, XC7Z020, 100.0, target_fps=100e6, hls=True, budget=roomy)
    with_hls = fold(layers, XC7Z020, 100.0, target_fps=50e6, hls=True, budget=roomy)
    assert all(f.pe <= 4096 and f.simd <= 4096 for f in with_hls.folding) and with_hls.cycles_per_image == 2


def test_fold_errors():
    # PE 8, not 1: behind a 1-PE layer the repacker needs a write enable per element (1,024 of them per bank)
    with pytest.raises(FoldError, match=r"^nothing fits xc7z020: the smallest folding of layer 0 \(784 -> 1024, "
                                        r"PE=8 SIMD=1\) needs about [\d,]+ LUT, the budget is 100$"):
        fold(LFC, XC7Z020, 100.0, max_lut=100)
    with pytest.raises(FoldError, match=r"^--target-fps 1e\+06 at 100 MHz needs <= 100 cycles per image; the "
                                        r"cheapest such folding needs about [\d,]+ LUT, the budget is 44,280"):
        fold(LFC, XC7Z020, 100.0, target_fps=1_000_000)
    with pytest.raises(FoldError, match=r"^--target-fps 2e\+08 at 100 MHz leaves less than one clock cycle per "
                                        r"image \(at most 100,000,000 images/s\)$"):
        fold(DIGITS, XC7Z020, 100.0, target_fps=2e8)
    with pytest.raises(ValueError, match="give --target-fps or --max-lut, not both"):
        fold(DIGITS, XC7Z020, 100.0, target_fps=1000, max_lut=1000)


# -- network shapes --------------------------------------------------------------------------------------------


def test_network_layers_from_run_and_export(tmp_path, digits_run):
    layers, what = network_layers(digits_run)
    assert what == f"run {digits_run}"
    assert layers == [LayerKind("int_threshold", 64, 64, 5), LayerKind("xnor_threshold", 64, 32, 1),
                      LayerKind("xnor_score", 32, 10, 1)]
    bad = tmp_path / "float"
    bad.mkdir()
    (bad / "config.json").write_text(json.dumps({"method": "float", "arch": "mlp"}))
    with pytest.raises(ValueError, match=r"float/config.json: --method float with arch 'mlp' has no hardware mapping"):
        network_layers(bad)
    with pytest.raises(FileNotFoundError, match=r"neither a training run \(config.json\) nor an export"):
        network_layers(tmp_path)


def test_network_layers_of_other_methods_come_from_their_export(tmp_path, capsys):
    """A DoReFa run's widths are set at export: fold asks for the export first, then reads it (all widths)."""
    from bnnflow.export import export_run

    run = tmp_path / "dorefa"
    assert run_cli(capsys, "train", "--method", "dorefa", "--hidden", "16,16", "--epochs", "1", "--out", run,
                   "--quiet")[0] == 0
    with pytest.raises(ValueError, match=r"the layer widths of a --method dorefa net are set when it is exported .* "
                                         r"run `bnnflow export .*dorefa` first"):
        network_layers(run)
    a = export_run(run, generate=())
    layers, what = network_layers(run)
    assert what == f"run {run} (layers of its export)"
    assert layers == [LayerKind.of(spec) for spec in a.layers]
    assert [(l.weight_bits, l.weight_encoding, l.n_thresholds) for l in layers] == [(8, "int", 3), (1, "sym", 3),
                                                                                   (8, "int", 0)]


# -- the command -------------------------------------------------------------------------------------------------


@pytest.mark.rtl
def test_fold_exports_and_verifies(tmp_path, capsys, digits_run):
    """`bnnflow fold` -> `export --folding` -> `verify --against golden,rtl`: the chosen folding is real."""
    from bnnflow.sim import toolchain

    toolchain.pytest_require("verilator")
    run = tmp_path / "run"
    shutil.copytree(digits_run, run, ignore=shutil.ignore_patterns("export"))
    code, out, err = run_cli(capsys, "fold", run, "--device", "xc7z020", "--clock", "100", "--max-lut", "9000")
    assert code == 0, err
    folding = load_folding(run / "folding.json")
    data = json.loads((run / "folding.json").read_text())
    assert data["fold"]["device"] == "xc7z020" and data["fold"]["estimate"]["lut"] <= 9000
    assert f"wrote {run / 'folding.json'}; export with: bnnflow export RUN --folding {run / 'folding.json'}" in out
    assert out.splitlines()[0] == f"run {run}: folded for xc7z020 (PYNQ-Z1, PYNQ-Z2) at 100 MHz, fastest that fits"
    code, out, err = run_cli(capsys, "export", run, "--folding", run / "folding.json", "--generate", "rtl")
    assert code == 0, err
    a = art.load(run / "export")
    assert [(l.pe, l.simd) for l in a.layers] == [(f.pe, f.simd) for f in folding]
    assert [l.nf * l.sf for l in a.layers] == data["fold"]["layer_cycles"]
    code, out, err = run_cli(capsys, "verify", run, "--against", "golden,rtl", "--limit", "24")
    assert code == 0, out + err


def test_fold_export_folder_writes_beside_it(tmp_path, capsys):
    """An export folder works as RUN (its manifest's layers); the folding goes beside it, not into it
    (re-exporting replaces the export folder)."""
    from bnnflow.testing import random_artifact

    a = random_artifact(tmp_path / "export", seed=0, input_features=64, hidden=(64, 32), classes=10, input_bits=5,
                        n_vectors=1, generate=())
    code, out, err = run_cli(capsys, "fold", a.root, "--device", "xczu3eg", "--clock", "300", "--target-fps", "2e6")
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0] == (f"export {a.root}: folded for xczu3eg (Ultra96-V2) at 300 MHz, target 2e+06 images/s")
    data = json.loads((tmp_path / "folding.json").read_text())
    assert data["fold"]["clock_mhz"] == 300 and data["fold"]["cycles_per_image"] <= 150
    assert max(data["fold"]["layer_cycles"]) == data["fold"]["cycles_per_image"]
    r = fold(network_layers(a.root)[0], costs.DEVICES["xczu3eg"], 300.0, target_fps=2e6)
    assert data["layers"] == [{"pe": f.pe, "simd": f.simd} for f in r.folding]


def test_fold_cli_errors(tmp_path, capsys, digits_run):
    code, _, err = run_cli(capsys, "fold", digits_run, "--device", "virtex2")
    assert code == 2
    assert_one_line(err, "bnnflow fold: error: argument --device: unknown device 'virtex2'; known devices: "
                         "xc7z020 (PYNQ-Z1, PYNQ-Z2), xck26 (Kria KV260), xczu3eg (Ultra96-V2)")
    code, _, err = run_cli(capsys, "fold", digits_run, "--target-fps", "1000", "--max-lut", "5000")
    assert code == 2
    assert_one_line(err, "argument --max-lut: not allowed with argument --target-fps")
    code, _, err = run_cli(capsys, "fold", digits_run, "--target-fps", "5e8", "--out", tmp_path / "f.json")
    assert code == 2
    assert_one_line(err, "bnnflow fold: error: --target-fps 5e+08 at 100 MHz leaves less than one clock cycle "
                         "per image (at most 100,000,000 images/s)")
    code, _, err = run_cli(capsys, "fold", digits_run, "--max-lut", "20", "--out", tmp_path / "f.json")
    assert code == 2
    assert_one_line(err, "bnnflow fold: error: nothing fits xc7z020: the smallest folding of layer 0 (64 -> 64, "
                         "PE=2 SIMD=1) needs about", "LUT, the budget is 20")
    code, _, err = run_cli(capsys, "fold", tmp_path / "nope")
    assert code == 2
    assert_one_line(err, f"{tmp_path / 'nope'}: no such folder")
    code, _, err = run_cli(capsys, "fold", digits_run, "--clock", "0")
    assert code == 2
    assert_one_line(err, "argument --clock: must be a positive finite number, got '0'")
    assert not (tmp_path / "f.json").exists()


def test_stale_files_are_the_measured_ones_that_changed(monkeypatch):
    """A file added to the library after the measurement is not stale; a measured one that changed or went
    away is."""
    monkeypatch.setattr(costs, "rtl_hashes", lambda: {"a.v": "1", "b.v": "2", "new.v": "3"})
    assert costs.stale_files({"rtl_sha256": {"a.v": "1", "b.v": "2"}}) == []
    assert costs.stale_files({"rtl_sha256": {"a.v": "1", "b.v": "0", "gone.v": "4"}}) == ["b.v", "gone.v"]


# -- convolutions ------------------------------------------------------------------------------------------------

#: A small CNV-like net: 12x12x3 8-bit map, 16C3 - 16C3 MP2 - 32C3 - FC32 - FC10 (bench/cnv.py's CI net).
SMALL_CONV_IFM = (12, 12, 3)
SMALL_CONV = [dict(mh=16, kind=art.INT_THRESHOLD, kernel=3), dict(mh=16, kind=art.XNOR_THRESHOLD, kernel=3, pool=2),
              dict(mh=32, kind=art.XNOR_THRESHOLD, kernel=3), dict(mh=32, kind=art.XNOR_THRESHOLD),
              dict(mh=10, kind=art.XNOR_SCORE)]


def _small_conv_layers() -> list[LayerKind]:
    from bnnflow.folding import LayerFolding
    from bnnflow.testing import random_conv_stack
    from bnnflow.writer import layer_spec

    data = random_conv_stack(np.random.default_rng(0), SMALL_CONV_IFM, 8, SMALL_CONV)
    return [LayerKind.of(layer_spec(k, d, LayerFolding(1, 1))) for k, d in enumerate(data)]


def test_conv_candidates_divide_channels_and_count_pixels():
    """A conv's SIMD divides its input channels, its cycles are NF*SF*output pixels, and its cost includes its
    sliding-window unit and pool (both grow with the lanes that feed them)."""
    model = costs.load_model()
    layers = _small_conv_layers()
    assert [l.describe() for l in layers] == ["12x12x3 16C3", "10x10x16 16C3 MP2", "4x4x16 32C3", "128 -> 32",
                                              "32 -> 10"]
    for k in (0, 1, 2):
        layer = layers[k]
        cands = candidates(layers, k, model)
        assert {c.simd for c in cands} <= set(d for d in range(1, layer.conv.channels + 1)
                                             if layer.conv.channels % d == 0)
        for c in cands:
            spec = layer.shape(c.pe, c.simd).spec(k)
            pixels = {0: 100, 1: 64, 2: 4}[k]
            beats = stream_beats(spec, "in") if k == 0 else 0
            assert c.cycles == max(spec.nf * spec.sf * pixels, beats) == max(spec.cycles_per_image, beats)
            units = model.swu(spec) + (model.maxpool(spec) if k == 1 else costs.Resources())
            assert units.lut > 0 and units == model.conv_units(spec)
            # the repacker after layers 0 and 1 holds one pixel's channels (the next layer is a conv)
            assert c.cost == (model.layer(spec) + units
                              + model.repack_share(spec, consumes=k > 0, produces=True, consumer_conv=k < 2))
    # the first layer streams the whole 12x12x3 map: 144 pixels x 3/SIMD words
    spec = layers[0].shape(16, 3).spec(0)
    assert stream_beats(spec, "in") == 144 and spec.cycles_per_image == 1 * 9 * 100


def test_fold_conv_target_beyond_the_first_layer():
    """SIMD divides a conv's 3 input channels: 9 synapse folds x 100 output pixels at least, whatever the PE."""
    with pytest.raises(FoldError, match=r"^--target-fps 400000 at 100 MHz needs <= 250 cycles per image; layer 0 "
                                        r"\(12x12x3 16C3\) takes at least 900 \(at most 111,111 images/s\)$"):
        fold(_small_conv_layers(), XC7Z020, 100.0, target_fps=400_000)


@pytest.mark.parametrize("fps", [20_000, 60_000, 111_111])
def test_fold_conv_net_meets_target(fps):
    layers = _small_conv_layers()
    r = fold(layers, XC7Z020, 100.0, target_fps=fps)
    target = int(100e6 // fps)
    specs = [l.shape(f.pe, f.simd).spec(k) for k, (l, f) in enumerate(zip(layers, r.folding))]
    assert all(c <= target for c in r.cycles) and r.images_per_second >= fps
    assert [s.conv.channels % s.simd for s in specs if s.is_conv] == [0, 0, 0]
    assert [s.out_features % s.pe for s in specs] == [0] * 5
    # the whole-network estimate is the sum of its units, the conv units among them
    names = [n for n, _ in r.units]
    assert names == ["swu 0", "layer 0", "repack 0->1", "swu 1", "layer 1", "pool 1", "repack 1->2", "swu 2",
                     "layer 2", "repack 2->3", "layer 3", "repack 3->4", "layer 4", "shell"]
    assert r.estimate == costs.total(res for _, res in costs.load_model().network(specs))
    text = describe(r)
    assert text.splitlines()[0].split() == ["layer", "kind", "shape", "PE", "SIMD", "NF*SF*pixels", "LUT", "FF",
                                            "BRAM36"]
    assert "10x10x16 16C3 MP2" in text.splitlines()[2]


def test_fold_conv_fastest_that_fits_lut():
    """--max-lut on a conv net: within the budget, and more LUTs are never slower."""
    layers = _small_conv_layers()
    results = [fold(layers, XC7Z020, 100.0, max_lut=lut) for lut in (4_000, 8_000, 16_000)]
    for lut, r in zip((4_000, 8_000, 16_000), results):
        assert r.estimate.lut <= lut
    cycles = [r.cycles_per_image for r in results]
    assert cycles == sorted(cycles, reverse=True) and cycles[0] > cycles[-1]


def test_fold_conv_export_and_run_without_export(tmp_path, capsys):
    """A conv export folds (its manifest's conv layers); a conv run without an export is told to export first."""
    from bnnflow.testing import conv_artifact

    a = conv_artifact(tmp_path / "export", 1, SMALL_CONV_IFM, 8, SMALL_CONV, n_vectors=1)
    layers, what = network_layers(a.root)
    assert what == f"export {a.root}" and layers == [LayerKind.of(s) for s in a.layers]
    assert [l.conv for l in layers[:3]] == [s.conv for s in a.layers[:3]] and layers[3].conv is None
    code, out, err = run_cli(capsys, "fold", a.root, "--device", "xc7z020", "--clock", "100", "--target-fps", "1e5")
    assert code == 0, err
    data = json.loads((tmp_path / "folding.json").read_text())
    assert data["fold"]["cycles_per_image"] <= 1000 and max(data["fold"]["layer_cycles"]) <= 1000
    assert out.splitlines()[0] == (f"export {a.root}: folded for xc7z020 (PYNQ-Z1, PYNQ-Z2) at 100 MHz, target "
                                   "100,000 images/s")
    run = tmp_path / "cnvrun"
    run.mkdir()
    (run / "config.json").write_text(json.dumps({"method": "bnn", "arch": "cnv"}))
    with pytest.raises(ValueError, match=r"cnvrun/config.json: --method bnn with arch 'cnv': its layer shapes \(maps, "
                                         r"kernels, pools\) are in its export; run `bnnflow export .*cnvrun` first"):
        network_layers(run)
    shutil.copytree(a.root, run / "export")
    layers, what = network_layers(run)
    assert what == f"run {run} (layers of its export)" and layers == [LayerKind.of(s) for s in a.layers]


@pytest.mark.rtl
def test_fold_conv_folding_runs_at_its_cycles(tmp_path):
    """fold's conv folding exported with RTL: the Verilator bulk harness measures exactly its cycles per image."""
    from bnnflow.sim import bulk
    from bnnflow.testing import conv_artifact

    if bulk.verilator_problem():
        pytest.skip(bulk.verilator_problem())
    r = fold(_small_conv_layers(), XC7Z020, 100.0, target_fps=100_000)
    a = conv_artifact(tmp_path / "export", 2, SMALL_CONV_IFM, 8, SMALL_CONV, folding=r.folding, n_vectors=3,
                      generate=("rtl",))
    assert [l.cycles_per_image for l in a.layers] == [c for c in r.cycles]
    images = np.fromfile(a.path("vectors/images.bin"), dtype=np.uint8).reshape(3, -1)
    sim = bulk.run_bulk(a, images, check=True)
    assert sim.cycles_per_image == r.cycles_per_image
