"""The generated network top against the golden model, and run_network's contract."""

from __future__ import annotations

import numpy as np
import pytest

from bnnflow.folding import LayerFolding as F
from bnnflow.sim import toolchain
from bnnflow.testing import random_artifact
from bnnflow.writer import read_vectors
from conftest import on_both_simulators

SIMS = ["icarus", "verilator"]

# (input_features, hidden, classes, input_bits, folding or None = default)
FAST = [
    pytest.param(100, (64, 32), 10, 5, [F(4, 32), F(8, 16), F(2, 8)], id="in100-simd32-pad"),
    pytest.param(64, (64, 32), 10, 5, None, id="digits-default-folding"),
    # PE of layer 0 == SIMD of layer 1 and no padding, layer 1 has NF > 1: the
    # repacker must still buffer a whole vector (a wire-through measured 149 cycles, not 128).
    pytest.param(64, (128, 128), 10, 5, [F(8, 16), F(16, 8), F(10, 16)], id="equal-width-bursty-consumer"),
    # words wider than 64 bits: SIMD 128 and 256, and a 200-input layer padded to 256
    pytest.param(200, (256,), 10, 2, [F(16, 128), F(10, 256)], id="simd128-256-pad"),
]
SLOW = [
    pytest.param(784, (256, 256, 256), 10, 8, [F(16, 64), F(16, 32), F(16, 64), F(5, 8)], id="mnist-sfc"),
    pytest.param(30, (), 4, 3, [F(2, 4)], id="one-layer-int"),
    pytest.param(20, (12,), 3, 1, [F(3, 8), F(1, 5)], id="binary-input-pad"),
    pytest.param(50, (40, 24, 16), 6, 4, [F(1, 1), F(8, 16), F(8, 24), F(6, 16)], id="deep-mixed"),
    pytest.param(512, (256, 256), 10, 1, [F(16, 128), F(16, 128), F(10, 128)], id="simd128-hls-bug-net"),
    pytest.param(784, (130,), 10, 8, [F(13, 392), F(10, 130)], id="simd392-8bit-3136-bit-words"),
]


@pytest.mark.rtl
@pytest.mark.slow
@pytest.mark.parametrize("sim", SIMS)
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_network_wide_simd_seeds(tmp_path, sim, seed):
    """SIMD > 64 with several seeds on both simulators (the HLS literal bug never affected the RTL)."""
    check_network(tmp_path, sim, 512, (256, 96), 10, 3, [F(16, 128), F(8, 256), F(10, 96)], seed=seed)


def check_network(tmp_path, sim, features, hidden, classes, bits, folding, seed=0):
    from bnnflow.sim.network import run_network

    toolchain.pytest_require(sim)
    a = random_artifact(tmp_path / "a", seed=seed, input_features=features, hidden=hidden, classes=classes,
                        input_bits=bits, folding=folding, n_vectors=16, generate=("rtl",))
    images, _, golden = read_vectors(a)
    result = run_network(a, images, sim, check=True, seed=seed, idle=0.3, backpressure=0.4)
    assert result.scores.dtype == np.int64 and result.scores.shape == golden.shape
    np.testing.assert_array_equal(result.scores, golden)
    assert result.model_cycles == max(l.nf * l.sf for l in a.layers)
    assert result.model_cycles <= result.cycles_per_image <= result.model_cycles * 1.02 + 0.5, (
        f"measured {result.cycles_per_image} cycles/image, slowest layer NF*SF = {result.model_cycles}")
    return a, result


#: FAST cases run on Verilator in the default suite: the tops tests/test_rtl_bulk.py also builds (the
#: builds are shared by content): the VlWide ports (> 64 bits) and a 3-layer net. The other FAST cases
#: exercise simulator-independent RTL behaviour (default folding, the repacker's buffering), which
#: Icarus checks in the default suite; on Verilator they run under `slow` (each is a cold Verilator build).
VERILATOR_FAST = ("in100-simd32-pad", "simd128-256-pad")


@pytest.mark.rtl
@pytest.mark.parametrize("sim,features,hidden,classes,bits,folding", on_both_simulators(FAST, SIMS, VERILATOR_FAST))
def test_network(tmp_path, sim, features, hidden, classes, bits, folding):
    check_network(tmp_path, sim, features, hidden, classes, bits, folding)


@pytest.mark.rtl
@pytest.mark.slow
@pytest.mark.parametrize("sim", SIMS)
@pytest.mark.parametrize("features,hidden,classes,bits,folding", SLOW)
def test_network_sweep(tmp_path, sim, features, hidden, classes, bits, folding):
    check_network(tmp_path, sim, features, hidden, classes, bits, folding, seed=2)


@pytest.mark.rtl
def test_run_network_plain_and_cached(tmp_path):
    """The verify/driver call: no checking in the tb, scores returned, build reused."""
    from bnnflow.sim.network import run_network

    toolchain.pytest_require("icarus")
    a = random_artifact(tmp_path / "a", seed=4, input_features=64, hidden=(32,), classes=10, input_bits=5,
                        n_vectors=3, generate=("rtl",))
    images, _, golden = read_vectors(a)
    first = run_network(a, images, "icarus")
    np.testing.assert_array_equal(first.scores, golden)
    assert first.cycles_per_image == pytest.approx(first.model_cycles, abs=0.5)   # 3 images tiled to 12
    again = run_network(str(a.root), images[:1], "icarus")
    assert again.build_dir == first.build_dir
    np.testing.assert_array_equal(again.scores, golden[:1])
    # an artifact exported without RTL files is generated on the fly
    b = random_artifact(tmp_path / "b", seed=4, input_features=64, hidden=(32,), classes=10, input_bits=5,
                        n_vectors=3, generate=())
    np.testing.assert_array_equal(run_network(b, images, "icarus").scores, golden)


def test_run_network_missing_simulator(tmp_path, monkeypatch):
    """A missing simulator is a clear error naming how to install it."""
    from bnnflow.sim import SimulatorMissing
    from bnnflow.sim.network import run_network

    a = random_artifact(tmp_path / "a", seed=1, input_features=16, hidden=(), classes=4, n_vectors=2,
                        generate=("rtl",))
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    with pytest.raises(SimulatorMissing, match="apt-get install iverilog"):
        run_network(a, np.zeros((1, 16), dtype=np.uint8), "icarus")
