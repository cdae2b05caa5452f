"""The golden model (reading only the artifact) equals the torch model bit for bit."""

import numpy as np
import pytest
import torch

from bnnflow import artifact as art
from bnnflow.cli import main
from bnnflow.export import export_run, fold_batchnorm_sign
from bnnflow.golden import GoldenModel
from bnnflow.model.train import load_run
from bnnflow.writer import read_vectors


def torch_sums(model, images):
    with torch.no_grad():
        return [s.numpy().astype(np.int64) for s in model.trace(torch.from_numpy(images.astype(np.float32)))]


def assert_golden_equals_torch(model, artifact, images):
    golden = GoldenModel(artifact).trace(images)
    sums = torch_sums(model, images)
    for layer, spec, acc, s in zip(model.deployment_layers(), artifact.layers, golden.accumulators, sums):
        flip = np.where(layer.bn.weight.detach().numpy() < 0, -1, 1) if layer.bn is not None else 1
        expected = s * flip
        if spec.kind != art.INT_THRESHOLD:      # popcount domain: s = 2p - MW
            expected = (expected + spec.in_features) // 2
        assert np.array_equal(acc, expected), f"layer {spec.index} accumulators differ"
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


def test_threshold_fold_exhaustive_against_torch():
    """For every integer sum in range, threshold compare == torch's sign(bn(s))."""
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
    t, negate = fold_batchnorm_sign(bn, lo, hi)
    s = torch.arange(lo, hi + 1, dtype=torch.float32)[:, None].repeat(1, 200)
    with torch.no_grad():
        expected = (bn(s) >= 0).numpy()
    s_signed = np.where(negate[None, :], -s.numpy(), s.numpy())
    assert np.array_equal(s_signed >= t[None, :], expected)


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


def test_idx_28x28_verify_rtl_and_hls(idx_dir, tmp_path, capsys):
    """The padded 784-input network runs bit-exactly on the RTL (both simulators) and HLS C-sim."""
    from bnnflow.sim import toolchain

    run = tmp_path / "idx_run"
    assert main(["train", "--dataset", f"idx:{idx_dir}", "--hidden", "32", "--epochs", "2",
                 "--out", str(run), "--quiet"]) == 0
    (tmp_path / "fold.json").write_text('{"layers": [{"pe": 4, "simd": 32}, {"pe": 4, "simd": 8}]}')
    assert main(["export", str(run), "--folding", str(tmp_path / "fold.json")]) == 0
    for sim in ("verilator", "icarus"):
        toolchain.pytest_require(sim)
        assert main(["verify", str(run), "--against", "golden,rtl,hls,board-sim" if sim == "verilator" else "rtl,board-sim",
                     "--sim", sim, "--limit", "12"]) == 0
        out = capsys.readouterr().out
        assert "PASS" in out and f"rtl ({sim})" in out and f"board-sim ({sim})" in out
        # bottleneck: layer 0, NF*SF = (32/4) * (800/32) = 200 cycles per image
        assert "200.0 / 200" in out
