"""bnnflow fold (bnnflow.fold) and its cost model (bnnflow.costs): divisibility, budgets, balance, errors.

The model is the checked-in, yosys-measured table (bnnflow/cost_table.py); these tests need no
yosys except ``test_model_matches_yosys_on_one_layer``, which synthesizes one small layer.
"""

from __future__ import annotations

import dataclasses
import math

import json
import shutil

import pytest

from bnnflow import artifact as art
from bnnflow import costs
from bnnflow.fold import Budget, FoldError, LayerKind, candidates, fold, layers_from_sizes, network_layers, stream_beats
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
    with pytest.raises(FoldError, match=r"^nothing fits xc7z020: the smallest folding of layer 0 \(784 -> 1024, "
                                        r"PE=1 SIMD=1\) needs about [\d,]+ LUT, the budget is 100$"):
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
                         "PE=1 SIMD=1) needs about", "LUT, the budget is 20")
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
