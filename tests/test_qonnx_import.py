"""`bnnflow import-qonnx` on files Brevitas wrote: import, compare with the Brevitas model, export, verify.

The models are small Brevitas MLPs in the style of BNN-PYNQ's LFC (an input
QuantIdentity, QuantLinear with 1-bit weights + BatchNorm1d + 1-bit
QuantIdentity blocks, a last QuantLinear with an optional BatchNorm), trained
a few seeded steps on scikit-learn's digits and exported with
``brevitas.export.export_qonnx`` itself. The rebuilt bnnflow model must give
the Brevitas model's input codes, activation bits and integer sums in every
layer and its classes on the whole test split; then ``bnnflow export`` and
``bnnflow verify --against golden,rtl,hls`` must pass. The refusals use small
QONNX graphs written with onnx.helper, one per reason.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("qonnx")
pytest.importorskip("onnx")

from bnnflow.cli import main  # noqa: E402
from bnnflow.datasets import load_dataset  # noqa: E402

# ---------------------------------------------------------------------------
# Brevitas models
# ---------------------------------------------------------------------------

#: The variants: how the input is quantized, the weight and activation quantizers, biases, a last BatchNorm.
VARIANTS = {
    # 8-bit unsigned input codes equal to the pixels (fed p/16, constant scale 1/16), Brevitas's constant
    # binary scales (0.1), a last BatchNorm (per-class score affine)
    "int-input": dict(input="uint8", weight="const", act="const", bias=False, final_bn=True),
    # BNN-PYNQ LFC: binarized pixels (fed p/16 - 1, a BipolarQuant: pixel 16 is +1), no last BatchNorm:
    # the scores are the integer sums times one scale
    "lfc-binary-input": dict(input="bipolar", weight="const", act="const", bias=False, final_bn=False),
    # per-output-channel mean|w| weight scales (XNOR-Net style), learned activation scale, biases
    "per-channel": dict(input="uint8", weight="channel-stats", act="learned", bias=True, final_bn=True),
    # learned per-channel weight scales and no last BatchNorm: every class has its own score factor
    "learned-scales": dict(input="uint8", weight="channel-param", act="learned", bias=False, final_bn=False),
}
# Not a variant: Brevitas 0.13.4 exports a 1-bit *unsigned* activation (Uint8ActPerTensorFloat, bit_width=1:
# bit = x > s/2) as a BipolarQuant (bit = x >= 0), so that QONNX file computes another network than the
# Brevitas model; the importer reads the file as written (a hand-built 1-bit unsigned Quant is tested below).

HIDDEN = (32, 16)
SEED = 0
STEPS = 30              # CI
SLOW_STEPS = 200        # the slow sweep


def _feed(variant: str, pixels: np.ndarray) -> np.ndarray:
    """What the Brevitas model is fed for the dataset's pixels (0..16): p/16, or p/16 - 1 for binary input."""
    x = pixels.astype(np.float32) / 16
    return x - 1 if VARIANTS[variant]["input"] == "bipolar" else x


def _import_options(variant: str) -> list[str]:
    """The import-qonnx options that say how the model was fed (x = p * scale + offset)."""
    opts = ["--input-scale", "1/16"]
    return opts + (["--input-offset", "-1"] if VARIANTS[variant]["input"] == "bipolar" else [])


def build_brevitas(variant: str):
    """A Brevitas LFC-style MLP 64 -> 32 -> 16 -> 10 of ``variant``."""
    from brevitas.core.quant import BinaryQuant
    from brevitas.inject.enum import ScalingImplType, ScalingPerOutputType, StatsOp
    from brevitas.nn import QuantIdentity, QuantLinear
    from brevitas.quant import SignedBinaryActPerTensorConst, SignedBinaryWeightPerTensorConst, Uint8ActPerTensorFloat
    from torch import nn

    v = VARIANTS[variant]
    if v["input"] == "uint8":
        first = QuantIdentity(act_quant=Uint8ActPerTensorFloat, max_val=255 / 16,
                              scaling_impl_type=ScalingImplType.CONST, return_quant_tensor=True)
    else:
        first = QuantIdentity(act_quant=SignedBinaryActPerTensorConst, return_quant_tensor=True)
    # per-channel scales with BinaryQuant: the const quantizer's in-place clamp breaks autograd with them
    channel = dict(weight_scaling_per_output_type=ScalingPerOutputType.CHANNEL, weight_scaling_stats_op=StatsOp.AVE,
                   weight_tensor_quant=BinaryQuant)
    weight = {"const": {},
              "channel-stats": dict(weight_scaling_impl_type=ScalingImplType.STATS, **channel),
              "channel-param": dict(weight_scaling_impl_type=ScalingImplType.PARAMETER_FROM_STATS, **channel)
              }[v["weight"]]

    def act():
        if v["act"] == "const":
            return QuantIdentity(act_quant=SignedBinaryActPerTensorConst, return_quant_tensor=True)
        return QuantIdentity(act_quant=SignedBinaryActPerTensorConst, scaling_impl_type=ScalingImplType.PARAMETER,
                             scaling_init=0.5, return_quant_tensor=True)

    def linear(i, o):
        return QuantLinear(i, o, bias=v["bias"], weight_quant=SignedBinaryWeightPerTensorConst, **weight)

    sizes = (64,) + HIDDEN
    layers = [first]
    for i, o in zip(sizes, sizes[1:]):
        layers += [linear(i, o), nn.BatchNorm1d(o), act()]
    layers.append(linear(sizes[-1], 10))
    if v["final_bn"]:
        layers.append(nn.BatchNorm1d(10))
    return nn.Sequential(*layers)


def train_brevitas(variant: str, dataset, steps: int = STEPS):
    """``build_brevitas(variant)`` after ``steps`` seeded Adam steps on the digits training split, in eval mode."""
    torch.manual_seed(SEED)
    model = build_brevitas(variant)
    x = torch.from_numpy(_feed(variant, dataset.x_train))
    y = torch.from_numpy(dataset.y_train)
    gain = 1.0 if VARIANTS[variant]["final_bn"] else 5.0       # scores of 0.01 * dot are too flat for the loss
    optimizer = torch.optim.Adam(model.parameters(), lr=0.02)
    generator = torch.Generator().manual_seed(SEED)
    model.train()
    for _ in range(steps):
        idx = torch.randint(0, len(x), (64,), generator=generator)
        loss = torch.nn.functional.cross_entropy(model(x[idx]) * gain, y[idx])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    model.eval()
    return model


def export_brevitas(model, path: Path) -> Path:
    """The model as a QONNX file written by brevitas.export.export_qonnx."""
    from brevitas.export import export_qonnx

    export_qonnx(model, input_t=torch.zeros(1, 64), export_path=str(path))
    return path


# ---------------------------------------------------------------------------
# What each model computes: codes, integer sums, classes
# ---------------------------------------------------------------------------


def brevitas_trace(model, x: np.ndarray) -> tuple[list[np.ndarray], list[np.ndarray], np.ndarray]:
    """(input codes of every QuantLinear, its +-1 weights, the model's float scores) from Brevitas's own tensors.

    The codes are the integers of the QuantTensor each layer reads (``.int()``); the check that the layer's
    float output is codes @ weights times the scales (plus bias) ties these integers to what Brevitas computed.
    """
    from brevitas.nn import QuantLinear

    layers = [m for m in model if isinstance(m, QuantLinear)]
    codes, outputs = [], []

    def keep(_module, inputs, output) -> None:
        codes.append(inputs[0])
        outputs.append(output)

    hooks = [m.register_forward_hook(keep) for m in layers]
    with torch.no_grad():
        scores = model(torch.from_numpy(x)).numpy()
    for h in hooks:
        h.remove()
    weights = []
    for layer, qx, out in zip(layers, codes, outputs):
        qw = layer.quant_weight()
        w = qw.int().to(torch.int64).numpy()
        assert set(np.unique(w)) <= {-1, 1}
        c = qx.int().to(torch.int64).numpy()
        bias = 0 if layer.bias is None else layer.bias.detach().numpy()
        dequant = (c * qx.scale.numpy().reshape(-1)[0]) @ (w * qw.scale.detach().numpy().reshape(-1, 1)).T + bias
        np.testing.assert_allclose(out.numpy(), dequant, rtol=1e-4, atol=1e-5)
        weights.append(w)
    return [c.int().to(torch.int64).numpy() for c in codes], weights, scores


def bnnflow_trace(model, pixels: np.ndarray) -> tuple[list[np.ndarray], list[np.ndarray], np.ndarray]:
    """(input codes of every layer, their integer sums, scores) of the rebuilt bnnflow model (its forward pass)."""
    from bnnflow.model.layers import QuantLinear

    layers = [m for m in model.modules() if isinstance(m, QuantLinear)]
    seen = []

    def keep(module, inputs, output) -> None:
        seen.append((module.input_quant(inputs[0]), output))

    hooks = [m.register_forward_hook(keep) for m in layers]
    with torch.no_grad():
        scores = model(torch.from_numpy(pixels.astype(np.float32))).numpy()
    for h in hooks:
        h.remove()
    codes = [c.numpy().astype(np.int64) for c, _ in seen]
    sums = [o.numpy() for _, o in seen]
    assert all(np.array_equal(s, np.round(s)) for s in sums)
    return codes, [s.astype(np.int64) for s in sums], scores


def _shared_scores(variant: str) -> bool:
    """No last BatchNorm and one weight scale: the scores are one factor times the integer sums."""
    return not VARIANTS[variant]["final_bn"] and VARIANTS[variant]["weight"] == "const"


def to_bnnflow_codes(codes: np.ndarray, k: int, variant: str) -> np.ndarray:
    """Brevitas's codes of layer k in bnnflow's terms: a binary first layer reads +-1 as the bits 0/1."""
    return (codes + 1) // 2 if k == 0 and VARIANTS[variant]["input"] == "bipolar" else codes


def compare_with_brevitas(brevitas_model, run: Path, variant: str, dataset) -> dict:
    """Assert the rebuilt run equals the Brevitas model on the whole test split; returns the figures."""
    from bnnflow.golden import argmax_lowest
    from bnnflow.model.train import load_run

    config, model = load_run(run)
    pixels = dataset.x_test if config["input_bits"] == dataset.input_bits else \
        load_dataset("digits", 0, config["input_bits"]).x_test
    b_codes, b_weights, b_scores = brevitas_trace(brevitas_model, _feed(variant, dataset.x_test))
    codes, sums, scores = bnnflow_trace(model, pixels)
    assert len(codes) == len(b_codes) == 3
    for k in range(3):
        ours = to_bnnflow_codes(b_codes[k], k, variant)
        np.testing.assert_array_equal(codes[k], ours, err_msg=f"layer {k} input codes")
        np.testing.assert_array_equal(sums[k], ours @ b_weights[k].T, err_msg=f"layer {k} integer sums")
    # classes: Brevitas's float argmax where its top score is not tied; ties go to the lowest tied class
    last_sums = sums[-1]
    if _shared_scores(variant):
        brevitas_cls = argmax_lowest(last_sums)       # the scores are one positive scale times these sums
        untied = (last_sums == last_sums.max(1, keepdims=True)).sum(1) == 1
        np.testing.assert_array_equal(b_scores.argmax(1)[untied], brevitas_cls[untied])
    else:
        brevitas_cls = b_scores.argmax(1)
    np.testing.assert_array_equal(scores.argmax(1), brevitas_cls)
    return {"classes": brevitas_cls, "accuracy": float((brevitas_cls == dataset.y_test).mean())}


# ---------------------------------------------------------------------------
# CI: one network through import, export and verify
# ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits", 0)


@pytest.fixture(scope="module")
def lfc(tmp_path_factory, digits, one_thread):
    """(Brevitas model, its QONNX file) of the int-input variant, trained and exported once per module."""
    pytest.importorskip("brevitas")
    model = train_brevitas("int-input", digits)
    return model, export_brevitas(model, tmp_path_factory.mktemp("brevitas") / "lfc.onnx")


def _verify_figures(out: str) -> dict[str, tuple[str, str]]:
    """level -> (accuracy, agreement with torch) from verify's table."""
    rows = {}
    for line in out.splitlines():
        m = re.match(r"^(\S+(?: \(\w+\))?)\s+\d+\s+([\d.]+%)\s+([\d.]+%)", line)
        if m:
            rows[m.group(1)] = (m.group(2), m.group(3))
    return rows


def test_import_export_verify(lfc, digits, tmp_path, capsys):
    """import-qonnx -> the same codes, sums and classes as Brevitas on all 360 test images -> export ->
    verify --against golden,rtl,hls (Icarus, 32 images) at 100% agreement."""
    model, onnx_file = lfc
    run = tmp_path / "run"
    assert main(["import-qonnx", str(onnx_file), "--out", str(run), *_import_options("int-input")]) == 0
    out = capsys.readouterr().out
    assert re.search(r"3 binarized layers 64 -> 32 -> 16 -> 10, 5-bit input codes", out), out
    assert "activation bits of every layer equal, classes agree on 360/360 (+0 with a tied top score" in out

    config = json.loads((run / "config.json").read_text())
    assert config["method"] == "bnn" and config["arch"] == "FC32-FC16" and config["input_bits"] == 5
    imported = config["imported"]
    assert imported["sha256"] == hashlib.sha256(onnx_file.read_bytes()).hexdigest()
    assert imported["external_data"] == {}        # Brevitas's file holds its initializers inline
    assert imported["input"] == {"scale": 0.0625, "offset": 0.0, "input_bits": 5, "value_per_code": 0.0625,
                                 "value_at_code_0": 0.0}
    assert [layer["shape"] for layer in imported["layers"]] == [[32, 64], [16, 32], [10, 16]]
    assert [layer["affine"] for layer in imported["layers"]] == \
        [["BatchNormalization_0"], ["BatchNormalization_1"], ["BatchNormalization_2"]]

    figures = compare_with_brevitas(model, run, "int-input", digits)
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["test_acc"] == pytest.approx(figures["accuracy"])
    assert metrics["imported"]["qonnx_test_acc"] == pytest.approx(figures["accuracy"])
    assert metrics["test_acc"] > 0.5

    assert main(["export", str(run)]) == 0
    out = capsys.readouterr().out
    assert re.search(r"L0 int_threshold\s+W1 A5->1\s+64 ->\s+32", out), out
    assert re.search(r"L2 xnor_score\s+W1 A1->score\s+16 ->\s+10", out), out
    # the deployed reference (integer thresholds, fixed-point score affine) classifies as Brevitas does
    from bnnflow.golden import argmax_lowest
    from bnnflow.verify import torch_scores

    np.testing.assert_array_equal(argmax_lowest(torch_scores(run, digits.x_test)), figures["classes"])

    code = main(["verify", str(run), "--against", "golden,rtl,hls", "--sim", "icarus", "--limit", "32"])
    out = capsys.readouterr().out
    assert code == 0, out
    rows = _verify_figures(out)
    expected = f"{(figures['classes'][:32] == digits.y_test[:32]).mean() * 100:.2f}%"
    assert rows == {level: (expected, "100.00%") for level in
                    ("torch-float", "torch", "golden", "rtl (icarus)", "hls (csim)")}, out
    assert "PASS: every level matches torch and the golden model bit for bit" in out
    assert "reference: the model imported from" in out and "by `bnnflow import-qonnx`" in out
    assert main(["plot", str(run)]) == 2      # no training curves to draw, and it says why
    assert "was imported (bnnflow import-qonnx), not trained here: it has no training curves" in capsys.readouterr().err


# ---------------------------------------------------------------------------
# Refusals: small QONNX graphs, one per reason
# ---------------------------------------------------------------------------

QONNX_DOMAIN = "qonnx.custom_op.general"


def _graph(path: Path, nodes, initializers, inputs=(1, 64), outputs=(1, 10)) -> Path:
    """Write a QONNX model of ``nodes`` (input 'x', output 'y') to ``path``."""
    import onnx
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, list(inputs))],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, list(outputs))],
        [onnx.numpy_helper.from_array(np.asarray(v, dtype=np.float32), k) for k, v in initializers.items()])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13), helper.make_opsetid(QONNX_DOMAIN, 1)])
    onnx.save(model, str(path))
    return path


def _mlp_nodes(sizes=(64, 8, 10), act=None, weight_bits=None, first_quant=True, extra=None, bn=True):
    """Nodes + initializers of a bipolar MLP: Quant(input) -> [Gemm -> BN -> act] ... -> Gemm.

    ``act(k)`` returns the nodes between BN k and the next Gemm (default: a BipolarQuant);
    ``weight_bits`` makes layer 0's weight quantizer a Quant of that width; ``extra(k)`` appends nodes
    after layer k's Gemm (before the BN); ``bn=False`` leaves the BatchNorms out.
    """
    from onnx import helper

    rng = np.random.default_rng(0)
    nodes, init = [], {"s_in": [1.0], "zp": [0.0], "bits8": [8.0], "bits1": [1.0], "s": [1.0]}
    if first_quant:
        nodes.append(helper.make_node("Quant", ["x", "s_in", "zp", "bits8"], ["q0"], name="Quant_in",
                                      domain=QONNX_DOMAIN, signed=0, narrow=0, rounding_mode="ROUND"))
    current = "q0" if first_quant else "x"
    n = len(sizes) - 1
    for k, (i, o) in enumerate(zip(sizes, sizes[1:])):
        init[f"w{k}"] = rng.standard_normal((o, i))
        if k == 0 and weight_bits:
            init["wbits"] = [float(weight_bits)]
            nodes.append(helper.make_node("Quant", ["w0", "s", "zp", "wbits"], ["wq0"], name="Quant_w0",
                                          domain=QONNX_DOMAIN, signed=1, narrow=1, rounding_mode="ROUND"))
        else:
            nodes.append(helper.make_node("BipolarQuant", [f"w{k}", "s"], [f"wq{k}"], name=f"BipolarQuant_w{k}",
                                          domain=QONNX_DOMAIN))
        out = "y" if k == n - 1 else f"g{k}"
        nodes.append(helper.make_node("Gemm", [current, f"wq{k}"], [out], name=f"Gemm_{k}", transB=1))
        current = out
        if k == n - 1:
            break
        if extra:
            more = extra(k, current)
            nodes += more
            current = more[-1].output[0] if more else current
        if bn:
            for name, value in (("g", rng.uniform(0.5, 2, o) * rng.choice([-1, 1], o)), ("b", rng.normal(0, 1, o)),
                                ("m", rng.normal(0, 8, o)), ("v", rng.uniform(10, 100, o))):
                init[f"bn{k}_{name}"] = value
            nodes.append(helper.make_node("BatchNormalization", [current] + [f"bn{k}_{x}" for x in "gbmv"],
                                          [f"n{k}"], name=f"BatchNormalization_{k}"))
            current = f"n{k}"
        more = act(k, current) if act else [helper.make_node("BipolarQuant", [current, "s"], [f"a{k}"],
                                                              name=f"BipolarQuant_a{k}", domain=QONNX_DOMAIN)]
        nodes += more
        current = more[-1].output[0] if more else current
    return nodes, init


def _refused(capsys, model: Path, tmp_path: Path, *options: str) -> str:
    code = main(["import-qonnx", str(model), "--out", str(tmp_path / "run"), *options])
    err = capsys.readouterr().err
    assert code == 2, err
    assert not (tmp_path / "run").exists()
    return err.strip()


def test_hand_built_graph_imports(tmp_path, capsys):
    """The refusal tests' base graph itself imports: input Quant scale 1 on the pixels, two layers."""
    nodes, init = _mlp_nodes()
    model = _graph(tmp_path / "ok.onnx", nodes, init)
    assert main(["import-qonnx", str(model), "--out", str(tmp_path / "run")]) == 0
    out = capsys.readouterr().out
    assert "2 binarized layers 64 -> 8 -> 10, 5-bit input codes" in out
    assert json.loads((tmp_path / "run" / "config.json").read_text())["hidden"] == [8]


def _unsigned_1bit(k, current):
    from onnx import helper

    return [helper.make_node("Quant", [current, "s", "zp", "bits1"], [f"a{k}"], name=f"Quant_a{k}",
                             domain=QONNX_DOMAIN, signed=0, narrow=0, rounding_mode="ROUND")]


@pytest.mark.parametrize("case", ["unsigned-1bit-activation", "no-batchnorm"])
def test_hand_built_variants_import(case, tmp_path, capsys):
    """A 1-bit unsigned Quant activation (bit = x > scale/2, read as 0/1 by the next layer) and a layer without
    BatchNorm (bit = sign of the sum) import, and the import's own check against qonnx's execution of the
    graph finds every activation bit and class equal."""
    nodes, init = _mlp_nodes(act=_unsigned_1bit if case == "unsigned-1bit-activation" else None,
                             bn=case != "no-batchnorm")
    model = _graph(tmp_path / "m.onnx", nodes, init)
    assert main(["import-qonnx", str(model), "--out", str(tmp_path / "run")]) == 0
    out = capsys.readouterr().out
    assert re.search(r"activation bits of every layer equal, classes agree on (\d+)/\1 \(\+(\d+) with a tied", out), out
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert config["imported"]["layers"][0]["activation"] == ("Quant_1" if case == "unsigned-1bit-activation"
                                                             else "BipolarQuant_2")


def test_import_check_names_a_wrong_bit(tmp_path, capsys, monkeypatch):
    """The import's own check against qonnx's execution: a rebuild whose layer-0 compare points are shifted by
    100 is stopped, naming the layer, neuron and test image, and no run is written."""
    from bnnflow import qonnx_import

    compose = qonnx_import.compose

    def shifted(model, mapping):
        layers = compose(model, mapping)
        layers[0].B = layers[0].B + 100 * np.abs(layers[0].A)
        return layers

    monkeypatch.setattr(qonnx_import, "compose", shifted)
    nodes, init = _mlp_nodes()
    model = _graph(tmp_path / "m.onnx", nodes, init)
    err = _refused(capsys, model, tmp_path)
    assert re.fullmatch(rf"bnnflow import-qonnx: error: {re.escape(str(model))}: layer 0 \('Gemm_0'\), neuron \d+, "
                        r"test image \d+: the rebuilt bnnflow model's activation bit is [01], the QONNX graph's [01] "
                        r"\(\d+ bits differ\); please report this with the model file", err), err


def test_refuses_conv(tmp_path, capsys):
    from onnx import helper

    nodes = [helper.make_node("Conv", ["x", "k"], ["c"], name="Conv_0", pads=[1, 1, 1, 1]),
             helper.make_node("Flatten", ["c"], ["y"], name="Flatten_0")]
    model = _graph(tmp_path / "conv.onnx", nodes, {"k": np.ones((1, 1, 3, 3))}, inputs=(1, 1, 8, 8),
                   outputs=(1, 64))
    err = _refused(capsys, model, tmp_path)
    assert err == (f"bnnflow import-qonnx: error: {model}: node 'Conv_0' (Conv): convolutions and pooling are "
                   "not imported; import-qonnx takes fully connected MLPs (train conv nets with `bnnflow train "
                   "--arch`)")


def test_refuses_multibit_weights(tmp_path, capsys):
    nodes, init = _mlp_nodes(weight_bits=4)
    model = _graph(tmp_path / "w4.onnx", nodes, init)
    err = _refused(capsys, model, tmp_path)
    assert err == (f"bnnflow import-qonnx: error: {model}: node 'Quant_1' (Quant) quantizes the weights of "
                   "'Gemm_0' to 4-bit signed codes; bnnflow imports binarized weights (BipolarQuant, or a 1-bit "
                   "signed Quant)")


def test_refuses_relu(tmp_path, capsys):
    from onnx import helper

    nodes, init = _mlp_nodes(act=lambda k, cur: [helper.make_node("Relu", [cur], [f"r{k}"], name=f"Relu_{k}")])
    model = _graph(tmp_path / "relu.onnx", nodes, init)
    err = _refused(capsys, model, tmp_path)
    assert err == (f"bnnflow import-qonnx: error: {model}: node 'Relu_0' (Relu): a real-valued activation; "
                   "bnnflow's BNN layers pass 1-bit activations (BipolarQuant or a 1-bit Quant after the "
                   "BatchNorm)")


def test_refuses_unsupported_op(tmp_path, capsys):
    from onnx import helper

    nodes, init = _mlp_nodes(extra=lambda k, cur: [helper.make_node("Softmax", [cur], [f"sm{k}"],
                                                                    name=f"Softmax_{k}")])
    model = _graph(tmp_path / "softmax.onnx", nodes, init)
    err = _refused(capsys, model, tmp_path)
    assert err.startswith(f"bnnflow import-qonnx: error: {model}: node 'Softmax_0' (Softmax): op Softmax is not "
                          "supported (import-qonnx takes Gemm, MatMul, BipolarQuant, Quant")


def test_refuses_folded_integer_graph(tmp_path, capsys):
    """FINN's folded form (a MultiThreshold instead of BatchNorm + quantizer), as `bnnflow qonnx` writes it."""
    from onnx import helper

    def threshold(k, current):
        return [helper.make_node("MultiThreshold", [current, "th"], [f"t{k}"], name=f"MultiThreshold_{k}",
                                 domain=QONNX_DOMAIN, out_dtype="BINARY")]

    nodes, init = _mlp_nodes(act=threshold, bn=False)
    init["th"] = np.zeros((8, 1))
    model = _graph(tmp_path / "folded.onnx", nodes, init)
    err = _refused(capsys, model, tmp_path)
    assert err == (f"bnnflow import-qonnx: error: {model}: node 'MultiThreshold_0' (MultiThreshold): a graph in FINN's "
                   "folded integer form (thresholds already folded, as `bnnflow qonnx` or FINN's streamlining write "
                   "it); import-qonnx reads the quantized model Brevitas exports (Quant/BipolarQuant, "
                   "BatchNormalization)")


def test_refuses_missing_activation_quantizer(tmp_path, capsys):
    """BatchNorm straight into the next layer: real activations between layers."""
    nodes, init = _mlp_nodes(act=lambda k, cur: [])
    model = _graph(tmp_path / "noact.onnx", nodes, init)
    err = _refused(capsys, model, tmp_path)
    assert err == (f"bnnflow import-qonnx: error: {model}: node 'Gemm_1' (Gemm) reads layer 0 ('Gemm_0') without a "
                   "1-bit activation quantizer between them (BipolarQuant or a 1-bit Quant, after the BatchNorm); "
                   "bnnflow's hidden layers output 1-bit activations")


def test_refuses_multibit_activations(tmp_path, capsys):
    from onnx import helper

    nodes, init = _mlp_nodes(act=lambda k, cur: [helper.make_node(
        "Quant", [cur, "s", "zp", "bits8"], [f"a{k}"], name=f"Quant_a{k}", domain=QONNX_DOMAIN, signed=1,
        narrow=0, rounding_mode="ROUND")])
    model = _graph(tmp_path / "a8.onnx", nodes, init)
    err = _refused(capsys, model, tmp_path)
    assert err == (f"bnnflow import-qonnx: error: {model}: node 'Quant_1' (Quant): 8-bit activations; bnnflow's "
                   "BNN layers pass 1-bit activations (BipolarQuant or a 1-bit Quant)")


def test_refuses_shapes_the_dataset_does_not_fit(tmp_path, capsys):
    nodes, init = _mlp_nodes(sizes=(100, 8, 10))
    model = _graph(tmp_path / "in100.onnx", nodes, init, inputs=(1, 100))
    err = _refused(capsys, model, tmp_path)
    assert err == (f"bnnflow import-qonnx: error: {model}: the model reads 100 inputs (layer 0 'Gemm_0' has 100 "
                   "columns) but the digits images have 64 pixels")
    nodes, init = _mlp_nodes(sizes=(64, 8, 7))
    model = _graph(tmp_path / "out7.onnx", nodes, init, outputs=(1, 7))
    err = _refused(capsys, model, tmp_path)
    assert err == (f"bnnflow import-qonnx: error: {model}: the last layer ('Gemm_1') has 7 outputs but digits has "
                   "10 classes")


def test_refuses_single_layer(tmp_path, capsys):
    nodes, init = _mlp_nodes(sizes=(64, 10))
    model = _graph(tmp_path / "one.onnx", nodes, init)
    err = _refused(capsys, model, tmp_path)
    assert err == (f"bnnflow import-qonnx: error: {model}: one layer ('Gemm_0'); bnnflow's BNN MLPs have at least "
                   "one hidden layer (a 1-bit activation between two layers)")


def test_refuses_input_quantizer_that_is_not_linear_in_the_pixels(tmp_path, capsys):
    """An input Quant of scale 1 fed p/16: codes round(p/16) are not a linear function of any top-bits code."""
    nodes, init = _mlp_nodes()
    model = _graph(tmp_path / "inq.onnx", nodes, init)
    err = _refused(capsys, model, tmp_path, "--input-scale", "0.0625", "--input-bits", "5")
    assert err.startswith(f"bnnflow import-qonnx: error: {model}: the input quantizer (Quant_0) of layer 0 "
                          "('Gemm_0'): its values for the 5-bit codes are not a linear function of the code; "
                          "bnnflow's first layer multiplies the pixel codes themselves, so the quantizer must map "
                          "them linearly (values by pixel: 0: 0, 1: 0, 2: 0, 3: 0, 4: 0, 5: 0, 6: 0, 7: 0, 8: 0, 9: 1, ")


@pytest.mark.parametrize("options, message", [
    (["--input-scale", "0"], "argument --input-scale: must not be 0 (the model would see the same input for every "
                             "pixel)"),
    (["--input-scale", "1/0"], "argument --input-scale: expected a number such as 0.0625 or 1/16, got '1/0'"),
    (["--input-offset", "nan"], "argument --input-offset: expected a number such as 0.0625 or 1/16, got 'nan'"),
    (["--input-offset", "1e999"], "argument --input-offset: must be a finite float, got '1e999'"),
    (["--input-bits", "0"], "argument --input-bits: must be a positive integer, got '0'"),
])
def test_option_errors(options, message, tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["import-qonnx", str(tmp_path / "m.onnx"), "--out", str(tmp_path / "run"), *options])
    assert exc.value.code == 2
    assert capsys.readouterr().err == (f"bnnflow import-qonnx: error: {message} (see `bnnflow import-qonnx "
                                       "--help`)\n")


def test_input_bits_beyond_the_dataset(tmp_path, capsys):
    nodes, init = _mlp_nodes()
    model = _graph(tmp_path / "m.onnx", nodes, init)
    err = _refused(capsys, model, tmp_path, "--input-bits", "6")
    assert err == "bnnflow import-qonnx: error: --input-bits must be 1..5 (the digits pixels have 5 bits), got 6"


def test_external_data_is_hashed_and_required(tmp_path, capsys):
    """A model whose initializers live in an external MODEL.onnx.data file: the run records that file's sha256
    beside the model's; without the file the import is refused naming it."""
    import onnx

    nodes, init = _mlp_nodes()
    model = _graph(tmp_path / "ext.onnx", nodes, init)
    proto = onnx.load(str(model))
    onnx.save_model(proto, str(model), save_as_external_data=True, location="ext.onnx.data", size_threshold=0)
    data = tmp_path / "ext.onnx.data"
    assert main(["import-qonnx", str(model), "--out", str(tmp_path / "ok")]) == 0
    capsys.readouterr()
    imported = json.loads((tmp_path / "ok" / "config.json").read_text())["imported"]
    assert imported["sha256"] == hashlib.sha256(model.read_bytes()).hexdigest()
    assert imported["external_data"] == {"ext.onnx.data": hashlib.sha256(data.read_bytes()).hexdigest()}
    data.unlink()
    err = _refused(capsys, model, tmp_path)
    assert re.fullmatch(rf"bnnflow import-qonnx: error: {re.escape(str(model))}: initializer '\w+' is stored in the "
                        r"external file 'ext.onnx.data', which is missing \(keep the .onnx.data file the exporter "
                        r"wrote beside the model\)", err), err


def test_refuses_a_file_that_is_not_onnx(tmp_path, capsys):
    model = tmp_path / "notes.onnx"
    model.write_text("this is not a protobuf\n")
    err = _refused(capsys, model, tmp_path)
    assert err.startswith(f"bnnflow import-qonnx: error: {model}: not an ONNX model (protobuf could not parse it")
    missing = tmp_path / "missing.onnx"
    err = _refused(capsys, missing, tmp_path)
    assert err == f"bnnflow import-qonnx: error: {missing}: file not found"


# ---------------------------------------------------------------------------
# Slow: every variant, the whole test split, both simulators
# ---------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("variant", list(VARIANTS))
def test_variants_full_split(variant, digits, tmp_path, capsys, one_thread):
    """Each quantizer variant: Brevitas == rebuilt model on all 360 test images, then verify on all of them
    with golden, rtl on Verilator and Icarus, and hls."""
    pytest.importorskip("brevitas")
    model = train_brevitas(variant, digits, SLOW_STEPS)
    onnx_file = export_brevitas(model, tmp_path / f"{variant}.onnx")
    run = tmp_path / "run"
    assert main(["import-qonnx", str(onnx_file), "--out", str(run), *_import_options(variant)]) == 0
    capsys.readouterr()
    config = json.loads((run / "config.json").read_text())
    assert config["input_bits"] == (1 if VARIANTS[variant]["input"] == "bipolar" else 5)
    assert config["arch"] == ("mlp" if _shared_scores(variant) else "FC32-FC16")
    figures = compare_with_brevitas(model, run, variant, digits)
    assert figures["accuracy"] > 0.3          # pixels binarized at 16 (lfc-binary-input) keep little
    assert main(["export", str(run)]) == 0
    capsys.readouterr()
    for sim, levels in (("verilator", "golden,rtl,hls"), ("icarus", "rtl")):
        code = main(["verify", str(run), "--against", levels, "--sim", sim])
        out = capsys.readouterr().out
        assert code == 0, out
        rows = _verify_figures(out)
        assert all(agree == "100.00%" for _, agree in rows.values()), out
        assert rows["torch"][0] == f"{figures['accuracy'] * 100:.2f}%", out


@pytest.mark.slow
def test_refuses_brevitas_4bit_weights(digits, tmp_path, capsys):
    """A Brevitas QuantLinear with 4-bit weights: refused naming its Quant node."""
    pytest.importorskip("brevitas")
    from brevitas.nn import QuantIdentity, QuantLinear
    from brevitas.quant import Int8WeightPerTensorFloat, SignedBinaryActPerTensorConst
    from torch import nn

    torch.manual_seed(SEED)
    model = nn.Sequential(QuantIdentity(act_quant=SignedBinaryActPerTensorConst),
                          QuantLinear(64, 16, bias=False, weight_quant=Int8WeightPerTensorFloat, weight_bit_width=4),
                          nn.BatchNorm1d(16), QuantIdentity(act_quant=SignedBinaryActPerTensorConst),
                          QuantLinear(16, 10, bias=False, weight_quant=Int8WeightPerTensorFloat, weight_bit_width=4))
    model.eval()
    onnx_file = export_brevitas(model, tmp_path / "w4.onnx")
    err = _refused(capsys, onnx_file, tmp_path)
    assert re.fullmatch(rf"bnnflow import-qonnx: error: {re.escape(str(onnx_file))}: node 'Quant_\d+' \(Quant\) "
                        r"quantizes the weights of 'Gemm_0' to 4-bit signed codes; bnnflow imports binarized "
                        r"weights \(BipolarQuant, or a 1-bit signed Quant\)", err), err
