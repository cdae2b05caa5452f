"""HLS level: generated header + engine templates, C-simulated with g++, against the golden model.

Each network compiles once (about 3-7 s on one core); run_csim caches the
binary, so the second run of a network and the corrupted-golden test reuse it.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import numpy as np
import pytest

from bnnflow import artifact as art
from bnnflow import hlsflow, hlsgen, packing
from bnnflow.folding import LayerFolding as F
from bnnflow.golden import GoldenModel
from bnnflow.testing import random_artifact
from bnnflow.writer import read_vectors

REPO = Path(__file__).resolve().parent.parent
HLS_DIR = REPO / "hls"

# name -> random_artifact keywords. Covers: default folding, padded inputs
# (100 -> 128, 784 -> 800 with SIMD 32), PE=1/SIMD=1, SIMD=64, SIMD>64 (string
# literals), fully parallel layers, and layers whose words need no repacker.
CASES = {
    "default": dict(input_features=64, hidden=(64, 32), classes=10, input_bits=5),
    "pad100": dict(input_features=100, hidden=(48, 24), classes=10, input_bits=5,
                   folding=[F(16, 32), F(8, 16), F(5, 16)]),
    "mnist784_simd64": dict(input_features=784, hidden=(64, 32), classes=10, input_bits=8,
                            folding=[F(16, 32), F(4, 64), F(10, 32)]),
    "pe1_simd1": dict(input_features=8, hidden=(4, 3), classes=2, input_bits=1,
                      folding=[F(1, 1), F(1, 1), F(1, 1)]),
    "simd128_96": dict(input_features=200, hidden=(128, 96), classes=10, input_bits=4,
                       folding=[F(8, 128), F(6, 128), F(2, 96)]),
    "fully_parallel": dict(input_features=20, hidden=(12,), classes=10, input_bits=3,
                           folding=[F(12, 20), F(10, 12)]),
    # one layer: the network ends in a threshold layer, whose 0/1 outputs are unsigned (the soak
    # campaign found the testbench reading them as 1-bit two's complement, -1)
    "one_layer_threshold": dict(input_features=30, hidden=(), classes=5, input_bits=3, folding=[F(5, 10)]),
    "no_repack": dict(input_features=64, hidden=(64, 32), classes=10, input_bits=5,
                      folding=[F(16, 32), F(8, 16), F(5, 8)]),
}



def _make(root: Path, name: str, seed: int = 7, n_vectors: int = 24) -> art.Artifact:
    return random_artifact(root, seed=seed, n_vectors=n_vectors, generate=("hls",), **CASES[name])


#: In CI; the rest run under `slow` (test_hls_wide.py and test_hls_accel.py cover SIMD > 64 and padding in CI).
CI_CASES = ("default", "mnist784_simd64", "one_layer_threshold", "pe1_simd1")


@pytest.mark.hls
@pytest.mark.parametrize("name", [n if n in CI_CASES else pytest.param(n, marks=pytest.mark.slow) for n in CASES])
def test_csim_matches_golden(tmp_path, hls_toolchain, name):
    artifact = _make(tmp_path / "export", name)
    result = hlsflow.run_csim(artifact, build_dir=tmp_path / "build")
    assert result.passed, result.output[-3000:]
    assert result.compiled
    images, _, golden = read_vectors(artifact)
    assert result.scores.dtype == np.int64 and result.scores.shape == golden.shape
    np.testing.assert_array_equal(result.scores, golden)
    np.testing.assert_array_equal(result.scores, GoldenModel(artifact).scores(images))
    assert "mismatches=0 tlast_errors=0 format_errors=0 check_errors=0 -> PASS" in result.output
    checks = [line for line in result.output.splitlines() if line.startswith("CHECK ")]
    assert len(checks) >= 5 and all(line.endswith(": ok") for line in checks), checks

    again = hlsflow.run_csim(artifact, build_dir=tmp_path / "build")
    assert not again.compiled and again.binary == result.binary and again.passed


@pytest.fixture(scope="module")
def built(tmp_path_factory, hls_toolchain):
    root = tmp_path_factory.mktemp("hls_corrupt")
    artifact = _make(root / "export", "pad100", seed=11, n_vectors=12)
    result = hlsflow.run_csim(artifact, build_dir=root / "build")
    assert result.passed, result.output[-3000:]
    return artifact, root


@pytest.mark.hls
@pytest.mark.parametrize("where", [(0, 0), (11, 9), (5, 3)])
def test_corrupted_golden_score_fails(built, where):
    artifact, root = built
    _, _, golden = read_vectors(artifact)
    bad = golden.copy()
    bad[where] += 1
    path = root / f"bad_{where[0]}_{where[1]}.bin"
    bad.astype("<i4").tofile(path)
    result = hlsflow.run_csim(artifact, build_dir=root / "build", golden_scores=path)
    assert not result.compiled
    assert result.returncode == 1 and not result.passed
    assert result.mismatches == 1
    assert f"MISMATCH image {where[0]} class {where[1]}" in result.output
    assert "mismatches=1" in result.output and "FAIL" in result.output
    np.testing.assert_array_equal(result.scores, golden)  # the hardware scores are still right


@pytest.mark.hls
def test_run_csim_limit_runs_a_prefix(built):
    """``limit`` simulates only the first vectors, still compared with golden (``built``'s binary, not recompiled)."""
    artifact, root = built
    _, _, golden = read_vectors(artifact)
    result = hlsflow.run_csim(artifact, build_dir=root / "build", limit=4)
    assert not result.compiled
    assert result.mismatches == 0 and result.returncode == 0
    assert result.scores.shape == (4, artifact.num_classes)
    np.testing.assert_array_equal(result.scores, golden[:4])


@pytest.mark.hls
def test_compile_error_is_reported(tmp_path, hls_toolchain, monkeypatch):
    artifact = _make(tmp_path / "export", "pe1_simd1", n_vectors=2)
    broken = tmp_path / "hls"
    shutil.copytree(HLS_DIR, broken, ignore=shutil.ignore_patterns("build"))
    (broken / "bnn_top.cpp").write_text((broken / "bnn_top.cpp").read_text() + "\nthis is not C++;\n")
    monkeypatch.setenv("BNNFLOW_HLS_DIR", str(broken))
    with pytest.raises(hlsflow.HlsToolError, match=r"compile failed(.|\n)*bnn_top\.cpp"):
        hlsflow.run_csim(artifact, build_dir=tmp_path / "build")


def test_missing_compiler_is_reported(monkeypatch):
    monkeypatch.setenv("CXX", "no-such-compiler-bnnflow")
    with pytest.raises(hlsflow.HlsToolError, match="no-such-compiler-bnnflow"):
        hlsflow.find_compiler()


def test_missing_ap_headers_are_reported(monkeypatch, tmp_path):
    monkeypatch.setenv("XILINX_HLS", str(tmp_path))  # no include/ap_int.h there
    monkeypatch.setattr(hlsflow.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(hlsflow.HlsToolError) as info:
        hlsflow.find_ap_include()
    assert "pip install --no-deps hls4ml==1.3.0" in str(info.value) and "XILINX_HLS" in str(info.value)


def test_xilinx_hls_is_preferred(monkeypatch, tmp_path):
    include = tmp_path / "include"
    include.mkdir()
    for name in ("ap_int.h", "hls_stream.h"):
        (include / name).write_text("")
    monkeypatch.setenv("XILINX_HLS", str(tmp_path))
    assert hlsflow.find_ap_include() == include


@pytest.mark.parametrize("name", ["pad100", "simd128_96", "pe1_simd1"])
def test_header_holds_the_artifact_layout(tmp_path, name):
    """The header's text: literals are words_to_int(weight_lanes) and folded_thresholds, in [PE][depth] order.

    This reads the text as Python would; what g++ and ap_int make of it is
    checked by tests/test_hls_wide.py (the memories read back from the binary).
    """
    artifact = _make(tmp_path / "export", name, n_vectors=2)
    text = (artifact.root / artifact.manifest["hls"]["header"]).read_text()
    assert artifact.manifest["hls"]["header"] == hlsgen.HEADER and hlsgen.HEADER in artifact.manifest["files"]
    assert not re.search(r"^\s*#define\s+\w*\d", text, re.M), "no numbered #defines"
    for k, layer in enumerate(artifact.layers):
        words = packing.words_to_int(artifact.weight_lanes(k), 1)
        got = []
        for lit in re.findall(r'0x([0-9a-f]+)u(?:ll)?|ap_uint<\d+>\("0x([0-9a-f]+)", 16\)',
                              text[text.index(f" L{k}_weights["):text.index("};", text.index(f" L{k}_weights["))]):
            got.append(int(lit[0] or lit[1], 16))
        assert got == words
        if layer.simd > 64:
            assert f'ap_uint<{layer.simd}>("0x' in text   # without the prefix ap_int misreads "0b.."
        assert f"static constexpr unsigned NF       = {layer.nf};" in text
        t = artifact.folded_thresholds(k)
        if t is not None:
            start = text.index(f" L{k}_thresholds = ")
            block = text[start:text.index("}};", start)]
            values = [int(v) for v in re.findall(r"(?<![\[\w])-?\d+(?![\]\w])", block.split("=", 1)[1])]
            assert values == t.reshape(-1).tolist()
    # Deterministic: the same artifact gives the same bytes.
    again = hlsgen.render_header(artifact)
    assert again == text


def test_scripts_name_existing_files(tmp_path):
    """hls_config.cfg and run_hls.tcl, in a checkout with the demo export and its testbench files in place,
    name only existing files, and give the testbench the arguments it parses."""
    repo = tmp_path / "repo"
    shutil.copytree(HLS_DIR, repo / "hls", ignore=shutil.ignore_patterns("build"))
    artifact = _make(repo / "runs" / "demo" / "export", "default", n_vectors=2)
    assert hlsflow.main([str(artifact.root)]) == 0          # what docs/HLS.md says to run before Vitis
    hls = repo / "hls"

    cfg = (hls / "hls_config.cfg").read_text()
    entries = [line.split("=", 1) for line in cfg.splitlines() if "=" in line and not line.lstrip().startswith("#")]
    settings: dict[str, list[str]] = {}
    for key, value in entries:
        settings.setdefault(key.strip(), []).append(value.strip())
    assert settings["part"] == ["xc7z020clg400-1"] and settings["clock"] == ["10ns"]
    assert settings["syn.top"] == ["bnnflow_top"]
    assert "void bnnflow_top(" in (hls / "bnn_top.cpp").read_text()
    named = settings["syn.file"] + settings["tb.file"]
    assert "bnn_top.cpp" in named and "bnn_tb.cpp" in named
    for rel in named:
        assert (hls / rel).is_file(), f"hls_config.cfg names missing file {rel}"
    includes = [flag[2:] for key in ("syn.cflags", "tb.cflags") for v in settings[key] for flag in v.split()
                if flag.startswith("-I")]
    assert includes
    for inc in includes:
        assert (hls / inc).is_dir(), f"hls_config.cfg include dir {inc} missing"
    assert any((hls / inc / "bnnflow_params.h").is_file() for inc in includes)
    # csim/cosim argv: testbench steps whose input files are tb files, named by their base names
    # (copied next to the binary); each run loads the export's parameters, then infers
    tb_names = {Path(p).name for p in settings["tb.file"]}
    for key in ("csim.argv", "cosim.argv"):
        argv = settings[key][0].split()
        assert argv[:2] == ["load", "params.bin"] and argv[2] == "infer" and len(argv) == 6, argv
        inputs = [argv[1], argv[3], argv[4]]
        assert set(inputs) <= tb_names, f"{key} names {inputs}, tb files are {tb_names}"
        assert set(inputs) == set(hlsflow.TB_FILES.values())

    tcl = (hls / "run_hls.tcl").read_text()
    assert "set part xc7z020clg400-1" in tcl and "set period 10" in tcl and "set_top bnnflow_top" in tcl
    for step in ("csim_design", "csynth_design", "cosim_design", "export_design -format ip_catalog"):
        assert step in tcl
    default_export = repo / "runs" / "demo" / "export"  # the script's default: <hls_dir>/../runs/demo/export
    assert "file join $hls_dir .. runs demo export" in tcl
    refs = re.findall(r"\$(hls_dir|export_dir)/([\w./]+)", tcl)
    assert {"bnn_top.cpp", "bnn_tb.cpp"} <= {rel for var, rel in refs if var == "hls_dir"}
    assert {f"{hlsflow.TB_DIR}/{name}" for name in hlsflow.TB_FILES.values()} <= {rel for var, rel in refs
                                                                                 if var == "export_dir"}
    for var, rel in refs:
        base = hls if var == "hls_dir" else default_export
        target = base / rel
        assert target.exists(), f"run_hls.tcl names missing {var}/{rel}"
    argv = re.search(r'set tb_argv "([^"]+)"', tcl).group(1).split()
    assert argv[0] == "load" and argv[2] == "infer" and len(argv) == 6, argv

