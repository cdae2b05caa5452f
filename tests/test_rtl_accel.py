"""The generated accelerator ``bnnflow_accel`` against docs/ACCEL.md, through real AXI bus models.

Each case builds one accelerator (cached; a Verilator build is the expensive
part) and runs a list of scenarios of :mod:`bnnflow.sim.tb_accel` in one
simulation: reps = 0 and the signature, the interrupt, inference with the
power-on parameters under random source idle and sink backpressure, the
steady-state cycles per image, format errors (a padding bit, a TKEEP bit), a
bad mode, loading another artifact of the same signature and loading back,
a load whose TLAST comes early, auto_restart. The tb records what the
hardware did; the assertions here compare it with the golden model and the
register contract, whole arrays and whole register values.
``test_accel_v3_load`` runs the power-on, timing and load scenarios on a
format-v3 net (K-bit sym and int weights, a threshold bank, an affine score).
"""

from __future__ import annotations

import numpy as np
import pytest

from bnnflow import accel, testing
from bnnflow import artifact as art
from bnnflow.folding import LayerFolding as F
from bnnflow.golden import GoldenModel
from bnnflow.sim import toolchain
from bnnflow.testing import random_artifact
from bnnflow.writer import read_vectors, write_artifact

SIMS = ["icarus", "verilator"]

#: the completing poll of a run: ap_done, ap_idle and ap_ready; the next read: ap_idle only
DONE = accel.AP_DONE | accel.AP_IDLE | accel.AP_READY

ALL = ["signature", "interrupt", "infer_random", "infer_timing", "format_padding", "format_tkeep",
       "infer_data_first", "bad_mode", "load_alt", "load_early_tlast", "load_own", "auto_restart"]


def _artifacts(tmp_path, features, hidden, classes, bits, folding, seed=0):
    """The build's artifact (with RTL) and another of the same shapes and folding (other parameters)."""
    kw = dict(input_features=features, hidden=hidden, classes=classes, input_bits=bits, folding=folding, n_vectors=8)
    a = random_artifact(tmp_path / "a", seed=seed, generate=("rtl",), **kw)
    b = random_artifact(tmp_path / "b", seed=seed + 100, generate=(), **kw)
    assert accel.signature(a) == accel.signature(b)
    assert not np.array_equal(accel.param_stream(a), accel.param_stream(b))
    return a, b


def _finished(run, status=0, signature=None):
    """A run's end as the driver sees it: ap_done once, then idle; STATUS and SIGNATURE valid once."""
    assert (run["done"], run["after"]) == (DONE, accel.AP_IDLE), (
        f"control register at the end 0x{run['done']:02x}, then 0x{run['after']:02x}")
    assert run["status"] == status, (f"STATUS 0x{run['status']:x} ({accel.describe_status(run['status'])}), "
                                     f"expected 0x{status:x} ({accel.describe_status(status)})")
    assert run["status_vld"] == run["signature_vld"] == [accel.AP_VLD, 0]
    if signature is not None:
        assert run["signature"] == signature


def _infer(run, expected, status=0, signature=None):
    _finished(run, status, signature)
    if "before_data" in run:
        assert run["before_data"] == accel.AP_START and run["running"] in ([], [accel.AP_START])
    np.testing.assert_array_equal(np.asarray(run["scores"], dtype=np.int64), expected)


def check_scenarios(result, a, b, images, scenarios):
    """Every recorded scenario against the golden model and docs/ACCEL.md."""
    golden_a, golden_b = GoldenModel(a).scores(images), GoldenModel(b).scores(images)
    sig = accel.signature(a)
    runs = result["scenarios"]
    assert list(runs) == scenarios
    assert result["beat_errors"] == []
    assert result["input_left"] == 0
    for name, run in runs.items():
        if name == "signature":
            assert (run["signature_at_reset"], run["ctrl_at_reset"], run["unmapped"]) == (0, accel.AP_IDLE, 0)
            assert run["register_mismatches"] == []
            assert min(run["write_order"].values()) > 0, run["write_order"]   # AW first, W first and together
            assert (run["reps_strobed"], run["mode_rw"]) == (0x11AB3344, 0x5A5A0001)
            assert run["running"] == []
            _finished(run, 0, sig)
        elif name == "interrupt":
            _finished(run, 0, sig)
            assert (run["isr"], run["irq_pin"], run["isr_after"], run["irq_pin_after"]) == (1, 1, 0, 0)
        elif name == "infer_random":
            _infer(run, golden_a, 0, sig)
            assert run["frame_images"] == run["groups"]    # one output packet per input packet
        elif name == "infer_timing":
            _infer(run, golden_a[[i % len(images) for i in range(run["images"])]], 0, sig)
            inp, out = accel.input_stream(a), accel.output_stream(a)
            bound = max(max(l.nf * l.sf for l in a.layers), inp.words_per_image * inp.beats_per_word,
                        out.words_per_image * out.beats_per_word)
            assert bound <= run["cycles_per_image"] <= bound * 1.02 + 0.5, (
                f"measured {run['cycles_per_image']} cycles/image, expected {bound}")
        elif name in ("format_padding", "format_tkeep"):
            if "skipped" in run:
                assert accel.input_stream(a).word_bytes * 8 == accel.input_stream(a).word_bits
                continue
            _infer(run, golden_a[:2], accel.STATUS_FORMAT_ERROR, sig)   # the word still reaches the engine
        elif name == "infer_data_first":
            assert run["tready_before_start"] == 0
            _infer(run, golden_a[:3], 0, sig)
        elif name == "bad_mode":
            _finished(run, accel.STATUS_BAD_MODE, sig)
            _infer(run["then"], golden_a[:1], 0, sig)                   # nothing was consumed
        elif name in ("load_alt", "load_early_tlast", "load_own"):
            status = accel.STATUS_LOAD_LENGTH_ERROR if name == "load_early_tlast" else 0
            _finished(run, status, sig)
            assert run["param_beats"] == accel.param_beats(a) and run["output_frames"] == 0
            # the early TLAST run still got every word right (it loads a's own stream)
            _infer(run["then"], golden_b if name == "load_alt" else golden_a, 0, sig)
        elif name == "auto_restart":
            assert run["ctrl_between"] == accel.AP_START | accel.AP_DONE | accel.AP_READY | accel.AUTO_RESTART
            assert run["ctrl_after_clear"] == accel.AP_START
            _finished(run, 0, sig)
            assert run["ctrl_end"] == accel.AP_IDLE
            np.testing.assert_array_equal(np.asarray(run["scores"], dtype=np.int64), golden_a[:4])
        else:
            raise AssertionError(f"no check for scenario {name}")


def check_accel(tmp_path, sim, features, hidden, classes, bits, folding, scenarios, seed=0):
    from bnnflow.sim.units import run_accel

    toolchain.pytest_require(sim)
    a, b = _artifacts(tmp_path, features, hidden, classes, bits, folding, seed)
    images, _, _ = read_vectors(a)
    result = run_accel(a, images, sim, scenarios, alt=b, seed=seed)
    check_scenarios(result, a, b, images, scenarios)
    return result


@pytest.mark.rtl
@pytest.mark.parametrize("sim", SIMS)
def test_accel_contract(tmp_path, sim):
    """Every scenario on a digits-like net: 160-bit input words in 256-bit beats, 70-bit scores in 128-bit beats."""
    check_accel(tmp_path, sim, 64, (64, 32), 10, 5, None, ALL)


# (features, hidden, classes, input bits, folding)
ODD = [
    # 784 inputs (8-bit, 128-bit words fill 128-bit beats), 10 scores of 6 bits in 64-bit beats
    pytest.param(784, (16,), 10, 8, [F(16, 16), F(10, 16)], id="in784-out10"),
    # 1500-bit input words and 1050-bit score words: two 1024-bit beats each; weight words of 2400 and
    # 4800 bits are 3 and 5 beats of the parameter stream
    pytest.param(300, (32,), 150, 5, [F(8, 300), F(150, 32)], id="multi-beat-words"),
]
SLOW = [
    pytest.param(30, (), 4, 3, [F(2, 4)], id="one-layer"),
    pytest.param(20, (12,), 3, 1, [F(3, 8), F(1, 5)], id="binary-input-pad"),
    pytest.param(50, (40, 24, 16), 6, 4, [F(1, 1), F(8, 16), F(8, 24), F(6, 16)], id="deep-mixed"),
    pytest.param(1100, (16,), 10, 1, [F(4, 1100), F(10, 16)], id="binary-1100-bit-words"),
]


@pytest.mark.rtl
@pytest.mark.parametrize("features,hidden,classes,bits,folding", ODD)
def test_accel_odd_shapes(tmp_path, features, hidden, classes, bits, folding):
    """Icarus here (a build takes a second); the Verilator builds of these tops are in the slow sweep."""
    check_accel(tmp_path, "icarus", features, hidden, classes, bits, folding, ALL)


@pytest.mark.rtl
@pytest.mark.slow
@pytest.mark.parametrize("sim,features,hidden,classes,bits,folding",
                         [pytest.param("verilator", *p.values, id=f"{p.id}-verilator") for p in ODD]
                         + [pytest.param(sim, *p.values, id=f"{p.id}-{sim}") for p in SLOW for sim in SIMS])
def test_accel_shape_sweep(tmp_path, sim, features, hidden, classes, bits, folding):
    check_accel(tmp_path, sim, features, hidden, classes, bits, folding, ALL, seed=3)


#: A format-v3 net whose parameter stream carries every memory kind in words of 1 and 2 beats (64-bit beats:
#: the input word is 16 x 3 bits): 100 3-bit inputs (padded to 112) -> 48 neurons of 4-bit sym weights
#: (multiplier lanes; 128-bit weight words) with 3 thresholds each (2-bit outputs; 90-bit threshold words)
#: -> 16 of ternary int weights (96-bit words) and 1 threshold (36-bit words) -> 10 int scores of 3-bit sym
#: weights with a 12-bit affine (120-bit weight and (mul, add) words). Small on purpose: the Verilator build
#: is most of the test's cost.
V3_STACK = [dict(mh=48, weight_bits=4, n_thresholds=3),
            dict(mh=16, weight_bits=2, weight_encoding=art.INT),
            dict(mh=10, kind=art.INT_SCORE, weight_bits=3, affine_bits=12)]
V3_FOLDING = [F(2, 16), F(4, 12), F(5, 8)]


def v3_artifact(out_dir, seed: int, generate: tuple[str, ...] = ("rtl",), n_vectors: int = 8) -> art.Artifact:
    """One seeded random :data:`V3_STACK` net (same hardware signature for every seed)."""
    rng = np.random.default_rng(seed)
    layers = testing.random_stack(rng, 100, 3, V3_STACK)
    images = rng.integers(0, 8, size=(n_vectors, 100), dtype=np.uint8)
    network = {"name": f"v3_{seed}", "input_features": 100, "input_shape": [100], "input_bits": 3,
               "num_classes": 10, "method": "random", "dataset": "random"}
    return write_artifact(out_dir, network, layers, V3_FOLDING, vectors=(images, np.zeros(n_vectors)),
                          generate=generate)


@pytest.mark.rtl
@pytest.mark.parametrize("sim", SIMS)
def test_accel_v3_load(tmp_path, sim):
    """Format v3 through the accelerator: the power-on parameters (weight codes of K bits, threshold banks,
    an affine) under random idle and backpressure, the back-to-back interval (the slowest layer's NF*SF: the
    multiplier lanes and compare banks keep II = 1), a run-time load of another net of the same signature,
    its inference, and back. Every score of every image is compared with the golden model."""
    from bnnflow.sim.units import run_accel

    toolchain.pytest_require(sim)
    a = v3_artifact(tmp_path / "a", seed=5)
    b = v3_artifact(tmp_path / "b", seed=105, generate=())
    assert accel.signature(a) == accel.signature(b)
    assert not np.array_equal(accel.param_stream(a), accel.param_stream(b))
    # the stream's segments: (layer, memory, words, word bits, beats per word) as the comment of V3_STACK says
    assert [(s.layer, s.memory, s.words, s.word_bits, s.beats_per_word) for s in accel.param_segments(a)] == [
        (0, "weights", 24 * 7, 128, 2), (0, "thresholds", 24, 90, 2), (1, "weights", 4 * 4, 96, 2),
        (1, "thresholds", 4, 36, 1), (2, "weights", 2 * 2, 120, 2), (2, "affine", 2, 120, 2)]
    images, _, golden = read_vectors(a)
    assert not np.array_equal(GoldenModel(b).scores(images), golden)   # the load changes the scores
    scenarios = ["infer_random", "infer_timing", "load_alt", "load_own"]
    result = run_accel(a, images, sim, scenarios, alt=b, seed=5, timing_images=len(images))   # 8 back to back
    check_scenarios(result, a, b, images, scenarios)
