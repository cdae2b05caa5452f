"""bnn_mvtu against the golden model, on Icarus and Verilator, over the format-v3 layer parameters.

Each case builds a seeded random one-layer artifact through the writer
(:func:`bnnflow.sim.units.single_layer_artifact`: weight bits and encoding,
input bits, thresholds per neuron, score affine, folding), runs the unit with
random source idle and sink backpressure -- the testbench checks every output
word and TLAST against :class:`bnnflow.golden.GoldenModel` -- then a
back-to-back phase whose measured cycles per vector must equal NF*SF. The
test asserts the whole output of every vector once more against the golden
scores, and for ``extremes`` cases that the accumulators reached the
manifest's bounds exactly (all inputs at their maximum against all-largest and
all-smallest weight rows; thresholds at acc_lo .. acc_hi + 1).
"""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np
import pytest

from bnnflow import artifact as art
from bnnflow.golden import GoldenModel
from bnnflow.sim import toolchain
from bnnflow.writer import read_vectors
from conftest import on_both_simulators

SIMS = ["icarus", "verilator"]


def case(case_id: str, kind: str, mw: int, mh: int, pe: int, simd: int, *, input_bits: int = 1,
         weight_bits: int = 1, weight_encoding: str = art.SYM, n_thresholds: int = 1, affine_bits: int = 0,
         extremes: bool = False) -> Any:
    """One unit configuration as a pytest param (a dict of single_layer_artifact's arguments)."""
    return pytest.param(dict(kind=kind, mw=mw, mh=mh, pe=pe, simd=simd, input_bits=input_bits,
                             weight_bits=weight_bits, weight_encoding=weight_encoding,
                             n_thresholds=n_thresholds if kind.endswith("_threshold") else 0,
                             affine_bits=affine_bits, extremes=extremes), id=case_id)


FAST = [
    # xnor: today's popcount lanes; N = 1 and a 3-threshold bank; padding 37 -> 40; NF = SF = 1
    case("xnor-thr-mw37pad40-pe3-simd8", art.XNOR_THRESHOLD, 37, 12, 3, 8),
    case("xnor-thr-n3-nf1-sf1-extremes", art.XNOR_THRESHOLD, 16, 8, 8, 16, n_thresholds=3, extremes=True),
    # int, K = 1 sym: today's add/subtract lanes
    case("int-k1-a5-mw100pad128-pe4-simd32", art.INT_THRESHOLD, 100, 16, 4, 32, input_bits=5),
    # int, K > 1: multiplier lanes, both encodings, N up to 255, SIMD = 1 and SIMD = MW
    case("int-k4sym-a2-n3-pad32", art.INT_THRESHOLD, 30, 8, 2, 4, input_bits=2, weight_bits=4, n_thresholds=3),
    case("int-k8int-a8-n15-sf1-extremes", art.INT_THRESHOLD, 32, 8, 4, 32, input_bits=8, weight_bits=8,
         weight_encoding=art.INT, n_thresholds=15, extremes=True),
    case("int-k2int-a1-n255-simd1", art.INT_THRESHOLD, 9, 5, 5, 1, weight_bits=2, weight_encoding=art.INT,
         n_thresholds=255),
    # scores: xnor dot with an affine at PE = SIMD = 1; int dot with and without an affine
    case("xnor-score-affine8-pe1-simd1-extremes", art.XNOR_SCORE, 20, 10, 1, 1, affine_bits=8, extremes=True),
    case("int-score-k4int-a8-affine10-extremes", art.INT_SCORE, 24, 6, 3, 8, input_bits=8, weight_bits=4,
         weight_encoding=art.INT, affine_bits=10, extremes=True),
    case("int-score-k2sym-a2-pad24", art.INT_SCORE, 21, 4, 2, 8, input_bits=2, weight_bits=2),
]

#: FAST cases that also run on Verilator in the default suite (a cold Verilator build each): the K = 1
#: add/subtract layer with multi-bit input and padding, the widest multiplier layer (8-bit codes x 8-bit
#: inputs, 15 thresholds, the overflow corners) and the affine score at PE = SIMD = 1 (1-bit buses).
#: Icarus runs every FAST case; the others reach Verilator in the slow sweep.
VERILATOR_FAST = ("int-k1-a5-mw100pad128-pe4-simd32", "int-k8int-a8-n15-sf1-extremes",
                  "xnor-score-affine8-pe1-simd1-extremes")

#: (MW, MH, PE, SIMD) of the sweep: SIMD = MW, SIMD = 1, padding, NF = 1, PE = 1 with padding
SWEEP_FOLDINGS = [(24, 6, 3, 24), (13, 4, 2, 1), (30, 8, 4, 8), (20, 6, 6, 5), (33, 6, 1, 16)]


def _sweep() -> list[Any]:
    """The wide sweep: weight_bits {1,2,4,8} x {sym, int} x input_bits {1,2,8} x N {1,3,15} (int_threshold),
    then the xnor kinds and the score layers; foldings rotate, every other case is an extremes case."""
    configs = []
    for k, enc, ib, n in itertools.product((1, 2, 4, 8), (art.SYM, art.INT), (1, 2, 8), (1, 3, 15)):
        if enc == art.INT and k < 2:
            continue
        configs.append((f"int-k{k}{enc}-a{ib}-n{n}", art.INT_THRESHOLD,
                        dict(input_bits=ib, weight_bits=k, weight_encoding=enc, n_thresholds=n)))
    for n in (1, 3, 15):
        configs.append((f"xnor-thr-n{n}", art.XNOR_THRESHOLD, dict(n_thresholds=n)))
    for ab in (0, 2, 26):          # 26: 2^25*(MW+1) -> scores of up to 31 bits
        configs.append((f"xnor-score-affine{ab}", art.XNOR_SCORE, dict(affine_bits=ab)))
    for k, enc, ib, ab in ((1, art.SYM, 8, 0), (2, art.INT, 1, 12), (4, art.SYM, 2, 0), (8, art.INT, 8, 11),
                           (8, art.SYM, 8, 0), (3, art.INT, 4, 8)):   # K8 int x 8-bit x 11-bit affine: ~32-bit scores
        configs.append((f"int-score-k{k}{enc}-a{ib}-affine{ab}", art.INT_SCORE,
                        dict(input_bits=ib, weight_bits=k, weight_encoding=enc, affine_bits=ab)))
    cases = []
    for i, (name, kind, kw) in enumerate(configs):
        mw, mh, pe, simd = SWEEP_FOLDINGS[i % len(SWEEP_FOLDINGS)]
        extremes = i % 2 == 0
        cases.append(case(f"{name}-mw{mw}-pe{pe}-simd{simd}{'-extremes' if extremes else ''}", kind, mw, mh, pe,
                          simd, extremes=extremes, **kw))
    return cases


SWEEP = _sweep()
#: Sweep cases on Verilator too (every fifth: each is a cold build); all of them run on Icarus.
SWEEP_VERILATOR = tuple(c.id for c in SWEEP[::5])


def check_mvtu(tmp_path, sim: str, params: dict[str, Any], seed: int = 0) -> None:
    from bnnflow.sim.units import run_mvtu, single_layer_artifact

    toolchain.pytest_require(sim)
    a = single_layer_artifact(tmp_path / "a", seed=seed, **params)
    layer = a.layers[0]
    images, _, _ = read_vectors(a)
    result = run_mvtu(a, images, sim, seed=seed)

    golden = GoldenModel(a)
    np.testing.assert_array_equal(np.array(result["scores"]), golden.scores(images))
    expected = layer.nf * layer.sf
    assert expected <= result["cycles_per_vector"] <= expected * 1.02 + 0.5, (
        f"measured {result['cycles_per_vector']} cycles/vector, NF*SF = {expected}")

    trace = golden.trace(images)
    out = trace.outputs[0]
    if layer.has_thresholds:   # the always-on and always-off neurons give both ends of the count
        assert out.min() == 0 and out.max() == layer.n_thresholds, (out.min(), out.max())
    if params["extremes"]:
        acc = trace.accumulators[0]
        if layer.in_features == layer.in_features_padded:   # padded lanes add nothing: the bound is unreachable
            assert (acc.min(), acc.max()) == layer.acc_range(), ((acc.min(), acc.max()), layer.acc_range())
        if layer.affine_bits:   # mul = add = -2^(AB-1) against the largest dot
            assert out.min() == -layer.score_bound(), (out.min(), layer.score_bound())


@pytest.mark.rtl
@pytest.mark.parametrize("sim,params", on_both_simulators(FAST, SIMS, VERILATOR_FAST))
def test_mvtu(tmp_path, sim, params):
    check_mvtu(tmp_path, sim, params)


@pytest.mark.rtl
@pytest.mark.slow
@pytest.mark.parametrize("sim,params", [pytest.param(sim, *c.values, id=f"{c.id}-{sim}") for c in SWEEP
                                         for sim in SIMS if sim == "icarus" or c.id in SWEEP_VERILATOR])
def test_mvtu_sweep(tmp_path, sim, params):
    check_mvtu(tmp_path, sim, params, seed=3)
