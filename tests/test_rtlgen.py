"""rtlgen: memory files decode back to the artifact's data; the manifest section; the core's and accelerator's text."""

from __future__ import annotations

import re

import numpy as np

import pytest

from bnnflow import accel, packing, rtlgen, testing
from bnnflow import artifact as art
from bnnflow.folding import LayerFolding as F
from bnnflow.testing import random_artifact
from bnnflow.writer import write_artifact


def _read_mem(path, count, bits, signed):
    words = [int(line, 16) for line in path.read_text().split()]
    return packing.int_to_fields(words, count, bits, signed)


def v3_artifact(out_dir, seed=5, generate=("rtl",), folding=(F(4, 32), F(8, 12), F(5, 8))):
    """100 3-bit inputs -> 48 (4-bit sym weights, 3 thresholds: 2-bit outputs) -> 16 (ternary int weights,
    1 threshold) -> 10 xnor scores with an 6-bit affine; PE*SIMD*K / PE*N*TB / PE*2*AB words of every kind."""
    rng = np.random.default_rng(seed)
    layers = testing.random_stack(rng, 100, 3, [
        dict(mh=48, weight_bits=4, n_thresholds=3),
        dict(mh=16, weight_bits=2, weight_encoding=art.INT),
        dict(mh=10, kind=art.XNOR_SCORE, affine_bits=6)])
    images = rng.integers(0, 8, size=(4, 100), dtype=np.uint8)
    network = {"name": "v3", "input_features": 100, "input_shape": [100], "input_bits": 3, "num_classes": 10,
               "method": "random", "dataset": "random"}
    return write_artifact(out_dir, network, layers, list(folding),
                          vectors=(images, rng.integers(0, 10, size=4)), generate=generate)


def _check_memory_files(a):
    for k, layer in enumerate(a.layers):
        w = _read_mem(a.root / "rtl" / rtlgen.weight_file(k), layer.pe * layer.simd, layer.weight_bits, False)
        assert w.shape == (layer.nf * layer.sf, layer.pe * layer.simd)
        # word at address nf*SF+sf: PE p lane j at bits [(p*SIMD + j)*K, +K)
        lanes = w.reshape(layer.nf * layer.sf, layer.pe, layer.simd).transpose(1, 0, 2)
        np.testing.assert_array_equal(lanes, a.weight_lanes(k))
        # neuron parameters at address nf: PE p field t at bits [(p*n + t)*bits, +bits) (n = N, or 2 for mul/add)
        folded, bits = ((a.folded_thresholds(k), layer.threshold_bits) if layer.has_thresholds
                        else (a.folded_affine(k), layer.affine_bits))
        name = rtlgen.param_file(layer)
        assert sorted(p.name for p in (a.root / "rtl").glob(f"L{k}_*.mem")) == sorted(
            [rtlgen.weight_file(k)] + ([name] if name else []))
        if folded is None:
            assert name is None
            continue
        pe, nf, n = folded.shape
        t = _read_mem(a.root / "rtl" / name, pe * n, bits, True)
        np.testing.assert_array_equal(t.reshape(nf, pe, n).transpose(1, 0, 2), folded)


def test_memory_files_round_trip(tmp_path):
    a = random_artifact(tmp_path / "a", seed=3, input_features=100, hidden=(48,), classes=10,
                        folding=[F(4, 32), F(5, 16)], n_vectors=2, generate=("rtl",))
    _check_memory_files(a)


def test_memory_files_round_trip_v3(tmp_path):
    """Multi-bit codes, a 3-threshold bank and an affine: each field where docs/ARTIFACT.md puts it."""
    a = v3_artifact(tmp_path / "a")
    assert [(l.weight_bits, l.weight_encoding, l.n_thresholds, l.affine_bits) for l in a.layers] == [
        (4, art.SYM, 3, 0), (2, art.INT, 1, 0), (1, art.SYM, 0, 6)]
    _check_memory_files(a)
    # the first words literally: layer 2's affine word 0 is PE 0 (mul, add), PE 1 (mul, add), ... from bit 0
    affine = a.folded_affine(2)
    word0 = int((a.root / "rtl" / "L2_affine.mem").read_text().split()[0], 16)
    expected = sum(((int(affine[p, 0, f]) & 63) << (6 * (2 * p + f))) for p in range(5) for f in range(2))
    assert word0 == expected


def test_manifest_section_checksummed(tmp_path):
    a = random_artifact(tmp_path / "a", seed=1, input_features=20, hidden=(8,), classes=3, n_vectors=2,
                        generate=("rtl",))
    section = a.manifest["rtl"]
    assert (section["top"], section["top_module"]) == ("rtl/bnnflow_top.v", "bnnflow_top")
    assert (section["accel_top"], section["accel_module"]) == ("rtl/bnnflow_accel.v", "bnnflow_accel")
    # the library in dependency order, then the core, then the accelerator around it
    assert section["sources"] == [f"rtl/{name}" for name in rtlgen.LIBRARY] + ["rtl/bnnflow_top.v",
                                                                             "rtl/bnnflow_accel.v"]
    paths = [section["top"], section["accel_top"]] + section["sources"] + section["memories"]
    for rel in paths:
        assert (a.root / rel).is_file()
        assert rel in a.manifest["files"], rel
    assert sorted(section["memories"]) == ["rtl/L0_thresholds.mem", "rtl/L0_weights.mem", "rtl/L1_weights.mem"]
    assert section["cycles_per_image"] == max(l.nf * l.sf for l in a.layers)


def test_top_depends_on_shape_only(tmp_path):
    """Same shapes and folding -> same top text (so simulator builds are shared)."""
    kw = dict(input_features=40, hidden=(16,), classes=4, n_vectors=2, generate=("rtl",))
    a = random_artifact(tmp_path / "a", seed=1, **kw)
    b = random_artifact(tmp_path / "b", seed=2, **kw)
    assert rtlgen.top_text(a) == rtlgen.top_text(b)
    assert rtlgen.accel_text(a) == rtlgen.accel_text(b)
    c = random_artifact(tmp_path / "c", seed=1, folding=[F(2, 8), F(4, 16)], **kw)
    assert rtlgen.top_text(a) != rtlgen.top_text(c)
    assert rtlgen.accel_text(a) != rtlgen.accel_text(c)


def _instance_params(text: str, instance: str) -> dict[str, str]:
    """The ``.NAME (value)`` parameter overrides of one instance in generated Verilog."""
    end = re.search(r"\)\s+" + instance + r"\s*\(", text).start()
    block = text[text.rindex("#(", 0, end) + 2:end]
    return dict(re.findall(r"\.(\w+)\s+\((.*?)\),?\n", block + "\n"))


def test_config_bus_fits_every_memory(tmp_path):
    """cfg_* widths: 2 layers -> 1 layer bit; the deepest memory (48 words) -> 6 address bits; the widest
    word: layer 0's 4 x 32 weight bits (its thresholds are 4 x 13 bits, layer 1's weights 5 x 16)."""
    a = random_artifact(tmp_path / "a", seed=3, input_features=100, hidden=(48,), classes=10,
                        folding=[F(4, 32), F(5, 16)], n_vectors=2, generate=())
    assert [l.threshold_bits for l in a.layers] == [13, 0]
    bus = rtlgen.config_bus(a)
    assert bus == rtlgen.ConfigBus(layer_bits=1, addr_bits=6, data_bits=128)
    top = rtlgen.top_text(a)
    for port, rng in (("cfg_layer", "[0:0]"), ("cfg_addr", "[5:0]"), ("cfg_wdata", "[127:0]")):
        assert re.search(rf"input\s+wire\s+{re.escape(rng)}\s+{port}\b", top), port
    for k in range(2):
        params = _instance_params(top, f"u_layer{k}")
        assert (params["CFG_ADDR_BITS"], params["CFG_BITS"]) == ("6", "128")
    # the score layer has no threshold memory: its write enable is tied low
    assert re.search(r"\.cfg_threshold_we\s+\(1'b0\)", top.split("u_layer1")[1])


def test_accel_text_takes_its_numbers_from_accel(tmp_path):
    """Signature, beat widths, register offsets, run counts and the loader's segment table."""
    a = random_artifact(tmp_path / "a", seed=2, input_features=300, hidden=(32,), classes=150, input_bits=5,
                        folding=[F(8, 300), F(150, 32)], n_vectors=2, generate=())
    text = rtlgen.accel_text(a)
    assert f"parameter SIGNATURE         = 32'h{accel.signature(a):08x}" in text
    assert re.search(r"input\s+wire\s+\[1023:0\]\s+s_axis_tdata", text)      # 1500-bit words: 2 beats
    assert re.search(r"output\s+wire\s+\[127:0\]\s+m_axis_tkeep", text)      # 1050-bit words: 2 beats
    ctrl = _instance_params(text, "u_ctrl")
    assert {k: int(v) for k, v in ctrl.items()} == {
        "ADDR_BITS": accel.ADDR_BITS, "ADDR_CTRL": accel.CTRL, "ADDR_GIE": accel.GIE, "ADDR_IER": accel.IER,
        "ADDR_ISR": accel.ISR, "ADDR_REPS": accel.REPS, "ADDR_MODE": accel.MODE, "ADDR_SIGNATURE": accel.SIGNATURE,
        "ADDR_SIGNATURE_CTRL": accel.SIGNATURE_CTRL, "ADDR_STATUS": accel.STATUS,
        "ADDR_STATUS_CTRL": accel.STATUS_CTRL}
    run = {k: int(v) for k, v in _instance_params(text, "u_run").items()}
    assert (run["IN_BEATS"], run["OUT_BEATS"]) == (2, 2)                     # SF 1 x 2 beats, NF 1 x 2 beats
    assert (run["STATUS_FORMAT_ERROR"], run["STATUS_LOAD_LENGTH_ERROR"], run["STATUS_BAD_MODE"]) == (
        accel.STATUS_FORMAT_ERROR, accel.STATUS_LOAD_LENGTH_ERROR, accel.STATUS_BAD_MODE)
    loader = _instance_params(text, "u_load")
    # layer 0: 4 weight words of 2400 bits (3 beats), 4 threshold words of 8 x 15 bits; layer 1: 1 word of 4800
    assert loader["SEGMENTS"] == "3"
    assert loader["SEG_WORDS"] == "{32'd1, 32'd4, 32'd4}"
    assert loader["SEG_WORD_BITS"] == "{32'd4800, 32'd120, 32'd2400}"
    assert loader["SEG_BEATS"] == "{32'd5, 32'd1, 32'd3}"
    assert (loader["SEG_LAYER"], loader["SEG_SEL"]) == ("{32'd1, 32'd0, 32'd0}", "{32'd0, 32'd1, 32'd0}")
    segments = accel.param_segments(a)
    assert sum(s.beats for s in segments) == accel.param_beats(a) == 4 * 3 + 4 + 5
    assert f"a load run takes {accel.param_beats(a)} beats" in text


@pytest.mark.parametrize("layer_index, expected", [
    (0, {"MW": 128, "MH": 48, "PE": 4, "SIMD": 32, "INPUT_BITS": 3, "XNOR": 0, "WEIGHT_BITS": 4, "WEIGHT_SIGNED": 0,
         "THRESHOLD": 1, "N_THRESHOLDS": 3, "AFFINE_BITS": 0, "ACC_BITS": 15, "THRESHOLD_BITS": 15,
         "OUTPUT_BITS": 2, "REAL_MW": 100, "WEIGHT_FILE": "L0_weights.mem", "THRESHOLD_FILE": "L0_thresholds.mem"}),
    (1, {"MW": 48, "MH": 16, "PE": 8, "SIMD": 12, "INPUT_BITS": 2, "XNOR": 0, "WEIGHT_BITS": 2, "WEIGHT_SIGNED": 1,
         "THRESHOLD": 1, "N_THRESHOLDS": 1, "AFFINE_BITS": 0, "ACC_BITS": 9, "THRESHOLD_BITS": 9,
         "OUTPUT_BITS": 1, "REAL_MW": 48, "WEIGHT_FILE": "L1_weights.mem", "THRESHOLD_FILE": "L1_thresholds.mem"}),
    (2, {"MW": 16, "MH": 10, "PE": 5, "SIMD": 8, "INPUT_BITS": 1, "XNOR": 1, "WEIGHT_BITS": 1, "WEIGHT_SIGNED": 0,
         "THRESHOLD": 0, "N_THRESHOLDS": 0, "AFFINE_BITS": 6, "ACC_BITS": 5, "THRESHOLD_BITS": 0,
         "OUTPUT_BITS": 11, "REAL_MW": 16, "WEIGHT_FILE": "L2_weights.mem", "THRESHOLD_FILE": "L2_affine.mem"}),
])
def test_mvtu_parameters_come_from_the_spec(tmp_path, layer_index, expected):
    """Widths: L0 acc +-128*7*15 = +-13440 (15 bits); L1 +-48*3*1 (9 bits); L2 score +-(32*16 + 32) (11 bits)."""
    a = v3_artifact(tmp_path / "a", generate=())
    layer = a.layers[layer_index]
    assert rtlgen.mvtu_parameters(layer, rtlgen.weight_file(layer_index), rtlgen.param_file(layer)) == expected


def test_plain_score_layer_has_no_parameter_memory(tmp_path):
    a = random_artifact(tmp_path / "a", seed=1, input_features=20, hidden=(8,), classes=3, n_vectors=2, generate=())
    last = a.layers[-1]
    assert (last.kind, last.affine_bits) == (art.XNOR_SCORE, 0)
    assert rtlgen.param_file(last) is None and rtlgen.threshold_mem_text(a, 1) is None
    params = rtlgen.mvtu_parameters(last, "w.mem", "t.mem")
    assert params["WEIGHT_FILE"] == "w.mem" and "THRESHOLD_FILE" not in params


def test_config_bus_v3_widest_word(tmp_path):
    """cfg_wdata: the widest of L0's weights 4 x 32 x 4 = 512, thresholds 4 x 3 x 15 = 180, L1's weights
    8 x 12 x 2 = 192, thresholds 8 x 9 = 72, L2's weights 5 x 8 = 40, affine 5 x 2 x 6 = 60 bits.
    cfg_addr: the deepest memory, L0's 12 x 4 = 48 words. The affine memory is written through cfg_sel = 1."""
    a = v3_artifact(tmp_path / "a", generate=())
    assert [(s.memory, s.words, s.word_bits) for s in accel.param_segments(a)] == [
        ("weights", 48, 512), ("thresholds", 12, 180), ("weights", 8, 192), ("thresholds", 2, 72),
        ("weights", 4, 40), ("affine", 2, 60)]
    assert rtlgen.config_bus(a) == rtlgen.ConfigBus(layer_bits=2, addr_bits=6, data_bits=512)
    top = rtlgen.top_text(a)
    assert re.search(r"input\s+wire\s+\[511:0\]\s+cfg_wdata\b", top)
    assert 'parameter L2_AFFINE_FILE    = "L2_affine.mem"' in top
    params = _instance_params(top, "u_layer2")
    assert (params["THRESHOLD_FILE"], params["AFFINE_BITS"], params["CFG_BITS"]) == ("L2_AFFINE_FILE", "6", "512")
    assert re.search(r"\.cfg_threshold_we\s+\(cfg_l2 & cfg_sel\)", top.split("u_layer2")[1])
    loader = _instance_params(rtlgen.accel_text(a), "u_load")
    assert loader["SEG_SEL"] == "{32'd1, 32'd0, 32'd1, 32'd0, 32'd1, 32'd0}"


def test_config_bus_v3_threshold_memory_widest(tmp_path):
    """SIMD 4 on layer 0 and 6 on layer 1: the weight words shrink to 4 x 4 x 4 = 64 and 8 x 6 x 2 = 96
    bits, so layer 0's 3-threshold word (4 x 3 x 15 = 180 bits) is the widest memory and sets cfg_wdata;
    layer 0 has 12 x 25 = 300 weight words: 9 address bits."""
    a = v3_artifact(tmp_path / "a", generate=(), folding=(F(4, 4), F(8, 6), F(5, 8)))
    assert rtlgen.config_bus(a) == rtlgen.ConfigBus(layer_bits=2, addr_bits=9, data_bits=180)
    assert re.search(r"input\s+wire\s+\[179:0\]\s+cfg_wdata\b", rtlgen.top_text(a))
