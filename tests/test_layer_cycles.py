"""Per-layer RTL cycles (bnnflow.layer_cycles): each layer cut out of an export and simulated alone.

The one-layer artifacts must reproduce the network's golden trace layer by
layer (checked here without a simulator, on conv and MLP nets), and each
layer's measured interval must equal its NF*SF*vectors model on both
simulators. `bnnflow verify --layer-cycles` on a trained conv net is in
tests/test_deploy_conv.py.
"""

from __future__ import annotations

import numpy as np
import pytest

from bnnflow import layer_cycles as lc
from bnnflow import verify
from bnnflow.golden import GoldenModel
from bnnflow.sim import toolchain
from bnnflow.testing import random_artifact
from bnnflow.writer import read_vectors

from test_rtl_conv_network import NETS, SLOW_NETS, make_net


@pytest.mark.parametrize("name", [*NETS, *SLOW_NETS])
def test_one_layer_artifacts_reproduce_the_network_layer_by_layer(name, tmp_path):
    """Each layer written alone (weights, thresholds, affine, conv geometry read back from the export) and fed
    the golden model's inputs of that layer gives exactly the network's outputs of that layer."""
    a = make_net(tmp_path / "net", name, generate=())
    images, _, _ = read_vectors(a)
    trace = GoldenModel(a).trace(images)
    inputs = lc.layer_inputs(a, images)
    for i, spec in enumerate(a.layers):
        one = lc.one_layer_artifact(a, i, inputs[i], tmp_path / f"L{i}", generate=())
        (layer,) = one.layers
        assert (layer.kind, layer.pe, layer.simd, layer.conv) == (spec.kind, spec.pe, spec.simd, spec.conv)
        assert layer.cycles_per_image == spec.cycles_per_image
        assert np.array_equal(one.weight_codes(0), a.weight_codes(i))
        _, _, stored = read_vectors(one)
        assert np.array_equal(stored, trace.outputs[i]), f"layer {i}"


def test_one_layer_artifacts_of_an_mlp(tmp_path):
    a = random_artifact(tmp_path / "net", seed=3, generate=())
    images, _, _ = read_vectors(a)
    trace = GoldenModel(a).trace(images)
    inputs = lc.layer_inputs(a, images)
    for i in range(len(a.layers)):
        one = lc.one_layer_artifact(a, i, inputs[i], tmp_path / f"L{i}", generate=())
        assert np.array_equal(read_vectors(one)[2], trace.outputs[i])
        assert lc.layer_shape(a.layers[i]) == f"FC {a.layers[i].in_features}->{a.layers[i].out_features}"


# (net, simulator), all under `slow`: in CI, tests/test_deploy_conv.py's trained conv net runs
# `verify --layer-cycles` on Icarus and checks every layer's row
MEASURED = [pytest.param(name, sim, id=f"{name}-{sim}", marks=pytest.mark.slow)
            for name in [*NETS, *SLOW_NETS] for sim in ("icarus", "verilator")]


@pytest.mark.rtl
@pytest.mark.parametrize("name, sim", MEASURED)
def test_each_layer_alone_runs_at_its_model_cycles(name, sim, tmp_path):
    """Every layer simulated alone, back to back: exactly NF*SF*vectors cycles per image, outputs == golden."""
    toolchain.pytest_require(sim)
    a = make_net(tmp_path / "net", name)
    images, _, _ = read_vectors(a)
    rows = lc.measure_layer_cycles(a, images[:lc.DEFAULT_IMAGES], sim=sim, scratch=tmp_path / "layers")
    assert [r.index for r in rows] == list(range(len(a.layers)))
    assert [r.model for r in rows] == [l.cycles_per_image for l in a.layers]
    assert [r.vectors for r in rows] == [l.pixels for l in a.layers]
    assert [r.measured for r in rows] == [float(r.model) for r in rows]
    assert all(r.outputs_equal_golden for r in rows)
    table = lc.format_table(rows, sim)
    assert table.splitlines()[-1] == "every layer within 5% of NF*SF*vectors"


def test_an_unknown_layer_is_refused(tmp_path):
    a = random_artifact(tmp_path / "net", seed=1, generate=())
    with pytest.raises(ValueError, match=rf"no layer 7 \(the export has layers 0\.\.{len(a.layers) - 1}\)"):
        lc.measure_layer_cycles(a, read_vectors(a)[0], layers=[7])


def test_verify_reports_a_layer_off_its_model(tmp_path, monkeypatch, capsys):
    """A layer measured more than 5% off its model, or with outputs unlike golden's, is a verify error."""
    rows = [lc.LayerCycles(0, "int_threshold", "8x8x1 8C3 pad1 MP2", 64, 576, 576.0, True),
            lc.LayerCycles(1, "xnor_threshold", "4x4x8 16C3 pad1", 16, 144, 152.0, True),
            lc.LayerCycles(2, "xnor_score", "FC 256->10", 1, 8, 8.0, False)]
    monkeypatch.setattr(lc, "measure_layer_cycles", lambda *args, **kwargs: rows)
    errors = verify._print_layer_cycles(None, np.zeros((4, 64), np.uint8), "icarus")
    assert errors == [
        "layer 1 simulated alone on icarus: 152.0 cycles per image, 1.056x its NF*SF*vectors model (144), "
        "more than 5% apart",
        "layer 2 simulated alone on icarus: its outputs differ from the golden model's"]
    out = capsys.readouterr().out
    assert "layer(s) 1 differ from NF*SF*vectors by more than 5%" in out
    assert "1      xnor_threshold  4x4x8 16C3 pad1" in out
