"""Format v3 layers (multi-bit weights, multi-thresholds, score affines) through writer -> artifact -> golden.

The reference here is computed straight from the LayerData the writer was
given (weight values decoded by hand, thresholds counted by hand), so a
packing or decoding mistake anywhere between them shows up as a mismatch.
"""

from __future__ import annotations

import numpy as np
import pytest

from bnnflow import artifact as art
from bnnflow import testing
from bnnflow.folding import LayerFolding
from bnnflow.golden import GoldenModel
from bnnflow.writer import LayerData, write_artifact


def by_hand(layers: list[LayerData], images: np.ndarray) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """(accumulators, outputs) per layer from the LayerData alone (docs/ARTIFACT.md, Values and arithmetic)."""
    x = images.astype(np.int64)
    accs, outs = [], []
    for layer in layers:
        mw = layer.weights.shape[1]
        codes = layer.weights.astype(np.int64)
        if layer.kind.startswith("xnor"):
            acc = (x[:, None, :] == codes[None, :, :]).sum(axis=2)       # popcount of XNOR, real lanes
            dot = 2 * acc - mw
        else:
            k = layer.weight_bits
            if layer.weight_encoding == "sym":
                w = 2 * codes - (2 ** k - 1)
            else:
                w = np.where(codes >= 2 ** (k - 1), codes - 2 ** k, codes)
            acc = dot = x @ w.T
        if layer.thresholds is not None:
            t = np.asarray(layer.thresholds).reshape(len(codes), -1)
            x = (acc[:, :, None] >= t[None]).sum(axis=2)
        else:
            x = dot if layer.affine is None else layer.affine[:, 0] * dot + layer.affine[:, 1]
        accs.append(acc)
        outs.append(x)
    return accs, outs


STACKS = {
    # DoReFa W2A2-like: 8-bit pixels, 2-bit sym weights, 3 thresholds, a real-ish last layer
    "w2a2": (8, [dict(mh=24, weight_bits=8, weight_encoding="int", n_thresholds=3),
                 dict(mh=16, weight_bits=2, n_thresholds=3),
                 dict(mh=10, weight_bits=8, weight_encoding="int", affine_bits=12)]),
    # WAGE-like: ternary weights, 127 thresholds (7-bit codes)
    "ternary": (8, [dict(mh=12, weight_bits=2, weight_encoding="int", n_thresholds=127),
                    dict(mh=10, weight_bits=2, weight_encoding="int")]),
    # BinaryConnect-like: binary weights on multi-bit activations, then XNOR layers and an affine score
    "mixed": (5, [dict(mh=20, n_thresholds=15), dict(mh=16, weight_bits=4, n_thresholds=1),
                  dict(kind=art.XNOR_THRESHOLD, mh=12), dict(kind=art.XNOR_SCORE, mh=7, affine_bits=16)]),
}


@pytest.mark.parametrize("name", sorted(STACKS))
@pytest.mark.parametrize("seed", [0, 1])
def test_golden_equals_layer_data(tmp_path, name, seed):
    bits, stack = STACKS[name]
    rng = np.random.default_rng(seed)
    layers = testing.random_stack(rng, 37, bits, stack)
    folding = [LayerFolding(pe=int(rng.choice([d for d in range(1, l.shape[1] + 1) if l.shape[1] % d == 0])),
                            simd=int(rng.integers(1, l.shape[0] + 1))) for l in layers]
    images = rng.integers(0, 1 << bits, size=(300, 37), dtype=np.uint8)
    network = {"name": name, "input_features": 37, "input_shape": [37], "input_bits": bits,
               "num_classes": layers[-1].shape[1], "method": "random", "dataset": "random"}
    a = write_artifact(tmp_path / "a", network, layers, folding, vectors=(images, np.zeros(300)), generate=())
    accs, outs = by_hand(layers, images)
    for trace in (GoldenModel(a).trace(images), GoldenModel(a)._trace_int64(images)):
        for k in range(len(layers)):
            np.testing.assert_array_equal(trace.accumulators[k], accs[k], err_msg=f"layer {k} accumulators")
            np.testing.assert_array_equal(trace.outputs[k], outs[k], err_msg=f"layer {k} outputs")
    np.testing.assert_array_equal(GoldenModel(a).scores(images), outs[-1])
    for k in range(len(layers) - 1):                      # the thresholds exercise every level
        assert np.unique(outs[k]).size == layers[k].n_thresholds + 1 or layers[k].n_thresholds > 15


@pytest.mark.parametrize("weight_bits, encoding, input_bits", [(1, "sym", 8), (4, "sym", 8), (8, "sym", 8),
                                                                (2, "int", 8), (8, "int", 8), (8, "int", 1)])
def test_accumulator_extremes(tmp_path, weight_bits, encoding, input_bits):
    """All-max inputs against all-max and all-min weights reach the manifest's acc range exactly, no wrap."""
    mw, top = 50, art.weight_max(weight_bits, encoding)
    values = np.array([[top] * mw, [-top] * mw, [top] * (mw // 2) + [-top] * (mw - mw // 2), [0 if encoding == "int"
                       else top] * mw])
    codes = art.weight_codes(values, weight_bits, encoding)
    layer = LayerData(art.INT_SCORE, codes, None, input_bits=input_bits, weight_bits=weight_bits,
                      weight_encoding=encoding)
    images = np.array([[(1 << input_bits) - 1] * mw, [0] * mw], dtype=np.uint8)
    network = {"name": "x", "input_features": mw, "input_shape": [mw], "input_bits": input_bits, "num_classes": 4,
               "method": "random", "dataset": "random"}
    a = write_artifact(tmp_path / "a", network, [layer], [LayerFolding(2, 7)], generate=())
    peak = mw * ((1 << input_bits) - 1) * top
    lo, hi = a.layers[0].acc_range()
    assert (lo, hi) == (-7 * 8 * ((1 << input_bits) - 1) * top, 7 * 8 * ((1 << input_bits) - 1) * top)  # padded 56
    assert a.layers[0].acc_bits == art.bit_length_signed(lo, hi)
    scores = GoldenModel(a).scores(images)
    expected_top = [peak, -peak, (mw // 2 - (mw - mw // 2)) * ((1 << input_bits) - 1) * top,
                    0 if encoding == "int" else peak]
    assert scores.tolist() == [expected_top, [0, 0, 0, 0]]


def _network(mw: int, bits: int = 8, classes: int = 4) -> dict:
    return {"name": "x", "input_features": mw, "input_shape": [mw], "input_bits": bits, "num_classes": classes,
            "method": "random", "dataset": "random"}


def test_writer_refuses_what_the_engines_cannot_run(tmp_path):
    rng = np.random.default_rng(0)
    w = rng.integers(0, 4, size=(4, 8), dtype=np.uint8)
    fold = [LayerFolding(1, 8)]
    falling = np.tile([5, 3, 9], (4, 1))
    layer = LayerData(art.INT_THRESHOLD, w, falling, input_bits=8, weight_bits=2)
    with pytest.raises(ValueError, match=r"layer 0, neuron 0: thresholds are not non-decreasing \(threshold 1 = 3 "
                                         r"< threshold 0 = 5\)"):
        write_artifact(tmp_path / "a", _network(8), [layer], fold, generate=())
    with pytest.raises(ValueError, match=r"layer 0: field 'weight_bits' is 9, expected 1..8"):
        write_artifact(tmp_path / "a", _network(8), [LayerData(art.INT_SCORE, w, None, input_bits=8, weight_bits=9)],
                       fold, generate=())
    with pytest.raises(ValueError, match=r"layer 0: weight code 2 is -2, outside the narrow 2-bit int range"):
        write_artifact(tmp_path / "a", _network(8), [LayerData(art.INT_SCORE, w, None, input_bits=8, weight_bits=2,
                                                               weight_encoding="int")], fold, generate=())
    with pytest.raises(ValueError, match=r"layer 0: a xnor_score layer reads 1-bit inputs and 1-bit sym weights"):
        write_artifact(tmp_path / "a", _network(8, bits=1), [LayerData(art.XNOR_SCORE, w, None, weight_bits=2)],
                       fold, generate=())
    with pytest.raises(ValueError, match=r"layer 0: scores need 37 bits .* more than 32: use fewer affine_bits"):
        write_artifact(tmp_path / "a", _network(8), [LayerData(art.INT_SCORE, w, None, input_bits=8, weight_bits=2,
                                                               affine=np.zeros((4, 2), int), affine_bits=24)],
                       fold, generate=())
    with pytest.raises(ValueError, match=r"layer 0: affine value 128 does not fit affine_bits=8 \[-128, 127\]"):
        write_artifact(tmp_path / "a", _network(8), [LayerData(art.INT_SCORE, w, None, input_bits=8, weight_bits=2,
                                                               affine=np.full((4, 2), 128), affine_bits=8)],
                       fold, generate=())
    with pytest.raises(ValueError, match=r"weight value 2 has no 2-bit sym code \(allowed: odd values -3..3\)"):
        art.weight_codes(np.array([2]), 2, "sym")


def test_reader_refuses_unsorted_thresholds_and_unused_int_code(tmp_path):
    """A hand-edited file is refused naming the file, layer, neuron and values."""
    rng = np.random.default_rng(1)
    layers = testing.random_stack(rng, 16, 4, [dict(mh=4, weight_bits=3, weight_encoding="int", n_thresholds=3),
                                               dict(mh=4, weight_bits=2)])
    a = write_artifact(tmp_path / "a", _network(16, bits=4), layers, [LayerFolding(2, 16), LayerFolding(1, 4)],
                       generate=())
    tpath = a.path(a.layers[0].thresholds)
    t = np.fromfile(tpath, dtype="<i4").reshape(2, 2, 3)
    t[1, 0] = [7, 6, 8]                                   # neuron nf*PE + p = 0*2 + 1
    t.tofile(tpath)
    with pytest.raises(art.ArtifactError, match=r"L0_thresholds.bin: layer 0, neuron 1: threshold 1 \(6\) is below "
                                                r"threshold 0 \(7\)"):
        art.load(a.root, verify_checksums=False)
    testing.random_stack  # noqa: B018 - keep the import used when this test is run alone
    b = write_artifact(tmp_path / "b", _network(16, bits=4), layers, [LayerFolding(2, 16), LayerFolding(1, 4)],
                       generate=())
    wpath = b.path(b.layers[0].weights)
    raw = np.fromfile(wpath, dtype=np.uint8)
    raw[0] = (raw[0] & ~0x7) | 0x4                         # lane 0 of the first word := code 4 (= -4)
    raw.tofile(wpath)
    with pytest.raises(art.ArtifactError, match=r"L0_weights.bin: layer 0 has the weight code 4 \(= -4\), which the "
                                                r"narrow 3-bit int encoding does not use"):
        art.load(b.root, verify_checksums=False)


def test_artifact_doc_worked_example(tmp_path):
    """The worked example of docs/ARTIFACT.md ("Data files"), byte for byte."""
    codes = art.weight_codes(np.array([[3, -1, 1], [-3, 3, -1]]), 2, "sym")
    assert codes.tolist() == [[3, 1, 2], [0, 3, 1]]
    layer = LayerData(art.INT_THRESHOLD, codes, np.array([[-4, 5, 12], [0, 0, 0]]), input_bits=2, weight_bits=2)
    a = write_artifact(tmp_path / "a", _network(3, bits=2, classes=2), [layer], [LayerFolding(1, 2)], generate=())
    assert a.path(a.layers[0].weights).read_bytes() == bytes([0x07, 0x0E, 0x0C, 0x0D])
    trace = GoldenModel(a).trace(np.array([[3, 0, 2]], dtype=np.uint8))
    assert trace.accumulators[0][0, 0] == 11 and trace.outputs[0][0, 0] == 2
