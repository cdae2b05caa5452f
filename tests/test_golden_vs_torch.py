"""The golden model (reading only the artifact) equals the torch model bit for bit (BNN MLPs; every
other method is in tests/test_deploy.py)."""

import numpy as np
import pytest
import torch

from bnnflow import artifact as art
from bnnflow.cli import main
from bnnflow.export import binary_input_as_xnor, deployed_network, export_run
from bnnflow.golden import GoldenModel
from bnnflow.model.deploy import search_thresholds
from bnnflow.model.train import load_run
from bnnflow.writer import LayerData, read_vectors


def torch_sums(model, images):
    with torch.no_grad():
        return [s.numpy().astype(np.int64) for s in model.trace(torch.from_numpy(images.astype(np.float32)))]


def assert_golden_equals_torch(model, artifact, images):
    """Golden == the deployed reference (dots, codes, scores) == the BNN's own forward pass (sums, signs, scores).

    The reference's dots are in the engine's orientation (a negated neuron's sign is -1); times the sign they
    are the model's pre-BatchNorm sums. The golden accumulator is the dot (int layers), (dot + MW) / 2
    (XNOR layers) or dot + #(-1 weights) (0/1 pixels on the XNOR lanes).
    """
    net = deployed_network(model, {"input_bits": artifact.input_bits})
    ref = net.trace(images)
    golden = GoldenModel(artifact).trace(images)
    sums = torch_sums(model, images)
    for k, (layer, spec, acc, s) in enumerate(zip(net.layers, artifact.layers, golden.accumulators, sums)):
        dots = ref.dots[k]
        assert np.array_equal(dots * layer.sign.numpy(), s), f"layer {k}: reference dots differ from torch"
        if spec.kind.startswith("int"):
            expected = dots
        elif layer.mac == "xnor":
            expected = (dots + spec.in_features) // 2
        else:
            expected = dots + (layer.weights.numpy() < 0).sum(1)
        assert np.array_equal(acc, expected), f"layer {spec.index} accumulators differ"
        assert np.array_equal(golden.outputs[k], ref.outputs[k]), f"layer {k} outputs differ"
    assert np.array_equal(golden.scores, sums[-1])
    with torch.no_grad():
        torch_pred = model(torch.from_numpy(images.astype(np.float32))).argmax(1).numpy()
    assert np.array_equal(np.argmax(golden.scores, 1), torch_pred)
    # hidden activations also agree
    h = torch.from_numpy(images.astype(np.float32))
    with torch.no_grad():
        for i, (lin, bn) in enumerate(zip(model.linears, model.bns)):
            h = torch.where(bn(lin(h)) >= 0, 1.0, -1.0)
            assert np.array_equal(golden.outputs[i], (h.numpy() > 0).astype(np.int64))


def test_digits_export_golden_equals_torch(digits_run, tmp_path):
    artifact = export_run(digits_run, out_dir=tmp_path / "export", generate=())
    images, labels, scores = read_vectors(artifact)
    assert images.shape == (360, 64) and artifact.input_bits == 5
    _, model = load_run(digits_run)
    assert_golden_equals_torch(model, artifact, images)
    assert np.array_equal(GoldenModel(artifact).scores(images), scores)


def test_negative_and_zero_gamma_fold_exactly(digits_run, tmp_path):
    """gamma < 0 negates the neuron, gamma == 0 makes it constant: still bit-exact."""
    config, model = load_run(digits_run)
    rng = np.random.default_rng(3)
    with torch.no_grad():
        for bn in model.bns:
            mh = bn.weight.numel()
            g = bn.weight.clone()
            g[rng.choice(mh, mh // 3, replace=False)] *= -1
            zero = rng.choice(mh, 4, replace=False)
            g[zero] = 0.0
            bn.bias[zero[:2]] = 0.5     # constant on
            bn.bias[zero[2:]] = -0.5    # constant off
            bn.weight.copy_(g)
    run = tmp_path / "mutated"
    run.mkdir()
    (run / "config.json").write_text((digits_run / "config.json").read_text())
    torch.save(model.state_dict(), run / "model.pt")
    artifact = export_run(run, generate=())
    assert artifact.manifest["layers"][0]["negated_neurons"] > 0
    images, _, _ = read_vectors(artifact)
    assert_golden_equals_torch(model, artifact, images)


def test_threshold_search_exhaustive_against_torch_sign_batchnorm():
    """For every integer sum in range, the searched threshold compare == torch's sign(bn(s))."""
    torch.manual_seed(0)
    bn = torch.nn.BatchNorm1d(200)
    with torch.no_grad():
        bn.weight.copy_(torch.randn(200))
        bn.weight[:5] = 0
        bn.bias.copy_(torch.randn(200) * 3)
        bn.running_mean.copy_(torch.randn(200) * 20)
        bn.running_var.copy_(torch.rand(200) * 50 + 0.01)
    bn.eval()
    lo, hi = -60, 60

    def level(d):
        return (bn(d.float()) >= 0).to(torch.int64)

    t, sign = search_thresholds(level, 200, 1, lo, hi)
    s = torch.arange(lo, hi + 1, dtype=torch.float32)[:, None].repeat(1, 200)
    with torch.no_grad():
        expected = (bn(s) >= 0).numpy()
    s_signed = s.numpy() * sign[None, :]
    assert np.array_equal(s_signed >= t[None, :, 0], expected)
    # a neuron is negated exactly when its output falls over the range (gamma < 0 and not constant there)
    falls = expected[0] & ~expected[-1]
    assert np.array_equal(sign < 0, falls) and falls.sum() > 20 and (sign[:5] == 1).all()


def test_idx_28x28_train_export_verify(idx_dir, tmp_path):
    """784 inputs (not a multiple of SIMD 32) through train, export and golden verify."""
    run = tmp_path / "idx_run"
    assert main(["train", "--dataset", f"idx:{idx_dir}", "--hidden", "32", "--epochs", "4",
                 "--out", str(run), "--quiet"]) == 0
    folding = tmp_path / "fold.json"
    folding.write_text('{"layers": [{"pe": 8, "simd": 48}, {"pe": 2, "simd": 16}]}')
    assert main(["export", str(run), "--folding", str(folding)]) == 0
    artifact = art.load(run / "export")
    assert artifact.layers[0].in_features == 784 and artifact.layers[0].in_features_padded == 816
    assert artifact.input_bits == 8 and artifact.num_classes == 4
    _, model = load_run(run)
    images, labels, _ = read_vectors(artifact)
    assert_golden_equals_torch(model, artifact, images)
    assert main(["verify", str(run), "--against", "golden"]) == 0


# (levels per simulator): CI runs golden, RTL on both simulators and HLS; the board-sim level of a 784-input
# net (the driver against the co-simulated accelerator, 35 s of the test's 70) under `slow`
# (Icarus runs the binary-input net below in CI)
IDX_LEVELS = [pytest.param({"verilator": "golden,rtl,hls"}, id="golden-rtl-hls"),
              pytest.param({"verilator": "golden,rtl,hls,board-sim", "icarus": "rtl,board-sim"}, id="with-board-sim",
                           marks=pytest.mark.slow)]


@pytest.mark.parametrize("levels", IDX_LEVELS)
def test_idx_28x28_verify_rtl_and_hls(levels, idx_dir, tmp_path, capsys):
    """The padded 784-input network runs bit-exactly on the RTL (both simulators) and HLS C-sim."""
    from bnnflow.sim import toolchain

    run = tmp_path / "idx_run"
    assert main(["train", "--dataset", f"idx:{idx_dir}", "--hidden", "32", "--epochs", "2",
                 "--out", str(run), "--quiet"]) == 0
    (tmp_path / "fold.json").write_text('{"layers": [{"pe": 4, "simd": 32}, {"pe": 4, "simd": 8}]}')
    assert main(["export", str(run), "--folding", str(tmp_path / "fold.json")]) == 0
    for sim in levels:
        toolchain.pytest_require(sim)
        assert main(["verify", str(run), "--against", levels[sim], "--sim", sim, "--limit", "12"]) == 0
        out = capsys.readouterr().out
        assert "PASS" in out and f"rtl ({sim})" in out
        assert ("board-sim" in levels[sim]) == (f"board-sim ({sim})" in out)
        # bottleneck: layer 0, NF*SF = (32/4) * (800/32) = 200 cycles per image
        assert "200.0 / 200" in out


@pytest.fixture(scope="module")
def binary_input_run(tmp_path_factory):
    """A BNN trained on digits binarized at half range (``--input-bits 1``), as BNN-PYNQ's LFC reads MNIST."""
    out = tmp_path_factory.mktemp("runs") / "digits-1bit"
    assert main(["train", "--dataset", "digits", "--hidden", "48,32", "--epochs", "6", "--seed", "2",
                 "--input-bits", "1", "--out", str(out), "--quiet"]) == 0
    return out


def test_binary_input_first_layer_exports_as_xnor_and_equals_torch(binary_input_run, tmp_path):
    """1-bit pixels: layer 0 becomes an XNOR-popcount layer whose popcount is torch's sum + #(-1 weights)."""
    artifact = export_run(binary_input_run, out_dir=tmp_path / "export", generate=())
    assert artifact.input_bits == 1
    assert [l.kind for l in artifact.layers] == [art.XNOR_THRESHOLD, art.XNOR_THRESHOLD, art.XNOR_SCORE]
    images, _, _ = read_vectors(artifact)
    assert images.max() == 1 and images.min() == 0
    _, model = load_run(binary_input_run)
    assert_golden_equals_torch(model, artifact, images)


@pytest.mark.parametrize("mw", [1, 7, 64, 200])
def test_binary_input_as_xnor_is_exact_for_every_threshold(mw):
    """Every threshold of the integer range (and beyond: always/never) gives the same bits as XNOR."""
    rng = np.random.default_rng(mw)
    mh = 2 * mw + 2                                         # one neuron per threshold
    w = rng.integers(0, 2, size=(mh, mw), dtype=np.uint8)
    w[0] = 0
    w[1] = 1                                                # all -1 and all +1 rows
    t = np.arange(-mw, mw + 2)                              # every threshold in [lo, hi + 1]
    xnor = binary_input_as_xnor(LayerData(art.INT_THRESHOLD, w, t, input_bits=1))
    assert xnor.kind == art.XNOR_THRESHOLD and np.array_equal(xnor.weights, w)
    assert xnor.thresholds.min() >= 0 and xnor.thresholds.max() <= mw + 1
    x = rng.integers(0, 2, size=(300, mw), dtype=np.int64)
    x[0], x[1] = 0, 1
    pm1 = 2 * w.astype(np.int64) - 1
    int_bits = (x @ pm1.T) >= t
    popcount = (x[:, None, :] == w[None, :, :]).sum(2)
    assert np.array_equal(int_bits, popcount >= xnor.thresholds)


def test_binary_input_as_xnor_refuses_other_layers():
    w = np.ones((2, 3), dtype=np.uint8)
    with pytest.raises(ValueError, match="int_threshold.*input_bits=5"):
        binary_input_as_xnor(LayerData(art.INT_THRESHOLD, w, np.zeros(2), input_bits=5))


@pytest.mark.parametrize("sim, levels", [("icarus", "golden,rtl,hls"), ("verilator", "golden,rtl")])
def test_binary_input_run_verifies_on_rtl_and_hls(binary_input_run, capsys, sim, levels):
    """The XNOR first layer on binarized pixels through the generated Verilog (both simulators) and the HLS C-sim."""
    assert main(["export", str(binary_input_run)]) == 0
    code = main(["verify", str(binary_input_run), "--against", levels, "--sim", sim, "--limit", "60"])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "PASS: every level matches torch" in out
    rows = {line.split()[0]: line.split() for line in out.splitlines() if line.strip()}
    for level in ["golden", "rtl"] + (["hls"] if "hls" in levels else []):
        row = rows[level]
        # images, accuracy, agreement with torch, scores == golden
        assert row[row.index("60") + 2:row.index("60") + 4] == ["100.00%", "yes"], out
