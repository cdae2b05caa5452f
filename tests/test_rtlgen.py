"""rtlgen: memory files decode back to the artifact's data; the manifest section; the core's and accelerator's text."""

from __future__ import annotations

import re

import numpy as np

from bnnflow import accel, packing, rtlgen
from bnnflow.folding import LayerFolding as F
from bnnflow.testing import random_artifact


def _read_mem(path, count, bits, signed):
    words = [int(line, 16) for line in path.read_text().split()]
    return packing.int_to_fields(words, count, bits, signed)


def test_memory_files_round_trip(tmp_path):
    a = random_artifact(tmp_path / "a", seed=3, input_features=100, hidden=(48,), classes=10,
                        folding=[F(4, 32), F(5, 16)], n_vectors=2, generate=("rtl",))
    for k, layer in enumerate(a.layers):
        w = _read_mem(a.root / "rtl" / rtlgen.weight_file(k), layer.pe * layer.simd, 1, False)
        assert w.shape == (layer.nf * layer.sf, layer.pe * layer.simd)
        # word at address nf*SF+sf: PE p at bits [p*SIMD, (p+1)*SIMD)
        lanes = w.reshape(layer.nf * layer.sf, layer.pe, layer.simd).transpose(1, 0, 2)
        np.testing.assert_array_equal(lanes, a.weight_lanes(k))
        folded = a.folded_thresholds(k)
        path = a.root / "rtl" / rtlgen.threshold_file(k)
        if folded is None:
            assert not path.exists()
        else:
            t = _read_mem(path, layer.pe, layer.threshold_bits, True)
            np.testing.assert_array_equal(t.T, folded)


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
