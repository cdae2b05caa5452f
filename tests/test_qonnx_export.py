"""`bnnflow qonnx`: the deployed integer network as QONNX; qonnx's execute_onnx == the golden model, exactly.

Every net here is exported to a QONNX graph and executed by qonnx's own
``execute_onnx`` on every test vector its artifact stores; the whole score
arrays must equal the golden model's. The nets cover every datapath (int and
xnor layers, sym and int weights of 1..8 bits, 1..127 thresholds, affine
scores, 1-bit inputs on XNOR lanes, convolutions with pad codes 0 and 1 and
pools), every training method's deployed MLP (randomly initialised: the
deployment does not care whether a model was trained) and conv nets, a
trained run through the CLI, and the float64 layers whose integers float32
cannot hold (with the proof that float32 would be wrong there).
"""

from __future__ import annotations

import sys
import warnings

import numpy as np
import pytest

from bnnflow import artifact as art
from bnnflow import qonnx_export as qx
from bnnflow.folding import LayerFolding as F
from bnnflow.golden import GoldenModel
from bnnflow.testing import conv_artifact
from bnnflow.writer import read_vectors
from conftest import assert_one_line, run_cli


def golden_and_qonnx(artifact: art.Artifact, precision: str = "auto"):
    """(golden scores, qonnx execute_onnx outputs, the model, its layer plans) on every stored test vector."""
    model, plans = qx.build(artifact, precision)
    images, _, stored = read_vectors(artifact)
    golden = GoldenModel(artifact).scores(images)
    assert np.array_equal(golden, stored)
    return golden, qx.execute(model, images), model, plans


def assert_equal_to_golden(artifact: art.Artifact) -> tuple:
    golden, got, model, plans = golden_and_qonnx(artifact)
    assert got.shape == golden.shape
    assert np.array_equal(got, golden), qx.check_model(model, artifact).first_difference
    assert np.unique(golden).size > 2          # the scores vary: a constant net would prove little
    return model, plans


# -- random nets of every datapath (thresholds fitted to their own test vectors) ------------------------

INT, XT, XS, IS = art.INT, art.XNOR_THRESHOLD, art.XNOR_SCORE, art.INT_SCORE

#: name -> ((H, W, C) input map, input bits, bnnflow.testing layer dicts, expected precision per layer)
FC_NETS = {
    # DoReFa-like: 8-bit int weights on 8-bit pixels, 2-bit sym weights, an affine score
    "w2a2": ((1, 37, 1), 8, [dict(mh=24, weight_bits=8, weight_encoding=INT, n_thresholds=3),
                             dict(mh=16, weight_bits=2, n_thresholds=3),
                             dict(mh=10, weight_bits=8, weight_encoding=INT, affine_bits=12)], ["float32"] * 3),
    # WAGE-like: ternary weights, 127 thresholds (7-bit codes)
    "ternary": ((1, 37, 1), 8, [dict(mh=12, weight_bits=2, weight_encoding=INT, n_thresholds=127),
                                dict(mh=10, weight_bits=2, weight_encoding=INT)], ["float32"] * 2),
    # binary weights on 5-bit codes, 4-bit sym weights on 4-bit codes, then XNOR layers, an affine xnor score
    "mixed": ((1, 37, 1), 5, [dict(mh=20, n_thresholds=15), dict(mh=16, weight_bits=4, n_thresholds=1),
                              dict(kind=XT, mh=12), dict(kind=XS, mh=7, affine_bits=16)], ["float32"] * 4),
    # 1-bit pixels straight onto XNOR lanes (the graph turns the bits into +-1 first), 1-bit codes into an int layer
    "binary-input": ((1, 30, 1), 1, [dict(kind=XT, mh=16), dict(mh=12, weight_bits=3, weight_encoding=INT),
                                     dict(mh=5)], ["float32"] * 3),
    # integers beyond 2^24: 8-bit sym weights over 600 8-bit pixels, and a 25-bit affine: float64 layers,
    # with the 2-bit layer between them back in float32
    "wide": ((1, 600, 1), 8, [dict(mh=8, weight_bits=8, n_thresholds=3), dict(mh=6, weight_bits=2, n_thresholds=1),
                              dict(mh=5, weight_bits=3, weight_encoding=INT, affine_bits=25)],
             ["float64", "float32", "float64"]),
    # a unit-test artifact ending in a threshold layer: the graph outputs its codes (7 thresholds: UINT3)
    "codes-out": ((1, 20, 1), 4, [dict(mh=12, n_thresholds=3), dict(mh=6, kind=art.INT_THRESHOLD, n_thresholds=7)],
                  ["float32"] * 2),
}


@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("name", list(FC_NETS))
def test_fully_connected_nets_equal_golden(tmp_path, name, seed):
    ifm, bits, layers, precisions = FC_NETS[name]
    a = conv_artifact(tmp_path / "a", seed, ifm, bits, layers, n_vectors=24)
    model, plans = assert_equal_to_golden(a)
    assert [p.precision for p in plans] == precisions
    changes = sum(a != b for a, b in zip(["float32"] + precisions, precisions))   # the input is float32
    assert len(model.get_nodes_by_op_type("Cast")) == changes


CONV_NETS = {
    # int conv on 5-bit pixels pooled 2x2, XNOR conv padding with +1 (code 1), FC on the HWC map, xnor score
    "int-xnor": ((8, 8, 1), 5, [dict(mh=8, kernel=3, pad=1, pool=2, n_thresholds=1),
                                dict(mh=16, kind=XT, kernel=3, pad=1), dict(mh=12, kind=XT), dict(mh=10, kind=XS)],
                 None, 1),
    # kernel 2 without pad on a non-square 2-channel map, 2-bit codes; a sym conv padding with code 1, pool
    # dropping a row; folding with SIMD < channels
    "k2-multi": ((6, 5, 2), 2, [dict(mh=6, kernel=2, n_thresholds=3, weight_bits=2, weight_encoding=INT),
                                dict(mh=8, kernel=3, pad=1, pad_code=1, pool=2, weight_bits=2),
                                dict(mh=5, kind=IS, weight_bits=2, weight_encoding=INT)],
                 [F(3, 1), F(4, 3), F(5, 8)], 6),
    # XNOR convs on 1-bit pixels: kernel 5 pad 2, an XNOR conv padding with -1 (code 0), pool 3, kernel 1
    "xnor-deep": ((6, 6, 1), 1, [dict(mh=8, kind=XT, kernel=5, pad=2),
                                 dict(mh=8, kind=XT, kernel=3, pad=1, pad_code=0, pool=3),
                                 dict(mh=6, kind=XT, kernel=1), dict(mh=4, kind=XS, affine_bits=8)], None, 1),
}


@pytest.mark.parametrize("name", list(CONV_NETS))
def test_conv_nets_equal_golden(tmp_path, name):
    ifm, bits, layers, folding, seed = CONV_NETS[name]
    a = conv_artifact(tmp_path / "a", seed, ifm, bits, layers, folding=folding, n_vectors=8)
    model, _ = assert_equal_to_golden(a)
    ops = [n.op_type for n in model.graph.node]
    assert ops.count("Im2Col") == sum("kernel" in d for d in layers)
    assert ops.count("MaxPoolNHWC") == sum(bool(d.get("pool")) for d in layers)
    pads = [qx_attr(n, "pad_value") for n in model.get_nodes_by_op_type("Im2Col")]
    expected = [(2 * l.conv.pad_code - 1 if l.mac == "xnor" else l.conv.pad_code) for l in a.layers if l.conv]
    assert pads == expected


def qx_attr(node, name: str):
    from qonnx.custom_op.registry import getCustomOp

    return getCustomOp(node).get_nodeattr(name)


def test_graph_datatypes_and_thresholds(tmp_path):
    """The annotations a QONNX consumer reads: input codes, weight types, MultiThreshold outputs, xnor thresholds."""
    ifm, bits, layers, _ = FC_NETS["mixed"]
    a = conv_artifact(tmp_path / "a", 0, ifm, bits, layers, n_vectors=8)
    model = qx.build_model(a)
    dt = lambda name: model.get_tensor_datatype(name).name      # noqa: E731
    assert model.graph.input[0].name == "global_in" and dt("global_in") == "UINT5"
    assert model.get_tensor_shape("global_in") == [1, 37] and model.get_tensor_shape("global_out") == [1, 7]
    matmuls = model.get_nodes_by_op_type("MatMul")
    assert [dt(n.input[1]) for n in matmuls] == ["BIPOLAR", "INT5", "BIPOLAR", "BIPOLAR"]
    for k, n in enumerate(matmuls):
        assert np.array_equal(model.get_initializer(n.input[1]), a.weight_values(k).T)
    mts = model.get_nodes_by_op_type("MultiThreshold")
    # 15 thresholds -> 4-bit codes; 1-bit outputs that feed XNOR layers are +-1 values
    assert [dt(n.output[0]) for n in mts] == ["UINT4", "BIPOLAR", "BIPOLAR"]
    assert [(qx_attr(n, "out_scale"), qx_attr(n, "out_bias")) for n in mts] == [(1.0, 0.0), (2.0, -1.0), (2.0, -1.0)]
    assert np.array_equal(model.get_initializer(mts[0].input[1]), a.thresholds(0))
    assert np.array_equal(model.get_initializer(mts[2].input[1]), 2 * a.thresholds(2) - a.layers[2].in_features)
    mul, add = (model.get_initializer(model.get_nodes_by_op_type(op)[0].input[1]) for op in ("Mul", "Add"))
    assert np.array_equal(np.stack([mul, add], axis=1), a.affine(3))
    assert model.get_metadata_prop("bnnflow.signature") == a.manifest["hardware"]["signature"]
    assert model.get_metadata_prop("bnnflow.precision") == "float32,float32,float32,float32"
    images = read_vectors(a)[0]
    assert qx.execute(model, images[:0]).shape == (0, 7)
    with pytest.raises(ValueError, match=r"^images must have shape \(N, 37\) \(the graph input global_in\), "
                                         r"got \(8, 36\)$"):
        qx.execute(model, images[:, :36])


@pytest.mark.parametrize("name", ["mixed", "binary-input", "int-xnor"])
def test_qonnx_xnor_popcount_conversion_keeps_every_score(tmp_path, name):
    """The XNOR layers are in the form qonnx's ConvertBipolarMatMulToXnorPopcount (used by FINN) rewrites:
    after it, every MatMul on +-1 values is an XnorPopcountMatMul, and the scores still equal golden's."""
    from qonnx.transformation.bipolar_to_xnor import ConvertBipolarMatMulToXnorPopcount

    ifm, bits, layers, *rest = {**FC_NETS, **CONV_NETS}[name]
    seed = rest[-1] if name in CONV_NETS else 0
    a = conv_artifact(tmp_path / "a", seed, ifm, bits, layers, n_vectors=8)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")         # it warns about a graph input it retypes: ours stays UINT
        model = qx.build_model(a).transform(ConvertBipolarMatMulToXnorPopcount())
    xnor_layers = sum(l.mac == "xnor" for l in a.layers)
    assert len(model.get_nodes_by_op_type("XnorPopcountMatMul")) == xnor_layers > 0
    images = read_vectors(a)[0]
    assert np.array_equal(qx.execute(model, images), GoldenModel(a).scores(images))


# -- every training method's deployed network --------------------------------------------------------------

#: (id, settings) of the methods that export (tests/test_deploy.py has their layer kinds)
METHOD_SETTINGS = [
    ("bnn", {"method": "bnn"}),
    ("binaryconnect", {"method": "binaryconnect"}),
    ("xnor", {"method": "xnor"}),
    ("xnor-bwn", {"method": "xnor", "variant": "bwn"}),
    ("xnor-quant-last", {"method": "xnor", "last_layer": "quant"}),
    ("dorefa-W1A2", {"method": "dorefa"}),
    ("dorefa-W1A1", {"method": "dorefa", "wbits": 1, "abits": 1}),
    ("dorefa-W2A2", {"method": "dorefa", "wbits": 2, "abits": 2}),
    ("wage", {"method": "wage"}),
]


@pytest.fixture(scope="module")
def digits():
    from bnnflow.datasets import load_dataset

    return load_dataset("digits", 0)


def method_artifact(root, digits, settings: dict, conv: bool = False, vectors: int = 360) -> art.Artifact:
    """A randomly initialised digits net of ``settings`` (tests/test_deploy.py's stand-in for a trained one),
    deployed and written with the first ``vectors`` digits test images as its test vectors."""
    from test_deploy import randomized, small_config
    from test_deploy_conv import conv_config

    from bnnflow.export import deployed_network, layer_data
    from bnnflow.folding import default_folding
    from bnnflow.writer import write_artifact

    config = conv_config(**settings) if conv else small_config(hidden=[24, 16], **settings)
    net = deployed_network(randomized(config, digits), config, digits)
    data = layer_data(net)
    channels = [d.conv.channels if d.conv else None for d in data]
    network = {"name": "m", "input_features": 64, "input_shape": [8, 8], "input_bits": 5, "num_classes": 10,
               "deployment": net.constants}
    return write_artifact(root, network, data, default_folding([d.shape for d in data], channels=channels),
                          vectors=(digits.x_test[:vectors], digits.y_test[:vectors]), generate=())


@pytest.mark.parametrize("settings", [s for _, s in METHOD_SETTINGS], ids=[n for n, _ in METHOD_SETTINGS])
def test_every_method_equals_golden_on_all_360_digits(tmp_path, digits, settings, one_thread):
    """Each method's deployed digits MLP: qonnx == golden on all 360 test images; wide last layers in float64."""
    a = method_artifact(tmp_path / "a", digits, settings)
    _, plans = assert_equal_to_golden(a)
    assert read_vectors(a)[0].shape == (360, 64)
    # the calibrated real last layers (BinaryConnect, XNOR-Net's quantized last layer) have wide affines
    wide = settings.get("method") == "binaryconnect" or settings.get("last_layer") == "quant"
    assert [p.precision for p in plans] == ["float32", "float32", "float64" if wide else "float32"]


@pytest.mark.parametrize("settings", [{"method": "bnn"}, {"method": "dorefa", "wbits": 1, "abits": 1}],
                         ids=["bnn", "dorefa-W1A1"])
def test_conv_methods_equal_golden(tmp_path, digits, settings, one_thread):
    """6C3-MP2-8C3-FC16: int conv + pool, XNOR conv (BNN pads +1, DoReFa's 0/1 codes pad -1), FC, score."""
    a = method_artifact(tmp_path / "a", digits, settings, conv=True, vectors=16)
    model, _ = assert_equal_to_golden(a)
    assert [n.op_type for n in model.graph.node][:5] == ["Reshape", "Im2Col", "MatMul", "MultiThreshold",
                                                         "MaxPoolNHWC"]


def test_float64_layers_are_needed(tmp_path, digits, monkeypatch, one_thread):
    """XNOR-Net's quantized last layer reaches ~1e8: forced into float32 (limit raised), qonnx's scores go wrong."""
    a = method_artifact(tmp_path / "a", digits, {"method": "xnor", "last_layer": "quant"}, vectors=40)
    plans = qx.plan_precision(a)
    assert plans[2].precision == "float64" and plans[2].bound > qx.FLOAT32_EXACT
    monkeypatch.setattr(qx, "FLOAT32_EXACT", 1 << 60)
    golden, got, model, plans = golden_and_qonnx(a)
    assert not model.get_nodes_by_op_type("Cast") and {p.precision for p in plans} == {"float32"}
    assert np.any(got != golden)


# -- the command, on a trained run ----------------------------------------------------------------------------

def test_cli_exports_a_trained_run_and_checks_every_vector(digits_run, tmp_path, capsys):
    """train -> export -> `bnnflow qonnx RUN --out F --check`: the file, the report, exit 0, and the file reloads."""
    from qonnx.core.modelwrapper import ModelWrapper

    export = tmp_path / "export"
    assert run_cli(capsys, "export", digits_run, "--out", export, "--generate", "none")[0] == 0
    out = tmp_path / "digits.onnx"
    code, stdout, err = run_cli(capsys, "qonnx", export, "--out", out, "--check")
    assert code == 0, err
    lines = stdout.splitlines()
    assert lines[0] == f"bnnflow qonnx: wrote {out} ({out.stat().st_size:,} bytes) from {export}"
    assert lines[1] == "  3 layers, 5 nodes: 3 MatMul, 2 MultiThreshold"
    assert "qonnx execute_onnx on 360 test vectors: scores equal the golden model's on 360 of 360 (100.00%)" in stdout
    assert lines[-1] == "PASS: every score equals the golden model's"
    a = art.load(export)
    images = read_vectors(a)[0]
    again = qx.execute(ModelWrapper(str(out)), images)
    assert np.array_equal(again, GoldenModel(a).scores(images))
    # --limit checks the first N only
    code, stdout, _ = run_cli(capsys, "qonnx", export, "--out", out, "--check", "--limit", "7")
    assert code == 0 and "on 7 of 7 (100.00%)" in stdout


def test_check_reports_a_graph_that_differs(tmp_path):
    """The check is live: the same graph with one layer's weights negated fails it, naming the first difference."""
    ifm, bits, layers, _ = FC_NETS["w2a2"]
    a = conv_artifact(tmp_path / "a", 0, ifm, bits, layers, n_vectors=8)
    model = qx.build_model(a)
    last = model.get_nodes_by_op_type("MatMul")[-1]
    model.set_initializer(last.input[1], -model.get_initializer(last.input[1]))
    result = qx.check_model(model, a)
    assert result.images == 8 and result.equal_images < 8
    assert result.first_difference.startswith("qonnx scores differ from golden at image ")


# -- errors ---------------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def small_export(tmp_path_factory):
    ifm, bits, layers, _ = FC_NETS["wide"]
    return conv_artifact(tmp_path_factory.mktemp("qonnx") / "export", 0, ifm, bits, layers, n_vectors=4)


def test_out_in_a_missing_folder_is_refused(small_export, tmp_path, capsys):
    out = tmp_path / "missing" / "net.onnx"
    code, _, err = run_cli(capsys, "qonnx", small_export.root, "--out", out)
    assert code == 2
    assert_one_line(err, f"bnnflow qonnx: error: {out}: the directory {out.parent} does not exist (create it first)")
    code, _, err = run_cli(capsys, "qonnx", small_export.root, "--out", tmp_path)
    assert code == 2
    assert_one_line(err, f"{tmp_path}: is a directory; --out names the .onnx file to write")


def test_a_folder_without_an_export_is_refused(tmp_path, capsys):
    code, _, err = run_cli(capsys, "qonnx", tmp_path, "--out", tmp_path / "net.onnx")
    assert code == 2
    assert_one_line(err, f"{tmp_path}: neither an export folder (no manifest.json) nor a training run with one "
                         f"({tmp_path / 'export' / 'manifest.json'}); run `bnnflow export RUN` first")
    assert not (tmp_path / "net.onnx").exists()


def test_float32_only_refuses_the_layer_beyond_2_24(small_export, tmp_path, capsys):
    bound = qx.layer_bound(small_export, 0)
    assert bound > 1 << 24
    out = tmp_path / "net.onnx"
    code, _, err = run_cli(capsys, "qonnx", small_export.root, "--out", out, "--precision", "float32")
    assert code == 2
    assert_one_line(err, f"{small_export.root / 'manifest.json'}: layer 0 (int_threshold) reaches integers up to "
                         f"{bound:,}, beyond float32's exact range 2^24 = 16,777,216: with --precision float32 it "
                         "cannot be exact (--precision auto runs it in float64)")
    assert not out.exists()


def test_a_convolution_beyond_2_24_is_refused(tmp_path):
    """qonnx's Im2Col types its output float32, so a conv cannot run in float64: refused, naming the layer."""
    a = conv_artifact(tmp_path / "a", 0, (3, 3, 128), 8, [dict(mh=2, kernel=3, weight_bits=8, weight_encoding=INT),
                                                          dict(mh=3)], n_vectors=2)
    bound = qx.layer_bound(a, 0)
    assert bound > 1 << 24
    with pytest.raises(qx.QonnxExportError) as info:
        qx.build_model(a)
    assert str(info.value) == (
        f"{a.root / 'manifest.json'}: layer 0 (int_threshold, a convolution) reaches integers up to {bound:,}, "
        "beyond float32's exact range 2^24 = 16,777,216, and a convolution cannot run in float64 (qonnx's Im2Col "
        "and MaxPoolNHWC type their outputs float32)")


def test_limit_without_check_is_refused(small_export, tmp_path, capsys):
    code, _, err = run_cli(capsys, "qonnx", small_export.root, "--out", tmp_path / "n.onnx", "--limit", "3")
    assert code == 2
    assert_one_line(err, "bnnflow qonnx: error: --limit 3 applies to --check, which was not given")


def test_without_the_interop_extra_the_command_names_it(small_export, tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "qonnx", None)          # as if qonnx were not installed
    code, _, err = run_cli(capsys, "qonnx", small_export.root, "--out", tmp_path / "n.onnx")
    assert code == 2
    assert_one_line(err, "bnnflow qonnx: error: bnnflow qonnx needs qonnx (the 'interop' extra), which is not "
                         "installed: pip install 'bnnflow[interop]' (in a clone: pip install -e '.[interop]')")
