"""Every training method, quickly: a few steps lower the loss, runs save and load, errors are clear.

The slow counterpart (tests/test_methods_slow.py) trains each method to its
accuracy target on digits.
"""

import json

import numpy as np
import pytest
import torch

from bnnflow import artifact as art
from bnnflow.cli import METHODS as CLI_METHODS
from bnnflow.cli import main
from bnnflow.datasets import load_digits_dataset
from bnnflow.export import export_run
from bnnflow.model import METHODS, build_model, clip_weights, layer_specs, resolve_config
from bnnflow.model.optim import get_loss, make_optimizer
from bnnflow.model.train import evaluate, load_run, to_tensor

SETTINGS = [
    ("float", {}),
    ("binaryconnect", {"variant": "det"}),
    ("binaryconnect", {"variant": "stoch"}),
    ("bnn", {}),
    ("bnn", {"bn": "shift", "optim": "shift-adamax"}),
    ("xnor", {"variant": "xnor"}),
    ("xnor", {"variant": "bwn", "first_layer": "quant", "last_layer": "quant"}),
    ("dorefa", {"wbits": 1, "abits": 1}),
    ("dorefa", {"wbits": 2, "abits": 2, "gbits": 6}),
    ("wage", {}),
]
IDS = [m + "".join(f"-{v}" for v in o.values()) for m, o in SETTINGS]


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def digits():
    return load_digits_dataset(0)


def make_config(method, options, arch="mlp", hidden=(32, 32), **extra):
    cfg = {"method": method, "arch": arch, "hidden": list(hidden), "dataset": "digits", "seed": 0,
           "input_features": 64, "input_shape": [8, 8], "input_bits": 5, "num_classes": 10,
           "epochs": 1, "batch_size": 64}
    cfg.update(options)
    cfg.update(extra)
    return resolve_config(cfg)


@pytest.mark.parametrize("arch", ["mlp", "8C3-MP2-16C3-FC32"])
@pytest.mark.parametrize("method,options", SETTINGS, ids=IDS)
def test_a_few_steps_lower_the_loss(method, options, arch, digits):
    cfg = make_config(method, options, arch=arch)
    torch.manual_seed(0)
    model = build_model(cfg)
    optimizer = make_optimizer(cfg["optim"], model, cfg["lr"], cfg["lr_scale"], gbits=cfg.get("gbits", 8),
                               generator=torch.Generator().manual_seed(1))
    loss_fn = get_loss(cfg["loss"])
    x = to_tensor(digits.x_train[:128])
    y = torch.from_numpy(digits.y_train[:128])

    def batch_loss():
        torch.manual_seed(123)          # the same stochastic draws for both measurements
        with torch.no_grad():
            return loss_fn(model(x), y).item()

    model.train()
    before = batch_loss()
    for _ in range(20):
        loss = loss_fn(model(x), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        clip_weights(model)
    after = batch_loss()
    assert np.isfinite(after) and after < 0.95 * before, (before, after)


def test_weights_stay_clipped_and_on_grid(digits):
    for method, check in [("binaryconnect", lambda w: w.abs().max() <= 1),
                          ("bnn", lambda w: w.abs().max() <= 1),
                          ("wage", lambda w: torch.equal(w * 128, torch.round(w * 128)) and w.abs().max() < 1)]:
        cfg = make_config(method, {})
        torch.manual_seed(0)
        model = build_model(cfg)
        opt = make_optimizer(cfg["optim"], model, cfg["lr"] * 10, cfg["lr_scale"])
        for _ in range(5):
            loss = get_loss(cfg["loss"])(model(to_tensor(digits.x_train[:64])), torch.from_numpy(digits.y_train[:64]))
            opt.zero_grad()
            loss.backward()
            opt.step()
            clip_weights(model)
        layers = [m for m in model.modules() if hasattr(m, "weight_quant")]
        assert layers and all(check(m.weight.detach()) for m in layers), method


def test_glorot_lr_scaling_groups():
    cfg = make_config("binaryconnect", {})
    model = build_model(cfg)
    opt = make_optimizer("adam", model, 0.003, "glorot")
    scaled = sorted(g["lr"] for g in opt.param_groups[1:])
    # 64-32, 32-32, 32-10: 1 / sqrt(1.5 / (fan_in + fan_out))
    expected = sorted(0.003 / np.sqrt(1.5 / n) for n in (96, 64, 42))
    assert np.allclose(scaled, expected)
    conv = build_model(make_config("binaryconnect", {}, arch="4C3-FC8"))
    first = next(m for m in conv.modules() if hasattr(m, "fans"))
    assert first.fans() == (9 * 1, 9 * 4)


@pytest.mark.parametrize("method,options", SETTINGS, ids=IDS)
def test_train_save_load_round_trip(method, options, tmp_path, digits):
    run = tmp_path / "run"
    args = ["train", "--method", method, "--hidden", "16", "--epochs", "1", "--out", str(run), "--quiet"]
    for key, value in options.items():
        args += ["--" + key.replace("_", "-"), str(value)]
    assert main(args) == 0
    metrics = json.loads((run / "metrics.json").read_text())
    assert {"loss", "train_acc", "test_acc", "lr", "seconds"} <= set(metrics["epochs"][0])
    config, model = load_run(run)
    assert config["method"] == method and all(config[k] == v for k, v in options.items())
    assert evaluate(model, digits.x_test, digits.y_test) == metrics["test_acc"]
    if method == "binaryconnect":
        assert {"test_acc_binary", "test_acc_real"} <= set(metrics)
        assert metrics["test_acc"] == metrics["test_acc_real" if options["variant"] == "stoch" else "test_acc_binary"]


def test_conv_run_saves_loads_and_plots(tmp_path, digits):
    run = tmp_path / "conv"
    assert main(["train", "--method", "dorefa", "--arch", "8C3-8C3-MP2-16C3-FC32", "--wbits", "2", "--abits", "2",
                 "--epochs", "2", "--out", str(run), "--quiet", "--plot"]) == 0
    _, model = load_run(run)
    assert evaluate(model, digits.x_test, digits.y_test) == json.loads((run / "metrics.json").read_text())["test_acc"]
    assert (run / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    (run / "curves.png").unlink()
    assert main(["plot", str(run), "--out", str(tmp_path / "c.png")]) == 0
    assert (tmp_path / "c.png").stat().st_size > 1000


def test_runs_without_a_hardware_mapping_refuse_export_clearly(tmp_path):
    """Float nets (nothing quantized) are refused, naming why and what works; a conv net exports."""
    run = tmp_path / "float"
    assert main(["train", "--method", "float", "--hidden", "16", "--epochs", "1", "--out", str(run), "--quiet"]) == 0
    with pytest.raises(ValueError, match="--method float has no hardware mapping: its weights and activations are "
                                         r"real; train a quantized method \(bnn, binaryconnect, xnor, dorefa, wage\)"):
        export_run(run, generate=())
    conv = tmp_path / "bnnconv"
    assert main(["train", "--method", "bnn", "--arch", "4C3-FC8", "--epochs", "1", "--out", str(conv), "--quiet"]) == 0
    assert export_run(conv, generate=()).layers[0].conv == art.ConvSpec(8, 8, 1, 3, 1, 0, 0)   # 4C3: 4 channels, k 3


def test_shift_batchnorm_bnn_exports_bit_exactly(tmp_path):
    from test_golden_vs_torch import assert_golden_equals_torch
    from bnnflow.writer import read_vectors

    run = tmp_path / "shift"
    assert main(["train", "--method", "bnn", "--hidden", "64,32", "--bn", "shift", "--optim", "shift-adamax",
                 "--lr", "0.004", "--epochs", "3", "--seed", "1", "--out", str(run), "--quiet"]) == 0
    artifact = export_run(run, out_dir=tmp_path / "export", generate=())
    _, model = load_run(run)
    images, _, _ = read_vectors(artifact)
    assert_golden_equals_torch(model, artifact, images)


def test_old_config_without_method_fields_still_builds():
    old = {"method": "bnn", "arch": "mlp", "hidden": [16], "dataset": "digits", "split_seed": 0, "seed": 1,
           "epochs": 1, "batch_size": 64, "lr": 0.01, "input_features": 64, "input_shape": [8, 8],
           "input_bits": 5, "num_classes": 10}
    model = build_model(old)
    assert type(model).__name__ == "BNNMLP" and hasattr(model, "deployment_chain")


def test_cli_and_model_agree_on_methods():
    assert tuple(METHODS) == CLI_METHODS


# --------------------------------------------------------------------------- errors

def train_error(capsys, *extra):
    code = main(["train", "--epochs", "1", "--out", "/nonexistent/never", "--quiet", *extra])
    return code, capsys.readouterr().err


def test_unknown_method_is_a_clear_error(capsys):
    with pytest.raises(ValueError, match="unknown method 'sgdbin'"):
        build_model({"method": "sgdbin"})
    with pytest.raises(SystemExit):
        main(["train", "--method", "sgdbin", "--out", "x"])
    assert "invalid choice: 'sgdbin'" in capsys.readouterr().err


@pytest.mark.parametrize("extra,message", [
    (["--method", "dorefa", "--wbits", "0"], "--wbits 0 out of range for --method dorefa"),
    (["--method", "dorefa", "--abits", "17"], "--abits 17 out of range"),
    (["--method", "wage", "--wbits", "1"], "--wbits 1 out of range for --method wage: use 2..16"),
    (["--method", "wage", "--ebits", "32"], "--ebits 32 out of range"),
    (["--method", "bnn", "--wbits", "2"], "--wbits does not apply to --method bnn"),
    (["--method", "float", "--variant", "stoch"], "--variant does not apply"),
    (["--method", "binaryconnect", "--variant", "xnor"], "unknown variant 'xnor'"),
    (["--method", "wage", "--bn", "shift"], "WAGE uses no BatchNorm"),
    (["--method", "bnn", "--optim", "wage-sgd"], "needs --method wage"),
    (["--method", "bnn", "--first-layer", "real"], "--first-layer does not apply"),
    (["--method", "float", "--arch", "32C3-MP2-MP2-MP2-MP2"], "does not fit the 8x8 input of digits: token 5 'MP2'"),
    (["--method", "xnor", "--arch", "16C9V-FC10"], "does not fit the 8x8 input of digits: token 1 '16C9V'"),
    (["--method", "float", "--arch", "32X3-FC10"], "cannot read token 1 '32X3'"),
    (["--method", "float", "--arch", "FC10-8C3"], "comes after a fully connected layer"),
])
def test_bad_options_are_clear_errors(capsys, extra, message):
    code, err = train_error(capsys, *extra)
    assert code == 2 and message in err, err


def test_conv_spec_shapes():
    base = {"method": "float", "num_classes": 10, "input_features": 64, "input_shape": [8, 8], "dataset": "digits"}
    specs = layer_specs(dict(base, arch="32C3-32C3-MP2-64C3-FC128"))
    assert [s["kind"] for s in specs] == ["conv", "conv", "pool", "conv", "fc", "fc"]
    assert specs[4]["in"] == 64 * 4 * 4 and specs[5] == {"kind": "fc", "in": 128, "out": 10}
    specs = layer_specs(dict(base, arch="8C3V-8C3V-MP2", input_shape=[28, 28]))
    assert specs[-1]["in"] == 8 * 12 * 12
