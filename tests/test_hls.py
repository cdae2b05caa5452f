"""HLS level: generated header + the generic engine template, C-simulated with g++, against the golden model.

Each network compiles once (about 5-15 s of g++ on one core); run_csim and
run_testbench cache the binary, so the runs that follow reuse it. The format-v3
networks pack many layer parameter combinations into one build: every weight
width and encoding, input widths 1/2/4/8, 1/3/15/255 thresholds per neuron,
plain and affine scores, padded and unpadded foldings; each build also loads a
second network of its signature at run time (weights, thresholds and affine
memories through the parameter stream) and back. The full cross product and
more foldings run under ``slow``.
"""

from __future__ import annotations

import dataclasses
import itertools
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from bnnflow import accel
from bnnflow import artifact as art
from bnnflow import hlsflow, hlsgen, packing
from bnnflow.folding import LayerFolding as F
from bnnflow.golden import GoldenModel
from bnnflow.hlsflow import Infer, Load
from bnnflow.testing import data_thresholds, random_artifact, random_stack
from bnnflow.writer import LayerData, layer_spec, read_vectors, write_artifact

REPO = Path(__file__).resolve().parent.parent
HLS_DIR = REPO / "hls"

# name -> random_artifact keywords (1-bit weights, one threshold per neuron: the format-2 networks). Covers:
# default folding, padded inputs (100 -> 128, 784 -> 800 with SIMD 32), PE=1/SIMD=1, SIMD=64, SIMD>64 (string
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


#: In CI; the rest run under `slow`. The CI format-v3 networks below hold their other features (PE=1/SIMD=1,
#: padding, SF=1, a network ending in threshold codes); SIMD > 64 is in test_hls_wide.py and test_hls_accel.py.
CI_CASES = ("mnist784_simd64",)


# -- format-v3 networks --------------------------------------------------------------------------------------
def _sym(k: int) -> dict:
    return dict(weight_bits=k, weight_encoding=art.SYM)


def _int(k: int) -> dict:
    return dict(weight_bits=k, weight_encoding=art.INT)


XNOR_T, INT_T, XNOR_S, INT_S = art.XNOR_THRESHOLD, art.INT_THRESHOLD, art.XNOR_SCORE, art.INT_SCORE


@dataclasses.dataclass(frozen=True)
class Net:
    """A format-v3 test network: random_stack's layer dicts and one folding per layer."""

    input_features: int
    input_bits: int
    layers: tuple[dict, ...]
    folding: tuple[F, ...]


#: The CI networks: between them every weight width and encoding (1/2/4/8 sym, 2/4/8 int), inputs of
#: 1/2/4/8 bits, 1/3/15/255 thresholds, XNOR layers with several thresholds, affine scores of both macs,
#: a network ending in 8-bit threshold codes, PE=1/SIMD=1, SF=1, NF=1 and padded layers.
V3_NETS = {
    "wide_input": Net(20, 8, (
        dict(mh=12, n_thresholds=3, **_sym(8)),                 # 8-bit in, 20 -> 24 padded
        dict(mh=10, n_thresholds=15, **_int(2)),                # 2-bit in, ternary
        dict(mh=8, n_thresholds=255, **_sym(4)),                # 4-bit in, SF = 1
        dict(mh=6, n_thresholds=1, **_int(4)),                  # 8-bit in, SF = 1
        dict(mh=9, kind=XNOR_T, n_thresholds=15),               # XNOR with 15 thresholds
        dict(mh=4, kind=INT_S, affine_bits=8, **_sym(2)),       # 4-bit in, affine int score
    ), (F(4, 8), F(5, 3), F(2, 10), F(3, 8), F(3, 6), F(2, 9))),
    "narrow_input": Net(30, 2, (
        dict(mh=8, n_thresholds=255, **_int(8)),                # 2-bit in, NF = SF = 1
        dict(mh=6, n_thresholds=1, **_sym(2)),                  # 8-bit in, PE = SIMD = 1
        dict(mh=10, kind=XNOR_T, n_thresholds=1),               # 6 -> 8 padded
        dict(mh=12, n_thresholds=15, **_sym(4)),                # 1-bit in
        dict(mh=6, n_thresholds=3, **_sym(8)),                  # 4-bit in, 12 -> 15 padded
        dict(mh=6, n_thresholds=1, **_sym(1)),                  # 2-bit in, add/subtract lanes
        dict(mh=5, kind=XNOR_S, affine_bits=6),                 # affine XNOR score
    ), (F(8, 30), F(1, 1), F(5, 4), F(6, 10), F(2, 5), F(3, 2), F(5, 3))),
    "ends_in_codes": Net(24, 1, (
        dict(mh=16, kind=XNOR_T, n_thresholds=3),               # XNOR first layer, 2-bit codes out
        dict(mh=8, n_thresholds=1, **_int(2)),                  # 2-bit in
        dict(mh=6, kind=INT_T, n_thresholds=255, **_int(4)),    # 1-bit in; the network's outputs: 8-bit codes
    ), (F(4, 8), F(8, 16), F(3, 4))),
}


def v3_artifact(root: Path, net: Net, seed: int, n_vectors: int = 16, extremes: bool = False,
                generate: tuple[str, ...] = ("hls",)) -> art.Artifact:
    """Write ``net`` with seeded random parameters and test images; image 0 is all maximum codes, image 1 all 0.

    Weights and affines come from :func:`bnnflow.testing.random_stack`; each
    threshold layer's thresholds are then drawn from its accumulators on the
    test images (:func:`data_thresholds`), so every layer of a deep stack sees
    inputs that vary. With ``extremes`` the parameters are pushed to the
    overflow corners (:func:`extreme_weights`, :func:`extreme_neuron_params`).
    """
    rng = np.random.default_rng(seed)
    layers = random_stack(rng, net.input_features, net.input_bits, [dict(l) for l in net.layers])
    images = rng.integers(0, 1 << net.input_bits, size=(n_vectors, net.input_features), dtype=np.uint8)
    images[0], images[1] = (1 << net.input_bits) - 1, 0
    folding = list(net.folding)
    specs = [layer_spec(k, layer, fold) for k, (layer, fold) in enumerate(zip(layers, folding))]
    if extremes:
        layers = [extreme_weights(layer, spec) for layer, spec in zip(layers, specs)]
    for k, spec in enumerate(specs):
        if spec.has_thresholds:
            prefix = write_artifact(root.parent / f".{root.name}.prefix{k}", _network(net, layers[:k + 1], seed),
                                    layers[:k + 1], folding[:k + 1], generate=())
            accs = GoldenModel(prefix).trace(images).accumulators[k]
            shutil.rmtree(prefix.root)
            layers[k] = dataclasses.replace(layers[k], thresholds=data_thresholds(rng, spec, accs))
        if extremes:
            layers[k] = extreme_neuron_params(layers[k], spec)
    labels = rng.integers(0, layers[-1].shape[1], size=n_vectors)
    return write_artifact(root, _network(net, layers, seed), layers, folding, vectors=(images, labels),
                          generate=generate)


def _network(net: Net, layers: list[LayerData], seed: int) -> dict:
    return {"name": f"v3_{seed}", "input_features": net.input_features, "input_shape": [net.input_features],
            "input_bits": net.input_bits, "num_classes": layers[-1].shape[1], "method": "random", "dataset": "random"}


def _max_input_acc(layer: LayerData, spec: art.LayerSpec) -> np.ndarray:
    """Each neuron's accumulator for the all-maximum input."""
    if spec.mac == "xnor":
        return layer.weights.astype(np.int64).sum(axis=1)          # all-ones inputs agree with every 1 bit
    return spec.input_max * art.weight_values(layer.weights, spec.weight_bits, spec.weight_encoding).sum(axis=1)


def extreme_weights(layer: LayerData, spec: art.LayerSpec) -> LayerData:
    """Neuron 0 gets every weight at the largest value, neuron 1 at the smallest (both signs of the bound)."""
    top, bottom = art.weight_codes(np.array([spec.weight_max, -spec.weight_max]), spec.weight_bits,
                                   spec.weight_encoding)
    codes = layer.weights.copy()
    codes[0], codes[1] = top, bottom
    return dataclasses.replace(layer, weights=codes)


def extreme_neuron_params(layer: LayerData, spec: art.LayerSpec) -> LayerData:
    """Thresholds and affine that keep the all-maximum image at the bounds.

    In a threshold layer every threshold is at most the neuron's accumulator
    for the all-maximum input, and neuron 0's last one equals it (the
    inclusive compare at the bound), so every output is the top code N =
    2^bits - 1 and the next layer again sees all-maximum inputs. A score
    layer's affine puts mul and add at their extremes: neuron 0 scores
    -(M*D + M), neuron 1 +(M*D + M - 1) (D the dot bound, M = 2^(affine_bits-1)).
    """
    acc = _max_input_acc(layer, spec)
    if spec.has_thresholds:
        assert spec.n_thresholds + 1 == 1 << spec.output_bits, "the top code must be the next layer's maximum"
        t = np.minimum(np.asarray(layer.thresholds, np.int64).reshape(spec.out_features, spec.n_thresholds),
                       acc[:, None])
        t[0, -1] = acc[0]
        t[1, :] = acc[1]
        return dataclasses.replace(layer, thresholds=t)
    if spec.affine_bits:
        m = 1 << (spec.affine_bits - 1)
        affine = np.asarray(layer.affine, np.int64).copy()
        affine[0], affine[1] = (-m, -m), (-m, m - 1)
        return dataclasses.replace(layer, affine=affine)
    return layer


def check_outputs_vary(artifact: art.Artifact, images: np.ndarray) -> None:
    """Most neurons of every threshold layer change their output between test images (a layer whose outputs
    are the same for every image would test its arithmetic on one vector only)."""
    trace = GoldenModel(artifact).trace(images)
    for layer, outputs in zip(artifact.layers, trace.outputs):
        if layer.has_thresholds:
            varying = int(sum(np.unique(outputs[:, n]).size > 1 for n in range(layer.out_features)))
            assert varying >= (layer.out_features - 2) // 2, (layer.index, layer.kind, varying)
            seen = np.unique(outputs)
            assert seen.size >= min(layer.n_thresholds + 1, 3), (layer.index, layer.kind, seen.tolist())


def run_reload(a: art.Artifact, b: art.Artifact, build: Path) -> hlsflow.TbResult:
    """A's build: A's scores, B's after loading B (B's images, and A's), A's again after loading A."""
    assert a.signature == b.signature
    images_a, _, golden_a = read_vectors(a)
    images_b, _, golden_b = read_vectors(b)
    b_on_a = GoldenModel(b).scores(images_a)
    assert (b_on_a != golden_a).any()                      # the loaded parameters change the scores
    steps = [Infer(images_a, golden_a), Load(b), Infer(images_b, golden_b), Infer(images_a, b_on_a), Load(a),
             Infer(images_a, golden_a)]
    result = hlsflow.run_testbench(a, steps, build_dir=build)
    assert result.passed, result.output[-3000:]
    for got, want in zip(result.scores, [golden_a, golden_b, b_on_a, golden_a]):
        assert got.dtype == np.int64
        np.testing.assert_array_equal(got, want)
    for step, (params, images) in enumerate([(a, images_a), (b, images_b), (b, images_a), (a, images_a)]):
        check_layer_outputs(result.layer_outputs[step], params, images, f"infer step {step}")
    return result


def check_layer_outputs(got: list[np.ndarray], params: art.Artifact, images: np.ndarray, where: str) -> None:
    """Every layer's output words of the C simulation equal the golden model's layer outputs."""
    want = GoldenModel(params).trace(images).outputs
    assert len(got) == len(want)
    for k, (g, w) in enumerate(zip(got, want)):
        bad = np.argwhere(g != w)
        assert bad.size == 0, (f"{where}, layer {k} ({params.layers[k].kind}): {len(bad)} of {w.size} outputs differ, "
                               f"first at image {bad[0][0]} neuron {bad[0][1]}: hls {g[tuple(bad[0])]}, golden "
                               f"{w[tuple(bad[0])]}")


# ends_in_codes (12 s of g++) under `slow`: the other two cover every datapath in CI
@pytest.fixture(scope="module", params=[pytest.param(name, marks=pytest.mark.slow) if name == "ends_in_codes" else name
                                        for name in V3_NETS])
def v3_build(request, tmp_path_factory, hls_toolchain):
    """(A, B, build folder, compiler output) of a CI format-v3 network: two seeds of one signature, A compiled."""
    root = tmp_path_factory.mktemp(f"v3_{request.param}")
    net = V3_NETS[request.param]
    a = v3_artifact(root / "a", net, seed=1)
    b = v3_artifact(root / "b", net, seed=2)
    _binary, compiled, log = hlsflow.build_csim(a, root / "build")
    assert compiled
    return a, b, root / "build", log


@pytest.mark.hls
def test_v3_network_csim_and_reload(v3_build):
    """Every score of every image equals the golden model, before and after a runtime reload."""
    a, b, build, _log = v3_build
    images, _, golden = read_vectors(a)
    np.testing.assert_array_equal(golden, GoldenModel(a).scores(images))
    check_outputs_vary(a, images)
    result = run_reload(a, b, build)
    assert not result.compiled
    assert "mismatches=0 tlast_errors=0 format_errors=0 check_errors=0 -> PASS" in result.output
    checks = [line for line in result.output.splitlines() if line.startswith("CHECK ")]
    assert len(checks) >= 10 and all(line.endswith(": ok") for line in checks), checks


@pytest.mark.hls
@pytest.mark.parametrize("where", [(0, 0), (15, 3), (5, 2)])
def test_corrupted_golden_score_fails(v3_build, where, tmp_path):
    """One golden score off (its lowest bit flipped: still a value of the field) is exactly one mismatch."""
    a, _b, build, _log = v3_build
    _, _, golden = read_vectors(a)
    bad = golden.copy()
    bad[where] ^= 1
    path = tmp_path / "bad.bin"
    bad.astype("<i4").tofile(path)
    result = hlsflow.run_csim(a, build_dir=build, golden_scores=path)
    assert not result.compiled
    assert result.returncode == 1 and not result.passed
    assert result.mismatches == 1
    assert f"MISMATCH image {where[0]} class {where[1]}: hls {golden[where]}, golden {bad[where]}" in result.output
    assert "mismatches=1" in result.output and "FAIL" in result.output
    np.testing.assert_array_equal(result.scores, golden)  # the hardware scores are still right


@pytest.mark.hls
def test_run_csim_limit_runs_a_prefix(v3_build):
    """``limit`` simulates only the first vectors, still compared with golden (the built binary, not recompiled)."""
    a, _b, build, _log = v3_build
    _, _, golden = read_vectors(a)
    result = hlsflow.run_csim(a, build_dir=build, limit=4)
    assert not result.compiled
    assert result.mismatches == 0 and result.returncode == 0
    assert result.scores.shape == (4, a.num_classes)
    np.testing.assert_array_equal(result.scores, golden[:4])


@pytest.mark.hls
def test_large_nets_stream_their_parameters_in(tmp_path, hls_toolchain, monkeypatch):
    """Above ``PARAMS_FROM_STREAM_ABOVE`` power-on values the C-sim build has no initializers and loads first.

    Without the load its memories are zero and the scores are wrong, so the
    passing run shows the load-mode stream carried every parameter.
    """
    a = v3_artifact(tmp_path / "a", V3_NETS["wide_input"], seed=3)
    assert not hlsflow.params_from_stream(a)
    monkeypatch.setattr(hlsflow, "PARAMS_FROM_STREAM_ABOVE", hlsflow.power_on_values(a) - 1)
    assert hlsflow.params_from_stream(a)
    binary, compiled, log = hlsflow.build_csim(a, tmp_path / "build")
    assert compiled and "-DBNNFLOW_PARAMS_FROM_STREAM" in log
    result = hlsflow.run_csim(a, build_dir=tmp_path / "build")
    assert not result.compiled and result.passed and result.mismatches == 0
    images, _, golden = read_vectors(a)
    check_layer_outputs(result.layer_outputs, a, images, "streamed parameters")

    paths = [tmp_path / name for name in ("in.bin", "golden.bin", "out.bin")]
    hlsflow.input_beats(a, images).tofile(paths[0])
    hlsflow.output_beats(a, golden).tofile(paths[1])
    proc = subprocess.run([str(binary), "infer", *map(str, paths)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1 and "FAIL" in proc.stdout, proc.stdout  # no power-on parameters: zeros


#: Overflow corners: 8-bit inputs against 8-bit sym (+-255) and int (+-127) weights, 255 thresholds, and a
#: 32-bit affine score (dot bound 4*255*127 = 129,540, affine_bits 15: |score| <= 16384*129,540 + 16384).
EXTREME_NETS = {
    "int8_affine32": Net(37, 8, (
        dict(mh=6, n_thresholds=255, **_sym(8)),
        dict(mh=4, n_thresholds=255, **_int(8)),
        dict(mh=4, kind=INT_S, affine_bits=15, **_int(8)),
    ), (F(2, 8), F(4, 3), F(2, 4))),
    "sym4_plain_int_score": Net(29, 4, (
        dict(mh=6, n_thresholds=15, **_int(4)),
        dict(mh=8, n_thresholds=3, **_sym(4)),
        dict(mh=4, kind=INT_S, **_sym(8)),
    ), (F(3, 7), F(8, 6), F(1, 5))),
    "xnor_affine": Net(40, 1, (
        dict(mh=12, kind=XNOR_T, n_thresholds=1),
        dict(mh=6, kind=XNOR_S, affine_bits=32 - 6),
    ), (F(4, 16), F(3, 5))),
    "xnor_plain": Net(40, 1, (
        dict(mh=12, kind=XNOR_T, n_thresholds=15),
        dict(mh=9, n_thresholds=1, **_int(8)),
        dict(mh=6, kind=XNOR_S),
    ), (F(4, 16), F(3, 5), F(2, 4))),
}


@pytest.mark.hls
@pytest.mark.parametrize("name", [n if n == "int8_affine32" else pytest.param(n, marks=pytest.mark.slow)
                                  for n in EXTREME_NETS])
def test_overflow_extremes(tmp_path, hls_toolchain, name):
    """All-maximum inputs against all-maximum and all-minimum weights: the scores sit exactly at their bounds."""
    net = EXTREME_NETS[name]
    a = v3_artifact(tmp_path / "a", net, seed=3, extremes=True)
    b = v3_artifact(tmp_path / "b", net, seed=4, extremes=True)
    images, _, golden = read_vectors(a)
    last = a.layers[-1]
    d = last.dot_bound()
    if last.affine_bits:
        m = 1 << (last.affine_bits - 1)
        corners = [-(m * d + m), m * d + m - 1]
        assert m * d + m == last.score_bound()
    else:
        corners = [d, -d]
    np.testing.assert_array_equal(golden[0, :2], corners)   # the golden model agrees the corner is reached
    assert -(1 << (last.output_bits - 1)) <= min(corners) and max(corners) < 1 << (last.output_bits - 1)
    if name == "int8_affine32":
        assert last.output_bits == 32 and corners == [-2_122_399_744, 2_122_399_743]
    run_reload(a, b, tmp_path / "build")


# -- the full sweep (slow) ---------------------------------------------------------------------------------
WEIGHTS = [_sym(1), _sym(2), _sym(4), _sym(8), _int(2), _int(4), _int(8)]
SWEEP_INPUT_BITS = (1, 2, 8)
SWEEP_THRESHOLDS = (1, 3, 15)
#: Thresholds whose output codes are the next layer's input bits (1, 2, 4, 8).
BRIDGE = {1: 1, 2: 3, 4: 15, 8: 255}


def sweep_nets(seed: int, per_net: int = 9) -> list[Net]:
    """Networks whose int_threshold layers cover weights x input_bits {1,2,8} x n_thresholds {1,3,15}.

    63 combinations, chained greedily: a layer reads what the one before
    writes, so where no combination is left for the current input width a
    bridge layer (random weights, the thresholds that give the width wanted)
    is put in between. Every network ends in one of the four score variants
    (int / XNOR, plain / affine) in turn; every layer's folding is drawn from
    (PE = SIMD = 1), (NF = SF = 1), a padded SIMD and a random one in turn.
    """
    rng = np.random.default_rng(seed)
    todo = [(w, b, n) for w in range(len(WEIGHTS)) for b in SWEEP_INPUT_BITS for n in SWEEP_THRESHOLDS]
    rng.shuffle(todo)
    scores = itertools.cycle([dict(kind=INT_S), dict(kind=INT_S, affine_bits=10), dict(kind=XNOR_S),
                              dict(kind=XNOR_S, affine_bits=12)])
    styles = itertools.cycle(["serial", "parallel", "padded", "random"])
    nets = []
    while todo:
        bits = todo[0][1]
        features = int(rng.integers(12, 33))
        mw, layers, folds = features, [], []

        def add(params: dict) -> None:
            nonlocal mw
            mh = int(rng.integers(3, 13))
            layers.append(dict(mh=mh, **params))
            style = next(styles)
            if style == "serial":
                fold = F(1, 1)
            elif style == "parallel":
                fold = F(mh, mw)
            else:
                divisors = [d for d in range(1, mh + 1) if mh % d == 0]
                padded = [s for s in range(2, mw) if mw % s]
                simd = int(rng.choice(padded)) if style == "padded" and padded else int(rng.integers(1, mw + 1))
                fold = F(int(rng.choice(divisors)), simd)
            folds.append(fold)
            mw = mh

        first_bits = bits
        while todo and len(layers) < per_net:
            here = [c for c in todo if c[1] == bits]
            if here:
                combo = here[0]
                todo.remove(combo)
                add(dict(n_thresholds=combo[2], **WEIGHTS[combo[0]]))
                bits = max(1, combo[2].bit_length())
            else:
                wanted = todo[0][1]
                add(dict(n_thresholds=BRIDGE[wanted], **WEIGHTS[int(rng.integers(len(WEIGHTS)))]))
                bits = wanted
        score = next(scores)
        if score["kind"] == XNOR_S and bits != 1:
            add(dict(n_thresholds=1, **WEIGHTS[int(rng.integers(len(WEIGHTS)))]))
        add(score if score["kind"] == XNOR_S else dict(score, **WEIGHTS[int(rng.integers(len(WEIGHTS)))]))
        nets.append(Net(features, first_bits, tuple(layers), tuple(folds)))
    return nets


def test_sweep_covers_every_combination():
    """The slow sweep's networks hold every (weights, input bits, thresholds) int layer and every score variant."""
    wanted = {(w["weight_bits"], w["weight_encoding"], b, n) for w in WEIGHTS for b in SWEEP_INPUT_BITS
              for n in SWEEP_THRESHOLDS}
    seen, scores = set(), set()
    for net in sweep_nets(0):
        bits = net.input_bits
        for layer in net.layers:
            kind = layer.get("kind", INT_T)
            if kind == INT_T:
                seen.add((layer["weight_bits"], layer["weight_encoding"], bits, layer["n_thresholds"]))
            if kind in (INT_S, XNOR_S):
                scores.add((kind, bool(layer.get("affine_bits"))))
            bits = max(1, layer.get("n_thresholds", 0).bit_length())
    assert wanted <= seen and len(wanted) == 63
    assert scores == {(INT_S, False), (INT_S, True), (XNOR_S, False), (XNOR_S, True)}


@pytest.mark.hls
@pytest.mark.slow
@pytest.mark.parametrize("index", range(len(sweep_nets(0))))
def test_v3_sweep_csim(tmp_path, hls_toolchain, index):
    net = sweep_nets(0)[index]
    a = v3_artifact(tmp_path / "a", net, seed=10 + index, n_vectors=24)
    b = v3_artifact(tmp_path / "b", net, seed=50 + index, n_vectors=8)
    check_outputs_vary(a, read_vectors(a)[0])
    run_reload(a, b, tmp_path / "build")


# -- format-2-shaped networks, the build cache, error reports ------------------------------------------------
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
    check_layer_outputs(result.layer_outputs, artifact, images, name)
    assert "mismatches=0 tlast_errors=0 format_errors=0 check_errors=0 -> PASS" in result.output
    checks = [line for line in result.output.splitlines() if line.startswith("CHECK ")]
    assert len(checks) >= 5 and all(line.endswith(": ok") for line in checks), checks

    again = hlsflow.run_csim(artifact, build_dir=tmp_path / "build")
    assert not again.compiled and again.binary == result.binary and again.passed


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


# -- the header's text ---------------------------------------------------------------------------------------
def _header_artifacts(tmp_path: Path) -> list[art.Artifact]:
    return ([_make(tmp_path / name, name, n_vectors=2) for name in ("pad100", "simd128_96", "pe1_simd1")]
            + [v3_artifact(tmp_path / name, net, seed=5, n_vectors=2) for name, net in V3_NETS.items()])


def _braced_ints(block: str) -> list[int]:
    return [int(v) for v in re.findall(r"(?<![\[\w])-?\d+(?![\]\w])", block)]


def test_header_holds_the_artifact_layout(tmp_path):
    """The header's text: weight literals are words_to_int of the K-bit codes, the neuron parameters the
    folded (PE, NF, N) thresholds or (PE, NF, 2) affine, in [PE][depth] order; one bnn::mvtu per layer whose
    arithmetic is the layer's parameters.

    This reads the text as Python would; what g++ and ap_int make of it is
    checked by tests/test_hls_wide.py (the memories read back from the binary).
    """
    for artifact in _header_artifacts(tmp_path):
        text = (artifact.root / artifact.manifest["hls"]["header"]).read_text()
        assert artifact.manifest["hls"]["header"] == hlsgen.HEADER and hlsgen.HEADER in artifact.manifest["files"]
        assert not re.search(r"^\s*#define\s+\w*\d", text, re.M), "no numbered #defines"
        assert text.count("bnn::mvtu<") == len(artifact.layers)
        for k, layer in enumerate(artifact.layers):
            words = packing.words_to_int(artifact.weight_lanes(k), layer.weight_bits)
            start = text.index(f" L{k}_weights[")
            got = [int(lit[0] or lit[1], 16) for lit in re.findall(r'0x([0-9a-f]+)u(?:ll)?|ap_uint<\d+>\("0x([0-9a-f]+)", 16\)',
                                                                   text[start:text.index("\n#endif", start)])]
            assert got == words
            if layer.weight_word_bits > 64:
                assert f'ap_uint<{layer.weight_word_bits}>("0x' in text   # without the prefix ap_int misreads "0b.."
            struct = text[text.index(f"struct L{k} {{"):text.index("};", text.index(f"struct L{k} {{"))]
            for key, value in (("NF", layer.nf), ("W_BITS", layer.weight_bits), ("N_THRESHOLDS", layer.n_thresholds),
                               ("A_BITS", layer.affine_bits), ("ACC_BITS", layer.acc_bits),
                               ("OUT_BITS", layer.output_bits)):
                assert re.search(rf"static constexpr unsigned {key} += {value};", struct), (k, key)
            mac = {"xnor": "bnn::MAC_XNOR", "int": "bnn::MAC_INT"}[layer.mac]
            enc = {art.SYM: "bnn::ENC_SYM", art.INT: "bnn::ENC_INT"}[layer.weight_encoding]
            assert f"= {mac};" in struct and f"= {enc};" in struct
            for folded, name in ((artifact.folded_thresholds(k), f"L{k}_thresholds"),
                                 (artifact.folded_affine(k), f"L{k}_affine")):
                opening = f" {name}\n#ifndef BNNFLOW_PARAMS_FROM_STREAM\n    = "   # hlsgen._power_on
                if folded is None:
                    assert opening not in text
                    continue
                start = text.index(opening)
                block = text[start + len(opening):text.index("\n#endif", start)]
                assert _braced_ints(block) == folded.reshape(-1).tolist()
            if layer.is_score and not layer.affine_bits:
                assert f"const bnn::Score<L{k}::OUT_BITS> L{k}_score = {{}};" in text
        # Deterministic: the same artifact gives the same bytes.
        assert hlsgen.render_header(artifact) == text


def test_load_path_follows_the_parameter_stream(tmp_path):
    """load_parameters() reads accel.param_segments in order, each into its memory with its field layout."""
    for artifact in _header_artifacts(tmp_path):
        text = (artifact.root / hlsgen.HEADER).read_text()
        loads = re.findall(r"bnn::(load_memory|load_grouped_memory)<kInBeatBits, L(\d+)::PE, ([^>]*)>"
                           r"\(in, L\d+_(weights|thresholds\.m_thresholds|affine\.m_affine),", text)
        memory = {"weights": "weights", "thresholds.m_thresholds": "thresholds", "affine.m_affine": "affine"}
        assert [(int(k), memory[m]) for _, k, _, m in loads] == [(s.layer, s.memory)
                                                                 for s in accel.param_segments(artifact)]
        for function, k, args, m in loads:
            expected = {"weights": f"L{k}::SIMD * L{k}::W_BITS, L{k}::NF * L{k}::SF",
                        "thresholds.m_thresholds": f"L{k}::N_THRESHOLDS, L{k}::T_BITS, L{k}::NF",
                        "affine.m_affine": f"2, L{k}::A_BITS, L{k}::NF"}[m]
            assert args == expected and (function == "load_memory") == (m == "weights")


def test_layer_without_hls_memory_is_refused(tmp_path, monkeypatch):
    """A parameter segment the engine has no memory for (or of another width) is an error naming it."""
    artifact = v3_artifact(tmp_path / "a", V3_NETS["ends_in_codes"], seed=1, n_vectors=2)
    segments = accel.param_segments(artifact)
    odd = [dataclasses.replace(segments[0], memory="biases")] + segments[1:]
    monkeypatch.setattr(accel, "param_segments", lambda _a: odd)
    with pytest.raises(art.ArtifactError, match=r"layer 0 \(xnor_threshold\): no HLS memory for parameter "
                                                r"segment 'biases'"):
        hlsgen.render_header(artifact)
    wide = [dataclasses.replace(segments[0], word_bits=segments[0].word_bits + 1)] + segments[1:]
    monkeypatch.setattr(accel, "param_segments", lambda _a: wide)
    with pytest.raises(art.ArtifactError, match=rf"layer 0: the weights segment of the parameter stream has "
                                                rf"{segments[0].word_bits + 1}-bit words, the HLS memory "
                                                rf"{segments[0].word_bits}-bit ones"):
        hlsgen.render_header(artifact)


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
