"""The host driver (bnnflow.host): golden and rtl backends, input checks, timing, board errors."""

from __future__ import annotations

import subprocess
import sys
import types

import numpy as np
import pytest

from bnnflow import artifact as art
from bnnflow.folding import LayerFolding as F
from bnnflow.folding import default_folding
from bnnflow.golden import GoldenModel
from bnnflow.host import BnnDriver, BoardNotFoundError, RtlUnavailableError
from bnnflow.testing import random_artifact, random_layers
from bnnflow.writer import read_vectors, write_artifact


@pytest.fixture(scope="module")
def export_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("host") / "export"
    random_artifact(root, seed=3, generate=())
    return root


@pytest.fixture(scope="module")
def digits_like(tmp_path_factory):
    """A random network whose manifest says the input is an 8x8 image of 5-bit pixels."""
    root = tmp_path_factory.mktemp("host8x8") / "export"
    rng = np.random.default_rng(11)
    layers = random_layers(rng, 64, [32], 10, 5)
    folding = default_folding([l.shape for l in layers])
    network = {"name": "digits-like", "input_features": 64, "input_shape": [8, 8], "input_bits": 5,
               "num_classes": 10, "method": "random", "dataset": "random"}
    write_artifact(root, network, layers, folding, generate=())
    return root


def images(n: int, features: int = 64, bits: int = 5, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 1 << bits, size=(n, features), dtype=np.uint8)


def test_import_needs_no_pynq_or_simulator():
    code = ("import sys, bnnflow.host; "
            "assert 'pynq' not in sys.modules and 'cocotb' not in sys.modules and 'torch' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_golden_classify_equals_golden_model(export_dir):
    driver = BnnDriver(export_dir, backend="golden")
    model = GoldenModel(art.load(export_dir))
    batch = images(50, seed=1)
    np.testing.assert_array_equal(driver.classify(batch), model.predict(batch))
    np.testing.assert_array_equal(driver.scores(batch), model.scores(batch))
    # the artifact's stored vectors agree with the stored golden scores
    report = driver.check_vectors()
    assert report["images"] == read_vectors(driver.artifact)[0].shape[0]
    assert report["score_mismatches"] == 0 and report["agreement"] == 1.0


def test_image_shaped_input(digits_like):
    driver = BnnDriver(digits_like, backend="golden")
    assert driver.input_shape == (8, 8)
    flat = images(12, seed=2)
    np.testing.assert_array_equal(driver.classify(flat.reshape(12, 8, 8)), driver.classify(flat))
    np.testing.assert_array_equal(driver.classify(flat.reshape(12, 8, 8)),
                                  GoldenModel(driver.artifact).predict(flat))


def test_ties_go_to_the_lowest_class(export_dir, monkeypatch):
    driver = BnnDriver(export_dir, backend="golden")
    tied = np.zeros((2, driver.num_classes), dtype=np.int64)
    tied[0, [3, 7]] = 5
    tied[1, [0, 9]] = -1
    tied[1, 1:9] = -4
    monkeypatch.setattr(driver.backend.model, "scores", lambda x: tied)
    np.testing.assert_array_equal(driver.classify(images(2)), [3, 0])


@pytest.mark.parametrize("bad, error, words", [
    (np.zeros((4, 63), np.uint8), ValueError, ["(N, 64)", "(4, 63)"]),
    (np.zeros((64,), np.uint8), ValueError, ["(N, 64)", "images[None]"]),
    (np.zeros((4, 8, 8), np.uint8), ValueError, ["(N, 64)", "(4, 8, 8)"]),
    (np.full((4, 64), 32, np.uint8), ValueError, ["5-bit", "0..31", "32"]),
    (np.full((4, 64), -1, np.int16), ValueError, ["5-bit", "-1"]),
    (np.zeros((4, 64), np.float32), TypeError, ["integer", "5-bit", "float32"]),
])
def test_bad_input_is_rejected_clearly(export_dir, bad, error, words):
    driver = BnnDriver(export_dir, backend="golden")
    with pytest.raises(error) as info:
        driver.classify(bad)
    for word in words:
        assert word in str(info.value)


def test_bad_input_names_image_shape(digits_like):
    with pytest.raises(ValueError, match=r"\(N, 64\) or \(N, 8, 8\)"):
        BnnDriver(digits_like, backend="golden").classify(np.zeros((3, 7, 8), np.uint8))


def test_timing_is_recorded(export_dir):
    driver = BnnDriver(export_dir, backend="golden")
    assert driver.last_timing is None
    driver.classify(images(30))
    timing = driver.last_timing
    assert timing.backend == "golden" and timing.images == 30
    assert timing.seconds > 0 and timing.images_per_second > 0
    assert timing.cycles_per_image is None
    assert "images/s" in str(timing)
    assert driver.classify(np.zeros((0, 64), np.uint8)).shape == (0,)
    assert driver.last_timing.images == 0


def test_bad_artifact_gives_the_artifact_error(tmp_path):
    with pytest.raises(art.ArtifactError, match="manifest not found"):
        BnnDriver(tmp_path / "nothing", backend="golden")


def test_unknown_backend(export_dir):
    with pytest.raises(ValueError, match="golden, rtl, board"):
        BnnDriver(export_dir, backend="fpga")


def test_board_without_board_fails_clearly(export_dir):
    pytest.importorskip("pynq")
    with pytest.raises(BoardNotFoundError, match=r"no PYNQ board found \(pynq: .*\); use backend='golden' or 'rtl'"):
        BnnDriver(export_dir, backend="board")


def test_board_without_pynq_fails_clearly(export_dir, monkeypatch):
    monkeypatch.setitem(sys.modules, "pynq", None)  # import pynq -> ImportError
    with pytest.raises(BoardNotFoundError, match=r"needs pynq.*bnnflow\[board\]"):
        BnnDriver(export_dir, backend="board")


def test_rtl_backend_unavailable_is_clear(export_dir, monkeypatch):
    monkeypatch.setitem(sys.modules, "bnnflow.sim.network", None)
    with pytest.raises(RtlUnavailableError, match="rtl backend cannot run.*backend='golden'"):
        BnnDriver(export_dir, backend="rtl")


def test_rtl_backend_plumbing(export_dir, monkeypatch):
    """The rtl backend against the run_network interface (a stand-in that returns golden scores)."""
    calls = []

    def run_network(artifact, batch, sim="verilator", **options):
        calls.append((batch.shape, batch.dtype, sim, options))
        return types.SimpleNamespace(scores=GoldenModel(artifact).scores(batch), cycles_per_image=42.0,
                                     model_cycles=40)

    fake = types.ModuleType("bnnflow.sim.network")
    fake.run_network = run_network
    monkeypatch.setitem(sys.modules, "bnnflow.sim.network", fake)
    driver = BnnDriver(export_dir, backend="rtl", sim="icarus", check=True)
    batch = images(5, seed=4)
    np.testing.assert_array_equal(driver.classify(batch), GoldenModel(driver.artifact).predict(batch))
    assert calls == [((5, 64), np.dtype(np.uint8), "icarus", {"check": True})]
    assert driver.last_timing.cycles_per_image == 42.0 and driver.last_timing.model_cycles_per_image == 40
    with pytest.raises(ValueError, match="verilator, icarus"):
        BnnDriver(export_dir, backend="rtl", sim="xsim")


@pytest.mark.rtl
def test_rtl_backend_matches_golden(tmp_path):
    """The real RTL simulation (skipped until bnnflow.sim.network and a simulator are there)."""
    try:
        from bnnflow.sim.network import run_network  # noqa: F401
    except ImportError as exc:
        pytest.skip(f"bnnflow.sim.network not importable yet ({exc})")
    root = tmp_path / "export"
    # the shape of tests/test_rtl_bulk.py's "wide-in-narrow-out": one Verilator executable serves both
    random_artifact(root, seed=5, input_features=100, hidden=(64, 32), classes=10, input_bits=5,
                    folding=[F(4, 32), F(8, 16), F(2, 8)], n_vectors=4, generate=("rtl",))
    driver = BnnDriver(root, backend="rtl", sim="verilator")
    batch = images(4, features=100, seed=6)
    try:
        from bnnflow.sim.toolchain import SimulatorMissing
    except ImportError:  # an older sim package without it
        SimulatorMissing = ()
    try:
        scores = driver.scores(batch)
    except SimulatorMissing as exc:
        pytest.skip(str(exc))
    np.testing.assert_array_equal(scores, GoldenModel(driver.artifact).scores(batch))
    timing = driver.last_timing
    assert timing.cycles_per_image is not None and timing.model_cycles_per_image == max(
        l.nf * l.sf for l in driver.artifact.layers)


def test_driver_binds_the_vlnv_the_hls_scripts_package():
    """The IP the Vitis scripts package is the one the PYNQ driver binds to."""
    import re
    from pathlib import Path

    from bnnflow.host.accel_ip import VLNV

    hls = Path(__file__).resolve().parents[1] / "hls"
    cfg = (hls / "hls_config.cfg").read_text()
    fields = dict(re.findall(r"^package\.ip\.(\w+)=(\S+)", cfg, flags=re.M))
    top = re.search(r"^syn\.top=(\S+)", cfg, flags=re.M).group(1)
    assert VLNV == f"{fields['vendor']}:{fields['library']}:{top}:{fields['version']}"
    tcl = (hls / "run_hls.tcl").read_text()
    vendor, library, version = re.search(r"-vendor (\S+) -library (\S+) -version (\S+)", tcl).groups()
    assert VLNV == f"{vendor}:{library}:{top}:{version}"
