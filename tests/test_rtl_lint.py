"""Every RTL module and the generated core and accelerator pass `verilator --lint-only -Wall` and Icarus -g2005."""

from __future__ import annotations

import subprocess

import pytest

from bnnflow import artifact as art
from bnnflow import rtlgen
from bnnflow.folding import LayerFolding as F
from bnnflow.sim import toolchain
from bnnflow.testing import random_artifact
from test_rtl_accel import v3_artifact

LIB = {p.name: p for p in rtlgen.library_sources()}
MVTU_FILES = ["bnn_simd_dot.v", "bnn_threshold.v", "bnn_mvtu.v"]


def _mvtu(kind: str, mw: int, mh: int, pe: int, simd: int, input_bits: int = 1, weight_bits: int = 1,
          weight_encoding: str = art.SYM, n_thresholds: int = -1, affine_bits: int = 0) -> dict:
    """bnn_mvtu parameters of a format-v3 layer, derived by the artifact's own rules (rtlgen.mvtu_parameters)."""
    spec = art.LayerSpec(0, kind, mw, mh, pe, simd, input_bits, "w", "t" if kind.endswith("_threshold") else None,
                         weight_bits, weight_encoding, n_thresholds, affine="a" if affine_bits else None,
                         affine_bits=affine_bits)
    return rtlgen.mvtu_parameters(spec)


def _simd_dot(simd: int, input_bits: int, weight_bits: int, weight_encoding: str) -> dict:
    """bnn_simd_dot parameters of a multiply lane bank; DOT_BITS is an int layer's acc_bits with MW = SIMD
    (the per-cycle partial's bound, as bnn_mvtu sizes it)."""
    p = _mvtu(art.INT_THRESHOLD, simd, 1, 1, simd, input_bits, weight_bits, weight_encoding)
    return {"SIMD": simd, "INPUT_BITS": input_bits, "XNOR": 0, "WEIGHT_BITS": weight_bits,
            "WEIGHT_SIGNED": p["WEIGHT_SIGNED"], "DOT_BITS": p["ACC_BITS"]}



def _packed(fields: list[int]) -> str:
    """32-bit fields (field 0 lowest) as one sized hex literal: -G / -P take no concatenations."""
    return f"{32 * len(fields)}'h" + "".join(f"{v:08x}" for v in reversed(fields))


# (top module, files, parameter overrides)
CASES = [
    ("bnn_simd_dot", ["bnn_simd_dot.v"], {}),
    ("bnn_simd_dot", ["bnn_simd_dot.v"], {"XNOR": 0, "INPUT_BITS": 8, "SIMD": 3, "DOT_BITS": 11}),
    ("bnn_threshold", ["bnn_threshold.v"], {}),
    ("bnn_threshold", ["bnn_threshold.v"], {"ACC_W": 14, "THRESHOLD_BITS": 5}),
    ("bnn_mvtu", ["bnn_simd_dot.v", "bnn_threshold.v", "bnn_mvtu.v"], {}),
    ("bnn_mvtu", ["bnn_simd_dot.v", "bnn_threshold.v", "bnn_mvtu.v"],
     {"MW": 128, "MH": 64, "PE": 4, "SIMD": 32, "INPUT_BITS": 5, "XNOR": 0, "ACC_BITS": 13, "THRESHOLD_BITS": 13}),
    ("bnn_mvtu", ["bnn_simd_dot.v", "bnn_threshold.v", "bnn_mvtu.v"],
     {"MW": 40, "MH": 10, "PE": 10, "SIMD": 40, "THRESHOLD": 0, "ACC_BITS": 6, "THRESHOLD_BITS": 0,
      "OUTPUT_BITS": 7, "REAL_MW": 37}),
    ("bnn_mvtu", ["bnn_simd_dot.v", "bnn_threshold.v", "bnn_mvtu.v"],
     {"MW": 5, "MH": 3, "PE": 1, "SIMD": 1, "ACC_BITS": 3, "THRESHOLD_BITS": 4}),
    ("bnn_mvtu", ["bnn_simd_dot.v", "bnn_threshold.v", "bnn_mvtu.v"],
     {"MW": 16, "MH": 8, "PE": 8, "SIMD": 16, "ACC_BITS": 5, "THRESHOLD_BITS": 6}),
    ("bnn_axis_repack", ["bnn_axis_repack.v"], {}),
    ("bnn_axis_repack", ["bnn_axis_repack.v"], {"IN_ELEMS": 8, "OUT_ELEMS": 8, "ELEMS": 64, "ELEMS_PAD": 64}),
    ("bnn_axis_repack", ["bnn_axis_repack.v"],
     {"IN_ELEMS": 5, "OUT_ELEMS": 3, "ELEM_BITS": 7, "ELEMS": 10, "ELEMS_PAD": 12}),
    # the parameter write port with the buses of a wider top (unused high bits)
    ("bnn_mvtu", ["bnn_simd_dot.v", "bnn_threshold.v", "bnn_mvtu.v"],
     {"MW": 16, "MH": 8, "PE": 4, "SIMD": 8, "ACC_BITS": 5, "THRESHOLD_BITS": 6, "CFG_ADDR_BITS": 9,
      "CFG_BITS": 300}),
    ("bnn_axilite_ctrl", ["bnn_axilite_ctrl.v"], {}),
    ("bnn_axilite_ctrl", ["bnn_axilite_ctrl.v"], {"ADDR_BITS": 8, "ADDR_STATUS": 0x80, "ADDR_STATUS_CTRL": 0x84}),
    ("bnn_accel_run", ["bnn_accel_run.v"], {}),
    ("bnn_accel_run", ["bnn_accel_run.v"], {"IN_BEATS": 13, "OUT_BEATS": 4}),
    ("bnn_beats_to_words", ["bnn_beats_to_words.v"], {}),
    ("bnn_beats_to_words", ["bnn_beats_to_words.v"], {"BEAT_BITS": 64, "WORD_BITS": 64}),
    ("bnn_beats_to_words", ["bnn_beats_to_words.v"], {"BEAT_BITS": 1024, "WORD_BITS": 3100}),
    ("bnn_beats_to_words", ["bnn_beats_to_words.v"], {"BEAT_BITS": 32, "WORD_BITS": 64}),
    ("bnn_words_to_beats", ["bnn_words_to_beats.v"], {}),
    ("bnn_words_to_beats", ["bnn_words_to_beats.v"], {"BEAT_BITS": 128, "WORD_BITS": 128}),
    ("bnn_words_to_beats", ["bnn_words_to_beats.v"], {"BEAT_BITS": 1024, "WORD_BITS": 2100}),
    ("bnn_param_loader", ["bnn_param_loader.v"], {}),
    ("bnn_param_loader", ["bnn_param_loader.v"],
     {"BEAT_BITS": 64, "LAYER_BITS": 2, "ADDR_BITS": 4, "DATA_BITS": 200, "SEGMENTS": 3,
      "SEG_WORDS": _packed([16, 4, 1]), "SEG_WORD_BITS": _packed([64, 200, 12]), "SEG_BEATS": _packed([1, 4, 1]),
      "SEG_LAYER": _packed([0, 0, 1]), "SEG_SEL": _packed([0, 1, 0])}),
    # format v3: multiply lanes (sym: the (K+1)-bit decode, incl. K = 2 on one 1-bit lane; int: K-bit
    # two's complement), N-threshold compare banks, affine scores
    ("bnn_simd_dot", ["bnn_simd_dot.v"], _simd_dot(8, 2, 4, art.SYM)),
    ("bnn_simd_dot", ["bnn_simd_dot.v"], _simd_dot(1, 1, 2, art.SYM)),
    ("bnn_simd_dot", ["bnn_simd_dot.v"], _simd_dot(3, 8, 8, art.INT)),
    ("bnn_simd_dot", ["bnn_simd_dot.v"], _simd_dot(5, 1, 2, art.INT)),
    ("bnn_threshold", ["bnn_threshold.v"], {"ACC_W": 9, "THRESHOLD_BITS": 9, "N_THRESHOLDS": 3, "OUT_BITS": 2}),
    ("bnn_threshold", ["bnn_threshold.v"], {"ACC_W": 14, "THRESHOLD_BITS": 5, "N_THRESHOLDS": 15, "OUT_BITS": 4}),
    ("bnn_threshold", ["bnn_threshold.v"], {"ACC_W": 6, "THRESHOLD_BITS": 12, "N_THRESHOLDS": 255, "OUT_BITS": 8}),
    ("bnn_mvtu", MVTU_FILES, _mvtu(art.INT_THRESHOLD, 30, 8, 2, 4, input_bits=2, weight_bits=4, n_thresholds=3)),
    ("bnn_mvtu", MVTU_FILES, _mvtu(art.INT_THRESHOLD, 9, 5, 5, 1, weight_bits=2, weight_encoding=art.INT,
                                   n_thresholds=255)),
    ("bnn_mvtu", MVTU_FILES, _mvtu(art.XNOR_THRESHOLD, 16, 8, 8, 16, n_thresholds=3)),
    ("bnn_mvtu", MVTU_FILES, _mvtu(art.XNOR_SCORE, 37, 10, 5, 8, affine_bits=8)),
    ("bnn_mvtu", MVTU_FILES, _mvtu(art.XNOR_SCORE, 20, 10, 1, 1, affine_bits=26)),
    ("bnn_mvtu", MVTU_FILES, _mvtu(art.INT_SCORE, 37, 10, 5, 8, input_bits=8, weight_bits=8,
                                   weight_encoding=art.INT, affine_bits=4)),
    ("bnn_mvtu", MVTU_FILES, _mvtu(art.INT_SCORE, 21, 4, 2, 8, input_bits=3, weight_bits=3)),
    # the v3 words (256-bit weights, 1260-bit thresholds: 4 PE x 15 x 21 bits) on a wider top's buses
    ("bnn_mvtu", MVTU_FILES, {**_mvtu(art.INT_THRESHOLD, 32, 8, 4, 8, input_bits=8, weight_bits=8,
                                      weight_encoding=art.INT, n_thresholds=15), "CFG_ADDR_BITS": 9,
                              "CFG_BITS": 1300}),
]


def _verilator_lint(files, top, params=None):
    exe = toolchain.verilator_executable()
    cmd = [exe, "--lint-only", "-Wall", "--top-module", top]
    cmd += [f"-G{k}={v}" for k, v in (params or {}).items()]
    cmd += [str(f) for f in files]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and "%Warning" not in proc.stderr, proc.stderr


def _icarus_2005(files, top, tmp_path, params=None):
    cmd = ["iverilog", "-g2005", "-Wall", "-o", str(tmp_path / "lint.vvp"), "-s", top]
    cmd += [f"-P{top}.{k}={v}" for k, v in (params or {}).items()]
    cmd += [str(f) for f in files]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    # Icarus warns about implicit timescales of modules only; anything else is a finding
    findings = [l for l in proc.stderr.splitlines() if l.strip() and "timescale" not in l]
    assert not findings, proc.stderr


@pytest.mark.rtl
@pytest.mark.parametrize("top,files,params", CASES, ids=lambda v: v if isinstance(v, str) else None)
def test_module_lint(tmp_path, top, files, params):
    paths = [LIB[f] for f in files]
    toolchain.pytest_require("verilator")
    _verilator_lint(paths, top, params)
    toolchain.pytest_require("icarus")
    _icarus_2005(paths, top, tmp_path, params)


@pytest.mark.rtl
@pytest.mark.parametrize("top", [rtlgen.TOP_MODULE, rtlgen.ACCEL_MODULE])
@pytest.mark.parametrize("shape", [
    dict(input_features=100, hidden=(64, 32), classes=10, folding=None),
    dict(input_features=100, hidden=(64, 32), classes=10, folding=[F(4, 32), F(8, 16), F(1, 1)]),
    # multi-beat input and output words, one layer without thresholds after a single threshold layer
    dict(input_features=300, hidden=(32,), classes=150, folding=[F(8, 300), F(150, 32)]),
], ids=["default", "padded", "multi-beat"])
def test_generated_top_lint(tmp_path, top, shape):
    """The core and the accelerator of generated designs."""
    a = random_artifact(tmp_path / "a", seed=0, n_vectors=2, generate=("rtl",), **shape)
    section = a.manifest["rtl"]
    files = [a.root / p for p in section["sources"]]
    assert (a.root / section["top"]).is_file() and all((a.root / m).is_file() for m in section["memories"])
    toolchain.pytest_require("verilator")
    _verilator_lint(files, top)
    toolchain.pytest_require("icarus")
    _icarus_2005(files, top, tmp_path)


@pytest.mark.rtl
@pytest.mark.parametrize("top", [rtlgen.TOP_MODULE, rtlgen.ACCEL_MODULE])
def test_generated_v3_lint(tmp_path, top):
    """A format-v3 core and accelerator: K-bit sym and int weights, a 3-threshold layer, an affine int score
    (the net of tests/test_rtl_accel.py, with L2_affine.mem and its file parameter)."""
    a = v3_artifact(tmp_path / "a", seed=0)
    section = a.manifest["rtl"]
    assert "rtl/L2_affine.mem" in section["memories"] and "L2_AFFINE_FILE" in (a.root / section["top"]).read_text()
    files = [a.root / p for p in section["sources"]]
    toolchain.pytest_require("verilator")
    _verilator_lint(files, top)
    toolchain.pytest_require("icarus")
    _icarus_2005(files, top, tmp_path)


@pytest.mark.rtl
@pytest.mark.parametrize("top", [rtlgen.TOP_MODULE, rtlgen.ACCEL_MODULE])
@pytest.mark.parametrize("net", ["example", "k2-int-multi"])
def test_generated_conv_lint(tmp_path, top, net):
    """Convolutional cores and accelerators: bnn_swu / bnn_mvtu / bnn_maxpool chains and the per-pixel and
    whole-map repackers (the CI nets of tests/test_rtl_conv_network.py)."""
    from test_rtl_conv_network import make_net

    a = make_net(tmp_path / "a", net)
    section = a.manifest["rtl"]
    text = (a.root / section["top"]).read_text()
    assert "bnn_swu" in text and "bnn_maxpool" in text
    files = [a.root / p for p in section["sources"]]
    toolchain.pytest_require("verilator")
    _verilator_lint(files, top)
    toolchain.pytest_require("icarus")
    _icarus_2005(files, top, tmp_path)
