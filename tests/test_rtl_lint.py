"""Every RTL module and a generated top pass `verilator --lint-only -Wall` and Icarus -g2005."""

from __future__ import annotations

import subprocess

import pytest

from bnnflow import rtlgen
from bnnflow.folding import LayerFolding as F
from bnnflow.sim import toolchain
from bnnflow.testing import random_artifact

LIB = {p.name: p for p in rtlgen.library_sources()}

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
@pytest.mark.parametrize("folding", [None, [F(4, 32), F(8, 16), F(1, 1)]], ids=["default", "padded"])
def test_generated_top_lint(tmp_path, folding):
    a = random_artifact(tmp_path / "a", seed=0, input_features=100, hidden=(64, 32), classes=10, folding=folding,
                        n_vectors=2, generate=("rtl",))
    section = a.manifest["rtl"]
    files = [a.root / p for p in section["sources"]]
    assert (a.root / section["top"]).is_file() and all((a.root / m).is_file() for m in section["memories"])
    toolchain.pytest_require("verilator")
    _verilator_lint(files, rtlgen.TOP_MODULE)
    toolchain.pytest_require("icarus")
    _icarus_2005(files, rtlgen.TOP_MODULE, tmp_path)
