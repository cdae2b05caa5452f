"""The BLAS-backed golden model equals the straightforward int64 computation, bit for bit.

``GoldenModel._trace_int64`` is the original integer code (padded input, two
int64 products per XNOR layer, docs/ARTIFACT.md semantics word for word); the
fast path must reproduce every layer's accumulators and outputs on random
networks, foldings and inputs, on the largest accumulators a shape allows, and
on a layer too wide for float32 (where it must switch to float64 or int64),
with and without two neurons paired in one float column.
"""

from __future__ import annotations

import numpy as np
import pytest

from bnnflow import artifact as art
from bnnflow import golden
from bnnflow.folding import LayerFolding
from bnnflow.golden import GoldenModel, choose_arithmetic, layer_bound, pair_radix
from bnnflow.testing import random_artifact, random_layers
from bnnflow.writer import LayerData, read_vectors, write_artifact


def assert_traces_equal(fast: golden.GoldenTrace, ref: golden.GoldenTrace) -> None:
    assert len(fast.accumulators) == len(ref.accumulators) == len(fast.outputs) == len(ref.outputs)
    for k, (a, b) in enumerate(zip(fast.accumulators, ref.accumulators)):
        assert a.dtype == np.int64 and a.shape == b.shape, f"layer {k} accumulators: {a.dtype} {a.shape} vs {b.shape}"
        np.testing.assert_array_equal(a, b, err_msg=f"layer {k} accumulators differ")
    for k, (a, b) in enumerate(zip(fast.outputs, ref.outputs)):
        assert a.dtype == np.int64 and a.shape == b.shape, f"layer {k} outputs: {a.dtype} {a.shape} vs {b.shape}"
        np.testing.assert_array_equal(a, b, err_msg=f"layer {k} outputs differ")


def check_model(model: GoldenModel, images: np.ndarray) -> golden.GoldenTrace:
    """Whole trace, scores and predictions of the fast path against the int64 reference."""
    fast, ref = model.trace(images), model._trace_int64(images)
    assert_traces_equal(fast, ref)
    np.testing.assert_array_equal(model.scores(images), ref.scores)
    np.testing.assert_array_equal(model.predict(images), np.argmax(ref.scores, axis=1))
    return fast


def edge_images(rng: np.random.Generator, features: int, bits: int, n: int = 40) -> np.ndarray:
    """Random rows plus the extremes: all-max, all-zero, one max pixel, alternating."""
    top = (1 << bits) - 1
    rows = [rng.integers(0, top + 1, size=(n, features)), np.full((1, features), top), np.zeros((1, features)),
            np.eye(1, features, features // 2) * top, (np.arange(features)[None, :] % 2) * top]
    return np.concatenate(rows).astype(np.uint8)


def random_folding(rng: np.random.Generator, layers: list[LayerData]) -> list[LayerFolding]:
    """Any PE dividing MH and any SIMD up to MW (so odd SIMDs pad the input)."""
    out = []
    for layer in layers:
        mh, mw = layer.weights.shape
        pes = [d for d in range(1, mh + 1) if mh % d == 0]
        out.append(LayerFolding(pe=int(rng.choice(pes)), simd=int(rng.integers(1, mw + 1))))
    return out


@pytest.mark.parametrize("seed", range(12))
def test_random_networks_and_foldings(seed, tmp_path, monkeypatch):
    """Random shapes (0-3 hidden layers, 1-8 input bits), foldings and images; small blocks on odd seeds."""
    rng = np.random.default_rng(1000 + seed)
    features, bits = int(rng.integers(1, 300)), int(rng.integers(1, 9))
    hidden = [int(h) for h in rng.integers(1, 160, size=int(rng.integers(0, 4)))]
    classes = int(rng.integers(2, 13))
    layers = random_layers(rng, features, hidden, classes, bits)
    network = {"name": f"sweep{seed}", "input_features": features, "input_shape": [features], "input_bits": bits,
               "num_classes": classes, "method": "random", "dataset": "random"}
    a = write_artifact(tmp_path / "net", network, layers, random_folding(rng, layers), generate=())
    if seed % 2:
        monkeypatch.setattr(golden, "BLOCK_ROWS", 7)   # several blocks and a ragged last one
    model = GoldenModel(a)
    assert model.layer_dtypes == [np.dtype(np.float32)] * len(layers)
    # a layer pairs neurons exactly when its sums fit float32 twice over (and it has two neurons)
    fits = [l.in_features * ((1 << l.input_bits) - 1) * (1 + pair_radix(l)) <= 1 << 24 and l.out_features > 1
            for l in a.layers]
    assert model.layer_packing == [2 if f else 1 for f in fits]
    check_model(model, edge_images(rng, features, bits))


@pytest.mark.parametrize("seed", [0, 1])
def test_random_artifact_default_folding(seed, tmp_path):
    """random_artifact's nets (default folding) and their stored vectors."""
    a = random_artifact(tmp_path / "net", seed=seed, input_features=100, hidden=(48, 32), classes=10,
                        input_bits=5, generate=())
    model = GoldenModel(a)
    images, _, stored = read_vectors(a)
    np.testing.assert_array_equal(model.scores(images), stored)
    check_model(model, np.concatenate([images, edge_images(np.random.default_rng(seed), 100, 5)]))


@pytest.mark.parametrize("weights", ["ones", "zeros", "halves"])
@pytest.mark.parametrize("simd", [1, 7, 64])
def test_largest_accumulators(weights, simd, tmp_path):
    """A wide 8-bit first layer with constant weights on all-max pixels: the accumulators' extremes."""
    mw, hidden, classes, top = 3000, 24, 6, 255
    shapes = [(mw, hidden), (hidden, hidden), (hidden, classes)]
    bits = []
    for k, (i, o) in enumerate(shapes):
        w = {"ones": np.ones((o, i)), "zeros": np.zeros((o, i)),
             "halves": np.arange(i)[None, :].repeat(o, 0) < i // 2}[weights].astype(np.uint8)
        bits.append(w)
    peak = mw * top
    layers = [LayerData(art.INT_THRESHOLD, bits[0], np.linspace(-peak, peak + 1, hidden).astype(np.int64), input_bits=8),
              LayerData(art.XNOR_THRESHOLD, bits[1], np.arange(hidden) + 1),
              LayerData(art.XNOR_SCORE, bits[2], None)]
    folding = [LayerFolding(pe=8, simd=simd), LayerFolding(pe=3, simd=min(simd, hidden)), LayerFolding(pe=2, simd=5)]
    network = {"name": "extreme", "input_features": mw, "input_shape": [mw], "input_bits": 8,
               "num_classes": classes, "method": "random", "dataset": "random"}
    a = write_artifact(tmp_path / "net", network, layers, folding, generate=())
    model = GoldenModel(a)
    images = np.stack([np.full(mw, top), np.zeros(mw), np.arange(mw) % 256]).astype(np.uint8)
    fast = check_model(model, images)
    sign = {"ones": 1, "zeros": -1, "halves": 0}[weights]
    np.testing.assert_array_equal(fast.accumulators[0][:2], [[sign * peak] * hidden, [0] * hidden])


def test_empty_batch(tmp_path):
    a = random_artifact(tmp_path / "net", seed=3, input_features=20, hidden=(16,), classes=4, generate=())
    fast = check_model(GoldenModel(a), np.zeros((0, 20), dtype=np.uint8))
    assert [x.shape for x in fast.outputs] == [(0, 16), (0, 4)]


def spec(kind: str, mw: int, mh: int, bits: int) -> art.LayerSpec:
    return art.LayerSpec(0, kind, mw, mh, 1, 1, bits, "w", None if kind == art.XNOR_SCORE else "t")


def test_choose_arithmetic_bounds():
    """The documented bounds and the order float32 paired, float32, float64 paired, float64, int64."""
    f32, f64, i64 = np.dtype(np.float32), np.dtype(np.float64), np.dtype(np.int64)
    zeros = np.zeros(1024, dtype=np.int64)
    lfc0, lfc1 = spec(art.INT_THRESHOLD, 784, 1024, 8), spec(art.XNOR_THRESHOLD, 1024, 1024, 1)
    assert layer_bound(lfc0, zeros, zeros) == 784 * 255
    assert layer_bound(lfc0, zeros, np.full(1024, 800 * 255 + 1)) == 800 * 255 + 1   # thresholds count too
    assert pair_radix(lfc0) == 1 << 19 and layer_bound(lfc0, zeros, zeros, pack=2) == 784 * 255 * (1 + (1 << 19))
    assert pair_radix(lfc1) == 4096 and layer_bound(lfc1, zeros + 3, zeros + 500, pack=2) == 1024 * 4097
    assert choose_arithmetic(lfc0, zeros, zeros) == (f32, 1)
    assert choose_arithmetic(lfc1, zeros, zeros) == (f32, 2)
    # 2047 * 4097 < 2^24 still pairs; 2048 needs R = 8192 and 2048 * 8193 > 2^24
    assert choose_arithmetic(spec(art.XNOR_THRESHOLD, 2047, 4, 1), zeros[:4], zeros[:4]) == (f32, 2)
    assert choose_arithmetic(spec(art.XNOR_THRESHOLD, 2048, 4, 1), zeros[:4], zeros[:4]) == (f32, 1)
    assert choose_arithmetic(spec(art.XNOR_SCORE, 2048, 1, 1), zeros[:1], None) == (f32, 1)   # one neuron: no pair
    # 2^24 = 65794 * 255 - 254: the last float32 width, then float64 (paired while 1 + R keeps it under 2^53)
    assert choose_arithmetic(spec(art.INT_THRESHOLD, 65793, 1, 8), zeros[:1], zeros[:1]) == (f32, 1)
    assert choose_arithmetic(spec(art.INT_THRESHOLD, 65794, 1, 8), zeros[:1], zeros[:1]) == (f64, 1)
    assert choose_arithmetic(spec(art.INT_THRESHOLD, 65794, 2, 8), zeros[:2], zeros[:2]) == (f64, 2)
    huge = np.array([1 << 53, 0])
    assert choose_arithmetic(spec(art.INT_THRESHOLD, 8, 2, 8), zeros[:2], huge + 1) == (i64, 1)
    with pytest.raises(OverflowError, match=f"layer 0: accumulator bound {1 << 63} does not fit int64"):
        choose_arithmetic(spec(art.INT_THRESHOLD, 8, 2, 8), zeros[:2], np.array([-(1 << 63), 0]))


def test_lfc_shape_pairs_hidden_layers(tmp_path):
    """The benchmark's shape: float32 everywhere, 8-bit first layer alone, 1024-wide binary layers paired."""
    a = random_artifact(tmp_path / "lfc", seed=0, input_features=784, hidden=(1024, 1024, 1024), classes=10,
                        input_bits=8, generate=(), n_vectors=4)
    model = GoldenModel(a)
    assert model.layer_dtypes == [np.dtype(np.float32)] * 4 and model.layer_packing == [1, 2, 2, 2]
    assert [p.bound for p in model._plans] == [784 * 255 + 1, 1024 * 4097, 1024 * 4097, 1024 * 4097]
    check_model(model, edge_images(np.random.default_rng(0), 784, 8, n=12))


def wide_layer_artifact(tmp_path, mw: int) -> art.Artifact:
    """One int_threshold layer of ``mw`` all-one 8-bit inputs: acc = 255 * mw on all-max pixels."""
    exact = 255 * mw
    layers = [LayerData(art.INT_THRESHOLD, np.ones((2, mw), np.uint8), np.array([exact, exact + 1]), input_bits=8)]
    network = {"name": "wide", "input_features": mw, "input_shape": [mw], "input_bits": 8,
               "num_classes": 2, "method": "random", "dataset": "random"}
    return write_artifact(tmp_path / "wide", network, layers, [LayerFolding(pe=1, simd=64)], generate=())


def test_layer_too_wide_for_float32_uses_float64(tmp_path, monkeypatch):
    """70001 x 255 = 17,850,255 is odd and above 2^24: float32 cannot hold it, float64 is chosen and exact."""
    mw = 70001
    a = wide_layer_artifact(tmp_path, mw)
    images = np.stack([np.full(mw, 255), np.zeros(mw), np.random.default_rng(0).integers(0, 256, mw)]).astype(np.uint8)
    model = GoldenModel(a)
    assert model._plans[0].bound == 255 * mw * (1 + (1 << 26)) > (1 << 24)
    assert model.layer_dtypes == [np.dtype(np.float64)] and model.layer_packing == [2]
    fast = check_model(model, images)
    np.testing.assert_array_equal(fast.accumulators[0][:2], [[17_850_255] * 2, [0, 0]])
    np.testing.assert_array_equal(fast.outputs[0][:2], [[1, 0], [0, 0]])

    # what the bound protects against: with float32 claimed exact this far, the sum is wrong
    monkeypatch.setattr(golden, "EXACT_FLOAT_LIMITS", ((np.float32, 1 << 30),))
    wrong = GoldenModel(a)
    assert wrong.layer_dtypes == [np.dtype(np.float32)] and wrong.layer_packing == [1]
    assert wrong.trace(images[:1]).accumulators[0][0, 0] != 17_850_255
    # and a dtype chosen against the bound is refused at construction, naming the layer
    monkeypatch.undo()
    monkeypatch.setattr(golden, "choose_arithmetic", lambda *args: (np.dtype(np.float32), 1))
    with pytest.raises(AssertionError, match=r"layer 0: bound 17850256 exceeds the exact range 16777216 of float32"):
        GoldenModel(a)


def test_int64_and_float64_fallbacks_are_exact(tmp_path, monkeypatch):
    """With the float ranges shrunk, layers fall back to float64 and int64 -- mixed in one net -- and stay exact."""
    a = random_artifact(tmp_path / "net", seed=5, input_features=64, hidden=(200, 64), classes=10, input_bits=5,
                        generate=())
    rng = np.random.default_rng(5)
    images = edge_images(rng, 64, 5)
    expected = GoldenModel(a).trace(images)
    monkeypatch.setattr(golden, "EXACT_FLOAT_LIMITS", ((np.float32, 100), (np.float64, 1000)))
    model = GoldenModel(a)
    # layer 0: 64 * 31 (+ 1, its always-off threshold) -> int64; layer 1: MW 200 -> float64; layer 2: MW 64 -> float32
    assert [p.bound for p in model._plans] == [64 * 31 + 1, 200, 64]
    assert model.layer_dtypes == [np.dtype(np.int64), np.dtype(np.float64), np.dtype(np.float32)]
    assert model.layer_packing == [1, 1, 1]
    fast = check_model(model, images)
    assert_traces_equal(fast, expected)
    monkeypatch.setattr(golden, "EXACT_FLOAT_LIMITS", ())
    assert GoldenModel(a).layer_dtypes == [np.dtype(np.int64)] * 3
    assert_traces_equal(check_model(GoldenModel(a), images), expected)


def test_check_images_unchanged(tmp_path):
    """check_images still returns int64 and still refuses floats and out-of-range values."""
    a = random_artifact(tmp_path / "net", seed=2, input_features=12, hidden=(8,), classes=3, input_bits=4,
                        generate=())
    model = GoldenModel(a)
    x = np.arange(24).reshape(2, 12) % 16
    out = model.check_images(x.astype(np.uint8))
    assert out.dtype == np.int64 and np.array_equal(out, x)
    with pytest.raises(ValueError, match=r"image values must be unsigned 4-bit integers, got values in \[0, 16\]"):
        model.scores(np.array([[16] + [0] * 11], dtype=np.uint8))
    with pytest.raises(ValueError, match=r"got values in \[-1, 0\]"):
        model.scores(np.array([[-1] + [0] * 11]))
    with pytest.raises(TypeError, match="images must be an integer array .* got dtype float32"):
        model.trace(np.zeros((1, 12), np.float32))
    with pytest.raises(ValueError, match=r"images must have shape \(N, 12\), got \(1, 11\)"):
        model.predict(np.zeros((1, 11), np.uint8))


def test_loaded_parameters_with_zero_padding_and_wide_thresholds(tmp_path):
    """What an accelerator computes after loading odd words: padded lanes of 0 count as XNOR matches, thresholds
    beyond their field widen the layer's bound (float64 for +-2^30) -- still equal to the int64 computation."""
    from bnnflow import accel, packing

    a = random_artifact(tmp_path / "net", seed=4, input_features=20, hidden=(12, 9), classes=3, input_bits=3,
                        folding=[LayerFolding(pe=4, simd=8), LayerFolding(pe=3, simd=5), LayerFolding(pe=1, simd=4)],
                        generate=())
    lanes = [a.weight_lanes(k) for k in range(3)]
    folded = [a.folded_thresholds(k) for k in range(3)]
    for k in (0, 1, 2):                   # every padded lane (a 1 in an all-zero matrix's folding) set to 0
        mh, mw = a.layers[k].out_features, a.layers[k].in_features
        pad = packing.fold_weight_bits(np.zeros((mh, mw), np.uint8), a.layers[k].pe, a.layers[k].simd) == 1
        assert pad.any()
        lanes[k][pad] = 0
    folded[1] = folded[1].copy()
    folded[1][0, 0], folded[1][-1, -1] = -(1 << 30), 1 << 30
    view = accel.with_parameters(a, lanes, folded)
    model = GoldenModel(view)
    assert model.layer_dtypes == [np.dtype(np.float32), np.dtype(np.float64), np.dtype(np.float32)]
    assert model.layer_packing == [2, 2, 2]   # layer 1's bound is the threshold, 2^30; its pairs need 12 * 33
    fast = check_model(model, edge_images(np.random.default_rng(4), 20, 3))
    # layer 2 (9 inputs padded to 12): each of the 3 padded lanes, input 0 and weight 0, is one more match
    w = view.weight_codes(2).astype(np.int64)
    a1 = fast.outputs[1]
    np.testing.assert_array_equal(fast.accumulators[2], a1 @ w.T + (1 - a1) @ (1 - w).T + 3)
