"""Every method's MLP deploys: golden model (on the written artifact) == the quantized torch reference.

The reference (:mod:`bnnflow.model.deploy`) evaluates each layer as integer codes -> exact integer dot
-> the model's own modules as the level function; the artifact's thresholds come from searching that
function. These tests compare the two on the whole digits test split, every layer's integer dots and
codes included, with BatchNorm gammas made negative and zero so neuron negation and constant neurons
are exercised; and the threshold search against brute force.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from bnnflow import artifact as art
from bnnflow.cli import main
from bnnflow.datasets import load_dataset
from bnnflow.export import deployed_network, export_run, layer_data
from bnnflow.folding import default_folding
from bnnflow.golden import GoldenModel
from bnnflow.model import build_model
from bnnflow.model.deploy import DeployError, search_thresholds
from bnnflow.model.train import load_run
from bnnflow.writer import write_artifact

# (id, train flags, expected (kind, weight_bits, weight_encoding, input_bits, n_thresholds) per layer)
METHODS = [
    ("bnn", ["--method", "bnn"],
     [("int_threshold", 1, "sym", 5, 1), ("xnor_threshold", 1, "sym", 1, 1), ("xnor_score", 1, "sym", 1, 0)]),
    ("binaryconnect", ["--method", "binaryconnect"],
     [("int_threshold", 1, "sym", 5, 255), ("int_threshold", 1, "sym", 8, 255), ("int_score", 1, "sym", 8, 0)]),
    ("xnor", ["--method", "xnor"],
     [("int_threshold", 8, "int", 5, 1), ("xnor_threshold", 1, "sym", 1, 255), ("int_score", 8, "int", 8, 0)]),
    ("xnor-bwn", ["--method", "xnor", "--variant", "bwn"],
     [("int_threshold", 8, "int", 5, 255), ("int_threshold", 1, "sym", 8, 255), ("int_score", 8, "int", 8, 0)]),
    ("dorefa-W1A2", ["--method", "dorefa"],
     [("int_threshold", 8, "int", 5, 3), ("int_threshold", 1, "sym", 2, 3), ("int_score", 8, "int", 2, 0)]),
    ("dorefa-W1A1", ["--method", "dorefa", "--wbits", "1", "--abits", "1"],
     [("int_threshold", 8, "int", 5, 1), ("xnor_threshold", 1, "sym", 1, 1), ("int_score", 8, "int", 1, 0)]),
    ("dorefa-W2A2", ["--method", "dorefa", "--wbits", "2", "--abits", "2"],
     [("int_threshold", 8, "int", 5, 3), ("int_threshold", 2, "sym", 2, 3), ("int_score", 8, "int", 2, 0)]),
    ("wage", ["--method", "wage"],
     [("int_threshold", 2, "int", 5, 127), ("int_threshold", 2, "int", 7, 127), ("int_score", 2, "int", 7, 0)]),
]


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits", 0)


@pytest.fixture(scope="module")
def method_runs(tmp_path_factory, one_thread):
    """One tiny digits MLP per method (2 epochs, 32-16 hidden): {id: run folder}."""
    root = tmp_path_factory.mktemp("deploy_runs")
    runs = {}
    for name, flags, _ in METHODS:
        out = root / name
        assert main(["train", "--dataset", "digits", *flags, "--hidden", "32,16", "--epochs", "2", "--seed", "3",
                     "--out", str(out), "--quiet"]) == 0
        runs[name] = out
    return runs


def perturb_batchnorms(model: torch.nn.Module, seed: int) -> int:
    """Negate a third of every BatchNorm's gammas and zero two (constant neurons); returns how many changed."""
    rng = np.random.default_rng(seed)
    changed = 0
    with torch.no_grad():
        for bn in (m for m in model.modules() if isinstance(m, torch.nn.BatchNorm1d)):
            n = bn.weight.numel()
            flip = rng.choice(n, n // 3, replace=False)
            bn.weight[flip] *= -1
            zero = rng.choice(np.setdiff1d(np.arange(n), flip), 2, replace=False)
            bn.weight[zero] = 0.0
            bn.bias[zero[0]] = 0.25
            bn.bias[zero[1]] = -0.25
            changed += len(flip) + 2
    return changed


def assert_golden_equals_reference(net, data, artifact, images):
    """Scores, every layer's codes, and every layer's accumulator (from the reference's dots) agree."""
    golden = GoldenModel(artifact).trace(images)
    ref = net.trace(images)
    assert len(golden.outputs) == len(ref.outputs) == len(data)
    for k, (layer, d) in enumerate(zip(net.layers, data)):
        dots = ref.dots[k]
        mw = layer.weights.shape[1]
        if d.kind.startswith("int"):
            expected_acc = dots
        elif layer.mac == "xnor":                       # bipolar inputs: dot = 2*popcount - MW
            expected_acc = (dots + mw) // 2
        else:                                           # 0/1 inputs on the XNOR lanes: popcount = dot + #(-1)
            expected_acc = dots + (layer.weights.numpy() < 0).sum(axis=1)
        assert np.array_equal(golden.accumulators[k], expected_acc), f"layer {k} accumulators differ"
        assert np.array_equal(golden.outputs[k], ref.outputs[k]), f"layer {k} outputs differ"
    assert np.array_equal(golden.scores, ref.scores)


@pytest.mark.parametrize("name, flags, expected", METHODS, ids=[m[0] for m in METHODS])
def test_every_method_golden_equals_reference(method_runs, digits, tmp_path, name, flags, expected, one_thread):
    """Golden (reading only the artifact) == the deployed torch reference on all 360 digits test images."""
    config, model = load_run(method_runs[name])
    changed = perturb_batchnorms(model, seed=len(name))
    assert changed > 0 or name == "wage"                # WAGE has no BatchNorm
    net = deployed_network(model, config, digits)
    data = layer_data(net)
    assert [(d.kind, d.weight_bits, d.weight_encoding, d.input_bits, d.n_thresholds) for d in data] == expected
    if name != "wage":
        assert sum(d.negated_neurons for d in data[:-1]) > 0
    artifact = write_artifact(tmp_path / "export", {"name": name, "input_features": 64, "input_shape": [8, 8],
                                                     "input_bits": 5, "num_classes": 10,
                                                     "deployment": net.constants},
                              data, default_folding([d.shape for d in data]), generate=())
    images = digits.x_test
    assert images.shape == (360, 64)
    assert_golden_equals_reference(net, data, artifact, images)
    # the constants stored in the artifact rebuild the same network without the training data
    again = deployed_network(model, config, constants=artifact.network["deployment"])
    for a, b in zip(net.layers, again.layers):
        assert (a.thresholds is None and b.thresholds is None) or np.array_equal(a.thresholds, b.thresholds)
        assert (a.affine is None and b.affine is None) or np.array_equal(a.affine, b.affine)
    assert np.array_equal(again.scores(images), net.scores(images))


@pytest.mark.parametrize("name", ["bnn", "wage", "dorefa-W1A2"])
def test_reference_equals_float_model_where_nothing_is_calibrated(method_runs, digits, name, one_thread):
    """BNN, WAGE and DoReFa's hidden layers are already integer: the deployed reference predicts as the model
    does on (nearly) every image; the only deployment change is 8-bit first/last weights for DoReFa."""
    config, model = load_run(method_runs[name])
    ref = deployed_network(model, config, digits).scores(digits.x_test).argmax(1)
    with torch.no_grad():
        flt = model(torch.from_numpy(digits.x_test.astype(np.float32))).argmax(1).numpy()
    agree = (ref == flt).mean()
    assert agree == 1.0 if name in ("bnn", "wage") else agree >= 0.97, agree


def brute_force_thresholds(f: np.ndarray, levels: int, lo: int) -> np.ndarray:
    """T[n, t-1] = min{d : f[d - lo, n] >= t}, or hi + 1; f is (range, neurons) non-decreasing per column."""
    hi_plus = lo + f.shape[0]
    t = np.full((f.shape[1], levels), hi_plus, dtype=np.int64)
    for level in range(1, levels + 1):
        reached = f >= level
        any_ = reached.any(axis=0)
        t[any_, level - 1] = lo + reached.argmax(axis=0)[any_]
    return t


@pytest.mark.parametrize("levels", [1, 3, 15, 255])
def test_threshold_search_equals_brute_force(levels):
    """Random BatchNorms (negative and zero gammas included) + ReLU + a k-bit quantizer, every dot checked."""
    torch.manual_seed(levels)
    mh, lo, hi = 96, -400, 400
    bn = torch.nn.BatchNorm1d(mh).eval()
    with torch.no_grad():
        bn.weight.copy_(torch.randn(mh))
        bn.weight[:4] = 0.0
        bn.bias.copy_(torch.randn(mh) * 2)
        bn.bias[0], bn.bias[1] = 1.6, -1.6
        bn.running_mean.copy_(torch.randn(mh) * 50)
        bn.running_var.copy_(torch.rand(mh) * 2000 + 0.01)
    step = 3.0 / levels

    def level(d: torch.Tensor) -> torch.Tensor:
        v = bn(d.float() * 0.01 * 3)
        if levels == 1:
            return (v >= 0).to(torch.int64)
        return torch.round(torch.relu(v) / step).clamp(0, levels).to(torch.int64)

    t, sign = search_thresholds(level, mh, levels, lo, hi, where="layer 0")
    assert set(np.unique(sign)) == {-1, 1}
    assert (sign[:4] == 1).all()                       # constant neurons are not negated
    d = torch.arange(lo, hi + 1, dtype=torch.int64)[:, None].expand(-1, mh)
    with torch.no_grad():
        f = level(d * torch.from_numpy(sign)).numpy()  # the function the engine's (negated) dot sees
    assert (np.diff(f, axis=0) >= 0).all()
    assert np.array_equal(t, brute_force_thresholds(f, levels, lo))
    assert np.array_equal((d.numpy()[:, :, None] >= t[None]).sum(2), f)
    # the constant neurons (gamma 0): "always" for the levels their constant code reaches, "never" above
    for n in (0, 1):
        code = int(f[0, n])
        assert np.array_equal(t[n], np.where(np.arange(1, levels + 1) <= code, lo, hi + 1))
    assert int(f[0, 0]) >= 1 and int(f[0, 1]) == 0


def test_non_monotone_level_function_is_refused_naming_layer_and_neuron():
    def bump(d: torch.Tensor) -> torch.Tensor:
        out = (d >= 0).to(torch.int64)
        out[:, 5] = (d[:, 5].abs() < 7).to(torch.int64)   # neuron 5: on only near 0
        return out

    with pytest.raises(DeployError, match=r"layer 3, neuron 5: the level function is not monotone"):
        search_thresholds(bump, 8, 1, -100, 100, where="layer 3")

    def wiggle(d: torch.Tensor) -> torch.Tensor:             # a huge range: caught by the random sample
        out = (d >= 0).to(torch.int64)
        out[:, 2] = ((d[:, 2] // 1000) % 2 == 0).to(torch.int64)
        return out

    with pytest.raises(DeployError, match=r"layer 1, neuron 2: the level function is not monotone"):
        search_thresholds(wiggle, 4, 1, -10**6, 10**6, where="layer 1")

    def out_of_range(d: torch.Tensor) -> torch.Tensor:
        return torch.full_like(d, 4)

    with pytest.raises(DeployError, match=r"layer 2, neuron 0: the level function gives 4 .* outside the codes 0..3"):
        search_thresholds(out_of_range, 2, 3, -10, 10, where="layer 2")


def small_config(**kw):
    base = {"dataset": "digits", "input_features": 64, "input_shape": [8, 8], "input_bits": 5, "num_classes": 10,
            "hidden": [16], "arch": "mlp", "split_seed": 0, "seed": 1, "epochs": 1, "batch_size": 64}
    return dict(base, **kw)


@pytest.mark.parametrize("kw, message", [
    ({"method": "float"}, "--method float has no hardware mapping: its weights and activations are real"),
    ({"method": "xnor", "first_layer": "quant"}, "layer 0: the model applies BatchNorm1d, XnorSignQuantizer to the pixels"),
    ({"method": "dorefa", "abits": 9}, "layer 0: 9-bit DoReFa activations; the engines take at most 8-bit inputs"),
    ({"method": "dorefa", "wbits": 12, "hidden": [16, 16]}, "layer 1: 12-bit DoReFa weights"),
])
def test_unsupported_models_are_refused_clearly(kw, message):
    model = build_model(small_config(**kw)).eval()
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        deployed_network(model, small_config(**kw))


def test_real_activations_need_calibration_or_constants():
    model = build_model(small_config(method="binaryconnect")).eval()
    with pytest.raises(DeployError, match="layer 0: its output needs calibration"):
        deployed_network(model, small_config(method="binaryconnect"))


@pytest.mark.parametrize("abits", [1, 9])
def test_export_refuses_activation_widths_the_engines_do_not_take(method_runs, tmp_path, abits):
    """`export --abits` outside 2..8 stops before anything is written, naming the layer and the width."""
    with pytest.raises(DeployError, match=rf"binaryconnect: layer 0: --abits {abits}: calibrated activation codes "
                                          r"take 2\.\.8 bits"):
        export_run(method_runs["binaryconnect"], out_dir=tmp_path / "out", generate=(), abits=abits)
    assert not (tmp_path / "out").exists()


def test_export_and_verify_cli_report_float_and_deployed_accuracy(method_runs, capsys):
    """`bnnflow export` + `verify --against golden` for a calibrated method: PASS, with the float model's row."""
    run = method_runs["xnor-bwn"]
    artifact = export_run(run, generate=())
    assert artifact.network["deployment"]["abits"] == 8
    assert [l.kind for l in artifact.layers] == ["int_threshold", "int_threshold", "int_score"]
    capsys.readouterr()
    assert main(["verify", str(run), "--against", "golden"]) == 0
    out = capsys.readouterr().out
    rows = {line.split()[0]: line.split() for line in out.splitlines() if line.strip()}
    assert rows["torch-float"][1] == "360" and rows["golden"][4] == "yes", out
    assert "PASS: every level matches torch" in out


def randomized(config: dict, digits, seed: int = 0) -> torch.nn.Module:
    """``build_model(config)`` with random BatchNorm affines (1-d and 2-d; negative and zero gammas included)
    and running statistics from three training-mode passes over digits: a cheap stand-in for a trained net."""
    torch.manual_seed(seed)
    model = build_model(config)
    x = torch.from_numpy(digits.x_train[:256].astype(np.float32))
    model.train()
    with torch.no_grad():
        for bn in (m for m in model.modules() if isinstance(m, (torch.nn.BatchNorm1d, torch.nn.BatchNorm2d))):
            bn.weight.normal_(0.0, 1.0)
            bn.weight[:2] = 0.0
            bn.bias.normal_(0.0, 0.5)
        for _ in range(3):
            model(x)
    return model.eval()


# (id, settings, (kind, weight_bits, weight_encoding, input_bits, n_thresholds, has affine) per layer)
OTHER_SETTINGS = [
    ("dorefa-quant-first-last", {"method": "dorefa", "first_layer": "quant", "last_layer": "quant"},
     [("int_threshold", 1, "sym", 5, 3, False), ("int_threshold", 1, "sym", 2, 3, False),
      ("int_score", 1, "sym", 2, 0, False)]),
    ("dorefa-W4A4", {"method": "dorefa", "wbits": 4, "abits": 4},
     [("int_threshold", 8, "int", 5, 15, False), ("int_threshold", 4, "sym", 4, 15, False),
      ("int_score", 8, "int", 4, 0, True)]),
    ("xnor-quant-last", {"method": "xnor", "last_layer": "quant"},         # per-neuron alpha: fixed-point affine
     [("int_threshold", 8, "int", 5, 1, False), ("xnor_threshold", 1, "sym", 1, 1, False),
      ("xnor_score", 1, "sym", 1, 0, True)]),
    ("binaryconnect-stoch", {"method": "binaryconnect", "variant": "stoch"},
     [("int_threshold", 1, "sym", 5, 255, False), ("int_threshold", 1, "sym", 8, 255, False),
      ("int_score", 1, "sym", 8, 0, True)]),
    ("bnn-shift-bn", {"method": "bnn", "bn": "shift"},
     [("int_threshold", 1, "sym", 5, 1, False), ("xnor_threshold", 1, "sym", 1, 1, False),
      ("xnor_score", 1, "sym", 1, 0, False)]),
    ("wage-W3A6", {"method": "wage", "wbits": 3, "abits": 6},
     [("int_threshold", 3, "int", 5, 31, False), ("int_threshold", 3, "int", 5, 31, False),
      ("int_score", 3, "int", 5, 0, False)]),
]


@pytest.mark.parametrize("kw, expected", [s[1:] for s in OTHER_SETTINGS], ids=[s[0] for s in OTHER_SETTINGS])
def test_other_settings_golden_equals_reference(kw, expected, digits, tmp_path, one_thread):
    """Non-default settings (quantized first/last layers, wider codes, shift BatchNorm, ...), randomly
    initialised: still golden == reference on every layer, and the reference does not depend on the batch."""
    config = small_config(hidden=[24, 16], **kw)
    model = randomized(config, digits)
    net = deployed_network(model, config, digits)
    data = layer_data(net)
    assert [(d.kind, d.weight_bits, d.weight_encoding, d.input_bits, d.n_thresholds, d.affine is not None)
            for d in data] == expected
    assert sum(d.negated_neurons for d in data[:-1]) > 0 or kw["method"] == "wage"
    artifact = write_artifact(tmp_path / "export", {"name": "t", "input_features": 64, "input_shape": [8, 8],
                                                     "input_bits": 5, "num_classes": 10,
                                                     "deployment": net.constants},
                              data, default_folding([d.shape for d in data]), generate=())
    assert_golden_equals_reference(net, data, artifact, digits.x_test)
    some = digits.x_test[:40]
    one_by_one = np.concatenate([net.scores(some[i:i + 1]) for i in range(len(some))])
    assert np.array_equal(one_by_one, net.scores(some))


class ChainModel(torch.nn.Module):
    """A hand-made module chain with the ``deployment_chain`` hook, for the refusals no method produces."""

    def __init__(self, *modules: torch.nn.Module):
        super().__init__()
        self.chain = torch.nn.ModuleList(modules)

    def deployment_chain(self):
        return 1.0, list(self.chain)


class Square(torch.nn.Module):
    def forward(self, x):
        return -(x * x) + 4.0          # rises, then falls: not monotone in the dot


def sign_linear(n_in: int, n_out: int, seed: int, bias: bool = False) -> torch.nn.Module:
    from bnnflow.model.layers import QuantLinear

    torch.manual_seed(seed)
    return QuantLinear(n_in, n_out, bias=bias, weight_quant="ste_sign")


def test_deploy_refuses_a_non_monotone_block_naming_layer_and_neuron():
    from bnnflow.model.quantizers import SignQuantizer

    model = ChainModel(sign_linear(6, 4, 0), Square(), SignQuantizer(), sign_linear(4, 3, 1))
    with pytest.raises(DeployError, match=r"layer 0, neuron \d: the level function is not monotone on the integer "
                                          r"dot range \[-6, 6\]"):
        deployed_network(model, {"input_bits": 1})


def test_deploy_refuses_scores_that_are_not_affine_or_do_not_fit():
    from bnnflow.model.quantizers import SignQuantizer

    relu_scores = ChainModel(sign_linear(6, 4, 0), SignQuantizer(), sign_linear(4, 3, 1), torch.nn.ReLU())
    with pytest.raises(DeployError, match=r"layer 1, neuron \d: the score is not an affine function of the integer dot"):
        deployed_network(relu_scores, {"input_bits": 1})
    huge = ChainModel(sign_linear(6, 4, 0), SignQuantizer(), sign_linear(4, 3, 1, bias=True))
    with torch.no_grad():
        huge.chain[2].bias.copy_(torch.tensor([3e9, -3e9, 0.0]))
    with pytest.raises(DeployError, match=r"layer 1, neuron 0: the score offset 3000000000 \(bias / scale\) plus a "
                                          r"dot of up to 4 does not fit the 32-bit score"):
        deployed_network(huge, {"input_bits": 1})


def test_docs_worked_example_binaryconnect_neuron():
    """docs/DEPLOY.md's worked example: T = 66..320, and -84..170 for the negated (gamma < 0) twin."""
    from bnnflow.model.deploy import Codes

    bn = torch.nn.BatchNorm1d(2).eval()
    with torch.no_grad():
        bn.weight.copy_(torch.tensor([0.5, -0.5]))
        bn.bias.fill_(0.1)
        bn.running_mean.fill_(0.3)
        bn.running_var.fill_(0.04)
    codes = Codes("unsigned", 8, 0.01, 0, 0, 255)

    def level(d):
        return codes.encode(torch.relu(bn((d.double() * 0.004).float())))

    t, sign = search_thresholds(level, 2, 255, -640, 640)
    assert sign.tolist() == [1, -1]
    assert np.array_equal(t[0], np.arange(66, 321)) and np.array_equal(t[1], np.arange(-84, 171))


#: Every level on Icarus for every trained setting runs under `slow` (`make test-slow`; 25-95 s each here, 441 s
#: for the eight): the CI budget keeps the datapaths' Icarus coverage to random nets of every datapath
#: (tests/test_levels_v3.py); full test splits at the demo size run on Verilator (README, make demo).
CI_LEVEL_SETTINGS: tuple[str, ...] = ()


@pytest.mark.rtl
@pytest.mark.hls
@pytest.mark.parametrize("name", [pytest.param(m[0], marks=() if m[0] in CI_LEVEL_SETTINGS else pytest.mark.slow)
                                  for m in METHODS], ids=[m[0] for m in METHODS])
def test_every_method_verifies_at_every_level_on_icarus(method_runs, name, tmp_path, capsys, hls_toolchain,
                                                        one_thread):
    """`bnnflow verify --against golden,rtl,hls,board-sim --sim icarus` on the first 24 test images of each
    trained setting: PASS, every level's scores equal to the deployed torch reference's."""
    import shutil

    from bnnflow.sim import toolchain
    from bnnflow.verify import verify_run

    toolchain.pytest_require("icarus")
    run = tmp_path / name
    shutil.copytree(method_runs[name], run, ignore=shutil.ignore_patterns("export"))
    export_run(run)
    capsys.readouterr()
    assert verify_run(run, ["golden", "rtl", "hls", "board-sim"], sim="icarus", limit=24) == 0
    out = capsys.readouterr().out
    rows = {line.split()[0]: line.split() for line in out.splitlines() if line.strip()}
    for level in ("golden", "rtl", "hls", "board-sim"):
        assert level in rows and "yes" in rows[level] and "100.00%" in rows[level], out
    assert "PASS: every level matches torch and the golden model bit for bit" in out
