"""Conv nets deploy: golden model (on the written artifact) == the quantized torch reference, integer sums too.

A convolution runs as the matrix-vector unit on im2col vectors (bnnflow.conv), its BatchNorm folds into
thresholds per output channel, a max-pool acts on the output codes, and the fully connected layer after
the flatten reads the map pixel-major. Randomly initialised models (negative and zero gammas) stand in
for trained ones so every path -- negated channels, constant channels, +1 padding of sign inputs -- is hit.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from bnnflow import artifact as art
from bnnflow.cli import main
from bnnflow.datasets import load_dataset
from bnnflow.export import deployed_network, layer_data
from bnnflow.folding import default_folding
from bnnflow.golden import GoldenModel
from bnnflow.model.deploy import DeployError
from bnnflow.writer import write_artifact
from test_deploy import randomized

ARCH = "6C3-MP2-8C3-FC16"


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits", 0)


def conv_config(**kw):
    base = {"dataset": "digits", "input_features": 64, "input_shape": [8, 8], "input_bits": 5, "num_classes": 10,
            "arch": ARCH, "split_seed": 0, "seed": 1, "epochs": 1, "batch_size": 64}
    return dict(base, **kw)


def write(net, data, root, config) -> art.Artifact:
    channels = [d.conv.channels if d.conv else None for d in data]
    return write_artifact(root, {"name": "conv", "input_features": 64, "input_shape": [8, 8], "input_bits": 5,
                                 "num_classes": 10, "deployment": net.constants},
                          data, default_folding([d.shape for d in data], channels=channels), generate=())


def assert_golden_equals_reference(net, data, artifact, images):
    """Scores, every layer's (pooled) codes, and every pixel's accumulators (from the reference's dots)."""
    golden = GoldenModel(artifact).trace(images)
    ref = net.trace(images)
    for k, (layer, d) in enumerate(zip(net.layers, data)):
        pixels = artifact.layers[k].pixels
        dots = ref.dots[k]
        assert dots.shape == golden.accumulators[k].shape == (len(images), pixels * d.shape[1])
        mw = layer.weights.shape[1]
        if d.kind.startswith("int"):
            expected_acc = dots
        elif layer.mac == "xnor":                       # bipolar inputs: dot = 2*popcount - MW
            expected_acc = (dots + mw) // 2
        else:                                           # 0/1 inputs on the XNOR lanes: popcount = dot + #(-1)
            expected_acc = dots + np.tile((layer.weights.numpy() < 0).sum(axis=1), pixels)
        assert np.array_equal(golden.accumulators[k], expected_acc), f"layer {k} accumulators differ"
        assert np.array_equal(golden.outputs[k], ref.outputs[k]), f"layer {k} outputs differ"
    assert np.array_equal(golden.scores, ref.scores)


# (settings, expected (kind, conv pad_code, pool) per layer)
CONV_SETTINGS = [
    ({"method": "bnn"}, [("int_threshold", 0, 2), ("xnor_threshold", 1, 0), ("xnor_threshold", None, None),
                         ("xnor_score", None, None)]),
    ({"method": "dorefa"}, [("int_threshold", 0, 2), ("int_threshold", 0, 0), ("int_threshold", None, None),
                            ("int_score", None, None)]),
    ({"method": "dorefa", "wbits": 1, "abits": 1},
     [("int_threshold", 0, 2), ("xnor_threshold", 0, 0), ("xnor_threshold", None, None), ("int_score", None, None)]),
    ({"method": "binaryconnect"}, [("int_threshold", 0, 2), ("int_threshold", 0, 0), ("int_threshold", None, None),
                                   ("int_score", None, None)]),
    ({"method": "wage"}, [("int_threshold", 0, 2), ("int_threshold", 0, 0), ("int_threshold", None, None),
                          ("int_score", None, None)]),
]


@pytest.mark.parametrize("kw, expected", CONV_SETTINGS, ids=["bnn", "dorefa", "dorefa-W1A1", "binaryconnect", "wage"])
def test_conv_net_golden_equals_reference(kw, expected, digits, tmp_path, one_thread):
    config = conv_config(**kw)
    model = randomized(config, digits)
    net = deployed_network(model, config, digits)
    data = layer_data(net)
    got = [(d.kind, d.conv.pad_code if d.conv else None, d.conv.pool if d.conv else None) for d in data]
    assert got == expected
    assert data[0].conv == art.ConvSpec(8, 8, 1, 3, 1, 0, 2) and data[1].conv.ifm_h == 4
    assert data[2].shape == (4 * 4 * 8, 16)                          # the FC reads the 4x4x8 map
    if kw["method"] != "wage":
        assert sum(d.negated_neurons for d in data[:2]) > 0      # negative gammas: negated channels
    artifact = write(net, data, tmp_path / "export", config)
    assert artifact.layers[0].is_conv and artifact.layers[0].cycles_per_image == 64 * artifact.layers[0].sf * \
        artifact.layers[0].nf
    assert_golden_equals_reference(net, data, artifact, digits.x_test)
    # the stored constants rebuild the same network without the training data
    again = deployed_network(model, config, constants=artifact.network["deployment"])
    assert np.array_equal(again.scores(digits.x_test[:50]), net.scores(digits.x_test[:50]))


def test_reference_equals_the_bnn_conv_model(digits, one_thread):
    """Nothing is calibrated in a BNN: the deployed reference predicts what the torch model predicts, on
    every image -- the +1 padding of sign inputs and the pooled codes included."""
    config = conv_config(method="bnn")
    model = randomized(config, digits, seed=3)
    ref = deployed_network(model, config, digits).scores(digits.x_test)
    with torch.no_grad():
        logits = model(torch.from_numpy(digits.x_test.astype(np.float32))).numpy()
    assert (ref.argmax(1) == logits.argmax(1)).mean() == 1.0


def test_sign_inputs_pad_with_plus_one():
    """QuantConv2d(pad_value=1) is the conv of the sign map framed by +1, what the XNOR engine computes."""
    from bnnflow.model.layers import QuantConv2d
    torch.manual_seed(0)
    layer = QuantConv2d(3, 4, 3, padding=1, weight_quant="ste_sign", input_quant="ste_sign", pad_value=1.0)
    x = torch.randn(2, 3, 5, 5)
    xs = torch.where(x >= 0, 1.0, -1.0)
    want = torch.nn.functional.conv2d(torch.nn.functional.pad(xs, (1, 1, 1, 1), value=1.0),
                                      torch.where(layer.weight >= 0, 1.0, -1.0))
    assert torch.equal(layer(x), want)


def test_export_and_verify_cli_on_a_trained_conv_net(tmp_path, capsys, one_thread):
    run = tmp_path / "run"
    assert main(["train", "--dataset", "digits", "--method", "bnn", "--arch", "4C3-MP2-8C3-FC16", "--epochs", "1",
                 "--seed", "2", "--out", str(run), "--quiet"]) == 0
    assert main(["export", str(run), "--generate", "none"]) == 0
    out = capsys.readouterr().out
    assert "NF*SF*pixels=1*9*64=576 cycles  conv 3x3 pad 1 on 8x8x1, max-pool 2" in out     # layer 0: 4 channels
    assert main(["verify", str(run), "--against", "golden"]) == 0
    out = capsys.readouterr().out
    assert "PASS: every level matches torch" in out
    manifest = art.load(run / "export").manifest
    assert manifest["format_version"] == 4 and manifest["layers"][0]["conv"]["pool"] == 2
    assert "conv" not in manifest["layers"][2]
    from bnnflow.fold import LayerKind, network_layers      # a conv run folds through its export
    layers, what = network_layers(run)
    assert what == f"run {run} (layers of its export)"
    assert layers == [LayerKind.of(s) for s in art.load(run / "export").layers]
    assert [l.conv is not None for l in layers] == [True, True, False, False]


@pytest.mark.parametrize("kw, message", [
    ({"method": "xnor"}, r"layer 0, channel \d+: the modules after its max-pool \(BatchNorm2d, XnorSignQuantizer\) "
                         r"decrease for this channel"),
    ({"method": "xnor", "arch": "4C3-FC16"},
     r"layer 0: BatchNorm1d\(256\) normalizes the flattened map feature by feature"),
    ({"method": "bnn", "input_shape": [1, 8, 8], "arch": "4C3-FC8"}, None),
])
def test_conv_models_the_engines_cannot_run_are_refused(kw, message, digits):
    config = conv_config(**kw)
    model = randomized(config, digits)
    if message is None:                                  # (1, 8, 8) is the same single-channel image: fine
        deployed_network(model, config, digits)
        return
    with pytest.raises(DeployError, match=message):
        deployed_network(model, config, digits)


def test_decreasing_modules_after_a_pool_are_refused():
    """XNOR-Net pools before its BatchNorm: a negative gamma there makes the pool of codes differ."""
    from bnnflow.model.deploy import deploy
    from bnnflow.model.layers import QuantConv2d
    from bnnflow.model.quantizers import SignQuantizer

    class Net(torch.nn.Module):
        image_shape = [1, 4, 4]

        def __init__(self):
            super().__init__()
            torch.manual_seed(0)
            self.conv = QuantConv2d(1, 2, 3, padding=1, weight_quant="ste_sign")
            self.bn = torch.nn.BatchNorm2d(2).eval()
            with torch.no_grad():
                self.bn.weight[:] = torch.tensor([1.0, -1.0])
            self.fc = torch.nn.Linear(8, 10, bias=False)

        def deployment_chain(self):
            return 1.0, [self.conv, torch.nn.MaxPool2d(2), self.bn, SignQuantizer(), torch.nn.Flatten(), self.fc]

    with pytest.raises(DeployError, match=r"layer 0, channel 1: the modules after its max-pool \(BatchNorm2d, "
                                          r"SignQuantizer\) decrease"):
        deploy(Net(), 3)


@pytest.mark.parametrize("layer, edit, message", [
    (0, lambda c: c.update(pad=3), r"layers\[0\]: field 'conv.pad' is 3, expected 0..kernel-1 = 2"),
    (0, lambda c: c.update(channels=2), r"field 'in_features' is 9, a 3x3 window over 2 channels has 18"),
    (0, lambda c: c.update(pool=1), r"field 'conv.pool' is 1: use 0 for no pool"),
    (0, lambda c: c.update(stride=2), r"layers\[0\]: conv: unknown field 'stride'"),
    (0, lambda c: c.update(ifm_h=7), r"layers\[0\]'s input map \(conv.ifm_h\*ifm_w\*channels\)=56 but "
                                     r"network.input_features=64"),
    (1, lambda c: c.update(ifm_h=2, ifm_w=8), r"layers\[1\] reads a 2x8x6 map, layers\[0\] produces 4x4x6"),
])
def test_bad_conv_fields_are_refused_by_name(digits, tmp_path, layer, edit, message, one_thread):
    import json

    config = conv_config(method="bnn")
    net = deployed_network(randomized(config, digits), config, digits)
    artifact = write(net, layer_data(net), tmp_path / "export", config)
    manifest_path = artifact.root / art.MANIFEST
    manifest = json.loads(manifest_path.read_text())
    edit(manifest["layers"][layer]["conv"])
    manifest_path.write_text(json.dumps(manifest))
    with pytest.raises(art.ArtifactError, match=message):
        art.load(artifact.root, check_model=False)


# (dataset, train flags, simulator): a trained conv net through golden, RTL and HLS on both datasets and both
# simulators; digits on Icarus in CI, the other three under `slow`.
TRAINED_CONV = [
    pytest.param("digits", ["--method", "bnn", "--arch", "4C3-MP2-8C3-FC16"], "icarus", id="digits-bnn-icarus"),
    pytest.param("idx", ["--method", "dorefa", "--wbits", "2", "--abits", "2", "--arch", "4C3V-MP2-8C3V-MP2-FC16"],
                 "verilator", id="idx28-dorefa-verilator", marks=pytest.mark.slow),
    pytest.param("digits", ["--method", "bnn", "--arch", "4C3-MP2-8C3-FC16"], "verilator",
                 id="digits-bnn-verilator", marks=pytest.mark.slow),
    pytest.param("idx", ["--method", "dorefa", "--wbits", "2", "--abits", "2", "--arch", "4C3V-MP2-8C3V-MP2-FC16"],
                 "icarus", id="idx28-dorefa-icarus", marks=pytest.mark.slow),
]


@pytest.mark.rtl
@pytest.mark.hls
@pytest.mark.parametrize("dataset, flags, sim", TRAINED_CONV)
def test_trained_conv_net_verifies_at_every_level(dataset, flags, sim, idx_dir, tmp_path, capsys, hls_toolchain,
                                                 one_thread):
    """`bnnflow verify --against golden,rtl,hls` on a trained conv net (digits 8x8, and 28x28 IDX data):
    PASS, and the RTL's measured cycles per image equal the slowest layer's NF*SF*pixels."""
    from bnnflow.sim import toolchain

    toolchain.pytest_require(sim)
    run = tmp_path / "run"
    data = "digits" if dataset == "digits" else f"idx:{idx_dir}"
    assert main(["train", "--dataset", data, *flags, "--epochs", "1", "--seed", "4", "--out", str(run),
                 "--quiet"]) == 0
    assert main(["export", str(run)]) == 0
    a = art.load(run / "export")
    model = max(layer.cycles_per_image for layer in a.layers)
    assert a.layers[0].is_conv and a.layers[1].is_conv and model == a.manifest["rtl"]["cycles_per_image"]
    capsys.readouterr()
    assert main(["verify", str(run), "--against", "golden,rtl,hls", "--sim", sim, "--limit", "24",
                 "--layer-cycles"]) == 0
    out = capsys.readouterr().out
    rows = {line.split()[0]: line.split() for line in out.splitlines() if line.strip()}
    for level in ("golden", "rtl", "hls"):
        assert "yes" in rows[level] and "100.00%" in rows[level], out
    assert f"{model:.1f} / {model}" in out, out                  # measured == NF*SF*pixels of the slowest layer
    # --layer-cycles: each layer alone measures exactly its own NF*SF*vectors, and outputs what golden does
    assert f"per-layer cycles, each layer simulated alone (rtl, {sim}):" in out
    for layer in a.layers:
        cells = rows[str(layer.index)]
        assert cells[1] == layer.kind and cells[-4:] == [f"{layer.cycles_per_image:,}",
                                                         f"{layer.cycles_per_image:,}.0", "1.0000", "yes"], out
    assert "every layer within 5% of NF*SF*vectors" in out
    assert "PASS: every level matches torch and the golden model bit for bit" in out
