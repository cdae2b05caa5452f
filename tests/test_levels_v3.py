"""Property test across levels for format-v3 networks: golden == RTL (Icarus, Verilator) == HLS C-sim.

Random stacks mix every datapath the engines offer (XNOR-popcount, 1-bit
add/subtract, k-bit sym and int multiplies), multi-threshold outputs and
affine scores, with random widths and foldings (padding included); every
score of every test vector is compared, under random backpressure on the RTL.
"""

from __future__ import annotations

import numpy as np
import pytest

from bnnflow import artifact as art
from bnnflow import hlsflow, testing
from bnnflow.folding import LayerFolding
from bnnflow.golden import GoldenModel
from bnnflow.sim import toolchain
from bnnflow.writer import read_vectors, write_artifact


def random_v3_network(out, seed: int, n_vectors: int = 24, generate: tuple[str, ...] = ("rtl", "hls")) -> art.Artifact:
    """A seeded random stack of 3-4 layers over all datapaths and output kinds, folded at random."""
    rng = np.random.default_rng(seed)
    bits = int(rng.choice([1, 2, 5, 8]))
    features = int(rng.integers(9, 48))

    def weight() -> dict:
        k = int(rng.choice([1, 2, 3, 4, 8]))
        enc = "int" if k > 1 and rng.random() < 0.5 else "sym"
        return {"weight_bits": k, "weight_encoding": enc}

    # the seed picks the structure, so that a few seeds cover every kind; widths and values are random
    first_n = 1 if seed % 2 == 0 else int(rng.choice([3, 15]))
    stack = [dict(mh=int(rng.integers(4, 33)), n_thresholds=first_n, **weight())]
    if seed % 2 == 0:
        stack.append(dict(kind=art.XNOR_THRESHOLD, mh=int(rng.integers(4, 33))))
    second_n = 1 if seed % 4 in (0, 3) else int(rng.choice([3, 7]))
    stack.append(dict(mh=int(rng.integers(4, 33)), n_thresholds=second_n, **weight()))
    classes = int(rng.integers(2, 11))
    affine_bits = int(rng.choice([8, 12])) if seed % 3 == 0 else 0
    if second_n == 1 and seed % 4 == 0:
        stack.append(dict(kind=art.XNOR_SCORE, mh=classes, affine_bits=affine_bits))
    else:
        stack.append(dict(kind=art.INT_SCORE, mh=classes, affine_bits=affine_bits, **weight()))
    layers = testing.random_stack(rng, features, bits, stack)
    folding = []
    for layer in layers:
        mw, mh = layer.shape
        folding.append(LayerFolding(pe=int(rng.choice([d for d in range(1, mh + 1) if mh % d == 0])),
                                    simd=int(rng.integers(1, mw + 1))))
    images = rng.integers(0, 1 << bits, size=(n_vectors, features), dtype=np.uint8)
    images[0], images[1] = (1 << bits) - 1, 0                 # the all-maximum and all-zero inputs
    network = {"name": f"v3_{seed}", "input_features": features, "input_shape": [features], "input_bits": bits,
               "num_classes": classes, "method": "random", "dataset": "random"}
    layers = testing.fit_thresholds_to_images(rng, network, layers, folding, images)
    return write_artifact(out, network, layers, folding, vectors=(images, np.zeros(n_vectors)),
                          generate=generate)


def assert_layers_vary(a: art.Artifact, images: np.ndarray) -> None:
    """Many neurons of every threshold layer change with the image, so the comparisons can fail.

    (Neuron 0 and the last neuron are constant by design: always the top code, always 0.)
    """
    trace = GoldenModel(a).trace(images)
    for k, layer in enumerate(a.layers[:-1]):
        outputs = trace.outputs[k][:, 1:-1]
        varying = (outputs.min(axis=0) != outputs.max(axis=0)).mean()
        assert varying >= 0.35, f"layer {k}: only {varying:.0%} of the neurons vary over the test images"


FAST_SEEDS = [0, 1, 2, 3]
SLOW_SEEDS = list(range(4, 16))


def _seeds(fast, slow):
    return [*fast, *(pytest.param(s, marks=pytest.mark.slow) for s in slow)]


@pytest.mark.rtl
@pytest.mark.parametrize("seed", _seeds(FAST_SEEDS, SLOW_SEEDS))
def test_rtl_icarus_equals_golden(tmp_path, seed):
    from bnnflow.sim.network import run_network

    toolchain.pytest_require("icarus")
    a = random_v3_network(tmp_path / "a", seed)
    images, _, golden = read_vectors(a)
    np.testing.assert_array_equal(GoldenModel(a).scores(images), golden)
    assert_layers_vary(a, images)
    result = run_network(a, images, "icarus", check=True, seed=seed, idle=0.2, backpressure=0.3)
    np.testing.assert_array_equal(result.scores, golden)


@pytest.mark.rtl
@pytest.mark.parametrize("seed", _seeds(FAST_SEEDS[:2], FAST_SEEDS[2:] + SLOW_SEEDS))
def test_rtl_verilator_equals_golden(tmp_path, seed):
    from bnnflow.sim.bulk import run_bulk

    toolchain.pytest_require("verilator")
    a = random_v3_network(tmp_path / "a", seed)
    images, _, golden = read_vectors(a)
    result = run_bulk(a, images, check=True, seed=seed, idle=0.2, backpressure=0.3)
    np.testing.assert_array_equal(result.scores, golden)


@pytest.mark.hls
@pytest.mark.parametrize("seed", _seeds(FAST_SEEDS[:1], FAST_SEEDS[1:] + SLOW_SEEDS))   # a g++ build each; test_hls.py
                                                                                       # sweeps the HLS widely
def test_hls_csim_equals_golden(tmp_path, hls_toolchain, seed):
    a = random_v3_network(tmp_path / "a", seed)
    result = hlsflow.run_csim(a, build_dir=tmp_path / "build")
    assert result.passed, result.output[-3000:]
    images, _, golden = read_vectors(a)
    np.testing.assert_array_equal(result.scores, golden)
    trace = GoldenModel(a).trace(images)
    for k, outputs in enumerate(result.layer_outputs):          # every layer, not only the scores
        np.testing.assert_array_equal(outputs, trace.outputs[k], err_msg=f"layer {k}")


def test_random_networks_cover_the_datapaths(tmp_path):
    """The generator itself: the CI seeds together cover each kind, both encodings, multi-thresholds and affines."""
    seen = set()
    for seed in FAST_SEEDS + SLOW_SEEDS:
        a = random_v3_network(tmp_path / f"a{seed}", seed, n_vectors=2, generate=())
        seen |= {(l.kind, l.weight_bits > 1, l.weight_encoding, l.n_thresholds > 1, l.affine_bits > 0)
                 for l in a.layers}
    assert {k[0] for k in seen} == set(art.LAYER_KINDS)
    assert any(k[1] and k[2] == "sym" for k in seen) and any(k[1] and k[2] == "int" for k in seen)
    assert any(k[3] for k in seen) and any(k[4] for k in seen)


@pytest.mark.parametrize("seed", _seeds(FAST_SEEDS[:2], FAST_SEEDS[2:]))
def test_driver_board_sim_equals_golden(tmp_path, seed):
    """The PYNQ driver on the simulated board (parameters loaded at run time through the DMA) == golden."""
    from bnnflow.verify import run_level

    a = random_v3_network(tmp_path / "a", seed, generate=())
    images, _, golden = read_vectors(a)
    np.testing.assert_array_equal(run_level("board-sim", a, images, "icarus").scores, golden)
